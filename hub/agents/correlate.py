"""Correlate agent: ``normalised`` batch messages, per partition in order, a few at a time.

Concurrency stays 1 (faust-streaming issue #606: with more it can commit past an in-flight
message). ``take_events`` hands over what arrived within 10 ms (at most 32 messages) so one
flush and one RocksDB write per partition cover them all. Faust acks the events only after
``step`` returns, and ``step`` returns only once the batch is processed (it retries on error:
:mod:`hub.pipeline.retry`), so an event is never committed unprocessed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust

from hub.pipeline.trace import batch_done

MAX_MESSAGES = 32
WITHIN_S = 0.01


def register(
    app: faust.App,
    topic: faust.TopicT,
    step: Callable[[list[tuple[int, int, bytes]]], Awaitable[None]],
) -> None:
    # take_events is faust-streaming's, missing from its StreamT stubs
    @app.agent(topic, name="hub.correlate", concurrency=1)
    async def correlate(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(MAX_MESSAGES, within=WITHIN_S):  # type: ignore[attr-defined]
            await step([(e.message.partition, e.message.offset, e.value) for e in batch])
            batch_done("correlate", batch)
