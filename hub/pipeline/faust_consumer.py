"""Faust's aiokafka consumer on the app's own event loop, with a short fetch wait.

**One loop, no consumer thread.** faust-streaming runs its aiokafka consumer in a thread with a
loop of its own (``AIOKafkaConsumerThread``). Every fetch, commit and seek of the main loop is a
call into that thread's method queue and back (``call_thread``: two cross-thread wake-ups), and
both threads contend for the GIL. At 1,000 events/s the consumer thread alone used 0.18 core,
much of it in ``call_soon_threadsafe``/``_write_to_self`` and waiting for the GIL, for a worker
whose steps needed 0.4 (issue 17). Here the same class runs as a plain service on the app's
loop: ``call_thread`` awaits the method directly, nothing else changes (the aiokafka consumer,
its coordinator and heartbeats, Faust's rebalance callbacks, acks and commits). A step holds
the loop for a few ms at a steady rate and for at most a few tenths of a second in a backfill
(2 MiB of messages), far below the 10 s session timeout a heartbeat behind it has to meet.

**A short fetch wait.** faust-streaming's driver builds its consumer with
``fetch_max_wait_ms=1500`` (not a setting). aiokafka keeps one fetch request in flight per
broker, for the partitions that have no buffered records and are not paused. When Faust's flow
control has paused the busy ``normalised`` partitions (its stream buffer filled during a step),
that request may cover only quiet partitions (``area-updates``), and the broker holds it for up
to the full wait. The busy partitions, resumed meanwhile, are not fetched until it returns: in
the bench at 1,000 events/s the correlate agent sat idle for 1.5 s while the ingest stage kept
producing, and every later message was taken ~1.2-1.5 s old (``HUB_TRACE_TIMINGS``). A wait of
50 ms bounds such a stall; an idle worker sends about 20 empty fetches a second instead of one,
a trivial load.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_WAIT_EMPTY
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service
from mode.utils.futures import maybe_async

from hub.pipeline.stop_deadline import task_stacks

FETCH_MAX_WAIT_MS = 50
#: Once the worker stops, a commit that takes longer is given up (see ``_Consumer.commit``).
STOP_COMMIT_S = 10.0
#: Once the worker stops, waiting for the agents to ack what they took is given up after this
#: (see ``_Consumer.wait_empty``).
STOP_WAIT_EMPTY_S = 20.0
#: Where the hub's own code lives (what the stop's wait logs the tasks of).
HUB_CODE = str(Path(__file__).resolve().parents[1])

log = logging.getLogger(__name__)


class _InLoopConsumer(faust_aiokafka.AIOKafkaConsumerThread):
    """``AIOKafkaConsumerThread`` started, called and stopped as a service of the app's loop.

    ``ServiceThread`` overrides Service's life cycle to hand it to a thread; these methods put
    Service's own back, and ``call_thread`` is a direct await.
    """

    wait_for_shutdown = False  # no thread to signal its shutdown

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        loop = kwargs.pop("loop")
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def call_thread(self, fun: Callable[..., Awaitable], *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))  # the method queue takes plain calls too

    async def cast_thread(self, fun: Callable[..., Awaitable], *args: Any, **kwargs: Any) -> None:
        self.add_future(maybe_async(fun(*args, **kwargs)))  # not awaited, stopped with us

    async def on_stop(self) -> None:
        # the thread's on_thread_stop: stop the aiokafka consumer (leaves the group)
        if self._consumer is not None:
            await self._consumer.stop()

    # -- Service's life cycle instead of ServiceThread's ----------------------------------
    async def start(self) -> None:
        self._thread_started.set()
        await Service.start(self)

    async def maybe_start(self) -> bool:
        return await Service.maybe_start(self)

    async def stop(self) -> None:
        await Service.stop(self)

    async def crash(self, exc: BaseException) -> None:
        await Service.crash(self, exc)

    def _stopped_set(self) -> None:
        Service._stopped_set(self)

    def set_shutdown(self) -> None:
        Service.set_shutdown(self)

    async def _stop_children(self) -> None:
        await Service._stop_children(self)

    async def _stop_futures(self) -> None:
        await Service._stop_futures(self)

    async def _stop_exit_stacks(self) -> None:
        await Service._stop_exit_stacks(self)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _InLoopConsumer(self, loop=self.loop, beacon=self.beacon)

    _stop_commit_failed = False

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        """Faust's commit; once the app stops, given up after :data:`STOP_COMMIT_S`.

        aiokafka's commit waits for a group coordinator for as long as the broker is away, and
        Faust commits (and waits for it) before its consumer may stop: a worker stopped during
        an outage waited for the outage to end. Offsets not committed are read again by the
        next owner, which skips what its state holds already (:mod:`hub.pipeline.gaps`).

        The commit is left running, not cancelled: Faust lets one commit run at a time and a
        second one waits for it, and a cancelled wait starts a new commit (its ``CancelledError``
        is swallowed), so a timeout around it waited for a coordinator after all (a stopping
        worker still running 90 s after SIGTERM, stop 41). Once one commit of the stop failed
        that way, the stop's later ones are not tried (the broker is away).
        """
        if not self.app.should_stop:
            return bool(await super().commit(*args, **kwargs))
        if self._stop_commit_failed:
            return False
        commit = asyncio.ensure_future(super().commit(*args, **kwargs))
        done, _ = await asyncio.wait({commit}, timeout=STOP_COMMIT_S)
        if commit in done:
            return bool(commit.result())
        self._stop_commit_failed = True
        log.warning("stopping: offsets not committed within %.0f s (broker away?)", STOP_COMMIT_S)
        return False

    @Service.transitions_to(CONSUMER_WAIT_EMPTY)
    async def wait_empty(self) -> None:
        """Wait until the agents acked what they took (Faust's loop); bounded once stopping.

        Faust stops its consumer, and finishes a revocation, only after every message a stream
        took is acked (or collected). A message that is neither (an agent step busy with a
        broker that is away) held a SIGTERMed worker past its grace period (the fault suite's
        "worker SIGTERM while broker away", seen in CI): Faust's loop commits each turn (10 s
        without a broker) and waits. Here, from the moment the app stops (also in a wait that
        began before, a rebalance's), the wait ends after :data:`STOP_WAIT_EMPTY_S` and no more
        commits are tried until the last one. This is Faust's own loop, not a timeout around
        it: Faust's wait for an ack swallows ``CancelledError``, so a cancelled wait went on.
        Unacked messages are not committed; the partition's next owner reads them again.
        """
        loop = asyncio.get_running_loop()
        give_up_at: float | None = None
        turns = 0
        while not self.should_stop and self._unacked_messages:
            if self.app.should_stop:
                give_up_at = give_up_at or loop.time() + STOP_WAIT_EMPTY_S
                if loop.time() >= give_up_at:
                    log.warning(
                        "stopping: %d taken message(s) not acked within %.0f s; left uncommitted "
                        "to the partitions' next owner. The hub's tasks:\n%s",
                        len(self._unacked_messages),
                        STOP_WAIT_EMPTY_S,
                        task_stacks(loop, only=HUB_CODE),
                    )
                    break
            turns += 1
            if not turns % 10:
                log.warning(
                    "waiting for %d taken message(s) to be acked", len(self._unacked_messages)
                )
            gc.collect()  # messages dropped from a cleared queue leave the WeakSet
            if give_up_at is None:
                await self.commit()  # a rebalance waits on: commit what is done meanwhile
            if not self._unacked_messages:
                break
            await self._wait_for_ack(timeout=1)
            self._clean_unacked_messages()
        await self.commit_and_end_transactions()


def use_hub_consumer(app: faust.App) -> None:
    """Make ``app``'s (not yet created) consumer run on its loop with :data:`FETCH_MAX_WAIT_MS`."""
    transport: Any = app.transport
    transport.Consumer = _Consumer
