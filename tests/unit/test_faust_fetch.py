"""The worker's Faust consumer waits at most 50 ms per fetch (faust-streaming hard-codes 1.5 s)."""

from __future__ import annotations

import asyncio

from hub.pipeline.faust_fetch import FETCH_MAX_WAIT_MS
from hub.pipeline.topics import Topics
from hub.pipeline.topology import build_topology
from hub.settings import Settings


async def _no_step(messages: object) -> None:
    return None


def test_the_worker_consumer_fetches_with_the_short_wait() -> None:
    async def go() -> int:
        settings = Settings(topic_prefix="fetch.")
        app = build_topology(settings, Topics.from_settings(settings), _no_step, _no_step).app
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(go()) == FETCH_MAX_WAIT_MS <= 100
