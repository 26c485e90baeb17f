"""Run real ``hub worker`` processes against the live broker and read what they emitted."""

from __future__ import annotations

import os
import random
import shutil
import signal
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from hub.contracts.codec import AvroCodec, ConfluentSchemaRegistry
from hub.pipeline.clients import admin_config, consumer_config
from hub.pipeline.lag import group_lag, pipeline_lag
from hub.pipeline.topics import Topics, delete_topics, ensure_topics
from hub.settings import Settings


@dataclass
class HubUnderTest:
    """One isolated hub: its own topic prefix, app id and data dirs."""

    broker: str
    root: Path
    partitions: int = 4
    registry_url: str | None = None
    # letters only: a topic name with a run of digits is reported as "OTHER" in metric labels
    token: str = field(
        default_factory=lambda: "".join(random.choices(string.ascii_lowercase, k=10))
    )
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: workers get SIGKILL when the test process dies (even by SIGKILL): no orphaned workers
    die_with_parent: bool = False
    #: client security of the hub's processes as Settings fields (security_protocol,
    #: sasl_username, sasl_password_file, ssl_ca_file, ...); empty = PLAINTEXT (issue 15)
    security: dict[str, Any] = field(default_factory=dict)
    #: client security for creating and deleting this hub's topics (default: ``security``)
    admin_security: dict[str, Any] | None = None

    @property
    def settings(self) -> Settings:
        return Settings(
            broker=self.broker,
            topic_prefix=f"test.{self.token}.",
            app_id=f"test-{self.token}",
            partitions=self.partitions,
            data_dir=self.root / "data0",
            metrics_port=0,
            **self.security,
        )

    @property
    def admin_settings(self) -> Settings:
        """The settings for topic creation and clean-up (a principal allowed to delete)."""
        security = self.security if self.admin_security is None else self.admin_security
        return self.settings.model_copy(update=security)

    @property
    def topics(self) -> Topics:
        return Topics.from_settings(self.settings)

    def create_topics(self) -> None:
        ensure_topics(self.admin_settings)

    def env(self, index: int) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "HUB_BROKER": s.broker,
            "HUB_TOPIC_PREFIX": s.topic_prefix,
            "HUB_APP_ID": s.app_id,
            "HUB_PARTITIONS": str(s.partitions),
            "HUB_DATA_DIR": str(self.root / f"data{index}"),
            "HUB_METRICS_PORT": "0",
            # HUB_TEST_WORKER_LOG_LEVEL=INFO: Faust's rebalance and recovery lines (tracing)
            "HUB_LOG_LEVEL": os.environ.get("HUB_TEST_WORKER_LOG_LEVEL", "WARNING"),
            **({"HUB_SCHEMA_REGISTRY_URL": self.registry_url} if self.registry_url else {}),
            **{f"HUB_{k.upper()}": str(v) for k, v in self.security.items()},
        }

    def start_worker(
        self, index: int = 0, metrics_port: int = 0, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.root / f"worker{index}.log").open("ab")
        proc = subprocess.Popen(
            _with_pdeathsig([sys.executable, "-m", "hubctl", "worker"], self.die_with_parent),
            env={**self.env(index), "HUB_METRICS_PORT": str(metrics_port), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(proc)
        return proc

    def start_first_worker(self, timeout: float = 60.0, **kwargs: Any) -> subprocess.Popen[bytes]:
        """A worker on an empty prefix, once it has created the topics (``normalised`` exists):
        what an operator's first start does, with no ``hub topics`` before it."""
        proc = self.start_worker(**kwargs)
        admin = AdminClient(admin_config(self.settings))
        deadline = time.monotonic() + timeout
        while self.topics.normalised not in admin.list_topics(timeout=10).topics:
            assert proc.poll() is None, f"worker exited with {proc.returncode}: {self.logs()}"
            assert time.monotonic() < deadline, f"no topics after {timeout:.0f}s: {self.logs()}"
            time.sleep(0.5)
        return proc

    def stop_worker(self, proc: subprocess.Popen[bytes], kill: bool = False) -> None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        proc.wait(60)
        self.processes.remove(proc)

    def wipe_data(self, index: int = 0) -> None:
        shutil.rmtree(self.root / f"data{index}", ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.root.glob("worker*.log"))
        )

    def wait_caught_up(self, timeout: float = 300.0, settle: float = 3.0) -> None:
        """Until both consumer groups have lag 0 for ``settle`` seconds."""
        deadline = time.monotonic() + timeout
        zero_since: float | None = None
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() not in (None, 0, -15):
                    raise AssertionError(f"worker exited {proc.returncode}:\n{self.logs()}")
            lag = pipeline_lag(self.settings)
            if lag == 0:
                zero_since = zero_since or time.monotonic()
                if time.monotonic() - zero_since >= settle:
                    return
            else:
                zero_since = None
            time.sleep(0.5)
        raise AssertionError(
            f"not caught up after {timeout}s; lag per group and partition "
            f"(non-zero): {self.lag_detail()}\n{self.logs()}"
        )

    def lag_detail(self) -> dict[str, dict[str, int]]:
        """Which group is stuck on which partitions: the first thing to know about a stall."""
        topics = Topics.from_settings(self.settings)
        groups = {
            f"{self.settings.app_id}-ingest": topics.inbound(self.settings.shared_inbound),
            self.settings.app_id: [topics.normalised, topics.area_updates],
        }
        return {
            group: {
                f"{t}[{p}]": n for (t, p), n in group_lag(self.settings, group, names).items() if n
            }
            for group, names in groups.items()
        }

    def read(self, topic: str) -> list[Any]:
        """Every message of ``topic`` now, all partitions, in partition order."""
        consumer = Consumer(consumer_config(self.settings, f"reader-{uuid.uuid4().hex[:6]}"))
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            parts = []
            ends = {}
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    parts.append(TopicPartition(topic, p, low))
                    ends[p] = high
            if not parts:
                return []
            consumer.assign(parts)
            out = []
            done: set[int] = set()
            while len(done) < len(ends):
                for msg in consumer.consume(1000, timeout=1.0):
                    if msg.error():
                        continue
                    out.append(msg)
                    if msg.offset() + 1 >= ends[msg.partition()]:
                        done.add(msg.partition())
            return out
        finally:
            consumer.close()

    @property
    def codec(self) -> AvroCodec:
        """Reads both framings (the registry one only when this hub has a registry)."""
        if self.registry_url:
            return AvroCodec(
                registry=ConfluentSchemaRegistry.from_url(self.registry_url), framing="confluent"
            )
        return AvroCodec()

    def alert_records(self) -> list[dict[str, Any]]:
        codec = self.codec
        return [
            codec.decode(m.value())[1]
            for t in (self.topics.contact_routing, self.topics.signals)
            for m in self.read(t)
        ]

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        delete_topics(
            self.admin_settings, prefixes=(self.settings.topic_prefix, self.settings.app_id)
        )


# Sets PR_SET_PDEATHSIG in a fresh single-threaded interpreter, then execs the real command (the
# setting survives exec). Not preexec_fn: forking a process that runs librdkafka threads with
# Python code in the child crashed the test process.
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL); "  # 1 = PR_SET_PDEATHSIG
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def _with_pdeathsig(cmd: list[str], enabled: bool) -> list[str]:
    """``cmd`` (a Python command line) so that it is SIGKILLed when the test process dies."""
    return [cmd[0], "-c", _PDEATHSIG_EXEC, *cmd[1:]] if enabled else cmd


def latest_by_fingerprint(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in records:
        current = latest.get(rec["fingerprint"])
        if current is None or rec["version"] > current["version"]:
            latest[rec["fingerprint"]] = rec
    return latest


def firing_set(records: list[dict[str, Any]]) -> set[str]:
    return {fp for fp, rec in latest_by_fingerprint(records).items() if rec["status"] == "FIRING"}


def version_gaps(records: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Fingerprints whose emitted versions are not exactly 1..max (a lost transition)."""
    versions: dict[str, set[int]] = {}
    for rec in records:
        versions.setdefault(rec["fingerprint"], set()).add(rec["version"])
    return {fp: sorted(v) for fp, v in versions.items() if v != set(range(1, max(v) + 1))}


@contextmanager
def hub_under_test(
    broker: str,
    root: Path,
    partitions: int = 4,
    registry_url: str | None = None,
    create_topics: bool = True,
    security: dict[str, Any] | None = None,
    admin_security: dict[str, Any] | None = None,
) -> Iterator[HubUnderTest]:
    """An isolated hub; ``create_topics=False`` leaves creating its topics to the worker.

    ``security``: the client security settings of the hub's own processes and reads (e.g. the
    ``hub-worker`` principal on the secure broker); ``admin_security`` those for creating and
    deleting its topics.
    """
    hub = HubUnderTest(
        broker,
        root,
        partitions,
        registry_url,
        security=dict(security or {}),
        admin_security=admin_security,
    )
    if create_topics:
        hub.create_topics()
    try:
        yield hub
    finally:
        hub.close()
