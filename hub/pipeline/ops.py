"""A worker's operations view, once a second: readiness, recovery, lag, the ingest child.

Kept apart from the processing path: nothing here touches an event. It reads Faust's consumer
and table recovery, the group-wide :class:`~hub.pipeline.lag.GroupWatch`, and the
:class:`~hub.pipeline.ingest_process.IngestProcess`, and writes only the
:class:`~hub.health.Readiness` and the metrics.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hub import metrics
from hub.health import Readiness
from hub.pipeline.ingest_process import IngestProcess
from hub.pipeline.lag import GroupWatch

log = logging.getLogger(__name__)


class WorkerOps:
    def __init__(
        self,
        app: Any,
        readiness: Readiness,
        tables: tuple[str, ...],
        sources: tuple[str, ...],
        group_watch: GroupWatch,
        ingest: IngestProcess | None,
    ) -> None:
        self.app = app
        self.readiness = readiness
        self.tables = tables
        self.sources = sources
        self.group_watch = group_watch
        self.ingest = ingest
        self._lag_exported: set[tuple[str, int]] = set()
        self._ingest_restart_at: float | None = None
        self._ingest_restarts = 0
        self._ingest_started_ok = time.monotonic()

    def broker_stall(self, stage: str) -> Any:
        """A writer's ``on_stall`` callback: not ready while records wait for the broker."""

        def note(reason: str | None) -> None:
            self.readiness.set_blocker(f"{stage}-broker", f"{stage}: {reason}" if reason else None)
            if reason:
                log.warning("%s: %s; waiting (nothing is skipped)", stage, reason)
            else:
                # the flush ended: acknowledged, or failed (the step is then retried)
                log.warning("%s: no record waits for the broker any more", stage)

        return note

    async def tick(self) -> None:
        """Once a second (a Faust timer)."""
        self.supervise_ingest()
        recovery = self.app.tables.recovery
        done = recovery.completed.is_set() and not self.app.rebalancing
        progress = 1.0 if done else recovery_progress(recovery)
        for table in self.tables:
            self.readiness.set_table_recovery(table, progress, done)
        ingest_ready = self.ingest is None or self.ingest.ready
        self.readiness.set_consuming(done and ingest_ready)
        self.readiness.heartbeat()
        self.watch_assignment_and_lag()

    def supervise_ingest(self) -> None:
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

    def watch_assignment_and_lag(self) -> None:
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
        consumer = self.app.consumer
        assignment = consumer.assignment()
        lags: dict[tuple[str, int], int] = {}
        for tp in assignment:
            if tp.topic not in self.sources:
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


def recovery_progress(recovery: Any) -> float:
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
