"""Skipped input messages are found from the stored next input offset and processed late."""

from __future__ import annotations

from typing import Any

import pytest

from hub import metrics
from hub.pipeline.gaps import (
    NEXT_INPUT_KEY,
    GapFetchFailed,
    GapFiller,
    in_offset_order,
    missing_offsets,
    next_input_writes,
    replays,
    stored_offsets,
    without_replays,
)


def test_a_jump_past_the_expected_offset_is_a_gap() -> None:
    assert missing_offsets(44, [65, 66, 67]) == list(range(44, 65))


def test_a_gap_inside_the_batch_is_found_too() -> None:
    assert missing_offsets(10, [10, 11, 14, 15]) == [12, 13]


def test_a_replay_below_the_expected_offset_is_no_gap() -> None:
    assert missing_offsets(50, [40, 41, 42]) == []
    assert missing_offsets(50, [48, 49, 50, 51]) == []


def test_without_an_expected_offset_the_pure_check_finds_nothing() -> None:
    assert missing_offsets(None, [65, 66]) == []


def test_the_next_input_offset_is_the_highest_offset_plus_one_per_partition() -> None:
    messages = [(5, 65, b"a"), (5, 71, b"b"), (2, 3, b"c"), (5, 66, b"d")]
    assert next_input_writes(messages) == {5: b"72", 2: b"4"}


class _Msg:
    def __init__(self, offset: int, value: bytes) -> None:
        self._offset, self._value = offset, value

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


class _Consumer:
    """A partition log from ``low`` on; hands out what follows the assigned offset."""

    def __init__(self, log: dict[int, bytes], low: int = 0) -> None:
        self.log, self.low = log, low
        self.position = 0
        self.assigned: list[Any] = []

    def assign(self, tps: list[Any]) -> None:
        self.assigned = tps
        self.position = max(tps[0].offset, self.low)

    def unassign(self) -> None:
        self.assigned = []

    def consume(self, n: int, timeout: float) -> list[_Msg]:
        out = [_Msg(o, self.log[o]) for o in sorted(self.log) if o >= self.position][:n]
        if out:
            self.position = out[-1].offset() + 1
        return out

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return self.low, max(self.log) + 1

    def close(self) -> None:
        pass


def _stored(expected: int | None) -> Any:
    def read(partition: int, keys: list[bytes]) -> list[bytes | None]:
        assert keys == [NEXT_INPUT_KEY]
        return [None if expected is None else str(expected).encode()]

    return read


def _plan(batch: list[tuple[int, int, bytes]], expected: int | None) -> dict[int, int | None]:
    """The stored offsets of ``batch``'s partitions when each expects ``expected``."""
    return stored_offsets(batch, _stored(expected))


def test_the_stored_offset_is_read_once_per_partition_of_a_batch() -> None:
    reads: list[int] = []

    def read(partition: int, keys: list[bytes]) -> list[bytes | None]:
        assert keys == [NEXT_INPUT_KEY]
        reads.append(partition)
        return [b"12" if partition == 3 else None]

    batch = [(3, 12, b"a"), (5, 0, b"b"), (3, 13, b"c"), (5, 1, b"d"), (3, 14, b"e")]
    assert stored_offsets(batch, read) == {3: 12, 5: None}
    assert sorted(reads) == [3, 5]


def test_skipped_messages_are_read_and_put_before_the_batch_in_offset_order() -> None:
    log = {o: f"m{o}".encode() for o in range(40, 72)}
    filler = GapFiller("correlate", "hub.normalised", lambda: _Consumer(log), timeout_s=2)
    batch = [(5, 65, b"m65"), (5, 66, b"m66")]
    before = metrics.INPUT_GAPS.labels("correlate")._value.get()
    missing = filler.find(batch, _plan(batch, 44))
    assert missing == {5: list(range(44, 65))}
    out = filler.fill(batch, missing)
    assert [o for _p, o, _v in out] == list(range(44, 67))
    assert all(v == f"m{o}".encode() for _p, o, v in out)
    assert filler.filled == 21
    assert metrics.INPUT_GAPS.labels("correlate")._value.get() - before == 21


def test_a_batch_without_a_gap_needs_no_read() -> None:
    filler = GapFiller("area", "hub.area-updates", lambda: pytest.fail("no read expected"))
    later = [(1, 7, b"x"), (1, 8, b"y")]
    assert filler.find(later, _plan(later, 7)) == {}
    fresh = [(1, 0, b"x"), (1, 1, b"y")]
    assert filler.find(fresh, _plan(fresh, None)) == {}  # a fresh start


def test_a_partition_with_no_state_expects_its_input_from_the_first_offset() -> None:
    """The cluster suite: in the start-up rebalances a fresh partition's first owner dropped
    offsets 0-7 unprocessed (Faust committed them); the next owner, with no state, began at 8."""
    log = {o: f"m{o}".encode() for o in range(0, 12)}
    filler = GapFiller("correlate", "hub.normalised", lambda: _Consumer(log), timeout_s=2)
    batch = [(7, 8, b"m8"), (7, 9, b"m9")]
    missing = filler.find(batch, _plan(batch, None))
    assert missing == {7: list(range(0, 8))}
    assert [o for _p, o, _v in filler.fill(batch, missing)] == list(range(0, 10))


def test_the_first_offsets_are_asked_apart_so_find_itself_needs_no_broker() -> None:
    """The worker asks the broker for a stateless partition's first offset in a thread
    (``unknown_starts`` → ``first_offsets``); ``find`` given them makes no request on the event
    loop."""
    log = {o: f"m{o}".encode() for o in range(0, 12)}
    asking = GapFiller("correlate", "hub.normalised", lambda: _Consumer(log), timeout_s=2)
    batch = [(7, 8, b"m8"), (7, 9, b"m9"), (3, 5, b"m5"), (2, 0, b"m0")]
    stateless = _plan(batch, None)
    assert asking.unknown_starts(batch, stateless) == [7, 3]  # partition 2 starts at 0
    assert asking.unknown_starts(batch, _plan(batch, 5)) == []
    firsts = asking.first_offsets([7, 3])
    assert firsts == {7: 0, 3: 0}
    no_broker = GapFiller("correlate", "hub.normalised", lambda: pytest.fail("a broker request"))
    missing = no_broker.find(batch, stateless, firsts)
    assert missing == {7: list(range(0, 8)), 3: list(range(0, 5))}
    assert missing == asking.find(batch, stateless)  # same answer as asking on the way


def test_a_partition_with_no_state_and_older_input_deleted_starts_at_the_low_watermark() -> None:
    log = {o: b"m" for o in range(8, 12)}
    filler = GapFiller("correlate", "hub.normalised", lambda: _Consumer(log, low=8), timeout_s=2)
    batch = [(7, 8, b"m"), (7, 9, b"m")]
    assert filler.find(batch, _plan(batch, None)) == {}


def test_an_unreadable_skipped_message_fails_the_attempt_so_it_is_retried() -> None:
    log = {o: b"m" for o in (44, 45, 47)}  # 46 not there (yet)
    filler = GapFiller("correlate", "hub.normalised", lambda: _Consumer(log), timeout_s=0.3)
    with pytest.raises(GapFetchFailed, match="not readable"):
        filler.fill([(0, 48, b"m")], {0: [44, 45, 46, 47]})


def test_skipped_messages_already_deleted_by_retention_are_left_out_with_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = {o: f"m{o}".encode() for o in range(46, 50)}
    filler = GapFiller("correlate", "hub.normalised", lambda: _Consumer(log, low=46), 0.3)
    out = filler.fill([(0, 49, b"m49")], {0: [44, 45, 46, 47, 48]})
    assert [o for _p, o, _v in out] == [46, 47, 48, 49]
    assert "deleted before processing" in caplog.text


def test_messages_below_the_stored_offset_are_replays_the_state_holds() -> None:
    batch = [(2, 108, b"a"), (2, 116, b"b"), (2, 117, b"c"), (2, 118, b"d")]
    found = replays(batch, _plan(batch, 117))
    assert found == {2: 117}
    assert without_replays(batch, found) == [(2, 117, b"c"), (2, 118, b"d")]
    assert replays(batch, _plan(batch, 108)) == {}  # nothing below: nothing skipped
    assert replays(batch, _plan(batch, None)) == {}  # no state: nothing applied yet


def test_replays_are_skipped_per_partition() -> None:
    batch = [(1, 5, b"a"), (3, 40, b"b"), (1, 9, b"c"), (3, 41, b"d")]
    expected = {1: 7, 3: 0}

    def read(partition: int, keys: list[bytes]) -> list[bytes | None]:
        return [str(expected[partition]).encode()]

    found = replays(batch, stored_offsets(batch, read))
    assert found == {1: 7}
    assert without_replays(batch, found) == [(3, 40, b"b"), (1, 9, b"c"), (3, 41, b"d")]


def test_a_replay_within_the_input_is_confirmed() -> None:
    log = {o: b"m" for o in range(0, 120)}
    filler = GapFiller("area", "hub.area-updates", lambda: _Consumer(log), timeout_s=2)
    assert filler.confirm_replays({2: 117}) == {2: 117}
    assert filler.confirm_replays({2: 120}) == {2: 120}  # the input's end: all held


def test_a_stored_offset_past_the_input_end_means_a_recreated_input_whose_messages_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = {o: b"m" for o in range(0, 12)}  # recreated: ends at 12, the state expects 500
    filler = GapFiller("correlate", "hub.normalised", lambda: _Consumer(log), timeout_s=2)
    batch = [(4, 0, b"m"), (4, 1, b"m")]
    found = replays(batch, _plan(batch, 500))
    assert found == {4: 500}
    confirmed = filler.confirm_replays(found)
    assert confirmed == {}
    assert without_replays(batch, confirmed) == batch
    assert "recreated or truncated" in caplog.text


def test_an_unknown_input_end_fails_the_attempt_so_it_is_retried() -> None:
    class _Away(_Consumer):
        def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
            raise RuntimeError("broker away")

    filler = GapFiller("area", "hub.area-updates", lambda: _Away({0: b"m"}), timeout_s=0.3)
    with pytest.raises(GapFetchFailed, match="end unknown"):
        filler.confirm_replays({0: 5})


def test_a_batch_in_offset_order_without_repeats_is_returned_as_it_is() -> None:
    batch = [(5, 10, b"a"), (2, 3, b"b"), (5, 11, b"c")]
    assert in_offset_order(batch) is batch


def test_a_message_delivered_twice_in_a_batch_is_kept_once_in_offset_order() -> None:
    """The queue kept across a recovery's end and the seek to the committed offset both
    deliver offsets 43-44 (hub.pipeline.faust_flow)."""
    batch = [
        (2, 43, b"a"),
        (2, 44, b"b"),
        (7, 9, b"x"),
        (2, 43, b"a"),
        (2, 44, b"b"),
        (2, 45, b"c"),
    ]
    assert in_offset_order(batch) == [(2, 43, b"a"), (2, 44, b"b"), (2, 45, b"c"), (7, 9, b"x")]
