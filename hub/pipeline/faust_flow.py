"""The end of a rebalance's recovery keeps what Faust's queues hold (all other resumes clear).

faust-streaming (0.15.3) clears every stream queue and its changelog queue each time it resumes
the flow (``FlowControlEvent.resume`` clears the queues made with ``clear_on_resume=True``).
During a recovery that protects it: it seeks partitions, and records fetched from the old
positions must not be applied after the seek (a record taken ahead of the sought offset would
make the recovery skip everything in between). But at the end of the recovery
(``Recovery.on_recovery_completed``) it resumes the stream partitions, seeks them to their
committed offsets, waits for that seek, and only then resumes the flow, clearing what the
fetcher queued meanwhile from positions that were right:

- **changelog records of standby partitions** (their fetch was resumed earlier in the same
  recovery). Nothing reads them again: a standby's position only moves forward, and the next
  record applied moves its persisted offset past the hole. (Standby copies also lose records
  some other way, not found; they are off: docs/architecture.md, stop 38.)
- **input messages of the stream partitions**: never acked, so Faust's committed offset stops
  at the first of them until the next rebalance. When the last message of a partition is among
  them, it is not processed until then either (an idle worker with lag 1 for minutes: the
  cluster suite's rolling restart, "lag not 0 within 300 s"). Otherwise the next message shows
  the gap and the hub reads the missing ones (:mod:`hub.pipeline.gaps`), but the commit still
  waits for a rebalance.

So that one resume keeps the queues (:class:`KeepQueuedAtRecoveryEnd`); every other resume
clears them as Faust does. Input messages the seek delivers a second time are below the
partition's stored next input offset and are skipped as replays, and a batch that holds one
twice keeps it once (:func:`hub.pipeline.gaps.in_offset_order`). A rebalance still begins by
clearing every queue (``flow_control.clear()`` in ``App._on_partitions_revoked``).
"""

from __future__ import annotations

from typing import Any

from faust.tables.recovery import Recovery
from mode.utils.queues import FlowControlEvent


class ResumeKeepsQueues(FlowControlEvent):
    """Faust's flow control; while :attr:`keep_queued` is set, resuming does not clear."""

    keep_queued = False

    def resume(self) -> None:
        if not self.keep_queued:
            super().resume()
            return
        self._suspend.clear()
        self._resume.set()


class KeepQueuedAtRecoveryEnd(Recovery):
    """Faust's recovery, whose final resume keeps the queued records."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        flow: Any = self.app.flow_control
        flow.keep_queued = True
        try:
            await super().on_recovery_completed(generation_id)
        finally:
            flow.keep_queued = False


def keep_queued_at_recovery_end(app: Any) -> None:
    """Give ``app`` (a :class:`hub.pipeline.topology.HubApp`, not started) that recovery."""
    tables = app.tables
    tables._recovery = KeepQueuedAtRecoveryEnd(app, tables, beacon=tables.beacon, loop=tables.loop)
