"""A fault scenario on the three-node cluster: :class:`tests.faults.scenario.FaultRun` (load,
lag 0, judgement against the oracle, clean-up) with several supervised workers and checks of
what the cluster promises (RF 3 / min ISR 2 on every hub topic, writes refused below min ISR).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka.admin import ConfigResource

from hub.contracts.codec import AvroCodec
from hub.pipeline.batches import partition_of
from tests.cluster.broker import ClusterBroker
from tests.faults.compare import (
    Comparison,
    alert_state,
    dossier_state,
    latest_by_fingerprint,
)
from tests.faults.scenario import FaultRun, ScenarioReport


class ClusterRun(FaultRun):
    """Workers by index (``worker<i>.log``, data dir ``data<i>``), each supervised."""

    def __init__(
        self,
        broker: ClusterBroker,
        root: Path,
        report: ScenarioReport,
        worker_env: dict[str, str] | None = None,
        partitions: int = 8,
    ) -> None:
        super().__init__(broker, root, report, worker_env, partitions)  # type: ignore[arg-type]
        self.cluster = broker
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self._due: dict[int, float] = {}  # index -> restart time after an unasked exit
        self._backoffs: dict[int, float] = {}
        self.deliberate: set[int] = set()  # indexes stopped on purpose: not restarted

    # -- workers -------------------------------------------------------------------------
    def start_worker(self, index: int = 0) -> subprocess.Popen[bytes]:  # type: ignore[override]
        proc = self.hub.start_worker(index, extra_env=self.worker_env)
        self.workers[index] = proc
        self.deliberate.discard(index)
        self._primary()
        return proc

    def _primary(self) -> None:
        """``self.worker`` (what FaultRun's lag wait and ingest-child lookup use): the lowest
        index alive."""
        alive = [i for i in sorted(self.workers) if self.workers[i].poll() is None]
        self.worker = self.workers[alive[0]] if alive else None

    def kill_worker(self, index: int = 0) -> None:  # type: ignore[override]
        """``kill -9`` of worker ``index`` (a process this run started); not restarted."""
        proc = self.workers.pop(index)
        self.worker = proc
        self._remember_children()
        proc.kill()
        proc.wait(30)
        self.hub.processes.remove(proc)
        self.deliberate.add(index)
        self._primary()

    def stop_worker(self, index: int, timeout: float = 90.0) -> float:
        """SIGTERM (graceful) of worker ``index``; seconds until it exited."""
        began = time.monotonic()
        proc = self.workers.pop(index)
        self.deliberate.add(index)
        try:
            self.hub.stop_worker(proc)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
            self.report.notes.append(f"worker {index} ignored SIGTERM for 60 s: killed")
        self._primary()
        return time.monotonic() - began

    def supervise(self) -> None:
        """Restart any worker that exited without being told to (back-off 2 → 20 s)."""
        now = time.monotonic()
        for index, proc in list(self.workers.items()):
            if proc.poll() is not None:
                self.report.exits.append(proc.returncode)
                self.hub.processes.remove(proc)
                del self.workers[index]
                backoff = self._backoffs.get(index, 2.0)
                self._due[index] = now + backoff
                self._backoffs[index] = min(backoff * 2, 20.0)
        for index, due in list(self._due.items()):
            if now >= due and index not in self.deliberate:
                del self._due[index]
                self.start_worker(index)
        self._primary()

    def close(self) -> None:
        self.worker = None
        super().close()

    # -- cluster facts -------------------------------------------------------------------
    def hub_prefixes(self) -> tuple[str, ...]:
        s = self.hub.settings
        return (s.topic_prefix, s.app_id)

    def leader_counts(self) -> dict[int, int]:
        return self.cluster.leaders(self.hub_prefixes())

    def check_replication(self, replicas: int = 3, min_isr: int = 2) -> None:
        """Every topic of this hub (its own and Faust's) has ``replicas`` replicas and
        ``min.insync.replicas`` = ``min_isr``: as the worker created them."""
        meta = self.admin.list_topics(timeout=10)
        names = sorted(n for n in meta.topics if n.startswith(self.hub_prefixes()))
        wrong: list[str] = []
        for name in names:
            sizes = {len(p.replicas) for p in meta.topics[name].partitions.values()}
            if sizes != {replicas}:
                wrong.append(f"{name}: replicas {sorted(sizes)}")
        resources = [ConfigResource("topic", n) for n in names]
        for res, future in self.admin.describe_configs(resources).items():
            config: dict[str, Any] = future.result(timeout=10)
            value = config["min.insync.replicas"].value
            if value != str(min_isr):
                wrong.append(f"{res.name}: min.insync.replicas {value}")
        expected = len(self.hub_topics()) + 3  # + two changelogs and the assignor's topic
        ok = not wrong and len(names) >= expected
        self.checks.append(
            (
                f"{len(names)} hub topics with RF {replicas}, min ISR {min_isr}"
                + (f" ({'; '.join(wrong[:4])})" if wrong else ""),
                ok,
            )
        )

    def judge(self) -> Comparison:
        """FaultRun's judgement, plus where the differences are: the inbound partition of every
        address key whose dossier or FIRING alert differs (a failover bug concentrates on the
        partitions the lost worker owned; an ingest bug spreads over all)."""
        cmp = super().judge()
        if cmp.clean:
            return cmp
        oracle = self.oracle()
        codec = AvroCodec()
        latest: dict[str, dict[str, Any]] = {}
        for rec in self.read_records(self.topics.dossiers):
            latest[rec["address_key"]] = rec
        keys: set[str] = set()
        for key, dossier in oracle.engine.dossiers.items():
            want = codec.decode(codec.encode("AddressDossier", dossier.to_record()))[1]
            got = latest.get(key)
            if got is None or dossier_state(got) != dossier_state(want):
                keys.add(key)
        alerts = latest_by_fingerprint(
            [
                *self.read_records(self.topics.contact_routing),
                *self.read_records(self.topics.signals),
            ]
        )
        for fp, rec in oracle.firing_records().items():
            got = alerts.get(fp)
            if (
                got is None
                or got["status"] != "FIRING"
                or alert_state(got) != alert_state(codec.decode(codec.encode("Alert", rec))[1])
            ):
                keys.add(f"{rec['address_key']} (alert {fp} {rec['kind']})")
        parts = Counter(
            partition_of(k.split(" ")[0], self.hub.partitions) for k in keys if k.split(" ")[0]
        )
        cmp.examples.append(
            f"differing address keys by inbound partition: {dict(sorted(parts.items()))}"
        )
        cmp.examples.append("differing keys: " + ", ".join(sorted(keys)))
        return cmp

    def acked(self) -> int:
        return len(self.publisher.acked) if self.publisher is not None else 0

    def worker_log_lines(self, needle: str, limit: int = 10) -> list[str]:
        out: list[str] = []
        for path in sorted(self.hub.root.glob("worker*.log")):
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    if needle in line:
                        out.append(f"{path.name}: {line[:300]}")
        return out[:limit]
