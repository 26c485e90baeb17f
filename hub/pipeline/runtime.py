"""The worker's runtime: Faust app, tables, producers and the ingest process, wired once.

Agents in :mod:`hub.agents` stay thin: they receive messages and call the methods here, which in
turn call the pure engine (:mod:`hub.pipeline.correlate`, :mod:`hub.engine`).

State writes go through :class:`hub.pipeline.state.BatchedTableWriter` (one per agent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from confluent_kafka import Producer

from hub import metrics
from hub.contracts.codec import AvroCodec, get_codec
from hub.engine import area as area_step
from hub.engine.area import AreaState, AreaUpdate
from hub.engine.config import RulesConfig, load_config
from hub.engine.dossier import DUPLICATE_EVENT_ID_CONFLICT
from hub.engine.lifecycle import Transition
from hub.health import Readiness
from hub.pipeline.batches import BatchFormatError, decode_batch
from hub.pipeline.clients import producer_config
from hub.pipeline.correlate import (
    BatchOutcome,
    OutputTopics,
    correlate_batch,
    count_firing_delta,
    firing_snapshot,
    group_by_key,
    transition_record,
)
from hub.pipeline.ingest_process import IngestProcess
from hub.pipeline.lag import GroupWatch
from hub.pipeline.retry import FaultHook, StepRetry
from hub.pipeline.state import BatchedTableWriter, DeliveryFailed
from hub.pipeline.topics import (
    AREA_TABLE,
    CHANGELOG_CONFIG,
    DOSSIER_TABLE,
    Topics,
    ensure_topics,
)
from hub.settings import Settings

log = logging.getLogger(__name__)

# Faust's RocksDB defaults (3 x 64 MiB write buffers and a 2 GiB block cache per partition
# database, 2 tables x N partitions of them) let memory grow past 1 GB at 250k addresses. Dossiers
# are small and read once per batch: modest buffers and a small shared-nothing cache suffice.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 32 * 1024 * 1024,
}


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
        self.outputs = OutputTopics(
            dossiers=self.topics.dossiers,
            contact_routing=self.topics.contact_routing,
            signals=self.topics.signals,
            area_updates=self.topics.area_updates,
            dead_letter=self.topics.dead_letter,
        )
        self.codec: AvroCodec = get_codec()
        self.stats = CorrelateStats()
        self.readiness = Readiness(tables=(DOSSIER_TABLE, AREA_TABLE), stall_after_s=120)
        self.app = self._build_app()
        self.dossier_writer = BatchedTableWriter(
            self.dossiers, self._producer(), on_stall=self._broker_stall("correlate")
        )
        self.area_writer = BatchedTableWriter(
            self.areas, self._producer(), on_stall=self._broker_stall("area")
        )
        self.correlate_retry = StepRetry("correlate", self.readiness, on_retry=self._on_retry)
        self.area_retry = StepRetry("area", self.readiness, on_retry=self._on_retry)
        self.fault = FaultHook(settings.fault_correlate_errors)
        self.group_watch = GroupWatch(settings, [self.topics.normalised, self.topics.area_updates])
        self._lag_exported: set[tuple[str, int]] = set()
        self.ingest = IngestProcess(settings) if with_ingest else None
        self._ingest_restart_at: float | None = None
        self._ingest_restarts = 0
        self._ingest_started_ok = time.monotonic()

    def _broker_stall(self, stage: str) -> Any:
        def note(reason: str | None) -> None:
            name = f"{stage}-broker"
            self.readiness.set_blocker(name, f"{stage}: {reason}" if reason else None)
            if reason:
                log.warning("%s: %s; waiting (nothing is skipped)", stage, reason)
            else:
                log.warning("%s: broker reachable again, records acknowledged", stage)

        return note

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

    def _producer(self) -> Producer:
        return Producer(producer_config(self.settings, **{"linger.ms": 2}))

    # -- Faust app -----------------------------------------------------------------------
    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            broker=f"kafka://{s.broker}",
            store="rocksdb://",
            datadir=str(s.data_dir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            topic_allow_declare=True,
            web_enabled=False,
            producer_acks=-1,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            broker_commit_every=1000,
            broker_commit_interval=1.0,
            # a worker that died without leaving is noticed after 30 s (Faust default: 60 s)
            broker_session_timeout=30.0,
            broker_heartbeat_interval=3.0,
            # also the changelog batch size during recovery: small values made recovery slow
            broker_max_poll_records=500,
            stream_buffer_maxsize=64,
            table_standby_replicas=0,
            # on rebalance, finish the in-flight batch before giving its partition away: otherwise
            # its late changelog write can land after the new owner's, and stale state wins
            stream_wait_empty=True,
            key_serializer="raw",
            value_serializer="raw",
        )
        raw = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.normalised_topic = app.topic(self.topics.normalised, **raw)
        self.area_topic = app.topic(self.topics.area_updates, **raw)
        table = {
            "key_type": bytes,
            "value_type": bytes,
            "partitions": s.partitions,
            "options": ROCKSDB_OPTIONS,
            # roll and compact the changelogs soon, so a recovering worker replays ~one record
            # per key instead of one per batch that touched it
            "extra_topic_configs": CHANGELOG_CONFIG,
        }
        self.dossiers = app.Table(DOSSIER_TABLE, **table)
        self.areas = app.Table(AREA_TABLE, **table)
        from hub.agents import area as area_agent
        from hub.agents import correlate as correlate_agent

        correlate_agent.register(app, self)
        area_agent.register(app, self)
        app.timer(1.0)(self._watch)
        app.service(self._ingest_service())
        return app

    def _ingest_service(self) -> Any:
        runtime = self

        class IngestService(faust.Service):
            """Runs the ingest stage in its child process for the worker's lifetime."""

            async def on_start(self) -> None:
                # topics exist already: run_worker creates them before Faust subscribes
                runtime.group_watch.start()
                if runtime.ingest is not None:
                    runtime.ingest.start()

            async def on_stop(self) -> None:
                runtime.group_watch.stop()
                if runtime.ingest is not None:
                    await asyncio.to_thread(runtime.ingest.stop)

        return IngestService

    def _supervise_ingest(self) -> None:
        """Restart an ingest child that exited unasked, with back-off; not ready meanwhile."""
        ingest = self.ingest
        if ingest is None:
            return
        failed = ingest.failed
        now = time.monotonic()
        if failed is not None:
            if self._ingest_restart_at is None:
                delay = min(30.0, 2.0**self._ingest_restarts)
                self._ingest_restart_at = now + delay
                log.error("ingest process exited with code %s; restarting in %.0f s", failed, delay)
                self.readiness.set_blocker("ingest", f"ingest process restarting (exit {failed})")
            elif now >= self._ingest_restart_at:
                self._ingest_restart_at = None
                self._ingest_restarts += 1
                metrics.record_ingest_restart()
                ingest.restart()
        elif ingest.ready:
            self.readiness.set_blocker("ingest", None)
            if self._ingest_restarts and now - self._ingest_started_ok > 300:
                self._ingest_restarts = 0  # healthy for 5 minutes: back-off starts over
        else:
            self._ingest_started_ok = now

    async def _watch(self) -> None:
        """Once a second: readiness, recovery metrics, lag, and the ingest child's supervision."""
        self._supervise_ingest()
        recovery = self.app.tables.recovery
        done = recovery.completed.is_set() and not self.app.rebalancing
        progress = 1.0 if done else _recovery_progress(recovery)
        for table in (DOSSIER_TABLE, AREA_TABLE):
            self.readiness.set_table_recovery(table, progress, done)
        ingest_ready = self.ingest is None or self.ingest.ready
        self.readiness.set_consuming(done and ingest_ready)
        self.readiness.heartbeat()
        self._watch_assignment_and_lag()

    def _watch_assignment_and_lag(self) -> None:
        """Readiness needs every source partition owned in the group; lag for all of them.

        This worker's own partitions get the precise lag (read offset vs high watermark);
        partitions nobody owns get the committed-offset lag from :class:`GroupWatch`, so the
        lag series exist from the first seconds and the lag alert can fire.
        """
        group = self.group_watch
        if group.orphans is None:
            self.readiness.set_blocker("assignment", "group assignment not known yet")
        elif group.orphans:
            self.readiness.set_blocker(
                "assignment", f"{len(group.orphans)} source partition(s) owned by no worker"
            )
        else:
            self.readiness.set_blocker("assignment", None)
        sources = (self.topics.normalised, self.topics.area_updates)
        consumer = self.app.consumer
        assignment = consumer.assignment()
        lags: dict[tuple[str, int], int] = {}
        for tp in assignment:
            if tp.topic not in sources:
                continue
            read = consumer._read_offset.get(tp)
            high = consumer.highwater(tp)
            key = (tp.topic, tp.partition)
            if read is not None and high is not None:
                lags[key] = high - (read + 1)
            elif key in group.lags:
                lags[key] = group.lags[key]
        for key in group.orphans or ():
            lags.setdefault(key, group.lags.get(key, 0))
        metrics.set_consumer_lags(lags)
        gone = self._lag_exported - set(lags)
        if gone:
            metrics.clear_consumer_lag(gone)
        self._lag_exported = set(lags)
        assigned = {(tp.topic, tp.partition) for tp in assignment}
        if assigned != set(self.readiness.assigned):
            self.readiness.set_assigned(assigned)

    # -- correlate -----------------------------------------------------------------------
    async def process_normalised_many(self, messages: list[tuple[int, bytes]]) -> None:
        """Correlate ``messages``, retrying the same messages until it succeeds (see retry)."""
        await self.correlate_retry.run(lambda: self._correlate_once(messages))

    async def _correlate_once(self, messages: list[tuple[int, bytes]]) -> None:
        """Several ``normalised`` messages (each partition's in offset order), one flush.

        Each message is correlated exactly as if it were processed alone: a key's state is
        read from the writes still pending in this call before RocksDB, so a later message sees
        what an earlier one wrote. Outputs of all messages go out in order, then one
        ``persist`` (flush, then one RocksDB WriteBatch per partition with the final value of
        each key). Per-message flushes cost a broker round trip plus thread hops each and at
        moderate rates (many small messages) they were the correlate stage's bottleneck.
        """
        writer = self.dossier_writer
        pending: dict[int, dict[bytes, bytes]] = {}
        outcomes: list[BatchOutcome] = []
        for partition, raw in messages:
            try:
                events = decode_batch(raw)
            except BatchFormatError as exc:
                log.error("unreadable internal batch on partition %d: %s", partition, exc)
                metrics.record_rejected({"BAD_INTERNAL_BATCH": 1})
                writer.produce(
                    self.topics.dead_letter,
                    b"batch",
                    raw,
                    headers=[
                        ("hub.errors.reason", b"BAD_INTERNAL_BATCH"),
                        ("hub.errors.stage", b"correlate"),
                    ],
                )
                continue
            grouped = group_by_key(events)
            overlay = pending.setdefault(partition, {})
            keys = [k.encode() for k in grouped]
            missing = [k for k in keys if k not in overlay]
            stored = dict(zip(missing, writer.get_many(partition, missing), strict=True))
            current = {
                key: overlay[kb] if kb in overlay else stored[kb]
                for key, kb in zip(grouped, keys, strict=True)
            }
            outcome = correlate_batch(
                grouped, current, self.config, self.outputs, self.codec.encode
            )
            for record in outcome.records:
                writer.produce(record.topic, record.key, record.value)
            for letter in outcome.dead_letters:  # same (source, event_id), other content
                writer.produce(letter.topic, letter.key, letter.value, headers=letter.headers)
            for update in outcome.area_updates:
                writer.produce(
                    self.topics.area_updates, update.area.encode(), orjson.dumps(update.to_record())
                )
            overlay.update(outcome.writes)
            outcomes.append(outcome)
        self.fault.check()  # test-only: fails here, with outputs produced and nothing persisted
        await writer.persist(pending)
        for outcome in outcomes:
            if outcome.conflicts:
                metrics.record_rejected({DUPLICATE_EVENT_ID_CONFLICT: len(outcome.conflicts)})
            self._account(
                outcome.events,
                outcome.duplicates,
                outcome.new_dossiers,
                outcome.transitions,
                outcome.firing_delta,
            )

    def _account(
        self,
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
        metrics.observe_batch("correlate", events)
        if duplicates:
            metrics.record_duplicates(duplicates)
        if new_dossiers:
            metrics.adjust_dossiers(new_dossiers)
        if emitted:
            metrics.record_emitted(emitted)
            metrics.adjust_firing(firing)

    # -- areas ---------------------------------------------------------------------------
    async def process_area_updates(self, updates: list[tuple[int, bytes]]) -> None:
        """Fold area updates, retrying the same updates until it succeeds (see retry)."""
        await self.area_retry.run(lambda: self._areas_once(updates))

    async def _areas_once(self, updates: list[tuple[int, bytes]]) -> None:
        """Fold area updates (area key, JSON) into the areas table; emit AREA_CLUSTER."""
        transitions: list[Transition] = []
        firing: Counter[tuple[str, str]] = Counter()
        by_partition: dict[int, dict[str, list[AreaUpdate]]] = {}
        for partition, raw in updates:
            try:
                update = AreaUpdate.from_record(orjson.loads(raw))
            except (ValueError, TypeError, KeyError) as exc:
                metrics.record_rejected({"BAD_INTERNAL_BATCH": 1})
                log.error(
                    "unreadable area update on partition %d: %s", partition, type(exc).__name__
                )
                self.area_writer.produce(
                    self.topics.dead_letter,
                    b"area-update",
                    raw,
                    headers=[
                        ("hub.errors.reason", b"BAD_INTERNAL_BATCH"),
                        ("hub.errors.stage", b"area"),
                    ],
                )
                continue
            by_partition.setdefault(partition, {}).setdefault(update.area, []).append(update)
        writes: dict[int, dict[bytes, bytes]] = {}
        for partition, per_area in by_partition.items():
            db = self.area_writer.db(partition)
            for area, area_updates in per_area.items():
                key = area.encode()
                current = db.get(key)
                state = AreaState.from_bytes(current) if current is not None else None
                for update in area_updates:
                    prior = firing_snapshot(state.alerts) if state is not None else {}
                    state, out = area_step.apply(state, update, self.config)
                    count_firing_delta(prior, out, firing)
                    transitions.extend(out)
                if state is not None:
                    writes.setdefault(partition, {})[key] = state.to_bytes()
        for t in transitions:
            rec = transition_record(t, self.outputs, self.codec.encode)
            self.area_writer.produce(rec.topic, rec.key, rec.value)
        await self.area_writer.persist(writes)
        self._account(0, Counter(), 0, transitions, firing)


def _recovery_progress(recovery: Any) -> float:
    """Share of changelog messages restored so far (Faust keeps highwaters and offsets)."""
    try:
        highwaters = recovery.active_highwaters
        offsets = recovery.active_offsets
        total = sum(max(0, hw) for hw in highwaters.values())
        if not total:
            return 0.0
        done = sum(max(0, min(offsets.get(tp, 0) or 0, hw)) for tp, hw in highwaters.items())
        return done / total
    except (AttributeError, TypeError):
        return 0.0
