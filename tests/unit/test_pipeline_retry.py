"""The correlate/area steps never skip a batch: retries, write order, waiting for the broker."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.health import Readiness
from hub.pipeline.gaps import NEXT_INPUT_KEY
from hub.pipeline.retry import FaultHook, InjectedFault, StepRetry
from hub.pipeline.state import BatchedTableWriter, DeliveryFailed
from hub.pipeline.stuck import StuckProducerGuard


def _ready() -> Readiness:
    readiness = Readiness()
    readiness.set_consuming(True)
    return readiness


def test_a_failing_step_is_retried_on_the_same_batch_and_not_ready_meanwhile() -> None:
    readiness = _ready()
    seen: list[list[int]] = []
    states: list[bool] = []
    batch = [1, 2, 3]

    async def step() -> None:
        seen.append(list(batch))
        states.append(readiness()[0])
        if len(seen) < 3:
            raise DeliveryFailed("contact-routing: Broker: Unknown topic or partition")

    retry = StepRetry("correlate", readiness, first_wait_s=0.001)
    asyncio.run(retry.run(step))
    assert seen == [batch, batch, batch]
    assert states == [True, False, False]  # not ready while retrying
    assert readiness()[0] is True  # ready again once the batch went through
    assert retry.retries == 2


def test_a_retry_first_lets_the_runtime_repair_what_failed() -> None:
    repaired: list[str] = []
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise DeliveryFailed("x")

    async def on_retry(exc: BaseException) -> None:
        repaired.append(type(exc).__name__)

    asyncio.run(StepRetry("area", _ready(), first_wait_s=0.001, on_retry=on_retry).run(step))
    assert repaired == ["DeliveryFailed"]


def test_cancellation_ends_the_retry_instead_of_being_retried() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(StepRetry("correlate", _ready(), first_wait_s=0.001).run(step))
    assert calls == 1


def test_fault_hook_fails_exactly_the_first_n_checks() -> None:
    hook = FaultHook(2)
    for _ in range(2):
        with pytest.raises(InjectedFault):
            hook.check()
    hook.check()  # the third passes


class _FakeProducer:
    """Records produce/flush order; ``stalls`` flushes report records left; ``fail`` topics."""

    def __init__(self, stalls: int = 0, fail: str | None = None) -> None:
        self.log: list[tuple[str, Any]] = []
        self.pending: list[tuple[str, Any, int | None]] = []
        self.stalls = stalls
        self.fail = fail
        self.offset = 100

    def produce(self, topic: str, key: Any = None, value: Any = None, **kw: Any) -> None:
        self.log.append(("produce", topic))
        self.pending.append((topic, kw.get("on_delivery"), kw.get("partition")))

    def purge(self, **kw: Any) -> None:
        self.log.append(("purge", None))
        for topic, callback, _partition in self.pending:
            if callback is not None:
                callback(_Err(), _Msg(topic, 0, -1))
        self.pending.clear()
        self.stalls = 0

    async def flush_async(self, timeout: float) -> int:
        return await asyncio.to_thread(self.flush, timeout)  # a slow flush must not block

    async def stop(self) -> None:
        self.log.append(("stop", None))

    def flush(self, timeout: float) -> int:
        self.log.append(("flush", None))
        if self.stalls:
            self.stalls -= 1
            return len(self.pending) or 1
        for topic, callback, partition in self.pending:
            if callback is None:
                continue
            err = _Err() if topic == self.fail else None
            self.offset += 1
            callback(err, _Msg(topic, partition or 0, self.offset))
        self.pending.clear()
        return 0


class _Err:
    def name(self) -> str:
        return "UNKNOWN_TOPIC_OR_PART"

    def str(self) -> str:
        return "Broker: Unknown topic or partition"


class _Msg:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._t, self._p, self._o = topic, partition, offset

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class _Db:
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log
        self.values: dict[bytes, bytes] = {}  # what RocksDB holds (writes only log)

    def __getitem__(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.values.get(k) for k in keys]

    def write(self, batch: Any) -> None:
        self.log.append(("rocksdb", None))


class _Table:
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.changelog_topic = type("T", (), {"get_topic_name": lambda _self: "changelog"})()
        self.data = type("D", (), {"offset_key": b"__offset__"})()
        self._db = _Db(log)
        self.data._db_for_partition = lambda _p: self._db


def _writer(producer: _FakeProducer, **kw: Any) -> BatchedTableWriter:
    return BatchedTableWriter(_Table(producer.log), producer, **kw)  # type: ignore[arg-type]


async def _step(
    writer: BatchedTableWriter, writes: dict[int, dict[bytes, bytes]], *out: str
) -> None:
    """What a runtime step does: wait for the last step, produce its outputs, stage its state."""
    await writer.ready()
    for topic in out:
        writer.produce(topic, b"k", b"record")
    await writer.persist(writes)


def test_outputs_are_acknowledged_before_the_changelog_is_written() -> None:
    producer = _FakeProducer()
    writer = _writer(producer)

    async def run() -> None:
        await _step(writer, {0: {b"k": b"dossier"}}, "contact-routing")
        await writer.settle()

    asyncio.run(run())
    assert producer.log == [
        ("produce", "contact-routing"),
        ("flush", None),
        ("produce", "changelog"),  # after the outputs' acknowledgement
        ("flush", None),  # the next step's (here: settle's) flush acknowledges it
        ("rocksdb", None),  # and only then is the state in RocksDB
    ]


def test_one_flush_per_step_covers_its_outputs_and_the_last_steps_changelog() -> None:
    producer = _FakeProducer()
    writer = _writer(producer)

    async def run() -> None:
        await _step(writer, {0: {b"a": b"dossier-1"}}, "contact-routing")
        await _step(writer, {1: {b"b": b"dossier-2"}}, "contact-routing")
        await writer.ready()

    asyncio.run(run())
    assert producer.log == [
        ("produce", "contact-routing"),
        ("flush", None),
        ("produce", "changelog"),
        ("produce", "contact-routing"),  # only once step 1's outputs were acknowledged
        ("flush", None),  # step 2's outputs and step 1's changelog
        ("rocksdb", None),  # step 1's state
        ("produce", "changelog"),
    ]


def test_a_step_returns_while_its_outputs_travel_and_the_next_step_waits_for_them() -> None:
    producer = _FakeProducer()
    release = threading.Event()
    flush = producer.flush

    def slow_flush(timeout: float) -> int:
        release.wait(5)
        return flush(timeout)

    producer.flush = slow_flush  # type: ignore[method-assign]
    writer = _writer(producer)

    async def run() -> tuple[bool, bytes | None, bool]:
        await _step(writer, {0: {b"k": b"dossier"}}, "contact-routing")  # returns at once
        staged = writer.get_many(0, [b"k"])[0]  # the next step reads this step's state
        waiting = asyncio.ensure_future(writer.ready())
        await asyncio.sleep(0.05)
        blocked = not waiting.done()
        release.set()
        await waiting
        return blocked, staged, ("produce", "changelog") in producer.log

    blocked, staged, changelog = asyncio.run(run())
    assert blocked  # ready() waited for the acknowledgement
    assert staged == b"dossier"
    assert changelog


def test_the_state_of_the_last_step_is_read_before_it_reaches_rocksdb() -> None:
    producer = _FakeProducer()
    writer = _writer(producer)
    writer.db(0).values = {b"a": b"old", b"c": b"other"}

    async def run() -> None:
        await writer.persist({0: {b"a": b"new"}})
        assert writer.pending
        assert writer.get_many(0, [b"a", b"c"]) == [b"new", b"other"]
        assert writer.get_many(1, [b"a"]) == [b"old"]  # other partition: RocksDB's
        await writer.ready()
        assert writer.get_many(0, [b"a"]) == [b"new"]  # changelog produced, not yet in RocksDB
        await writer.settle()
        assert not writer.pending

    asyncio.run(run())


def test_a_failed_output_fails_the_next_step_and_leaves_changelog_and_state_untouched() -> None:
    producer = _FakeProducer(fail="contact-routing")
    writer = _writer(producer)
    acknowledged: list[str] = []

    async def run() -> None:
        writer.produce("contact-routing", b"k", b"alert")
        await writer.persist({0: {b"k": b"dossier"}}, lambda: acknowledged.append("step"))
        with pytest.raises(DeliveryFailed):
            await writer.ready()  # the next step's wait: it is retried

    asyncio.run(run())
    assert ("produce", "changelog") not in producer.log
    assert ("rocksdb", None) not in producer.log
    assert not writer.pending
    assert writer.get_many(0, [b"k"]) == [None]  # dropped: the gap check re-derives it
    assert acknowledged == []  # its metrics are never counted for a failed attempt


def test_a_steps_metrics_are_counted_once_its_outputs_are_acknowledged() -> None:
    producer = _FakeProducer()
    writer = _writer(producer)
    acknowledged: list[list[tuple[str, Any]]] = []

    async def run() -> None:
        writer.produce("contact-routing", b"k", b"alert")
        await writer.persist({0: {b"k": b"d"}}, lambda: acknowledged.append(list(producer.log)))
        await writer.ready()

    asyncio.run(run())
    assert acknowledged == [[("produce", "contact-routing"), ("flush", None)]]


def test_a_failed_flush_produces_the_pending_changelog_again_before_the_retry() -> None:
    producer = _FakeProducer()
    writer = _writer(producer)

    async def run() -> None:
        await writer.persist({0: {b"k": b"dossier"}})
        await writer.ready()  # changelog produced, pending
        producer.fail = "changelog"
        await writer.persist({})
        with pytest.raises(DeliveryFailed):
            await writer.ready()
        assert ("rocksdb", None) not in producer.log  # never before its changelog is acknowledged
        assert writer.get_many(0, [b"k"]) == [b"dossier"]  # still the state the retry reads
        producer.fail = None
        producer.log.clear()
        await writer.persist({})  # the retry
        await writer.ready()

    asyncio.run(run())
    assert producer.log == [("produce", "changelog"), ("flush", None), ("rocksdb", None)]


def test_state_that_cannot_be_settled_can_be_forgotten() -> None:
    producer = _FakeProducer()
    writer = _writer(producer)

    async def run() -> None:
        await writer.persist({0: {b"k": b"dossier"}})
        await writer.ready()
        await writer.persist({0: {b"j": b"staged"}})
        writer.forget_pending()

    asyncio.run(run())
    assert not writer.pending
    assert writer.get_many(0, [b"k", b"j"]) == [None, None]  # RocksDB's: re-derived by gaps


def test_flush_waits_for_the_broker_however_long_and_says_so() -> None:
    producer = _FakeProducer(stalls=3)
    stalls: list[str | None] = []
    writer = _writer(producer, on_stall=stalls.append, stall_after_s=0.0)
    writer.produce("signals", b"g", b"signal")
    asyncio.run(writer.flush())  # no exception: nothing failed, it only took long
    assert stalls[0] is not None and "waiting for the broker" in stalls[0]
    assert stalls[-1] is None
    assert producer.log.count(("flush", None)) == 4


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_guard_never_calls_a_producer_stuck_while_the_broker_is_away() -> None:
    clock, answers = _Clock(), [False]
    guard = StuckProducerGuard(lambda: answers[0], after_s=30, reachable_for_s=15, clock=clock)
    for clock.now in range(0, 600, 5):  # ten minutes of outage
        assert not guard.stuck()
    answers[0] = True  # the broker is back, the producer still delivers nothing
    clock.now = 600
    assert not guard.stuck()  # just came back: give librdkafka its chance
    clock.now = 616
    assert guard.stuck()


def test_guard_starts_over_for_each_wait() -> None:
    clock = _Clock()
    guard = StuckProducerGuard(lambda: True, after_s=30, reachable_for_s=0, clock=clock)
    assert not guard.stuck()
    clock.now = 29
    assert not guard.stuck()
    guard.reset()  # everything acknowledged
    clock.now = 40
    assert not guard.stuck()  # a new wait: 0 s old


def test_a_stuck_producer_is_replaced_and_the_batch_attempt_fails() -> None:
    stuck = _FakeProducer(stalls=10**6)  # never delivers on its own
    fresh = _FakeProducer()
    guard = StuckProducerGuard(lambda: True, after_s=0, reachable_for_s=0)
    writer = _writer(stuck, stall_after_s=0.0, guard=guard, new_producer=lambda: fresh)

    async def run() -> None:
        writer.produce("dossiers", b"k", b"dossier")
        await writer.persist({0: {b"k": b"dossier"}})
        with pytest.raises(DeliveryFailed, match="stuck producer"):
            await writer.ready()
        assert ("purge", None) in stuck.log
        assert ("rocksdb", None) not in stuck.log  # state untouched: the retry re-derives it
        assert writer.producer is fresh
        await _step(writer, {0: {b"k": b"dossier"}}, "dossiers")  # the retried attempt
        await writer.ready()
        assert ("produce", "changelog") in fresh.log
        await writer.settle()  # the next flush acknowledges the changelog

    asyncio.run(run())
    assert ("rocksdb", None) in stuck.log  # the table's log (the fake table shares it)


_KEYS = st.sampled_from([b"a", b"b", b"c", b"d", NEXT_INPUT_KEY])
_LAYER = st.dictionaries(_KEYS, st.binary(max_size=3), max_size=4)


@settings(max_examples=300, deadline=None)
@given(db=_LAYER, pending=_LAYER, staged=_LAYER, keys=st.lists(_KEYS, max_size=6))
def test_a_read_takes_the_staged_then_the_pending_state_and_rocksdb_only_for_the_rest(
    db: dict[bytes, bytes],
    pending: dict[bytes, bytes],
    staged: dict[bytes, bytes],
    keys: list[bytes],
) -> None:
    writer = _writer(_FakeProducer())
    asked: list[bytes] = []
    rocksdb = writer.db(0)
    rocksdb.values = db
    rocksdb.__class__ = type("_CountingDb", (_Db,), {"__getitem__": _counting(asked)})
    writer._staged, writer._pending = (
        {0: staged},
        {0: pending},
    )  # the two layers, as a step leaves them
    expected = [staged.get(k, pending.get(k, db.get(k))) for k in keys]
    assert writer.get_many(0, keys) == expected
    assert asked == [k for k in keys if k not in staged and k not in pending]


def _counting(asked: list[bytes]) -> Any:
    def getitem(self: _Db, keys: list[bytes]) -> list[bytes | None]:
        asked.extend(keys)
        return [self.values.get(k) for k in keys]

    return getitem


def test_a_failed_attempt_while_the_worker_stops_leaves_the_batch_instead_of_retrying() -> None:
    """Faust stops only once every taken message is acked: an endless retry held a SIGTERMed
    worker for the whole broker outage. Stopping ends the step; later steps do not try."""
    stopping = False
    calls: list[str] = []

    async def failing(name: str) -> None:
        nonlocal stopping
        calls.append(name)
        stopping = True  # SIGTERM arrives during the first attempt
        raise DeliveryFailed("dossiers: NodeNotReadyError")

    retry = StepRetry("correlate", _ready(), first_wait_s=0.001, stopping=lambda: stopping)
    asyncio.run(retry.run(lambda: failing("first")))
    asyncio.run(retry.run(lambda: failing("second")))
    assert calls == ["first"]  # one attempt; the second step was not tried
    assert retry.abandoned == 2


def test_a_step_that_succeeds_while_the_worker_stops_is_processed() -> None:
    """A normal stop (broker up) still processes every batch it has taken."""
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1

    retry = StepRetry("area", _ready(), first_wait_s=0.001, stopping=lambda: True)
    asyncio.run(retry.run(step))
    assert calls == 1
    assert retry.abandoned == 0


def test_without_a_stop_a_failing_step_keeps_being_retried() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls < 5:
            raise DeliveryFailed("x")

    retry = StepRetry("correlate", _ready(), first_wait_s=0.001, stopping=lambda: False)
    asyncio.run(retry.run(step))
    assert (calls, retry.abandoned) == (5, 0)
