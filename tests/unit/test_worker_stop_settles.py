"""A stopping worker settles its table writers after Faust drained the streams, before the
tables close (:class:`hub.pipeline.topology.HubApp`); the broker-side proof is
tests/integration/test_worker_stop.py."""

from __future__ import annotations

import asyncio
import logging
from unittest import mock

import pytest
from faust.types import TP

from hub.pipeline.topics import Topics
from hub.pipeline.topology import HubApp, build_topology
from hub.settings import Settings


async def _no_step(messages: object) -> None:
    return None


def _app() -> HubApp:
    settings = Settings(topic_prefix="drain.")
    return build_topology(settings, Topics.from_settings(settings), _no_step, _no_step).app


def test_drained_callbacks_run_after_faust_waited_for_the_agents_steps() -> None:
    order: list[str] = []

    class Consumer:
        async def wait_empty(self) -> None:
            await asyncio.sleep(0)
            order.append("streams empty")

    async def settle() -> None:
        order.append("settled")

    async def go() -> None:
        app = _app()
        app.on_streams_drained.append(settle)
        await app._consumer_wait_empty(Consumer(), logging.getLogger("test"))

    asyncio.run(go())
    assert order == ["streams empty", "settled"]


def test_a_graceful_stop_settles_before_the_tables_close() -> None:
    """Faust's own stop path (``App._stop_consumer``) with its consumer and tables faked."""
    order: list[str] = []

    async def go() -> None:
        app = _app()
        consumer = mock.MagicMock()
        consumer.assignment.return_value = {TP("drain.normalised", 0)}
        consumer.wait_empty = mock.AsyncMock(side_effect=lambda: order.append("streams empty"))
        tables = mock.MagicMock()
        tables.stop = mock.AsyncMock(side_effect=lambda: order.append("tables closed"))

        async def settle() -> None:
            order.append("settled")

        app.on_streams_drained.append(settle)
        app._consumer = consumer
        with (
            mock.patch.object(app, "tables", new=tables),
            mock.patch.object(app, "_stop_fetcher", mock.AsyncMock()),
        ):
            await app._stop_consumer()

    asyncio.run(go())
    assert order == ["streams empty", "settled", "tables closed"]


def test_a_stopping_worker_does_not_wait_past_the_settle_bound_for_a_held_stage_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step or an idle settle holding a stage's lock while the broker is away must not hold a
    stopping worker: the settle gives up within ``REVOKE_SETTLE_S`` and forgets the state."""
    from hub.pipeline import runtime as runtime_module
    from hub.pipeline.runtime import HubRuntime

    monkeypatch.setattr(runtime_module, "REVOKE_SETTLE_S", 0.05)
    forgotten: list[str] = []

    async def go() -> bool:
        runtime = HubRuntime(Settings(topic_prefix="settle.", broker="localhost:1"))
        for stage, writer in runtime._writers():
            monkeypatch.setattr(writer, "forget_pending", lambda s=stage: forgotten.append(s))
        lock = runtime._locks["correlate"]
        await lock.acquire()  # held by a step waiting for the broker
        runtime.app._stopped.set()
        await asyncio.wait_for(runtime.settle_all(), 5)
        return lock.locked()

    assert asyncio.run(go()) is True
    assert forgotten == ["correlate"]  # the area stage had nothing pending and its lock free
