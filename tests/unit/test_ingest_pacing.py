"""How often the ingest stage cycles at a steady rate (issue 17: broker load).

No broker: a fake consumer records how it was asked, and the clock is the test's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from hub.contracts.events import set_occurred_at_bounds
from hub.pipeline.ingest import (
    BUSY_BATCH,
    COMMIT_EVERY_S,
    MIN_CYCLE_S,
    RECOMMIT_IDLE_S,
    IngestStage,
    ReleaseCheckpoint,
)
from hub.settings import Settings


@pytest.fixture(autouse=True)
def _default_bounds() -> Iterator[None]:
    yield
    set_occurred_at_bounds(None)  # the stage sets process-wide bounds from its clock


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """``consume``/``poll`` from a queue of arrivals; a wait advances the clock."""

    def __init__(self, clock: Clock, ready: int, arriving: int = 0) -> None:
        self.clock = clock
        self.ready = ready  # already fetched
        self.arriving = arriving  # arrive during any wait
        self.waits: list[float] = []

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if timeout > 0:
            self.waits.append(timeout)
            self.clock.now += timeout
            self.ready += self.arriving
        taken = min(num_messages, self.ready)
        self.ready -= taken
        return [object()] * taken

    def poll(self, timeout: float) -> Any:
        taken = self.consume(1, timeout)
        return taken[0] if taken else None


class SilentMetrics:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _stage(
    tmp_path: Path, clock: Clock, min_cycle_s: float = 0.02, busy_cycle_s: float = 0.04
) -> IngestStage:
    return IngestStage(
        Settings(topic_prefix="pace.", partitions=4),
        object(),  # type: ignore[arg-type]  # no produce in these tests
        clock=clock,
        metrics_sink=SilentMetrics(),
        checkpoint=ReleaseCheckpoint(tmp_path / "checkpoint.json", every_s=0),
        min_cycle_s=min_cycle_s,
        busy_cycle_s=busy_cycle_s,
    )


def test_a_cycle_soon_after_the_last_waits_out_the_minimum_and_takes_what_arrives(
    tmp_path: Path,
) -> None:
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = FakeConsumer(clock, ready=3, arriving=5)
    assert len(stage._next_batch(consumer)) == 3  # type: ignore[arg-type]  # first: no wait
    assert consumer.waits == []
    clock.now += 0.005
    consumer.ready = 2
    batch = stage._next_batch(consumer)  # type: ignore[arg-type]
    assert consumer.waits == [pytest.approx(0.015, abs=1e-6)]  # the rest of the 20 ms
    assert len(batch) == 2 + 5


def test_after_a_busy_cycle_the_next_waits_out_the_longer_busy_cycle(tmp_path: Path) -> None:
    """At a high rate a cycle's messages are what the worker pays for: fewer, fuller ones."""
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = FakeConsumer(clock, ready=BUSY_BATCH)
    stage._next_batch(consumer)  # type: ignore[arg-type]
    clock.now += 0.005
    consumer.ready = 2
    stage._next_batch(consumer)  # type: ignore[arg-type]
    assert consumer.waits == [pytest.approx(0.035, abs=1e-6)]  # the rest of the 40 ms


def _wait_after_a_busy_cycle(tmp_path: Path, later: float, ready: int) -> list[float]:
    """A busy cycle, ``ready`` messages ``later`` seconds on, then one 5 ms after: the waits."""
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = FakeConsumer(clock, ready=BUSY_BATCH)
    stage._next_batch(consumer)  # type: ignore[arg-type]  # busy
    clock.now += later
    consumer.ready = ready
    stage._next_batch(consumer)  # type: ignore[arg-type]
    clock.now += 0.005
    consumer.ready = 1
    stage._next_batch(consumer)  # type: ignore[arg-type]
    return consumer.waits


def test_a_quiet_cycle_after_a_busy_one_goes_back_to_the_short_cycle(tmp_path: Path) -> None:
    """At a low rate the short cycle keeps the inbound leg short (issue 17, p99 at 1,000/s)."""
    waits = _wait_after_a_busy_cycle(tmp_path, 0.05, BUSY_BATCH - 1)
    assert waits == [pytest.approx(0.015, abs=1e-6)]  # the rest of the 20 ms


def test_a_cycle_after_the_minimum_has_passed_does_not_wait(tmp_path: Path) -> None:
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = FakeConsumer(clock, ready=3)
    stage._next_batch(consumer)  # type: ignore[arg-type]
    clock.now += 0.05
    consumer.ready = 4
    assert len(stage._next_batch(consumer)) == 4  # type: ignore[arg-type]
    assert consumer.waits == []


def test_a_full_batch_never_waits(tmp_path: Path) -> None:
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = FakeConsumer(clock, ready=2 * stage.max_batch)
    stage._next_batch(consumer)  # type: ignore[arg-type]
    assert len(stage._next_batch(consumer)) == stage.max_batch  # type: ignore[arg-type]
    assert consumer.waits == []


def test_an_idle_stage_waits_only_for_the_first_message(tmp_path: Path) -> None:
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = FakeConsumer(clock, ready=0)
    assert stage._next_batch(consumer, wait=0.2) == []  # type: ignore[arg-type]
    assert consumer.waits == [0.2]


class CommittingConsumer:
    """Records commits; positions as librdkafka gives them (-1001: nothing consumed yet)."""

    def __init__(self, positions: dict[int, int]) -> None:
        self.positions = positions
        self.commits: list[dict[int, int] | None] = []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("in", p) for p in self.positions]

    def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in parts
        ]

    def commit(
        self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> None:
        self.commits.append(
            None if offsets is None else {tp.partition: tp.offset for tp in offsets}
        )


def test_an_idle_stage_commits_its_positions_again_once_after_its_last_batch(
    tmp_path: Path,
) -> None:
    """A refused commit, or an older offset a leaving member committed after ours, would
    otherwise hold the group's lag above 0 until the partition gets new messages."""
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = CommittingConsumer({0: 120, 1: 57, 2: -1001})
    stage._commit(consumer, [])  # type: ignore[arg-type]  # after a batch
    clock.now += RECOMMIT_IDLE_S / 2
    stage._recommit_idle(consumer)  # type: ignore[arg-type]  # idle, too soon
    assert consumer.commits == []  # an empty batch commits nothing itself
    clock.now += RECOMMIT_IDLE_S
    stage._recommit_idle(consumer)  # type: ignore[arg-type]
    stage._recommit_idle(consumer)  # type: ignore[arg-type]  # once per batch, not per cycle
    assert consumer.commits == [{0: 120, 1: 57}]  # explicit; nothing consumed on 2


def test_a_stage_that_never_took_a_batch_commits_nothing_when_idle(tmp_path: Path) -> None:
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = CommittingConsumer({0: 5})
    clock.now += 10 * RECOMMIT_IDLE_S
    stage._recommit_idle(consumer)  # type: ignore[arg-type]
    assert consumer.commits == []


def test_a_commit_refused_in_a_rebalance_is_made_again_once_idle(tmp_path: Path) -> None:
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = CommittingConsumer({3: 40})
    stage._commit(consumer, [])  # type: ignore[arg-type]
    clock.now += RECOMMIT_IDLE_S
    stage._recommit_idle(consumer)  # type: ignore[arg-type]
    stage._on_commit(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [])  # that one was refused
    clock.now += RECOMMIT_IDLE_S
    stage._recommit_idle(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [{3: 40}, {3: 40}]


class Msg:
    """What ``_commit`` reads of a consumed message."""

    def __init__(self, partition: int, offset: int, topic: str = "in") -> None:
        self._at = (topic, partition, offset)

    def topic(self) -> str:
        return self._at[0]

    def partition(self) -> int:
        return self._at[1]

    def offset(self) -> int:
        return self._at[2]

    def error(self) -> None:
        return None


def test_batches_within_the_commit_interval_are_committed_together_with_their_latest_ends(
    tmp_path: Path,
) -> None:
    """At 1,000 events/s a commit per 20 ms cycle was most of the broker's OFFSET_COMMITs."""
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = CommittingConsumer({})
    stage._commit(consumer, [Msg(0, 10), Msg(0, 11)])  # type: ignore[arg-type]  # the first: at once
    clock.now += COMMIT_EVERY_S * 0.4
    stage._commit(consumer, [Msg(0, 12), Msg(1, 7)])  # type: ignore[arg-type]
    clock.now += COMMIT_EVERY_S * 0.4
    stage._commit(consumer, [Msg(1, 5), Msg(2, 0)])  # type: ignore[arg-type]  # 5 < 7: keeps 8
    assert consumer.commits == [{0: 12}]
    clock.now += COMMIT_EVERY_S * 0.4
    stage._commit(consumer, [Msg(2, 1)])  # type: ignore[arg-type]
    assert consumer.commits == [{0: 12}, {0: 13, 1: 8, 2: 2}]


def test_an_idle_stage_commits_what_it_held_back_once_the_interval_has_passed(
    tmp_path: Path,
) -> None:
    clock = Clock()
    stage = _stage(tmp_path, clock)
    consumer = CommittingConsumer({})
    stage._commit(consumer, [Msg(0, 1)])  # type: ignore[arg-type]
    stage._commit(consumer, [Msg(0, 2)])  # type: ignore[arg-type]  # held back
    stage._commit_held(consumer)  # type: ignore[arg-type]  # idle, too soon
    assert consumer.commits == [{0: 2}]
    clock.now += COMMIT_EVERY_S
    stage._commit_held(consumer)  # type: ignore[arg-type]
    stage._commit_held(consumer)  # type: ignore[arg-type]  # nothing left to send
    assert consumer.commits == [{0: 2}, {0: 3}]


class RevokedConsumer(CommittingConsumer):
    def commit(
        self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> None:
        assert not asynchronous  # made before the partitions go
        super().commit(offsets, asynchronous)


def test_revoked_partitions_commit_what_was_held_back_for_them_before_they_go(
    tmp_path: Path,
) -> None:
    """A rebalance or a stop would otherwise hand persisted batches to be read again."""
    clock = Clock()
    stage = _stage(tmp_path, clock)
    stage._commit(CommittingConsumer({}), [Msg(0, 1)])  # type: ignore[arg-type]
    stage._commit(CommittingConsumer({}), [Msg(0, 4), Msg(1, 9), Msg(2, 3)])  # type: ignore[arg-type]
    consumer = RevokedConsumer({})
    stage._on_revoke(consumer, [TopicPartition("in", 0), TopicPartition("in", 2)])  # type: ignore[arg-type]
    assert consumer.commits == [{0: 5, 2: 4}]
    stage._on_revoke(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]  # sent already
    assert len(consumer.commits) == 1
    clock.now += COMMIT_EVERY_S
    stage._commit_held(consumer := CommittingConsumer({}))  # type: ignore[arg-type]
    assert consumer.commits == [{1: 10}]  # the partition it kept


class _Stop(Exception):
    pass


def test_both_ingest_consumers_let_a_fetch_wait_for_data_but_never_beyond_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka's default fetch ends with the first message: ~280 fetches a second at 1,000
    events/s (issue 17's broker request log). The wait must stay below the stage's cycle."""
    import threading

    import hub.pipeline.ingest as ingest

    configs: list[dict[str, Any]] = []

    class RecordingConsumer:
        def __init__(self, config: dict[str, Any]) -> None:
            configs.append(config)

        def subscribe(self, topics: list[str], **callbacks: Any) -> None:
            raise _Stop  # both consumers exist by now

        def close(self) -> None:
            pass

    monkeypatch.setattr(ingest, "Consumer", RecordingConsumer)
    stage = _stage(tmp_path, Clock(), min_cycle_s=MIN_CYCLE_S)
    monkeypatch.setattr(stage, "_restore", lambda state: None)
    with pytest.raises(_Stop):
        stage.run(threading.Event())
    assert [c["group.id"] for c in configs] == ["hub-state-reader", "hub-ingest"]
    for config in configs:
        assert config["fetch.min.bytes"] >= 65_536
        assert 0 < config["fetch.wait.max.ms"] <= stage.min_cycle_s * 1000


def test_a_moderate_rate_leaves_the_busy_cycle_even_when_a_cycle_holds_many_messages(
    tmp_path: Path,
) -> None:
    """The rate decides, not one cycle's count: 36 messages over 50 ms are 720 a second, below
    half the busy rate (32 per 20 ms: 1,600/s), so the next cycle is the short one."""
    waits = _wait_after_a_busy_cycle(tmp_path, 0.05, 36)
    assert waits == [pytest.approx(0.015, abs=1e-6)]  # the rest of the 20 ms


def test_half_the_busy_rate_keeps_the_busy_cycle(tmp_path: Path) -> None:
    waits = _wait_after_a_busy_cycle(tmp_path, 0.041, 40)  # ~1,000/s: above half the busy rate
    assert waits == [pytest.approx(0.035, abs=1e-6)]  # the rest of the 40 ms
