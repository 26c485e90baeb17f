"""The Faust side of a worker, declared in one place: app, source topics, tables, agents.

Which agents exist and what each consumes is decided here; what an agent does with a batch is
the ``step`` it is given (the runtime's retried processor step). Faust still owns assignment,
rebalancing, standby replicas and recovery of the tables from their changelogs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from mode.utils.objects import cached_property

from hub.agents import area as area_agent
from hub.agents import correlate as correlate_agent
from hub.pipeline import trace
from hub.pipeline.faust_consumer import use_hub_consumer
from hub.pipeline.faust_flow import ResumeKeepsQueues, keep_queued_at_recovery_end
from hub.pipeline.rocksdb_memory import share_memory
from hub.pipeline.topics import (
    AREA_TABLE,
    CHANGELOG_CONFIG,
    DOSSIER_TABLE,
    Topics,
    with_min_isr,
)
from hub.security import sasl_password, ssl_context, uses_sasl, uses_tls
from hub.settings import Settings

Step = Callable[[list[tuple[int, int, bytes]]], Awaitable[None]]  # partition, offset, value

# Faust's RocksDB defaults (3 x 64 MiB write buffers and a 2 GiB block cache per partition
# database, 2 tables x N partitions of them) let memory grow past 1 GB at 250k addresses. Dossiers
# are small and read once per batch: modest buffers suffice. The cache and the memtables are one
# budget shared by all partitions (hub.pipeline.rocksdb_memory; block_cache_size is unused).
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 32 * 1024 * 1024,
}
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class HubApp(faust.App):
    """A Faust app that tells the hub when its streams are drained, before the tables close.

    On a graceful stop (SIGTERM: a rolling restart) faust-streaming 0.11's ``_stop_consumer``
    stops the fetcher, waits until the agents finished the steps they took
    (``stream_wait_empty``) and then closes the tables; the consumer leaves the group after that.
    It sends neither the app's ``on_partitions_revoked`` nor anything in between, and aiokafka
    leaves the group without calling the rebalance listener. The hub's writers complete a step
    in the background (:mod:`hub.pipeline.state`), so without a word here a stopping worker left
    its last step's state out of RocksDB and its changelog, for the next owner to re-derive.
    :attr:`on_streams_drained` callbacks run each time Faust has waited for the streams: on a
    stop and on a rebalance's revocation (before the ``on_partitions_revoked`` signal).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_streams_drained: list[Callable[[], Awaitable[None]]] = []

    @cached_property
    def flow_control(self) -> ResumeKeepsQueues:
        """Flow control that can resume keeping the queues (:mod:`hub.pipeline.faust_flow`)."""
        return ResumeKeepsQueues(loop=self.loop)

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        await super()._consumer_wait_empty(consumer, logger)
        for callback in self.on_streams_drained:
            await callback()


@dataclass
class Topology:
    app: HubApp
    dossiers: Any  # faust Table: address key -> dossier bytes
    areas: Any  # faust Table: 4-digit postcode -> area state bytes


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the client security settings (None for PLAINTEXT)."""
    if uses_sasl(settings):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=sasl_password(settings),
            ssl_context=ssl_context(settings) if uses_tls(settings) else None,
            mechanism=settings.sasl_mechanism,
        )
    if uses_tls(settings):
        return faust.SSLCredentials(ssl_context(settings))
    return None


def build_app(settings: Settings) -> HubApp:
    s = settings
    return HubApp(
        s.app_id,
        broker=f"kafka://{s.broker}",
        broker_credentials=faust_credentials(s),
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
        # a worker that died without leaving is noticed after 10 s (Faust default: 60 s), as
        # the ingest group's child (INGEST_SESSION): with 30 s a kill -9 of a worker left its
        # partitions unserved for 31 s (fault suite). aiokafka heartbeats from a task on the
        # worker's loop (hub.pipeline.faust_consumer): a step holds the loop for ms (in a backfill
        # at most a few tenths of a second), far below this; the broker's minimum is 6 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # also the changelog batch size during recovery: small values made recovery slow
        broker_max_poll_records=500,
        stream_buffer_maxsize=64,
        # warm copies of the tables on another worker (HUB_STANDBY_REPLICAS): a failover
        # replays the changelog from the standby's position instead of from the start
        table_standby_replicas=s.standby_replicas,
        # on rebalance, finish the in-flight batch before giving its partition away: otherwise
        # its late changelog write can land after the new owner's, and stale state wins
        stream_wait_empty=True,
        key_serializer="raw",
        value_serializer="raw",
    )


def build_topology(settings: Settings, topics: Topics, correlate: Step, area: Step) -> Topology:
    """The app with its two tables and the two agents wired to their steps."""
    app = build_app(settings)
    use_hub_consumer(app)  # on the app loop, no 1.5 s fetch stalls (hub.pipeline.faust_consumer)
    keep_queued_at_recovery_end(app)  # no records lost there (hub.pipeline.faust_flow)
    table: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "partitions": settings.partitions,
        "options": ROCKSDB_OPTIONS,
        # roll and compact the changelogs soon, so a recovering worker replays ~one record
        # per key instead of one per batch that touched it
        "extra_topic_configs": with_min_isr(settings, CHANGELOG_CONFIG),
    }
    dossiers = app.Table(DOSSIER_TABLE, **table)
    areas = app.Table(AREA_TABLE, **table)
    for t in (dossiers, areas):  # one cache and memtable budget for all partitions (issue 17)
        share_memory(t)
        trace.watch_changelog_applies(t)
    correlate_agent.register(app, app.topic(topics.normalised, **RAW), correlate)
    area_agent.register(app, app.topic(topics.area_updates, **RAW), area)
    return Topology(app, dossiers, areas)
