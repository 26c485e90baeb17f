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

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource
from rocksdict import AccessType, Options, Rdict

from hub.contracts.codec import AvroCodec
from hub.engine.dossier import Dossier
from hub.pipeline.batches import decode_batch, partition_of
from hub.pipeline.clients import consumer_config
from hub.pipeline.topics import AREA_TABLE, DOSSIER_TABLE
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
        evidence: Path | str
        try:  # evidence only: never hides the comparison
            evidence = self.write_area_evidence()
        except Exception as exc:
            evidence = f"not written: {exc!r}"
        if cmp.clean:
            return cmp
        cmp.examples.append(f"area evidence: {evidence}")
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
        try:
            bare = sorted({k.split(" ")[0] for k in keys if k.split(" ")[0]})[:40]
            cmp.examples.append(f"dossier evidence: {self.write_dossier_evidence(bare)}")
        except Exception as exc:  # evidence only
            cmp.examples.append(f"dossier evidence not written: {exc!r}")
        return cmp

    def write_area_evidence(self) -> Path:
        """Every area update and every area-table changelog record, with partition and offset,
        to ``area-evidence.txt`` in the run's directory: whether an update never reached the
        area state (skipped) or a later state lost a member (stale read) shows in it."""
        app = self.hub.settings.app_id
        changelog = f"{app}-{AREA_TABLE}-changelog"
        lines = ["# area-updates: partition offset area address flag group event"]
        for p, offset, _key, value in self.read_positioned(self.topics.area_updates):
            u = orjson.loads(value) if value else {}
            lines.append(
                f"U {p} {offset} {u.get('area')} {u.get('address_key')} "
                f"{int(bool(u.get('has_firing_signal')))} {u.get('steering_group')} "
                f"{u.get('event_id')}"
            )
        lines.append(f"# {changelog}: partition offset area members...")
        for p, offset, key, value in self.read_positioned(changelog):
            members = sorted(orjson.loads(value)[2]) if value else []
            area = key.decode() if key else ""
            lines.append(f"C {p} {offset} {area} {len(members)} {' '.join(members)}")
        path = self.hub.root / "area-evidence.txt"
        path.write_text("\n".join(lines) + "\n")
        return path

    def write_dossier_evidence(self, keys: list[str]) -> Path:
        """For each key: every normalised event of it (partition, offset, event id) and every
        dossier changelog record (partition, offset, the event ids it holds), to
        ``dossier-evidence.txt``: an event never normalised (ingest), normalised but never in a
        state (skipped), or in a state and gone from a later one (stale read) shows in it."""
        wanted = set(keys)
        app = self.hub.settings.app_id
        lines = ["# N: normalised partition offset key source:event_id"]
        for p, offset, _key, value in self.read_positioned(self.topics.normalised):
            if value is None:
                continue
            for ev in decode_batch(value):
                if ev.address_key in wanted:
                    lines.append(f"N {p} {offset} {ev.address_key} {ev.source}:{ev.event_id}")
        lines.append("# C: dossiers changelog partition offset key event_ids held")
        for p, offset, key, value in self.read_positioned(f"{app}-{DOSSIER_TABLE}-changelog"):
            k = key.decode() if key else ""
            if k in wanted and value is not None:
                held = sorted(f"{src}:{eid}" for src, eid in Dossier.from_bytes(value).recent)
                lines.append(f"C {p} {offset} {k} {' '.join(held)}")
        path = self.hub.root / "dossier-evidence.txt"
        path.write_text("\n".join(lines) + "\n")
        return path

    def read_positioned(
        self, topic: str, timeout: float = 60.0
    ) -> list[tuple[int, int, bytes | None, bytes | None]]:
        """(partition, offset, key, value) of ``topic`` up to its current end."""
        consumer = Consumer(consumer_config(self.hub.settings, f"{self.hub.settings.app_id}-ev"))
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                return []
            ends: dict[int, int] = {}
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            out: list[tuple[int, int, bytes | None, bytes | None]] = []
            deadline = time.monotonic() + timeout
            positions = {p: -1 for p in ends}
            while any(positions[p] + 1 < ends[p] for p in ends) and time.monotonic() < deadline:
                for msg in consumer.consume(2000, timeout=0.5):
                    p, offset = msg.partition(), msg.offset()
                    if msg.error() is not None or p is None or offset is None:
                        continue
                    positions[p] = max(positions[p], offset)
                    out.append((p, offset, msg.key(), msg.value()))
                for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        positions[tp.partition] = ends[tp.partition] - 1
            return sorted(out, key=lambda r: (r[0], r[1]))
        finally:
            consumer.close()

    def tables_against_changelogs(self) -> tuple[int, list[str]]:
        """Stop every worker (SIGTERM: each settles its state), then compare each table partition
        in each data dir with its changelog: (partitions compared, differences).

        A partition that records the changelog's last offset must hold exactly the changelog's
        latest value of every key. Standbys are compared too: a hole in a standby's copy (stop
        38: Faust's standby copies missed ranges of changelog records) shows here even when no
        later owner happened to build on it. A partition behind the end is not compared (a
        compacted changelog has no earlier state to compare with) and not counted.
        """
        for index in list(self.workers):
            self.stop_worker(index)
        offset_key = b"__faust\0offset__"
        compared = 0
        problems: list[str] = []
        evidence: list[str] = []  # table-evidence.txt: which changelog record each stored value is
        app = self.hub.settings.app_id
        for table in (DOSSIER_TABLE, AREA_TABLE):
            latest: dict[int, dict[bytes, bytes | None]] = {}
            history: dict[tuple[int, bytes], list[tuple[int, bytes | None]]] = {}
            last: dict[int, int] = {}
            for p, offset, key, value in self.read_positioned(f"{app}-{table}-changelog"):
                if key is not None:
                    latest.setdefault(p, {})[key] = value
                    history.setdefault((p, key), []).append((offset, value))
                last[p] = offset
            for data in sorted(self.hub.root.glob("data*")):
                for p, end in sorted(last.items()):
                    path = data / "v1" / "tables" / f"{table}-{p}.db"
                    if not path.exists():
                        continue
                    db = Rdict(
                        str(path), Options(raw_mode=True), access_type=AccessType.read_only()
                    )
                    try:
                        stored: dict[Any, Any] = dict(db.items())
                    finally:
                        db.close()
                    raw = stored.pop(offset_key, None)
                    if raw is None or int(raw) != end:
                        continue
                    compared += 1
                    want = {k: v for k, v in latest.get(p, {}).items() if v is not None}
                    wrong = [k for k in want.keys() | stored.keys() if want.get(k) != stored.get(k)]
                    if wrong:
                        problems.append(
                            f"{data.name} {table}-{p} at changelog offset {end}: "
                            f"{len(wrong)} of {len(want)} key(s) differ from the changelog"
                        )
                        evidence.extend(
                            _table_evidence(data.name, table, p, wrong, stored, history)
                        )
        if evidence:
            (self.hub.root / "table-evidence.txt").write_text("\n".join(evidence) + "\n")
        return compared, problems

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


def _table_evidence(
    data: str,
    table: str,
    partition: int,
    keys: list[bytes],
    stored: dict[Any, Any],
    history: dict[tuple[int, bytes], list[tuple[int, bytes | None]]],
) -> list[str]:
    """Per differing key: the changelog offsets whose value the stored one equals, and the
    key's changelog offsets (a stale copy names an older record; a hole, the records skipped)."""
    lines = []
    for key in sorted(keys):
        records = history.get((partition, key), [])
        value = stored.get(key)
        same = [o for o, v in records if v == value] if value is not None else []
        lines.append(
            f"{data} {table}-{partition} key={key!r} stored={'none' if value is None else same} "
            f"changelog={[o for o, _v in records]}"
        )
    return lines
