"""CPU per event of the hub's two hot-path stages, in process, A/B against another source tree.

``python bench/cpu_ab.py --base DIR [--runs 5] [--events N] [--batch N]`` runs this tree and the
tree at ``DIR`` (e.g. ``git archive main`` unpacked) alternately, each in a fresh interpreter, and
prints the median **process CPU time** (``time.process_time``) per inbound event of:

- **ingest**: ``IngestStage.process`` over poll batches of 5,000 wire records of the bench
  workload (fake producer: the records are kept, not sent; before each poll the stage reads
  its own register and building-case records back, as its state consumer does), as in the
  ingest child;
- **correlate**: ``CorrelateProcessor.process`` over the ``normalised`` messages the ingest run
  produced, up to 32 per call as the agent takes them, on an in-memory store, encoding with the
  worker's ``AvroCodec``, as in the Faust worker (without Faust, RocksDB and the producer).

That is the throughput regime (a backlog: full batches, each key several times per step).
``--batch N`` (N below 5,000) models a **steady rate** instead: ingest poll batches of N wire
records (at 1,000 events/s the child polls about 8-25 per cycle), and each correlate call takes
the messages of the polls that cover ``--step-events`` inbound events (default 20: what arrives
in 20 ms at 1,000/s), so nearly every key comes once per step and pays a whole dossier decode,
apply, encode. Its digest differs from the throughput mode's (dossier versions count steps),
never between trees at the same ``--batch``.

CPU time, not wall clock, and interleaved runs: the machine is shared, and a neighbour's load
changes wall-clock figures far more than any change here. Each run also prints a digest of the
records the stages produce for the outside world (dead letters, state records, dossiers, alerts,
signals, area updates; not the internal ``normalised`` batches, whose format may differ), so an
A/B also shows that the outputs are byte-identical.

``--one`` runs one measurement with whatever ``hub`` is importable (the driver sets PYTHONPATH)
and prints one JSON line. The workload is the quick bench workload (25k addresses, 100k events),
pickled once under ``.local/cpu_ab`` so that changes to the contracts do not rebuild it.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / ".local" / "cpu_ab" / "workload-quick.pickle"
POLL_BATCH = 5000
AGENT_TAKE = 32  # hub.agents.correlate.MAX_MESSAGES
FIXED_NOW = 1_767_225_600.0  # 2026-01-01Z: ingested_at is part of the output records


class WireMessage:
    """What ``IngestStage.process`` reads of a confluent-kafka Message."""

    __slots__ = ("_key", "_offset", "_value")

    def __init__(self, key: bytes | None, value: bytes, offset: int) -> None:
        self._key, self._value, self._offset = key, value, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return "hub.case-events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class _Producer:
    """Keeps what the stage produces; ``flush`` acknowledges everything at once."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int | None, Any]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        on_delivery: Any = None,
        headers: Any = None,
    ) -> None:
        self.records.append((topic, key, value, partition, headers))

    def flush(self, timeout: float = 0) -> int:
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


class StateMessage(WireMessage):
    """A record of a followed state topic, as the ingest child's state consumer reads it."""

    __slots__ = ("_topic",)

    def __init__(self, topic: str, key: bytes | None, value: bytes, offset: int) -> None:
        super().__init__(key, value, offset)
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class _StateReader:
    """Hands the stage back its own register and building-case records, as the child's state
    consumer does (``IngestStage._follow_state`` runs before every poll)."""

    def __init__(self, producer: _Producer, followed: tuple[str, ...]) -> None:
        self.producer, self.followed = producer, followed
        self.position = 0

    def consume(self, num_messages: int = 1, timeout: float = 0) -> list[StateMessage]:
        new = self.producer.records[self.position :]
        self.position = len(self.producer.records)
        return [
            StateMessage(topic, key, value, i)
            for i, (topic, key, value, _p, _h) in enumerate(new, self.position - len(new))
            if topic in self.followed and value is not None
        ]


class NoMetrics:
    """The ingest child forwards batch-level metric calls; their cost is not the stage's."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _DictStore:
    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = {}

    def get_many(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        part = self.data.get(partition, {})
        return [part.get(k) for k in keys]


def _digest(update: Any, records: Any) -> None:
    for topic, key, value, headers in records:
        update(topic.encode())
        update(key or b"-")
        update(value or b"-")
        for name, hvalue in headers or ():
            if name != "hub.errors.timestamp":  # wall clock of the rejection
                update(name.encode())
                update(hvalue or b"-")


def correlate_calls(
    polls: list[list[tuple[int, bytes]]], batch: int, step_events: int
) -> list[list[tuple[int, bytes]]]:
    """The ``normalised`` messages of each correlate call, from those of each ingest poll.

    Throughput mode (``batch`` = POLL_BATCH): all messages in order, AGENT_TAKE per call, as
    before. Steady rate: the messages of consecutive polls until they cover ``step_events``
    inbound events (``batch`` per poll), at most AGENT_TAKE per call.
    """
    if batch == POLL_BATCH:
        flat = [m for poll in polls for m in poll]
        return [flat[i : i + AGENT_TAKE] for i in range(0, len(flat), AGENT_TAKE)]
    per_call = max(1, -(-step_events // batch))  # polls per call, rounded up
    calls: list[list[tuple[int, bytes]]] = []
    for start in range(0, len(polls), per_call):
        taken = [m for poll in polls[start : start + per_call] for m in poll]
        calls.extend(taken[i : i + AGENT_TAKE] for i in range(0, len(taken), AGENT_TAKE))
    return calls


def run_one(events: int, batch: int = POLL_BATCH, step_events: int = 20) -> dict[str, Any]:
    import hub.engine.dossier as dossier_module
    from hub.contracts.codec import AvroCodec
    from hub.engine.config import load_config
    from hub.pipeline.correlate import OutputTopics
    from hub.pipeline.ingest import IngestStage, ReleaseCheckpoint
    from hub.pipeline.processors import CorrelateProcessor
    from hub.settings import Settings

    dossier_module.__dict__["_now_ms"] = lambda: int(FIXED_NOW * 1000)  # emitted_at
    keys, values, _ids = pickle.loads(WORKLOAD.read_bytes())
    keys, values = keys[:events], values[:events]
    messages = [WireMessage(k, v, i) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), partitions=8)
        producer = _Producer()
        stage = IngestStage(
            settings,
            producer,  # type: ignore[arg-type]
            clock=lambda: FIXED_NOW,
            metrics_sink=NoMetrics(),
            checkpoint=ReleaseCheckpoint(None),
        )
        followed = (stage.topics.address_register, stage.topics.building_cases)
        reader = _StateReader(producer, followed)
        ends: list[int] = []  # len(producer.records) after each poll
        gc.collect()
        t0 = time.process_time()
        for start in range(0, len(messages), batch):
            stage._follow_state(reader)  # type: ignore[arg-type]
            stage.process(messages[start : start + batch])  # type: ignore[arg-type]
            stage.persist()
            ends.append(len(producer.records))
        stage._follow_state(reader)  # type: ignore[arg-type]
        ingest_s = time.process_time() - t0
    polls = [
        [
            (partition or 0, value or b"")
            for topic, _k, value, partition, _h in producer.records[begin:end]
            if topic == stage.topics.normalised
        ]
        for begin, end in zip([0, *ends], ends, strict=False)
    ]
    calls = correlate_calls(polls, batch, step_events)
    _digest(
        digest.update,
        [(t, k, v, h) for t, k, v, _p, h in producer.records if t != stage.topics.normalised],
    )
    topics = stage.topics
    outputs = OutputTopics(
        dossiers=topics.dossiers,
        contact_routing=topics.contact_routing,
        signals=topics.signals,
        area_updates=topics.area_updates,
        dead_letter=topics.dead_letter,
    )
    processor = CorrelateProcessor(load_config(None), outputs, AvroCodec().encode)
    store = _DictStore()
    out_records = 0
    gc.collect()
    t0 = time.process_time()
    for call in calls:
        result = processor.process(call, store)
        for partition, writes in result.writes.items():
            store.data.setdefault(partition, {}).update(writes)
        _digest(digest.update, [(r.topic, r.key, r.value, r.headers) for r in result.records])
        out_records += len(result.records)
    correlate_s = time.process_time() - t0
    return {
        "events": len(messages),
        "batch": batch,
        "normalised_messages": sum(len(c) for c in calls),
        "correlate_calls": len(calls),
        "output_records": out_records,
        "ingest_us": round(ingest_s / len(messages) * 1e6, 2),
        "correlate_us": round(correlate_s / len(messages) * 1e6, 2),
        "digest": digest.hexdigest()[:16],
    }


def _run_tree(tree: Path, events: int, batch: int, step_events: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    command = [sys.executable, str(Path(__file__).resolve()), "--one", "--events", str(events)]
    command += ["--batch", str(batch), "--step-events", str(step_events)]
    out = subprocess.run(
        command,
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", action="store_true", help="one run with the importable hub")
    parser.add_argument("--base", type=Path, help="the other source tree (A)")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="more trees to interleave (instead of this one)",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=POLL_BATCH,
        help="ingest poll batch; below 5,000 the steady-rate mode (see the module docstring)",
    )
    parser.add_argument(
        "--step-events",
        type=int,
        default=20,
        help="steady-rate mode: inbound events whose messages one correlate call takes",
    )
    parser.add_argument("--prepare", action="store_true", help="pickle the quick workload")
    args = parser.parse_args()
    if args.prepare:
        sys.path.insert(0, str(ROOT))
        from bench.workload import build

        w = build(25_000, 100_000, 2024)
        WORKLOAD.parent.mkdir(parents=True, exist_ok=True)
        WORKLOAD.write_bytes(pickle.dumps((w.keys, w.values, w.event_ids), protocol=5))
        return
    if args.one:
        print(json.dumps(run_one(args.events, args.batch, args.step_events)))
        return
    trees = {"new": ROOT}
    if args.base is not None:
        trees = {"base": args.base.resolve(), "new": ROOT}
    if args.tree:
        trees = {"base": args.base.resolve()} if args.base is not None else {}
        for spec in args.tree:
            name, _, directory = spec.partition("=")
            trees[name] = Path(directory).resolve()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for i in range(args.runs):
        order = list(trees)[i % len(trees) :] + list(trees)[: i % len(trees)]  # rotate
        for name in order:
            r = _run_tree(trees[name], args.events, args.batch, args.step_events)
            runs[name].append(r)
            print(
                f"{name:6} ingest {r['ingest_us']:7.2f} correlate {r['correlate_us']:7.2f} "
                f"µs/event  digest {r['digest']}",
                flush=True,
            )
    for name, rs in runs.items():
        ing = statistics.median(r["ingest_us"] for r in rs)
        cor = statistics.median(r["correlate_us"] for r in rs)
        digests = sorted({r["digest"] for r in rs})
        print(
            f"median {name:6} (n={len(rs)}): ingest {ing:.1f}, correlate {cor:.1f}, "
            f"sum {ing + cor:.1f} µs/event; digests {digests}"
        )


if __name__ == "__main__":
    main()
