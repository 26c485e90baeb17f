"""A stopping worker settles its table writers after Faust drained the streams, before the
tables close (:class:`hub.pipeline.topology.HubApp`); the broker-side proof is
tests/integration/test_worker_stop.py."""

from __future__ import annotations

import asyncio
import logging
from unittest import mock

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
