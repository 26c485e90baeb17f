"""Correlate agent: ``normalised`` batch messages, per partition in order, a few at a time.

Concurrency stays 1 (faust-streaming issue #606: with more it can commit past an in-flight
message). ``take_events`` hands over what arrived within 10 ms (at most 32 messages) so one
flush and one RocksDB write per partition cover them all; Faust acks the events only after the
call returns, so at-least-once holds. All work happens in
:meth:`HubRuntime.process_normalised_many`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

if TYPE_CHECKING:
    from hub.pipeline.runtime import HubRuntime

MAX_MESSAGES = 32
WITHIN_S = 0.01


def register(app: faust.App, runtime: HubRuntime) -> None:
    @app.agent(runtime.normalised_topic, name="hub.correlate", concurrency=1)
    async def correlate(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(MAX_MESSAGES, within=WITHIN_S):
            await runtime.process_normalised_many(
                [(event.message.partition, event.value) for event in batch]
            )
