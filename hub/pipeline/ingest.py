"""The ingest stage: inbound CaseEvents in batches → validated, resolved, normalised batches.

A confluent-kafka consumer (C speed) reads ``case-events`` in batches of up to
``max_batch`` messages, decodes and validates each, resolves its address with the pure
:class:`~hub.address.resolve.Ingestor`, and hands Faust one message per partition of
``normalised`` (see :mod:`hub.pipeline.batches`). Everything that fails goes to the dead-letter
topic with the original bytes; events waiting for an address mapping go to ``parked``.

At-least-once: the inbound offsets are committed only after every record the batch produced was
acknowledged by the broker (``flush``). A crash in between replays the batch, and replays are
harmless downstream because the engine ignores what it has already applied.

Outputs before state (:meth:`IngestStage.persist`): a batch's *outputs* (normalised batches,
dead letters) are flushed before its *state* records (register facts, building cases, parked
events and their tombstones) are even produced. Kafka orders nothing across partitions, so a
kill -9 during one flush can leave any subset durable; were a fact ("this address is in building
P") durable while the release it caused (P's case for that address) was lost, the replayed batch
would find the fact known and release nothing. With this order a replay either finds the state
missing and derives it (and its releases) again, or finds it durable because the outputs are.

Releases caused by another worker's register fact ("key is in building P", read while following
the register) have no inbound offset to hold back. So the stage keeps a checkpoint in its data
dir: the register offset up to which such releases are on the broker. A restarted stage sends
the building cases again for every pand fact after that offset (exact repeats at worst, which
the engine drops); without the file (a new or wiped worker) it sends them for every pand fact.

Global state: every worker reads the whole ``address-register`` and ``building-cases`` topics
(one partition each, compacted) on start and keeps following them, so a mapping learned by one
worker reaches the events of all; ``parked`` is re-read on start and retried.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from hub import metrics
from hub.address.normalise import AddressError
from hub.address.register import FACT_PAND, fact_key
from hub.address.resolve import Ingestor, IngestResult
from hub.contracts.deadletter import (
    Headers,
    dead_letter_headers,
    dead_letter_payload,
    truncation_headers,
)
from hub.contracts.decode import (
    Rejection,
    Stage,
    decode_case_event,
    decode_inbound_many,
    parse_case_event_json,
)
from hub.contracts.enums import RejectReason
from hub.contracts.events import CaseEvent, OccurredAtBounds, set_occurred_at_bounds
from hub.contracts.normalised import NormalisedEvent
from hub.engine.engine import gc_paused
from hub.pipeline import trace
from hub.pipeline.batches import MAX_BATCH_BYTES, encode_batches, group_by_partition
from hub.pipeline.clients import consumer_config
from hub.pipeline.echoes import Echoes
from hub.pipeline.gc_policy import FullCollections, defer_full_collections
from hub.pipeline.state import DeliveryFailed
from hub.pipeline.stuck import StuckProducerGuard, purge_stuck, purge_waiting
from hub.pipeline.topics import Topics
from hub.settings import Settings

log = logging.getLogger(__name__)

STAGE = "ingest"


@dataclass
class IngestStats:
    """Totals since start (for the demo summary and tests; Prometheus has the live view)."""

    received: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    parked: int = 0
    released: int = 0
    normalised: int = 0
    batches: int = 0
    echoes: int = 0  # own state records read back and not applied again (hub.pipeline.echoes)


@retry(
    retry=retry_if_exception_type(KafkaException),
    wait=wait_exponential(multiplier=0.2, max=2.0),
    stop=stop_after_delay(60),
    reraise=True,
)
def _high_watermark(consumer: Consumer, tp: TopicPartition) -> int:
    """High watermark, retried: a just-created topic has no partition leader for a moment."""
    return int(consumer.get_watermark_offsets(tp, timeout=10)[1])


def decode_inbound(raw: bytes) -> CaseEvent | Rejection:
    """Avro in either framing (told apart by the first byte), or the JSON form (``{``).

    JSON on the topic is accepted so that a producer that cannot speak Avro still gets
    field-level validation and precise dead-letter reasons instead of UNDECODABLE.
    """
    if raw[:1] == b"{":
        return parse_case_event_json(raw)
    return decode_case_event(raw)


def address_rejection(error: AddressError) -> Rejection:
    """An address that cannot be Dutch, in the same shape as the contract's rejections."""
    return Rejection(
        reason_code=RejectReason.INVALID_ADDRESS,
        field=error.field,
        message=str(error),
        stage=Stage.RESOLVE,
        exception_class="hub.address.normalise.AddressError",
    )


def oversized_rejection(size: int, limit: int) -> Rejection:
    """A normalised event too large for one internal batch message (cannot happen within the
    contract's bounds; if it ever does, the event is dead-lettered instead of failing the batch)."""
    return Rejection(
        reason_code=RejectReason.RECORD_TOO_LARGE,
        field=None,
        message=f"normalised event: {size} bytes, more than one batch message holds ({limit})",
        stage=Stage.BATCH,
        exception_class="hub.pipeline.batches.EventTooLarge",
    )


class ReleaseCheckpoint:
    """The address-register offset up to which this worker's releases are on the broker.

    A small JSON file in the worker's data dir, rewritten (atomically) at most every
    ``every_s`` seconds: a checkpoint that lags only means more repeats after a restart.
    """

    def __init__(
        self, path: Path | None, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.every_s = every_s
        self.clock = clock
        self._written = -1
        self._last = float("-inf")

    def load(self, topic: str) -> int:
        """The checkpointed offset for ``topic``; -1 when unknown (file missing, other topic)."""
        if self.path is None:
            return -1
        try:
            data = orjson.loads(self.path.read_bytes())
            offset = int(data["offset"]) if data.get("topic") == topic else -1
        except (OSError, ValueError, TypeError, KeyError):
            return -1
        self._written = offset
        return offset

    def advance(self, topic: str, offset: int) -> None:
        if self.path is None or offset <= self._written:
            return
        if self.clock() - self._last < self.every_s:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"topic": topic, "offset": offset}))
        os.replace(tmp, self.path)
        self._written, self._last = offset, self.clock()


CHECKPOINT_FILE = "ingest-release-checkpoint.json"


def trace_cycle(messages: list[Message], spans: trace.Spans) -> None:
    """A poll cycle's size, phases, and the age of its oldest event when it was taken."""
    oldest = min(m.timestamp()[1] for m in messages)
    taken_ms = time.time() * 1e3 - sum(spans.ms[k] for k in ("process", "persist"))
    trace.timings("ingest", msgs=len(messages), **spans.ms, age_oldest_ms=taken_ms - oldest)


#: The shortest poll cycle at a steady rate (see IngestStage._next_batch): at 1,000 events/s
#: cycles of ~8 events made ~8 tiny produce requests, a commit and ~8 Faust messages each, and
#: the 2-core machine spent more on that than on the events (the broker alone 80 % of a core).
#: Waiting at most this long adds as much latency to an event and cuts the cycles (and commits)
#: to at most 1/MIN_CYCLE_S per second.
#: 20 ms, not 10 (stop 42, full bench size, 2-vCPU Xeon VM, runs interleaved on one broker): at
#: 1,000 events/s the worker's cost is per message and step, not per event; with 10 ms cycles
#: (and 8 ms correlate steps) it used 0.65-0.75 of a core, with 20 ms (and WITHIN_S 16 ms)
#: 0.53-0.57, and the p99 from the enabling event was 97-180 ms against 172-323 ms
#: (and 0.97 s in one 10 ms run in a stalled moment of the VM), for ~8 ms more inbound p50.
#: 30 / 24 ms: 0.46-0.51 of a core, p99 109 ms in a good run, 0.86-0.96 s in two bad ones.
#: A faster machine had chosen 10 ms at quick size (stop 34).
MIN_CYCLE_S = 0.02
#: ... and once messages arrive at BUSY_BATCH per MIN_CYCLE_S or faster (1,600 events/s),
#: cycles wait up to BUSY_CYCLE_S, until the rate falls below half of that.
#: Each cycle writes a ``normalised`` message per partition it touched, and the worker's cost
#: is mostly per message (Faust): 10 ms cycles at 5,000 events/s doubled those messages, the
#: worker's thread ran out and the p99 doubled (129 → 249 ms, bench quick), while at 1,000
#: events/s 20 ms cycles were half of the inbound leg (p50 20 ms, 12 with 10 ms cycles). The
#: rate, not one cycle's count, decides (busy from 1,600 events/s, quiet again below 800), so a
#: longer busy cycle does not keep a moderate rate busy. 40 ms rather than 20: at 5,000 events/s
#: and the full bench size the worker still fell behind with 20 ms (see the correlate agent's
#: BUSY_WITHIN_S for the figures, measured together).
BUSY_CYCLE_S = 0.04
BUSY_BATCH = 32

# librdkafka prefetches up to queued.max.messages.kbytes (256 MiB in consumer_config) per consumer:
# with a backlog the ingest child held that much of not-yet-read messages (issue 17, memory).
# 8 MiB (was 32, fetches 4 MiB, was 16) is still ~25k events ahead of a 5,000-event batch; at 1M
# addresses the child's peak RSS was 470 MiB instead of 617, at the same throughput.
CONSUMER_BUFFERS = {"queued.max.messages.kbytes": 8_192, "fetch.max.bytes": 4_194_304}

#: A fetch waits up to 10 ms (half the shortest cycle) for a megabyte instead of returning with the
#: first message. With librdkafka's default (1 byte) every arriving message ended a fetch and the
#: next one went out at once: at 1,000 events/s the ingest consumer sent ~280 fetches a second
#: (broker request log, issue 17) to a stage that takes a batch at most every MIN_CYCLE_S. A
#: backlog fills the megabyte at once, so it does not wait. 5 ms (half a cycle) took 2.5 ms off
#: the inbound leg at 1,000 events/s but at 5,000 events/s the two ingest consumers fetched ~450
#: times a second instead of ~105, and the broker's extra load put the worker behind.
FETCH_PACING = {"fetch.wait.max.ms": 10, "fetch.min.bytes": 1_048_576}

#: The ingest group's session: a killed child's partitions wait this long for its successor
#: (librdkafka's default, 45 s, was most of the 47 s the fault suite's "kill -9 ingest child"
#: took to lag 0). librdkafka heartbeats from its own thread, so a long batch does not miss one;
#: the broker's minimum is 6 s.
INGEST_SESSION = {"session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000}

#: An idle stage commits the positions of its partitions again this often (see
#: IngestStage._recommit_idle).
RECOMMIT_IDLE_S = 2.0

#: A persisted batch's offsets are committed at most this often (see IngestStage._commit): a
#: commit per cycle was ~34 OFFSET_COMMIT requests a second at 1,000 events/s (issue 17's broker
#: request log), each a write to __consumer_offsets. What is held back meanwhile is persisted
#: already; a crash reads it again (exact repeats, which the engine drops), a rebalance or a
#: stop commits it first (IngestStage._on_revoke).
COMMIT_EVERY_S = 0.25

#: commit errors that mean "these partitions are no longer yours" (see IngestStage._commit)
_REBALANCED = {
    KafkaError._ASSIGNMENT_LOST,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
}


def source_mismatch(claimed: str, bound: str) -> Rejection:
    """An event on one agency's inbound topic that claims another source (a spoof or a
    misconfigured producer): the topic's ACL, not the payload, says who wrote it."""
    return Rejection(
        reason_code=RejectReason.SOURCE_MISMATCH,
        field="source",
        message=f"source: {claimed!r} on the inbound topic of {bound!r}",
        stage=Stage.VALIDATE,
        exception_class="hub.pipeline.ingest.SourceMismatch",
    )


def parked_key(source: str, event_id: str) -> bytes:
    """An event's identity is (source, event_id): two agencies may use the same id."""
    return f"{source}|{event_id}".encode()


def _pand_link(value: bytes | None) -> tuple[str, str] | None:
    """(address key, pand id) of a register record that links an address to a building."""
    try:
        fact = orjson.loads(value) if value else None
    except ValueError:
        return None
    if isinstance(fact, dict) and fact.get("fact") == FACT_PAND:
        return str(fact["address_key"]), str(fact["pand_id"])
    return None


class IngestStage:
    def __init__(
        self,
        settings: Settings,
        producer: Producer,
        ingestor: Ingestor | None = None,
        max_batch: int = 5000,
        clock: Callable[[], float] = time.time,
        metrics_sink: Any = metrics,
        batch_max_bytes: int = MAX_BATCH_BYTES,
        checkpoint: ReleaseCheckpoint | None = None,
        guard: StuckProducerGuard | None = None,
        min_cycle_s: float = MIN_CYCLE_S,
        busy_cycle_s: float = BUSY_CYCLE_S,
        full_collections: FullCollections | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.producer = producer
        self.ingestor = ingestor if ingestor is not None else Ingestor()
        self.max_batch = max_batch
        self.clock = clock
        self.min_cycle_s = min_cycle_s
        self.busy_cycle_s = busy_cycle_s
        # set in the ingest child: full GC collections on its own timer (hub.pipeline.gc_policy)
        self.full_collections = full_collections
        self._cycle_started = 0.0  # clock() when the last batch was taken
        self._busy = False  # messages arrive at a busy rate (BUSY_BATCH, BUSY_CYCLE_S)
        self.metrics = metrics_sink  # hub.metrics, or a forwarder when run in a child process
        self.stats = IngestStats()
        self.ready = threading.Event()
        self._errors: list[str] = []
        # state records of the current batch, produced only after its outputs are durable
        self._state: list[tuple[str, bytes, bytes | None]] = []
        self._echoes = Echoes()  # own register/building-case records until read back
        self._unflushed = False  # outputs produced since the last persist
        self._guard = guard  # tells a stuck producer from an absent broker (hub.pipeline.stuck)
        self._stop = threading.Event()  # run()'s: a flush gives up once it is set
        self.stopped_unflushed = False  # run() ended so: asked to stop, records not acknowledged
        self._checkpoint = (
            checkpoint
            if checkpoint is not None
            else ReleaseCheckpoint(settings.data_dir / CHECKPOINT_FILE)
        )
        self._seen_register = -1  # highest address-register offset applied
        self._commit_error: KafkaException | None = None  # from _on_commit, raised in the loop
        self._recommit_due: float | None = None  # clock() of the next idle re-commit
        # persisted batches' offset ends not yet committed (see _commit), and when we last did
        self._held: dict[tuple[str, int], int] = {}
        self._committed_at = -float("inf")
        self.batch_max_bytes = batch_max_bytes
        # occurred_at plausibility from these settings and this clock (process-wide: validation
        # runs inside pydantic, see hub.contracts.events.set_occurred_at_bounds)
        set_occurred_at_bounds(
            OccurredAtBounds(settings.occurred_at_floor, settings.occurred_at_max_future, clock)
        )
        # every producer-error series at 0 from the start, so dashboards and rate() see them
        self.metrics.init_producer_errors(self.topics.specs(1))

    # -- lifecycle ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Restore global state, then consume until ``stop`` is set. Blocking: run in a thread."""
        self._stop = stop
        # assign-only reader of the global topics: librdkafka wants a group id, it never commits
        group = f"{self.settings.app_id}-state-reader"
        state = Consumer(consumer_config(self.settings, group, **CONSUMER_BUFFERS, **FETCH_PACING))
        try:
            self._restore(state)
            group = f"{self.settings.app_id}-ingest"
            consumer = Consumer(
                consumer_config(
                    self.settings,
                    group,
                    on_commit=self._on_commit,
                    **CONSUMER_BUFFERS,
                    **FETCH_PACING,
                    **INGEST_SESSION,
                )
            )
            consumer.subscribe(
                self.topics.inbound(self.settings.shared_inbound), on_revoke=self._on_revoke
            )
            self.ready.set()
            if self.full_collections is not None:  # the child process's, not a test's
                defer_full_collections()
            last_lag = 0.0
            try:
                while not stop.is_set():
                    if self.full_collections is not None:
                        self.full_collections.maybe()
                    self._follow_state(state)
                    if time.monotonic() - last_lag > 5.0:
                        last_lag = time.monotonic()
                        self._publish_lag(consumer)
                    spans = trace.Spans()
                    messages = self._next_batch(consumer)
                    spans.mark("poll")
                    if messages:
                        self.process(messages)
                    spans.mark("process")
                    if messages or self._state or self._unflushed:
                        self.persist()
                    spans.mark("persist")
                    if messages:
                        self._commit(consumer, messages)
                    else:
                        self._commit_held(consumer)
                        self._recommit_idle(consumer)
                    if trace.TIMINGS and messages:
                        trace_cycle(messages, spans)
                    self._flush_metrics()
                # asked to stop: releases read from the register since the last batch go out;
                # close() revokes the partitions, which commits the persisted batches held back
                # (an unpersisted batch is never committed: the next owner reads it again)
                self.persist()
                self._flush_metrics()
            except DeliveryFailed:
                # asked to stop while the broker is away: librdkafka's close would wait for it
                # too, so the consumers stay open and the process ends like a killed one
                # (IngestProcess's child exits with EXIT_UNFLUSHED); nothing was committed
                self.stopped_unflushed = stop.is_set()
                raise
            finally:
                if not self.stopped_unflushed:
                    consumer.close()
        finally:
            if not self.stopped_unflushed:
                state.close()

    def _next_batch(self, consumer: Consumer, wait: float = 0.2) -> list[Message]:
        """Up to ``max_batch`` messages without waiting for a full batch.

        ``consume(n, timeout)`` waits the whole timeout unless ``n`` messages arrive, which put
        ~100 ms (up to 200) on every event at moderate rates. So: take what is already fetched;
        if nothing is, wait up to ``wait`` for one message and add what arrived with it. Under
        load librdkafka's prefetch queue is full, so batches stay large.
        """
        messages = consumer.consume(num_messages=self.max_batch, timeout=0)
        if not messages:
            first = consumer.poll(wait)
            if first is None:
                return []
            messages = [first, *consumer.consume(num_messages=self.max_batch - 1, timeout=0)]
        # at a steady moderate rate, a cycle per few events cost more than the events: each
        # cycle is a produce request per partition, a flush and a Faust message per partition.
        # So a cycle that would start within MIN_CYCLE_S (BUSY_CYCLE_S after a busy one) of the
        # last one waits for the rest of that time, taking what arrives. An idle stage (or one
        # under load) never waits.
        now = self.clock()
        cycle_s = self.busy_cycle_s if self._busy else self.min_cycle_s
        remaining = min(cycle_s, cycle_s - (now - self._cycle_started))
        if remaining > 0 and len(messages) < self.max_batch:
            more = consumer.consume(num_messages=self.max_batch - len(messages), timeout=remaining)
            messages.extend(more)
            now = self.clock()
        # the rate since the last cycle began decides the next cycle's length (see BUSY_CYCLE_S)
        span = now - self._cycle_started if self._cycle_started else cycle_s
        rate = len(messages) / max(span, self.min_cycle_s)
        busy_rate = BUSY_BATCH / self.min_cycle_s
        self._busy = rate >= (busy_rate / 2 if self._busy else busy_rate)
        self._cycle_started = now
        return messages

    def _flush_metrics(self) -> None:
        """Hand over the cycle's metrics: a child's forwarder sends them as one message."""
        flush = getattr(self.metrics, "flush", None)
        if flush is not None:
            flush()

    def _publish_lag(self, consumer: Consumer) -> None:
        """Lag of the inbound partitions this worker owns (cached watermarks: no round trip)."""
        assignment = consumer.assignment()
        if not assignment:
            return
        lags = {}
        for tp in consumer.position(assignment):
            try:
                low, high = consumer.get_watermark_offsets(tp, cached=True)
            except Exception:
                continue
            position = tp.offset if tp.offset >= 0 else low
            lags[(tp.topic, tp.partition)] = max(0, high - position)
        self.metrics.set_consumer_lags(lags)

    # -- global state ------------------------------------------------------------------
    def _restore(self, state: Consumer) -> None:
        """Read register, building cases and parked events up to their end, then retry parked."""
        parts = [
            TopicPartition(t, 0, 0)
            for t in (self.topics.address_register, self.topics.building_cases, self.topics.parked)
        ]
        ends = {tp.topic: _high_watermark(state, tp) for tp in parts}
        state.assign(parts)
        done = {t for t, high in ends.items() if high == 0}
        parked_raw: dict[bytes, bytes] = {}
        checkpoint = self._checkpoint.load(self.topics.address_register)
        late_links: list[tuple[str, str]] = []  # (key, pand) facts after the checkpoint
        while len(done) < len(ends):
            for msg in state.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    continue
                topic = msg.topic() or ""
                if topic == self.topics.parked:
                    key, value = msg.key() or b"", msg.value()
                    if value is None:
                        parked_raw.pop(key, None)
                    else:
                        parked_raw[key] = value
                else:
                    self._apply_state_message(msg, emit=False)
                    if topic == self.topics.address_register and (msg.offset() or 0) > checkpoint:
                        link = _pand_link(msg.value())
                        if link is not None:
                            late_links.append(link)
                if (msg.offset() or 0) + 1 >= ends[topic]:
                    done.add(topic)
        # The parked topic is only read at start: from here on follow the two global topics.
        state.incremental_unassign([TopicPartition(self.topics.parked, 0)])
        released: list[NormalisedEvent] = []
        for link_key, pand in late_links:  # releases not proven delivered before the restart
            released.extend(self.ingestor.building_releases(link_key, pand))
        for raw in parked_raw.values():
            decoded = decode_inbound(raw)
            if isinstance(decoded, Rejection):
                continue  # was valid when parked; a schema change would land it in the DLQ
            result = self.ingestor.ingest(decoded, int(self.clock() * 1000))
            released.extend(result.normalised)
            released.extend(result.released)
            if result.unparked:  # superseded by a later parked event of its case
                self._drop_parked(result.unparked)
            self._publish_learned(result)
        replay = self.ingestor.replay_parked()
        released.extend(replay.released)
        if replay.unparked:
            self._drop_parked(replay.unparked)
        # what resolved leaves the parked topic (after its outputs: persist), or every restart
        # would deliver it again, and a later one stale (a case moved on since)
        self._unpark(released)
        self._emit_normalised(released)
        self.persist()
        self.metrics.set_parked(self.ingestor.parked_count)
        log.info(
            "ingest state restored: %d addresses known, %d events parked",
            len(self.ingestor.register),
            self.ingestor.parked_count,
        )

    def _commit(self, consumer: Consumer, messages: list[Message]) -> None:
        """Commit the persisted batch's own offsets, at most every :data:`COMMIT_EVERY_S`.

        The batch's outputs are durable already (``persist`` flushed them), so a commit that
        fails, is lost or is held back only means the batch is read again (exact repeats, which
        the engine drops). Held-back ends are committed with a later batch's, by an idle cycle
        (:meth:`_commit_held`) or before the partitions go (:meth:`_on_revoke`). Commits are
        asynchronous: a synchronous one put a broker round trip in front of every later event;
        the answer arrives in :meth:`_on_commit` during a later poll.

        The offsets are explicit, from the batch. ``commit()`` without them commits the stored
        offsets as librdkafka's own thread finds them when it gets to the request, and by then
        the next ``consume`` has usually stored the *next* batch's: a kill -9 while that batch
        was processed lost it, offsets committed (the fault suite's "kill -9 ingest child":
        2,077 events in one run; tests/integration/test_ingest_commit.py).
        """
        self._raise_commit_error()
        held = self._held
        for msg in messages:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if msg.error() is not None or topic is None or partition is None or offset is None:
                continue
            if offset + 1 > held.get((topic, partition), -1):
                held[(topic, partition)] = offset + 1
        self._commit_held(consumer)
        self._recommit_due = self.clock() + RECOMMIT_IDLE_S

    def _commit_held(self, consumer: Consumer) -> None:
        """Send the held-back ends once :data:`COMMIT_EVERY_S` has passed since the last commit."""
        if not self._held or self.clock() - self._committed_at < COMMIT_EVERY_S:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._held.items()]
        self._held = {}
        self._committed_at = self.clock()
        consumer.commit(offsets=offsets, asynchronous=True)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """librdkafka's revoke callback (a rebalance, or ``close()``): commit what was held back.

        Everything held is persisted (``_commit`` runs after ``persist``), so its new owner can
        start after it. Synchronous, so the commit is made before the partitions go; if it
        fails, the owner reads those batches again (exact repeats).
        """
        going = {(tp.topic, tp.partition) for tp in partitions}
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._held.items() if (t, p) in going]
        self._held = {tp: o for tp, o in self._held.items() if tp not in going}
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            log.warning("ingest: commit before a rebalance failed (%s); batches read again", error)

    def _recommit_idle(self, consumer: Consumer) -> None:
        """Once idle, commit the positions of the owned partitions again, explicitly.

        A commit can be refused in a rebalance, or be lost with the connection, and a member
        leaving the group (a dead worker's child on its way out) can commit an older offset
        after ours: any of these leaves the group's lag above 0 until the partition gets new
        messages (suspected in the fault suite's "kill -9 worker": lag 27 for 240 s, nothing
        missing). Every consumed message is persisted by now, so the position is the right
        offset. A commit with explicit offsets is always sent (``commit()`` skips offsets it
        believes committed).
        """
        if self._recommit_due is None or self.clock() < self._recommit_due:
            return
        self._raise_commit_error()
        assignment = consumer.assignment()
        owned = [tp for tp in consumer.position(assignment) if tp.offset >= 0] if assignment else []
        if owned:
            consumer.commit(offsets=owned, asynchronous=True)
        self._recommit_due = None

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (``on_commit``), called from ``poll``/``consume``.

        A commit refused because a rebalance took the partitions away is not an error: the new
        owner reads the batch again. Anything else ends the child (the supervisor restarts it
        and it reads from the last commit that succeeded), as a refused synchronous commit did.
        """
        if err is None or err.code() == KafkaError._NO_OFFSET:  # nothing new to commit
            return
        if err.code() in _REBALANCED:
            log.warning(
                "ingest: commit refused after a rebalance (%s); batch left to its owner",
                err.name(),
            )
            # the partition may come back to this stage at the same position: commit again
            self._recommit_due = self.clock() + RECOMMIT_IDLE_S
            return
        self._commit_error = KafkaException(err)

    def _raise_commit_error(self) -> None:
        if self._commit_error is not None:
            error, self._commit_error = self._commit_error, None
            raise error

    def _follow_state(self, state: Consumer) -> None:
        messages = state.consume(num_messages=10_000, timeout=0)
        released: list[NormalisedEvent] = []
        for msg in messages:
            if not msg.error():
                released.extend(self._apply_state_message(msg, emit=True))
        if released:
            self.stats.released += len(released)
            self.metrics.record_released(len(released))
            self._emit_normalised(released)
            self._unpark(released)  # parked events another worker's fact resolved

    def _apply_state_message(self, msg: Message, emit: bool) -> list[NormalisedEvent]:
        value = msg.value()
        topic = msg.topic() or ""
        if topic == self.topics.address_register:
            self._seen_register = max(self._seen_register, msg.offset() or 0)
        if value is None:
            return []
        if self._echoes.skip(topic, msg.key() or b"", value):
            self.stats.echoes += 1
            return []
        try:
            if topic == self.topics.building_cases:
                self.ingestor.remember([NormalisedEvent(**orjson.loads(value))])
                return []
            result = self.ingestor.apply_fact(orjson.loads(value))
        except (ValueError, TypeError) as exc:
            log.warning(
                "skipping unreadable state record at %s/%d: %s",
                msg.topic(),
                msg.offset(),
                type(exc).__name__,
            )
            return []
        self._publish_learned(result)
        if result.unparked:
            self._drop_parked(result.unparked)
        return result.released if emit else []

    # -- the hot path ------------------------------------------------------------------
    def process(self, messages: list[Message]) -> None:
        """Decode, validate, resolve and forward one consumed batch (no commit here).

        The cyclic GC waits until the batch is done (``gc_paused``): the batch's objects are freed
        by reference counting, but each of the ~70 young collections per 5,000 events walked
        them, and the full collections they trigger walk the whole register (issue 17: about
        15-20% of the stage's CPU). One collection after the batch picks up any cycle.
        """
        with gc_paused():
            self._process(messages)

    def _process(self, messages: list[Message]) -> None:
        now_ms = int(self.clock() * 1000)
        normalised: list[NormalisedEvent] = []
        origins: dict[tuple[str, str], Message] = {}  # (source, event_id) -> its message
        received: Counter[tuple[str, str]] = Counter()
        rejected: Counter[str] = Counter()
        parked = 0
        released = 0
        # decoded in one batch call (see decode_inbound_many), aligned with the error-free messages
        batch = iter(decode_inbound_many([m.value() or b"" for m in messages if m.error() is None]))
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error)
                continue
            raw = msg.value() or b""
            decoded = next(batch)
            if isinstance(decoded, Rejection):
                rejected[decoded.reason_code] += 1
                self._dead_letter(msg, decoded)
                continue
            source = decoded.source.value  # an enum's .value is a Python-level property
            bound = self.topics.source_of(msg.topic() or "")
            if bound is not None and source != bound:
                rejection = source_mismatch(source, bound)
                rejected[rejection.reason_code] += 1
                self._dead_letter(msg, rejection)
                continue
            received[(source, decoded.case_type.value)] += 1
            result = self.ingestor.ingest(decoded, now_ms)
            if result.error is not None:
                rejection = address_rejection(result.error)
                rejected[rejection.reason_code] += 1
                self._dead_letter(msg, rejection)
                continue
            normalised.extend(result.normalised)
            origins[(source, decoded.event_id)] = msg
            if result.released:
                normalised.extend(result.released)
                released += len(result.released)
                self._unpark(result.released)
            if result.parked:
                parked += 1
                self._state.append((self.topics.parked, parked_key(source, decoded.event_id), raw))
            if result.unparked:  # after this event's own parked record: it may be one of them
                self._drop_parked(result.unparked)
            case = result.building_case
            if case is not None and case.pand_id:  # a pand-only event: the building's case
                self._publish_building_case(case.pand_id, case)
            self._publish_learned(result)
        self._emit_normalised(normalised, origins)
        accepted = sum(received.values())
        self.stats.received += len(messages)
        self.stats.accepted += accepted
        self.stats.rejected.update(rejected)
        self.stats.parked += parked
        self.stats.released += released
        self.metrics.record_received(received)
        if rejected:
            self.metrics.record_rejected(rejected)
        if parked:
            self.metrics.record_parked(parked)
            self.metrics.set_parked(self.ingestor.parked_count)
        if released:
            self.metrics.record_released(released)
        self.metrics.observe_batch(STAGE, len(messages))

    def _emit_normalised(
        self,
        events: list[NormalisedEvent],
        origins: dict[tuple[str, str], Message] | None = None,
    ) -> None:
        if not events:
            return
        self._unflushed = True
        self.stats.normalised += len(events)
        refused: set[tuple[str, str]] = set()

        def oversized(event: NormalisedEvent, size: int) -> None:
            """Dead-letter the event's original message (once) instead of failing the batch."""
            identity = (event.source, event.event_id)
            if identity in refused:
                return
            refused.add(identity)
            rejection = oversized_rejection(size, self.batch_max_bytes)
            self.stats.rejected[rejection.reason_code] += 1
            self.metrics.record_rejected({rejection.reason_code: 1})
            msg = (origins or {}).get(identity)
            if msg is not None:
                self._dead_letter(msg, rejection)
            else:  # released from parking: no consumed message in this batch
                value, truncated = dead_letter_payload(orjson.dumps(event))
                headers = dead_letter_headers(rejection, topic=None, partition=None, offset=None)
                self._produce_dead_letter(event.event_id.encode(), value, headers + truncated)

        for partition, group in group_by_partition(events, self.settings.partitions).items():
            for payload in encode_batches(
                group,
                self.batch_max_bytes,
                on_oversized=oversized,
                version=self.settings.batch_format,
            ):
                self.stats.batches += 1
                self.producer.produce(
                    self.topics.normalised,
                    value=payload,
                    key=b"batch",
                    partition=partition,
                    on_delivery=self._on_delivery,
                )

    def _publish_learned(self, result: IngestResult) -> None:
        for fact in result.learned:
            self._state.append(
                (self.topics.address_register, fact_key(fact).encode(), orjson.dumps(fact))
            )

    def _publish_building_case(self, pand_id: str, event: NormalisedEvent) -> None:
        for template in self.ingestor.building_cases(pand_id):
            if template.case_ref == event.case_ref:
                key = f"{pand_id}|{template.source}|{template.case_id}".encode()
                self._state.append((self.topics.building_cases, key, orjson.dumps(template)))

    def _unpark(self, released: list[NormalisedEvent]) -> None:
        for key in {parked_key(e.source, e.event_id) for e in released}:
            self._state.append((self.topics.parked, key, None))

    def _drop_parked(self, unparked: list[tuple[str, str]]) -> None:
        """Tombstones for parked events the ingestor let go without releasing them."""
        for key in dict.fromkeys(parked_key(source, event_id) for source, event_id in unparked):
            self._state.append((self.topics.parked, key, None))

    def _dead_letter(self, msg: Message, rejection: Rejection) -> None:
        """Original key, value (cut to MAX_DEAD_LETTER_PAYLOAD, marked so) and error headers.

        ``hub.errors.stage`` is the rejection's own stage (decode, validate, resolve, batch),
        and the topic/partition/offset headers point at the original message.
        """
        value, truncated = dead_letter_payload(msg.value())
        headers = dead_letter_headers(
            rejection, topic=msg.topic(), partition=msg.partition(), offset=msg.offset()
        )
        self._produce_dead_letter(msg.key(), value, headers + truncated)

    def _produce_dead_letter(
        self, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        """Produce a dead letter; one the producer refuses as too large (a huge key) goes
        without key and value, its headers still pointing at the original: never fails."""
        try:
            self.producer.produce(
                self.topics.dead_letter,
                key=key,
                value=value,
                headers=list(headers),  # type: ignore[arg-type]  # stubs: invariant list
                on_delivery=self._on_delivery,
            )
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            size = len(value or b"") + len(key or b"")
            kept = [h for h in headers if not h[0].startswith("hub.errors.payload.")]
            self.producer.produce(
                self.topics.dead_letter,
                key=None,
                value=None,
                headers=kept + truncation_headers(size),  # type: ignore[arg-type]
                on_delivery=self._on_delivery,
            )

    # -- delivery ----------------------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.metrics.record_producer_error(msg.topic() or "unknown", err.name())
            self._errors.append(f"{msg.topic()}: {err.str()}")

    def persist(self) -> None:
        """Make the batch durable in dependency order: outputs, then the state behind them.

        See the module docstring (outputs before state). The state records keep their order, so
        a parked event and its tombstone in the same batch land in that order (same key).
        """
        seen = self._seen_register  # every release up to here was produced before this flush
        self._flush()
        self._unflushed = False
        if self._state:
            records, self._state = self._state, []
            followed = (self.topics.address_register, self.topics.building_cases)
            for topic, key, value in records:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
                if value is not None and topic in followed:
                    self._echoes.produced(topic, key, value)
            self._flush()
        self._checkpoint.advance(self.topics.address_register, seen)

    def _flush(self) -> None:
        """Wait until every record is acknowledged or failed, however long the broker is away.

        A failed record raises :class:`DeliveryFailed`: the batch is not committed, the child
        exits and the worker restarts it, so the batch is read again (nothing skipped).
        Asked to stop (``run``'s event: SIGTERM, or the worker died) while records still wait,
        it purges them and fails the batch the same way instead of waiting for the broker: a
        worker stopped during an outage would otherwise wait for the outage to end.
        """
        waiting = False
        while remaining := self.producer.flush(5.0):
            if not waiting:
                log.warning("ingest: %d record(s) waiting for the broker", remaining)
                waiting = True
            if self._stop.is_set():
                purge_waiting(self.producer)
                self._errors.append(f"stopping: {remaining} record(s) not acknowledged")
                break
            if self._guard is not None and self._guard.stuck():
                # a stuck producer (hub.pipeline.stuck): fail the batch; the restarted child
                # has a new producer and reads the uncommitted batch again
                self._errors.append(purge_stuck(self.producer, remaining))
                break
        if self._guard is not None:
            self._guard.reset()
        if waiting and not self._errors:
            log.warning("ingest: broker reachable again, records acknowledged")
        if self._errors:
            errors, self._errors = self._errors[:5], []
            raise DeliveryFailed(f"records not delivered: {errors}")
