"""Input offsets kept with the state: a message the consumer skipped is found and processed.

Why: faust-streaming can commit an input offset past messages no agent ever processed. During a
rebalance its stream skips an event taken from its queue while flow control is off, or whose
message belongs to an older consumer generation, and acks it anyway ("otherwise the lag would
increase": ``Stream._py_aiter`` and the Cython ``StreamIterator.after``, which inlines the ack);
its consumer also counts jumps in fetched offsets as acked (``Consumer._add_gap``). The next
commit then covers them. On the three-worker cluster this lost 4 to 21 consecutive ``normalised``
messages on the partitions a rebalance touched in 2 runs out of 3 (tests/cluster, scenario 3:
the batch trace showed partition 5's offsets 44-64 processed by no worker, 65 onwards processed).

So the hub does not trust the committed offset alone. Each table partition stores the next input
offset it expects (:data:`NEXT_INPUT_KEY`), written with the batch's state in the same changelog
flush and RocksDB write batch (so recovery and standbys restore it with the state). A batch whose
offsets jump past it has a gap: the missing messages are read straight from the input partition
and processed first, in offset order.

A replay (offsets below it: Faust's committed offset lags the state, after a kill -9 or when a
partition moves) is in the state already and is skipped (:func:`replays`). Re-applying it is not
harmless: the dossier step drops events it holds, but the area step folds flag changes, and a
window of them applied again to the newer state flaps the cluster signal with versions of other
content than the ones already emitted (the fault suite's kill -9 at 70 % found such a non-exact
(fingerprint, version) duplicate of an AREA_CLUSTER signal). Before skipping, the input's end is
asked once: a stored offset past it means the input partition was recreated or truncated, and its
messages are processed (:meth:`GapFiller.confirm_replays`). A partition without the key has
processed nothing yet, so
it expects the input partition's first offset (its low watermark): the cluster suite found a
fresh partition whose first owner's stream dropped offsets 0-7 in the start-up rebalances (Faust
committed them), and the next owner, trusting its empty state, began at 8. (State written before
the key existed would replay the retained input once: exact repeats.)

Known limit: a gap is found when a later message of its partition arrives; on a partition that
receives nothing more, the skipped messages wait until something does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from hub import metrics

log = logging.getLogger(__name__)

#: The table key of the next input offset of a partition (NUL: no address key or area has one).
NEXT_INPUT_KEY = b"__hub\x00next-input__"

Message = tuple[int, int, bytes]  # partition, offset, value
Read = Callable[[int, list[bytes]], list[bytes | None]]  # a table partition's values by key


class GapFetchFailed(RuntimeError):
    """The skipped messages could not all be read; the step is retried."""


def next_expected(read: Read, partition: int) -> int | None:
    """The next input offset the stored state of ``partition`` expects, if it records one."""
    (raw,) = read(partition, [NEXT_INPUT_KEY])
    return int(raw) if raw is not None else None


def missing_offsets(expected: int | None, offsets: list[int]) -> list[int]:
    """Offsets from ``expected`` up to the batch's highest that the batch does not carry."""
    if expected is None or not offsets:
        return []
    present = set(offsets)
    return [o for o in range(expected, max(offsets)) if o not in present]


def stored_offsets(messages: list[Message], read: Read) -> dict[int, int | None]:
    """Per partition of ``messages``, the next input offset its stored state expects (None:
    it records none). One state read per partition; :func:`replays`, :meth:`GapFiller.find`
    and :meth:`GapFiller.unknown_starts` all work from this."""
    return {
        partition: next_expected(read, partition) for partition in _offsets_by_partition(messages)
    }


def replays(messages: list[Message], stored: Mapping[int, int | None]) -> dict[int, int]:
    """Per partition whose batch holds offsets below its ``stored`` next input offset: that
    offset.

    Those messages are in the partition's state already (see the module doc).
    """
    found: dict[int, int] = {}
    for partition, seen in _offsets_by_partition(messages).items():
        expected = stored.get(partition)
        if expected is not None and min(seen) < expected:
            found[partition] = expected
    return found


def without_replays(messages: list[Message], expected: Mapping[int, int]) -> list[Message]:
    """``messages`` minus those below their partition's ``expected`` offset."""
    return [m for m in messages if m[1] >= expected.get(m[0], -1)]


def in_offset_order(messages: list[Message]) -> list[Message]:
    """``messages`` with each (partition, offset) once, in offset order per partition.

    A batch can carry a message twice: the queue kept across the end of a rebalance's recovery
    (:mod:`hub.pipeline.faust_flow`) and the seek to the committed offset both deliver it. As it
    arrives the batch is already in order without repeats, and it is returned unchanged.
    """
    last: dict[int, int] = {}
    for partition, offset, _value in messages:
        if offset <= last.get(partition, -1):
            break
        last[partition] = offset
    else:
        return messages
    unique = {(m[0], m[1]): m for m in reversed(messages)}  # the first copy of each
    return sorted(unique.values(), key=lambda m: (m[0], m[1]))


def next_input_writes(messages: list[Message]) -> dict[int, bytes]:
    """Per partition, the value of :data:`NEXT_INPUT_KEY` after ``messages``: highest + 1."""
    highest: dict[int, int] = {}
    for partition, offset, _value in messages:
        if offset > highest.get(partition, -1):
            highest[partition] = offset
    return {p: str(o + 1).encode() for p, o in highest.items()}


class GapFiller:
    """Completes a batch with the messages its partitions skipped (read with a plain consumer)."""

    def __init__(
        self,
        stage: str,
        topic: str,
        new_consumer: Callable[[], Any],
        timeout_s: float = 30.0,
    ) -> None:
        self.stage = stage
        self.topic = topic
        self.new_consumer = new_consumer
        self.timeout_s = timeout_s
        self._consumer: Any = None
        self.filled = 0  # messages recovered, for tests and stats

    def find(
        self,
        messages: list[Message],
        stored: Mapping[int, int | None],
        first_offsets: Mapping[int, int] | None = None,
    ) -> dict[int, list[int]]:
        """Per partition, the offsets the batch skipped, from the :func:`stored_offsets` (a
        broker request only for a partition with no state whose batch does not start at offset
        0, unless ``first_offsets`` has its first offset: see :meth:`unknown_starts`)."""
        missing: dict[int, list[int]] = {}
        for partition, seen in _offsets_by_partition(messages).items():
            expected = stored.get(partition)
            if expected is None and min(seen) > 0:
                known = first_offsets.get(partition) if first_offsets else None
                expected = known if known is not None else self.first_offset(partition)
            lost = missing_offsets(expected, seen)
            if lost:
                missing[partition] = lost
        return missing

    def unknown_starts(
        self, messages: list[Message], stored: Mapping[int, int | None]
    ) -> list[int]:
        """The batch's partitions with no state whose batch does not start at offset 0: their
        expected input starts at the low watermark, which :meth:`first_offsets` asks the broker
        for (blocking: the worker runs it in a thread, not on its event loop)."""
        return [
            partition
            for partition, seen in _offsets_by_partition(messages).items()
            if min(seen) > 0 and stored.get(partition) is None
        ]

    def confirm_replays(self, found: Mapping[int, int]) -> dict[int, int]:
        """The :func:`replays` to skip: those whose stored offset is within the input partition.

        A stored next input offset past the partition's end (high watermark) means the input
        was recreated or truncated since: its messages are new and are processed, with an error
        logged. Raises :class:`GapFetchFailed` if the end is unknown (the step is retried).
        Blocking: the worker runs it in a thread.
        """
        if self._consumer is None:
            self._consumer = self.new_consumer()
        confirmed: dict[int, int] = {}
        for partition, expected in found.items():
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=10
                )
            except Exception as exc:  # broker away: the step is retried
                raise GapFetchFailed(f"{self.topic}[{partition}]: end unknown: {exc}") from exc
            if expected <= high:
                confirmed[partition] = expected
            else:
                log.error(
                    "%s: partition %d of %s ends at offset %d, before the stored next input "
                    "offset %d: the input was recreated or truncated; processing its messages",
                    self.stage,
                    partition,
                    self.topic,
                    high,
                    expected,
                )
        return confirmed

    def first_offsets(self, partitions: list[int]) -> dict[int, int]:
        """:meth:`first_offset` of each of ``partitions`` (blocking: run it in a thread)."""
        return {partition: self.first_offset(partition) for partition in partitions}

    def first_offset(self, partition: int) -> int:
        """The input partition's low watermark: where a partition with no state starts."""
        if self._consumer is None:
            self._consumer = self.new_consumer()
        try:
            low, _high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10
            )
        except Exception as exc:  # broker away: the step is retried
            raise GapFetchFailed(f"{self.topic}[{partition}]: first offset unknown: {exc}") from exc
        return int(low)

    def fill(self, messages: list[Message], missing: dict[int, list[int]]) -> list[Message]:
        """``messages`` with the ``missing`` ones read and put in place, in offset order per
        partition (blocking: run it in a thread)."""
        fetched: list[Message] = []
        for partition, offsets in missing.items():
            log.error(
                "%s: partition %d of %s skipped %d message(s) between offsets %d and %d "
                "(committed but never processed); processing them now",
                self.stage,
                partition,
                self.topic,
                len(offsets),
                offsets[0],
                offsets[-1],
            )
            fetched.extend(self.fetch(partition, offsets))
            metrics.record_input_gap(self.stage, len(offsets))
            self.filled += len(offsets)
        return sorted([*messages, *fetched], key=lambda m: (m[0], m[1]))

    def fetch(self, partition: int, offsets: list[int]) -> list[Message]:
        """The messages at ``offsets`` of one partition (raises :class:`GapFetchFailed`)."""
        wanted = set(offsets)
        if self._consumer is None:
            self._consumer = self.new_consumer()
        consumer = self._consumer
        consumer.assign([TopicPartition(self.topic, partition, offsets[0])])
        found: dict[int, bytes] = {}
        deadline = time.monotonic() + self.timeout_s
        try:
            while len(found) < len(wanted) and time.monotonic() < deadline:
                for msg in consumer.consume(500, timeout=0.5):
                    offset = msg.offset()
                    if msg.error() is not None or offset is None:
                        continue
                    if offset in wanted:
                        found[offset] = msg.value()
                    if offset >= offsets[-1]:
                        break
            lost = sorted(wanted - set(found))
            if lost:
                low, _high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=10
                )
                gone = [o for o in lost if o < low]
                if gone:  # deleted by retention before anyone processed them: nothing to read
                    log.error(
                        "%s: %d skipped message(s) of %s[%d] were deleted before processing",
                        self.stage,
                        len(gone),
                        self.topic,
                        partition,
                    )
                    wanted -= set(gone)
        finally:
            consumer.unassign()
        if len(found) < len(wanted):
            lost = sorted(wanted - set(found))
            raise GapFetchFailed(
                f"{self.topic}[{partition}]: {len(lost)} skipped message(s) not readable "
                f"(first {lost[0]}) within {self.timeout_s:.0f}s"
            )
        return [(partition, o, found[o]) for o in offsets if o in found]

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _offsets_by_partition(messages: list[Message]) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for partition, offset, _value in messages:
        offsets.setdefault(partition, []).append(offset)
    return offsets


def plain_consumer(config: dict[str, Any]) -> Callable[[], Any]:
    """A factory of the confluent-kafka consumer :class:`GapFiller` reads with."""
    return lambda: Consumer(config)
