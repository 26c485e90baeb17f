"""``hub worker``: one process running the ingest stage and the Faust agents.

Scale out by starting more workers with the same ``HUB_APP_ID``: the ingest consumer group and
Faust's consumer group share the partitions. SIGTERM stops gracefully (Faust's worker handles
the signal; the ingest thread is stopped by its service's ``on_stop``).
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import faust

from hub import metrics
from hub.logs import setup_logging
from hub.pipeline import trace
from hub.pipeline.gc_policy import FULL_EVERY_S, FullCollections, defer_full_collections
from hub.pipeline.prerestore import pre_restore
from hub.pipeline.runtime import HubRuntime
from hub.pipeline.stop_deadline import StopDeadline
from hub.pipeline.topics import wait_for_topics
from hub.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    setup_logging(level=settings.log_level, json=settings.log_json)
    runtime = HubRuntime(settings)
    server = None
    if settings.metrics_port:
        server = metrics.start_metrics_server(settings.metrics_port, readiness=runtime.readiness)
    metrics.set_worker_info("worker")
    metrics.watch_sources()
    trace.watch_gc()
    deadline = StopDeadline(stop_children=lambda: _stop_ingest(runtime))
    worker = _Worker(
        deadline,
        runtime.app,
        loglevel=settings.log_level.lower().replace("warning", "warn"),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    try:
        # every topic (Faust's changelogs included) must exist before a consumer subscribes
        wait_for_topics(settings)
        # the ingest child restores its own state meanwhile (another process, another core)
        runtime.start_ingest()
        if settings.pre_restore:
            _pre_restore(settings, runtime)
        defer_full_collections()  # and one every FULL_EVERY_S from a timer (hub.pipeline.gc_policy)
        full = FullCollections()

        @runtime.app.timer(FULL_EVERY_S)
        async def _full_collection() -> None:
            full.collect()

        worker.execute_from_commandline()
    finally:
        if server is not None:
            server.close()


class _Worker(faust.Worker):
    """Faust's worker; its stop signal also arms the stop deadline (:mod:`.stop_deadline`)."""

    def __init__(self, deadline: StopDeadline, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        self.deadline.arm(self.loop)
        super()._schedule_shutdown(signal)


def _stop_ingest(runtime: HubRuntime) -> None:
    if runtime.ingest is not None:
        runtime.ingest.stop(timeout=5.0)


def _pre_restore(settings: Settings, runtime: HubRuntime) -> None:
    """The tables' changelogs into RocksDB in bulk, so Faust's recovery has ~nothing left."""
    report = pre_restore(settings, runtime.tables)
    log.info(
        "tables pre-restored from their changelogs: %d records, %d partitions in %.1f s%s%s",
        report.records,
        report.partitions,
        report.seconds,
        "" if report.complete else " (incomplete: Faust restores the rest)",
        f"; skipped {', '.join(report.skipped)}" if report.skipped else "",
    )
