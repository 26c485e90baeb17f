"""The worker's Faust consumer: on the app's own loop (no thread), 50 ms fetch wait (not 1.5 s)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hub.pipeline.faust_consumer import FETCH_MAX_WAIT_MS
from hub.pipeline.topics import Topics
from hub.pipeline.topology import build_topology
from hub.settings import Settings


async def _no_step(messages: object) -> None:
    return None


def _app() -> Any:
    settings = Settings(topic_prefix="fetch.")
    return build_topology(settings, Topics.from_settings(settings), _no_step, _no_step).app


def test_the_worker_consumer_fetches_with_the_short_wait() -> None:
    async def go() -> int:
        app = _app()
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(go()) == FETCH_MAX_WAIT_MS <= 100


class _FakeKafkaConsumer:
    """Stands in for aiokafka's consumer: records where it was started and stopped."""

    def __init__(self) -> None:
        self.started_on: tuple[int, asyncio.AbstractEventLoop] | None = None
        self.stopped = False

    async def start(self) -> None:
        self.started_on = (threading.get_ident(), asyncio.get_running_loop())

    async def stop(self) -> None:
        self.stopped = True


def test_the_worker_consumer_runs_on_the_app_loop_without_a_thread_of_its_own() -> None:
    async def go() -> None:
        app = _app()
        runner = app.consumer._thread
        fake = _FakeKafkaConsumer()
        runner._create_consumer = lambda loop: fake
        threads_before = set(threading.enumerate())
        await runner.start()
        try:
            assert fake.started_on == (threading.get_ident(), asyncio.get_running_loop())
            assert set(threading.enumerate()) == threads_before  # no consumer thread

            async def where() -> int:
                return threading.get_ident()

            # Faust's calls into "the thread" are plain awaits, coroutine or plain function
            assert await runner.call_thread(where) == threading.get_ident()
            assert await runner.call_thread(lambda x: x + 1, 41) == 42
        finally:
            await runner.stop()
        assert fake.stopped
        assert runner.should_stop

    asyncio.run(asyncio.wait_for(go(), timeout=30))


def test_a_commit_during_the_stop_is_given_up_after_its_bound(monkeypatch: Any) -> None:
    """aiokafka's commit waits for a coordinator while the broker is away, and Faust commits
    before its consumer may stop: bounded once the app stops, never before."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    from hub.pipeline import faust_consumer

    started: list[bool] = []

    async def never_answers(self: Any, *args: Any, **kwargs: Any) -> bool:
        started.append(True)
        await asyncio.Event().wait()
        return True

    monkeypatch.setattr(faust_aiokafka.Consumer, "commit", never_answers)
    monkeypatch.setattr(faust_consumer, "STOP_COMMIT_S", 0.05)

    async def go() -> tuple[bool, bool]:
        app = _app()
        consumer = app.consumer
        assert isinstance(consumer, faust_consumer._Consumer)
        running = asyncio.ensure_future(consumer.commit())
        await asyncio.sleep(0.2)
        still_waiting = not running.done()  # not stopping: waits as Faust does
        running.cancel()
        app._stopped.set()  # the app stops (what should_stop reads)
        return still_waiting, await consumer.commit()

    assert asyncio.run(go()) == (True, False)
    assert started == [True, True]


class _TakenMessage:
    """A message an agent took and has not acked (what Faust's WeakSet holds)."""

    acked = False
    refcount = 1


def test_a_wait_for_unacked_messages_begun_before_the_stop_ends_after_its_bound(
    monkeypatch: Any,
) -> None:
    """Faust's ``wait_empty`` waits while a taken message is unacked. A rebalance waits on
    (committing what is done meanwhile); once the app stops, even a wait that began before the
    stop (a revocation during a broker outage) ends ``STOP_WAIT_EMPTY_S`` later, trying no
    more commits but the last."""
    from hub.pipeline import faust_consumer

    monkeypatch.setattr(faust_consumer, "STOP_WAIT_EMPTY_S", 0.05)
    commits: list[bool] = []

    async def commit(self: Any, *args: Any, **kwargs: Any) -> bool:
        commits.append(bool(self.app.should_stop))
        return True

    monkeypatch.setattr(faust_consumer._Consumer, "commit", commit)

    async def go() -> tuple[bool, bool]:
        app = _app()
        consumer = app.consumer
        taken = _TakenMessage()
        consumer._unacked_messages.add(taken)
        waiting = asyncio.ensure_future(consumer.wait_empty())
        await asyncio.sleep(1.5)
        rebalance_waits = not waiting.done()
        app._stopped.set()  # the worker stops meanwhile
        await asyncio.wait_for(waiting, 5)
        return rebalance_waits, taken in consumer._unacked_messages

    assert asyncio.run(go()) == (True, True)  # waited, then gave up on the message
    assert commits[0] is False  # commits while only a rebalance waited
    assert commits[-1] is True  # the last one, once stopping
    assert commits.count(True) == 1


def test_a_wait_for_unacked_messages_ends_when_they_are_acked() -> None:
    async def go() -> None:
        app = _app()
        consumer = app.consumer
        taken = _TakenMessage()
        consumer._unacked_messages.add(taken)
        waiting = asyncio.ensure_future(consumer.wait_empty())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        taken.acked = True
        consumer._waiting_for_ack.set_result(None)  # what Consumer.ack() does
        await asyncio.wait_for(waiting, 5)

    asyncio.run(go())


def test_a_stop_commit_that_swallows_its_cancel_is_left_running_and_not_tried_again(
    monkeypatch: Any,
) -> None:
    """Faust's commit waits for a commit in progress and starts a new one when that wait is
    cancelled: a timeout that cancels it never ends. The stop leaves it running instead, and
    does not try the stop's later commits."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    from hub.pipeline import faust_consumer

    calls: list[str] = []

    async def swallows_cancel(self: Any, *args: Any, **kwargs: Any) -> bool:
        calls.append("commit")
        try:  # waits for the commit in progress...
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # ...and starts its own when cancelled
            calls.append("cancel swallowed")
        await asyncio.sleep(3600)  # a coordinator that never comes
        return True

    monkeypatch.setattr(faust_aiokafka.Consumer, "commit", swallows_cancel)
    monkeypatch.setattr(faust_consumer, "STOP_COMMIT_S", 0.05)

    async def go() -> tuple[bool, bool]:
        app = _app()
        consumer = app.consumer
        app._stopped.set()
        try:
            first = await asyncio.wait_for(consumer.commit(), 5)
            second = await asyncio.wait_for(consumer.commit(), 5)
        finally:  # end the commit left running (it swallows one cancel)
            for _ in range(2):
                for task in asyncio.all_tasks() - {asyncio.current_task()}:
                    task.cancel()
                await asyncio.sleep(0)
        return first, second

    assert asyncio.run(go()) == (False, False)
    assert calls.count("commit") == 1  # the second commit of the stop was not tried
