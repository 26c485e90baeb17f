"""End-to-end latency at a steady rate: produce → alert/signal record on its output topic.

A producer thread sends pre-encoded events at a fixed rate (deadline pacing, so a slow moment is
caught up rather than stretching the run) and notes the wall-clock time of each ``produce`` call
by event id. A consumer thread follows ``contact-routing`` and ``signals`` from their current end
and, per record, takes wall-clock receive time − produce time of the record's
``trigger_event_id``. Events of the first second are sent but not sampled (the producer's
connection set-up would otherwise land on the hub). So the figure includes the producer's
linger (5 ms, the connectors' setting), the broker, the hub's ingest and correlate stages and the
consumer's fetch: what a downstream system would see.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.enabling import Enablers, enabled_at, enablers_by_event
from bench.harness import StealSampler, cores_between
from hub.contracts.codec import AvroCodec, DecodeError
from hub.pipeline.clients import consumer_config, producer_config
from hub.settings import Settings


@dataclass
class LatencyResult:
    rate_target: float
    duration_s: float
    produced: int
    produce_s: float
    records: int = 0
    matched: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    inbound_ms: list[float] = field(default_factory=list)
    hub_ms: list[float] = field(default_factory=list)
    outbound_ms: list[float] = field(default_factory=list)
    split_triggers: list[str] = field(default_factory=list)  # trigger event id per split sample
    split_kinds: list[str] = field(default_factory=list)  # the record's kind per split sample
    triggers: list[str] = field(default_factory=list)  # trigger event id of each latency sample
    # receive − produce time of the event that made the record possible (bench.enabling)
    enabled_ms: list[float] = field(default_factory=list)
    enabled_kinds: list[str] = field(default_factory=list)  # the record's kind, per enabled_ms
    parked_ids: set[str] = field(default_factory=set)  # event ids the hub parked meanwhile
    # cores busy per process while the rate was steady (bench.harness.cores_between)
    cores: dict[str, float] = field(default_factory=dict)
    # seconds a second each process waited for a core over the same span (run_queue_by_role)
    run_queue_wait: dict[str, float] = field(default_factory=dict)
    # the VM's steal over the same span (StealSampler.between): mean and worst interval
    steal: dict[str, float] | None = None

    def percentile(self, q: float, values: list[float] | None = None) -> float | None:
        return percentile(self.latencies_ms if values is None else values, q)

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return round(v, 1) if v is not None else None

        return {
            "rate_target_per_s": self.rate_target,
            "rate_achieved_per_s": round(self.produced / self.produce_s, 1)
            if self.produce_s
            else None,
            "duration_s": self.duration_s,
            "events_produced": self.produced,
            "output_records": self.records,
            "samples": self.matched,
            "p50_ms": r(self.percentile(50)),
            "p95_ms": r(self.percentile(95)),
            "p99_ms": r(self.percentile(99)),
            "max_ms": r(max(self.latencies_ms) if self.latencies_ms else None),
            "cores_by_process": self.cores,
            "run_queue_wait_by_process": self.run_queue_wait,
            "steal": self.steal,
            "not_parked": self._not_parked(),
            "since_enabling_event": self._since_enabling(),
            "split": {
                "note": "inbound = produce → ingest stage read it (trigger_ingested_at); "
                "hub = ingest → correlated (emitted_at: through hub.normalised and Faust); "
                "outbound = emitted_at → received by the benchmark's consumer (flush, fetch)",
                **{
                    f"{leg}_p{q}_ms": r(self.percentile(q, values))
                    for leg, values in (
                        ("inbound", self.inbound_ms),
                        ("hub", self.hub_ms),
                        ("outbound", self.outbound_ms),
                    )
                    for q in (50, 99)
                },
            },
            "split_not_parked": self._split_not_parked(),
        }

    def _split_not_parked(self) -> dict[str, Any] | None:
        """The legs of the samples whose trigger was never parked, overall and per record kind.

        The ``split`` row mixes in the parked events' waits (seconds, in the hub leg); this one
        says where the pipeline's own time goes, and which kinds take a longer path (the area
        signals pass a second agent).
        """
        if not self.split_triggers:
            return None
        keep = [t not in self.parked_ids for t in self.split_triggers]

        def legs(mask: list[bool]) -> dict[str, float | None]:
            out: dict[str, float | None] = {}
            for leg, values in (
                ("inbound", self.inbound_ms),
                ("hub", self.hub_ms),
                ("outbound", self.outbound_ms),
            ):
                kept = [v for v, k in zip(values, mask, strict=True) if k]
                for q in (50, 99):
                    v = percentile(kept, q)
                    out[f"{leg}_p{q}_ms"] = round(v, 1) if v is not None else None
            return out

        kinds = sorted(set(self.split_kinds))
        return {
            "samples": sum(keep),
            **legs(keep),
            "by_kind": {
                kind: legs([k and sk == kind for k, sk in zip(keep, self.split_kinds, strict=True)])
                for kind in kinds
            },
        }

    def _since_enabling(self) -> dict[str, Any] | None:
        """Every sample, measured from the later of its trigger's produce time and that of the
        event which made the record possible (:mod:`bench.enabling`): a parked event's record
        counts from the event that taught the register its address, not from the wait before.
        The targets read this row; the rows above keep the trigger's own clock."""
        if not self.enabled_ms:
            return None
        values = self.enabled_ms

        def r(v: float | None) -> float | None:
            return round(v, 1) if v is not None else None

        by_kind: dict[str, list[float]] = {}
        for kind, ms in zip(self.enabled_kinds, values, strict=True):
            by_kind.setdefault(kind, []).append(ms)
        return {
            "samples": len(values),
            "p50_ms": r(percentile(values, 50)),
            "p95_ms": r(percentile(values, 95)),
            "p99_ms": r(percentile(values, 99)),
            "max_ms": r(max(values)),
            "by_kind": {
                kind: {
                    "samples": len(ms),
                    "p50_ms": r(percentile(ms, 50)),
                    "p99_ms": r(percentile(ms, 99)),
                    "max_ms": r(max(ms)),
                }
                for kind, ms in sorted(by_kind.items())
            },
        }

    def _not_parked(self) -> dict[str, Any]:
        """Samples whose trigger event was never parked (waiting for its address mapping).

        A parked event's transition leaves when a later event teaches the register its address,
        seconds later: that wait is in the figures above (it is what a user sees) but it is
        the data's, not a stall of the pipeline. This row shows the pipeline's own latency.
        """
        kept = [
            ms
            for ms, trigger in zip(self.latencies_ms, self.triggers, strict=True)
            if trigger not in self.parked_ids
        ]
        return {
            "samples": len(kept),
            "parked_samples": len(self.latencies_ms) - len(kept),
            "p50_ms": round(v, 1) if (v := percentile(kept, 50)) is not None else None,
            "p99_ms": round(v, 1) if (v := percentile(kept, 99)) is not None else None,
            "max_ms": round(max(kept), 1) if kept else None,
        }


def parked_event_ids(settings: Settings, topic: str) -> set[str]:
    """Event ids in the hub's ``parked`` topic (key ``source|event_id``; tombstones included:
    an event released from parking was parked too)."""
    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-latency-parked"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return set()
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        ids: set[str] = set()
        done: set[int] = set()
        idle = 0
        while len(done) < len(ends) and idle < 20:
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
            idle = 0 if batch else idle + 1
            for msg in batch:
                if msg.error() is not None:
                    continue
                ids.add((msg.key() or b"").decode(errors="replace").split("|", 1)[-1])
                if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                    done.add(msg.partition() or 0)
        return ids
    finally:
        consumer.close()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _epoch_s(value: Any) -> float:
    """A decoded timestamp-millis (aware datetime, or int ms) as epoch seconds."""
    return value.timestamp() if hasattr(value, "timestamp") else float(value) / 1000.0


class _Collector(threading.Thread):
    """Consumes the output topics from their end; latency per record with a known trigger."""

    def __init__(
        self,
        settings: Settings,
        topics: list[str],
        sent: dict[str, float],
        enablers: Enablers | None = None,
    ) -> None:
        super().__init__(name="bench-latency-consumer", daemon=True)
        self.settings = settings
        self.topics = topics
        self.sent = sent
        self.enablers = enablers
        self.by_event = enablers_by_event(enablers) if enablers else {}
        self.enabled_ms: list[float] = []
        self.enabled_kinds: list[str] = []
        self.stop = threading.Event()
        self.assigned = threading.Event()
        self.records = 0
        self.latencies_ms: list[float] = []
        self.inbound_ms: list[float] = []  # produce → the hub's ingest stage read it
        self.hub_ms: list[float] = []  # ingest → correlated (emitted_at)
        self.outbound_ms: list[float] = []  # emitted_at → received from the output topic
        self.split_triggers: list[str] = []
        self.split_kinds: list[str] = []
        self.triggers: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced by the caller
            self.error = exc
            self.assigned.set()

    def _run(self) -> None:
        codec = AvroCodec()
        consumer = Consumer(
            consumer_config(
                self.settings,
                f"{self.settings.app_id}-latency",
                **{"fetch.wait.max.ms": 5, "fetch.min.bytes": 1},
            )
        )
        try:
            parts = []
            for topic in self.topics:
                meta = consumer.list_topics(topic, timeout=10).topics[topic]
                for p in meta.partitions:
                    _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    parts.append(TopicPartition(topic, p, high))
            consumer.assign(parts)
            self.assigned.set()
            while not self.stop.is_set():
                # poll, then drain: consume(n, timeout) would wait the whole timeout
                first = consumer.poll(0.05)
                if first is None:
                    continue
                received = time.time()
                for msg in [first, *consumer.consume(num_messages=1000, timeout=0)]:
                    if msg.error() is not None:
                        continue
                    self.records += 1
                    try:
                        _, record = codec.decode(msg.value() or b"")
                    except DecodeError:
                        continue
                    trigger = record.get("trigger_event_id") or ""
                    produced = self.sent.get(trigger)
                    if produced is not None:
                        self.latencies_ms.append((received - produced) * 1000.0)
                        self.triggers.append(trigger)
                        if self.enablers is not None:
                            since = enabled_at(
                                trigger,
                                record.get("address_key"),
                                self.sent,
                                self.enablers,
                                self.by_event,
                                received,
                            )
                            if since is not None:
                                self.enabled_ms.append((received - since) * 1000.0)
                                self.enabled_kinds.append(str(record.get("kind")))
                        ingested = record.get("trigger_ingested_at")
                        emitted = record.get("emitted_at")
                        if ingested and emitted:
                            ingested_s, emitted_s = _epoch_s(ingested), _epoch_s(emitted)
                            self.inbound_ms.append((ingested_s - produced) * 1000.0)
                            self.hub_ms.append((emitted_s - ingested_s) * 1000.0)
                            self.outbound_ms.append((received - emitted_s) * 1000.0)
                            self.split_triggers.append(trigger)
                            self.split_kinds.append(str(record.get("kind")))
        finally:
            consumer.close()


def measure_latency(
    settings: Settings,
    topic: str,
    outputs: list[str],
    records: list[tuple[str | None, bytes | None, bytes]],
    rate: float,
    wait_caught_up: Any,
    parked_topic: str | None = None,
    enablers: Enablers | None = None,
    cpu: Callable[[], dict[str, float]] | None = None,
    run_queue: Callable[[], dict[str, float]] | None = None,
) -> LatencyResult:
    """Produce ``records`` (event id, key, value) at ``rate``/s; collect output latencies.

    ``wait_caught_up()`` blocks until the hub has lag 0 again (called after the last produce).
    ``cpu()`` (CPU seconds per process, bench.harness.cpu_by_role) is sampled after the
    warm-up second and at the last produce: the result's ``cores`` at the steady rate;
    ``run_queue()`` (seconds waited for a core, bench.harness.run_queue_by_role) likewise.
    """
    sent: dict[str, float] = {}
    collector = _Collector(settings, outputs, sent, enablers)
    collector.start()
    collector.assigned.wait(30)
    if collector.error is not None:
        raise collector.error
    producer = Producer(producer_config(settings))
    producer.list_topics(topic, timeout=10)
    warm_up = int(rate)  # the first second is not sampled: connection set-up is not the hub's
    began = time.perf_counter()
    cpu_from: tuple[float, dict[str, float]] | None = None
    waits_from: dict[str, float] | None = None
    steady_from = time.monotonic()
    with StealSampler() as steal:
        for i, (event_id, key, value) in enumerate(records):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if i == warm_up:
                steady_from = time.monotonic()
                if cpu is not None:
                    cpu_from = (time.perf_counter(), cpu())
                    waits_from = run_queue() if run_queue is not None else None
            if event_id is not None and i >= warm_up:
                sent.setdefault(event_id, time.time())  # a re-sent duplicate keeps the first time
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
        steady_to = time.monotonic()
    produce_s = time.perf_counter() - began
    cores: dict[str, float] = {}
    waits: dict[str, float] = {}
    if cpu is not None and cpu_from is not None:
        span = time.perf_counter() - cpu_from[0]
        cores = cores_between(cpu_from[1], cpu(), span)
        if run_queue is not None and waits_from is not None:
            waits = cores_between(waits_from, run_queue(), span)
    producer.flush(60)
    wait_caught_up()
    time.sleep(1.0)  # the last records' fetch
    collector.stop.set()
    collector.join(30)
    if collector.error is not None:
        raise collector.error
    return LatencyResult(
        rate_target=rate,
        duration_s=round(len(records) / rate, 1),
        produced=len(records),
        produce_s=produce_s,
        records=collector.records,
        matched=len(collector.latencies_ms),
        latencies_ms=collector.latencies_ms,
        inbound_ms=collector.inbound_ms,
        hub_ms=collector.hub_ms,
        outbound_ms=collector.outbound_ms,
        split_triggers=collector.split_triggers,
        split_kinds=collector.split_kinds,
        triggers=collector.triggers,
        enabled_ms=collector.enabled_ms,
        enabled_kinds=collector.enabled_kinds,
        parked_ids=parked_event_ids(settings, parked_topic) if parked_topic else set(),
        cores=cores,
        run_queue_wait=waits,
        steal=steal.between(steady_from, steady_to),
    )
