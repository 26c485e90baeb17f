"""Area agent: folds per-address flag changes into 4-digit postcode areas (AREA_CLUSTER).

Low volume (only flips of an address's signal state); it takes up to 500 updates or 50 ms at a
time to amortise the flush of emitted signals. ``step`` retries until the batch is processed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust

from hub.pipeline.trace import batch_done


def register(
    app: faust.App,
    topic: faust.TopicT,
    step: Callable[[list[tuple[int, int, bytes]]], Awaitable[None]],
) -> None:
    # take_events is faust-streaming's, missing from its StreamT stubs
    @app.agent(topic, name="hub.area", concurrency=1)
    async def areas(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(500, within=0.05):  # type: ignore[attr-defined]
            await step([(e.message.partition, e.message.offset, e.value) for e in batch])
            batch_done("area", batch)
