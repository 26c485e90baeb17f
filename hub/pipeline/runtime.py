"""A worker's runtime: the processors' steps with their writers, retries and metrics, composed.

- :mod:`hub.pipeline.topology` declares the Faust app, tables and agents;
- :mod:`hub.pipeline.processors` turns batches and state into records and state writes (pure);
- :mod:`hub.pipeline.state` writes them (outputs, then changelog, then RocksDB);
- :mod:`hub.pipeline.retry` retries a failed step on the same batch;
- :mod:`hub.pipeline.ops` keeps readiness, lag and the ingest child process.

A step = processor → produce its records → persist its state writes → count. Each agent's step
runs under its own :class:`StepRetry`, so an error never lets Faust commit an unprocessed event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import faust
from confluent_kafka import TopicPartition

from hub import metrics
from hub.contracts.codec import AvroCodec, get_codec
from hub.contracts.privacy import redacting
from hub.engine.config import RulesConfig, load_config
from hub.engine.lifecycle import Transition
from hub.health import Readiness
from hub.pipeline import trace
from hub.pipeline.aio_producer import AioStepProducer
from hub.pipeline.clients import consumer_config
from hub.pipeline.correlate import OutputTopics
from hub.pipeline.gaps import (
    NEXT_INPUT_KEY,
    GapFiller,
    Message,
    in_offset_order,
    next_expected,
    next_input_writes,
    plain_consumer,
    replays,
    stored_offsets,
    without_replays,
)
from hub.pipeline.ingest_process import IngestProcess
from hub.pipeline.lag import GroupWatch, committed_offsets
from hub.pipeline.ops import WorkerOps
from hub.pipeline.processors import AreaProcessor, CorrelateProcessor, StepResult
from hub.pipeline.retry import FaultHook, StepRetry
from hub.pipeline.state import BatchedTableWriter, DeliveryFailed
from hub.pipeline.stuck import StuckProducerGuard, broker_probe
from hub.pipeline.topics import AREA_TABLE, DOSSIER_TABLE, Topics, ensure_topics
from hub.pipeline.topology import build_topology
from hub.settings import Settings

log = logging.getLogger(__name__)

#: How often a worker looks for messages skipped at the end of its partitions (seconds).
TAIL_GAP_EVERY_S = 15.0

#: How often an idle stage acknowledges its last step's changelog and writes it to RocksDB
#: (a busy one does that in its next step: :meth:`BatchedTableWriter.persist`).
SETTLE_EVERY_S = 0.5

#: How long a rebalance waits for the last step's changelog (well within the 10 s session).
REVOKE_SETTLE_S = 5.0


@dataclass
class CorrelateStats:
    batches: int = 0
    events: int = 0
    unchanged: int = 0
    dossiers: int = 0
    emitted: Counter[str] = field(default_factory=Counter)


class HubRuntime:
    """Everything a worker needs, built from settings; one per process."""

    def __init__(
        self, settings: Settings, config: RulesConfig | None = None, with_ingest: bool = True
    ) -> None:
        self.settings = settings
        self.config = config if config is not None else load_config(settings.rules_config)
        self.topics = Topics.from_settings(settings)
        outputs = OutputTopics(
            dossiers=self.topics.dossiers,
            contact_routing=self.topics.contact_routing,
            signals=self.topics.signals,
            area_updates=self.topics.area_updates,
            dead_letter=self.topics.dead_letter,
        )
        self.codec: AvroCodec = get_codec()
        encode: Any = self.codec.encode
        if not settings.publish_contact_details:  # privacy option (hub.contracts.privacy)
            encode = redacting(self.codec.encode)
        self.correlator = CorrelateProcessor(self.config, outputs, encode)
        self.area_processor = AreaProcessor(self.config, outputs, encode)
        self.stats = CorrelateStats()
        self.readiness = Readiness(tables=(DOSSIER_TABLE, AREA_TABLE), stall_after_s=120)
        topology = build_topology(
            settings, self.topics, self.process_normalised_many, self.process_area_updates
        )
        self.app = topology.app
        self.ingest = IngestProcess(settings) if with_ingest else None
        self.group_watch = GroupWatch(settings, [self.topics.normalised, self.topics.area_updates])
        self.ops = WorkerOps(
            self.app,
            self.readiness,
            tables=(DOSSIER_TABLE, AREA_TABLE),
            sources=(self.topics.normalised, self.topics.area_updates),
            group_watch=self.group_watch,
            ingest=self.ingest,
        )
        self.dossier_writer = BatchedTableWriter(
            topology.dossiers,
            self._producer(),
            on_stall=self.ops.broker_stall("correlate"),
            guard=StuckProducerGuard(broker_probe(settings)),
            new_producer=self._producer,
        )
        self.area_writer = BatchedTableWriter(
            topology.areas,
            self._producer(),
            on_stall=self.ops.broker_stall("area"),
            guard=StuckProducerGuard(broker_probe(settings)),
            new_producer=self._producer,
        )
        # messages the consumer skipped (committed, never processed) are found and processed
        gap_consumer = plain_consumer(consumer_config(settings, f"{settings.app_id}-gaps"))
        self.correlate_gaps = GapFiller("correlate", self.topics.normalised, gap_consumer)
        self.area_gaps = GapFiller("area", self.topics.area_updates, gap_consumer)
        self.correlate_retry = StepRetry(
            "correlate", self.readiness, on_retry=self._on_retry, stopping=self._stopping
        )
        self.area_retry = StepRetry(
            "area", self.readiness, on_retry=self._on_retry, stopping=self._stopping
        )
        self.fault = FaultHook(settings.fault_correlate_errors)
        self.app.timer(1.0)(self.ops.tick)
        # one step at a time per stage: the agent's batches and the tail-gap sweep
        self._locks = {"correlate": asyncio.Lock(), "area": asyncio.Lock()}
        self.app.timer(TAIL_GAP_EVERY_S)(self.sweep_tail_gaps)
        self.app.timer(SETTLE_EVERY_S)(self.settle_idle)
        self.app.on_partitions_revoked.connect(self._settle_on_revoke)
        self.app.on_streams_drained.append(self.settle_all)
        self.app.service(self._ingest_service())

    def start_ingest(self) -> None:
        """Start the ingest child unless it runs already.

        ``hub worker`` starts it before Faust, so its state restore (seconds) overlaps the
        tables' recovery instead of following it (Faust starts its services only once the
        tables are recovered). It depends on no table: its consumers are its own.
        """
        if self.ingest is not None and self.ingest.pid is None:
            self.ingest.start()

    @property
    def tables(self) -> list[Any]:
        """The Faust tables (dossiers, areas), for the changelog pre-restore."""
        return [self.dossier_writer.table, self.area_writer.table]

    def _producer(self) -> AioStepProducer:
        return AioStepProducer(self.settings)

    def _stopping(self) -> bool:
        return bool(self.app.should_stop)

    async def _on_retry(self, exc: BaseException) -> None:
        """Before a retry: a failed delivery may be a deleted output topic, so recreate missing."""
        if isinstance(exc, DeliveryFailed):
            try:
                created = await asyncio.to_thread(ensure_topics, self.settings, 10.0)
            except Exception as err:  # broker away: the next retry tries again
                log.warning("could not check topics before retry: %s", type(err).__name__)
                return
            if created:
                log.warning("recreated missing topics: %s", ", ".join(created))

    def _ingest_service(self) -> Any:
        runtime = self

        class IngestService(faust.Service):
            """Runs the ingest child process and the group watch for the worker's lifetime."""

            async def on_start(self) -> None:
                # topics exist already: run_worker creates them before Faust subscribes
                runtime.group_watch.start()
                runtime.start_ingest()

            async def on_stop(self) -> None:
                for _stage, writer in runtime._writers():  # settled: nothing left to send
                    await writer.producer.stop()
                runtime.group_watch.stop()
                if runtime.ingest is not None:
                    await asyncio.to_thread(runtime.ingest.stop)

        return IngestService

    # -- steps (what the agents call) ----------------------------------------------------
    async def process_normalised_many(self, messages: list[Message]) -> None:
        """Correlate ``messages`` (partition, offset, value), retrying the same messages until
        it succeeds."""
        async with self._locks["correlate"]:
            await self.correlate_retry.run(lambda: self._correlate_once(messages))

    async def process_area_updates(self, updates: list[Message]) -> None:
        """Fold area updates (partition, offset, value), retrying until it succeeds."""
        async with self._locks["area"]:
            await self.area_retry.run(lambda: self._areas_once(updates))

    async def sweep_tail_gaps(self) -> None:
        """Process messages skipped at the end of a partition (a Faust timer).

        A skipped message is normally found when a later message of its partition arrives
        (:mod:`hub.pipeline.gaps`); a partition that receives nothing more would keep it
        waiting. So, outside rebalances and recovery, any partition this worker owns whose
        committed offset is past its stored next input offset gets the messages in between
        processed now. (The committed offset never passes the stored one otherwise: a batch's
        state is staged, and read as stored, before Faust may commit it; a batch whose outputs
        then failed has its staged state dropped, and this sweep or the next batch re-derives it.)
        """
        tables: Any = self.app.tables  # faust's TableManager (its stubs lack .recovery)
        if self.app.should_stop or self.app.rebalancing or not tables.recovery.completed.is_set():
            return
        stages = {
            self.topics.normalised: ("correlate", self.correlate_gaps, self.dossier_writer),
            self.topics.area_updates: ("area", self.area_gaps, self.area_writer),
        }
        owned = [TopicPartition(t, p) for t, p in sorted(self._actives()) if t in stages]
        if not owned:
            return
        try:
            committed = await asyncio.to_thread(
                committed_offsets, self.settings, self.settings.app_id, owned
            )
        except Exception as exc:  # broker away: the next sweep asks again
            log.debug("tail-gap sweep: committed offsets unavailable: %s", type(exc).__name__)
            return
        for (topic, partition), offset in committed.items():
            stage, gaps, writer = stages[topic]
            async with self._locks[stage]:
                if (
                    self.app.should_stop
                    or self.app.rebalancing
                    or not tables.recovery.completed.is_set()
                    or (topic, partition) not in self._actives()
                ):
                    return  # the assignment moved on: the next sweep looks again
                expected = next_expected(writer.get_many, partition)
                if expected is None and offset > 0:  # nothing processed yet, offsets committed
                    try:
                        expected = await asyncio.to_thread(gaps.first_offset, partition)
                    except Exception as exc:  # the next sweep asks again
                        log.warning("tail-gap sweep of %s: %s", stage, exc)
                        continue
                if expected is None or offset <= expected:
                    continue
                missing = {partition: list(range(expected, offset))}
                try:
                    messages = await asyncio.to_thread(gaps.fill, [], missing)
                except Exception as exc:  # unreadable now (broker away): the next sweep retries
                    log.warning("tail-gap sweep of %s: %s", stage, exc)
                    continue
                once = self._correlate_once if stage == "correlate" else self._areas_once
                retry = self.correlate_retry if stage == "correlate" else self.area_retry
                await retry.run(functools.partial(once, messages))

    def _writers(self) -> list[tuple[str, BatchedTableWriter]]:
        return [("correlate", self.dossier_writer), ("area", self.area_writer)]

    async def settle_idle(self) -> None:
        """A stage that took no step since its last one settles it (a Faust timer).

        Not once the worker stops: :meth:`settle_all` did that before the tables closed, and a
        write after it would reopen a partition's RocksDB that Faust let go.
        """
        if self.app.should_stop:
            return
        for stage, writer in self._writers():
            lock = self._locks[stage]
            if not writer.pending or lock.locked():
                continue
            async with lock:
                try:
                    await writer.settle()
                except DeliveryFailed as exc:  # the next step or tick tries again
                    log.warning("%s: could not settle the last step yet: %s", stage, exc)

    async def _settle_on_revoke(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        await self.settle_all()

    async def settle_all(self) -> None:
        """Before partitions move or the worker stops: every changelog record acknowledged,
        its state in RocksDB.

        A new owner restores from the changelog; a record of ours landing after it started would
        put stale state there. Faust has waited for the agents' current steps already. State
        that cannot be settled (broker away) is forgotten: the input gap check re-derives it.
        """
        for stage, writer in self._writers():
            try:
                await self._settle_locked(stage, writer)
            except (DeliveryFailed, TimeoutError) as exc:
                log.warning("%s: last step not settled before the rebalance: %r", stage, exc)
                writer.forget_pending()

    async def _settle_locked(self, stage: str, writer: BatchedTableWriter) -> None:
        """Settle within :data:`REVOKE_SETTLE_S`; once stopping, the wait for the stage's lock
        too (a step or an idle settle may hold it while the broker is away: a rebalance waits
        for them, a stopping worker has its grace period to meet)."""
        if self.app.should_stop:
            await asyncio.wait_for(self._settle_with_lock(stage, writer), REVOKE_SETTLE_S)
            return
        async with self._locks[stage]:
            await asyncio.wait_for(writer.settle(), REVOKE_SETTLE_S)

    async def _settle_with_lock(self, stage: str, writer: BatchedTableWriter) -> None:
        async with self._locks[stage]:
            await writer.settle()

    def _actives(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.app.assignor.assigned_actives()}

    async def _complete(
        self, gaps: GapFiller, writer: BatchedTableWriter, messages: list[Message]
    ) -> list[Message]:
        """``messages`` minus those the state holds already, plus any its partitions skipped
        (:mod:`hub.pipeline.gaps`).

        A partition with no state needs its low watermark from the broker, a replay its high
        watermark (both rare: after a start, a crash or a move): asked in a thread, so a slow
        broker never holds the event loop (and every other stage) for its timeout.
        """
        messages = in_offset_order(messages)
        stored = stored_offsets(messages, writer.get_many)
        replayed = replays(messages, stored)
        if replayed:
            confirmed = await asyncio.to_thread(gaps.confirm_replays, replayed)
            kept = without_replays(messages, confirmed)
            if len(kept) < len(messages):
                skipped = len(messages) - len(kept)
                metrics.record_input_replay(gaps.stage, skipped)
                log.info(
                    "%s: skipped %d message(s) delivered again below the stored input offset "
                    "(the state holds them)",
                    gaps.stage,
                    skipped,
                )
            messages = kept
            if not messages:
                return messages
        unknown = gaps.unknown_starts(messages, stored)
        firsts = await asyncio.to_thread(gaps.first_offsets, unknown) if unknown else None
        missing = gaps.find(messages, stored, firsts)
        if not missing:
            return messages
        return await asyncio.to_thread(gaps.fill, messages, missing)

    async def _correlate_once(self, batch: list[Message]) -> None:
        writer = self.dossier_writer
        spans = trace.Spans()
        messages = await self._complete(self.correlate_gaps, writer, batch)
        spans.mark("gaps")
        result = self.correlator.process([(p, v) for p, _o, v in messages], writer)
        _with_next_input(result, messages)
        spans.mark("process")
        await writer.ready()  # the last step's outputs acknowledged (its flush ran meanwhile)
        spans.mark("ready")
        _produce(writer, result)
        self.fault.check()  # test-only: fails here, with outputs produced and nothing persisted
        await writer.persist(result.writes, functools.partial(self._correlated, result))
        if trace.TIMINGS:
            events = sum(o.events for o in result.outcomes)
            trace.timings("correlate", msgs=len(messages), events=events, **spans.ms)

    def _correlated(self, result: StepResult) -> None:
        """A correlate step's metrics, once its outputs are acknowledged (counted once)."""
        for outcome in result.outcomes:
            self._account(
                "correlate",
                outcome.events,
                outcome.duplicates,
                outcome.new_dossiers,
                outcome.transitions,
                outcome.firing_delta,
            )
        if result.rejected:
            metrics.record_rejected(result.rejected)

    async def _areas_once(self, batch: list[Message]) -> None:
        writer = self.area_writer
        updates = await self._complete(self.area_gaps, writer, batch)
        result = self.area_processor.process([(p, v) for p, _o, v in updates], writer)
        _with_next_input(result, updates)
        await writer.ready()
        _produce(writer, result)
        await writer.persist(result.writes, functools.partial(self._areas_done, result))

    def _areas_done(self, result: StepResult) -> None:
        self._account("area", 0, Counter(), 0, result.transitions, result.firing_delta)
        if result.rejected:
            metrics.record_rejected(result.rejected)

    def _account(
        self,
        stage: str,
        events: int,
        duplicates: Counter[str],
        new_dossiers: int,
        transitions: list[Transition],
        firing: Counter[tuple[str, str]],
    ) -> None:
        self.stats.batches += 1
        self.stats.events += events
        self.stats.unchanged += sum(duplicates.values())
        self.stats.dossiers += new_dossiers
        now_ms = int(time.time() * 1000)
        emitted: Counter[tuple[str, str, str]] = Counter()
        for t in transitions:
            emitted[(t.kind, t.status, t.steering_group)] += 1
            self.stats.emitted[t.kind] += 1
            if t.trigger_ingested_at:
                metrics.observe_alert_latency(t.kind, t.trigger_ingested_at, t.starts_at, now_ms)
        if stage == "correlate":
            metrics.observe_batch(stage, events)
        if duplicates:
            metrics.record_duplicates(duplicates)
        if new_dossiers:
            metrics.adjust_dossiers(new_dossiers)
        if emitted:
            metrics.record_emitted(emitted)
            metrics.adjust_firing(firing)


def _with_next_input(result: StepResult, messages: list[Message]) -> None:
    """Store each partition's next input offset with the batch's state writes."""
    for partition, value in next_input_writes(messages).items():
        result.writes.setdefault(partition, {})[NEXT_INPUT_KEY] = value


def _produce(writer: BatchedTableWriter, result: StepResult) -> None:
    for record in result.records:
        if record.headers:
            writer.produce(record.topic, record.key, record.value, headers=record.headers)
        else:
            writer.produce(record.topic, record.key, record.value)
