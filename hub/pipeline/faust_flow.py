"""Faust's flow control, except that resuming the flow keeps what the queues hold.

faust-streaming (0.15.3) clears every stream queue and its changelog queue each time it resumes
the flow (``FlowControlEvent.resume`` clears the queues made with ``clear_on_resume=True``). At
the end of a rebalance's recovery (``Recovery.on_recovery_completed``) it resumes the stream
partitions, seeks them to their committed offsets, waits for that seek, and only then resumes the
flow. Whatever the fetcher delivered meanwhile is dropped:

- **changelog records of standby partitions** (their fetch was resumed earlier in the same
  recovery). Nothing reads them again: a standby's position only moves forward, and the next
  record applied moves its persisted offset past the hole. The standby's RocksDB keeps older
  values for the keys written in the hole, and when the worker later becomes the partition's
  active owner, its recovery starts after the hole. The hub's steps then build on those stale
  values. The cluster suite's rolling restart (standby replicas on) lost dossier events this way:
  changelog records 546-615 of one partition were missing from the state its next owner used.
- **input messages of the stream partitions**: never acked, so Faust's committed offset stops
  at the first of them until the next rebalance. When the last message of a partition is among
  them, it is not processed until then either (an idle worker with lag 1 for minutes). Otherwise
  the next message shows the gap and the hub reads the missing ones
  (:mod:`hub.pipeline.gaps`), but the commit still waits for a rebalance.

Keeping them is safe. A rebalance begins by clearing every queue (``flow_control.clear()`` in
``App._on_partitions_revoked``, unchanged here), so a queue only ever holds records of the current
generation and assignment when the flow resumes. Changelog records already applied are skipped by
the recovery's offset check. Input messages that the seek delivers a second time are below the
partition's stored next input offset and are skipped as replays (:func:`hub.pipeline.gaps.replays`,
:func:`hub.pipeline.gaps.in_offset_order`).
"""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent


class ResumeKeepsQueues(FlowControlEvent):
    """Resuming lets producers into the queues again without clearing them; ``clear()`` clears."""

    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()
