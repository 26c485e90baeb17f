"""Correlate agent: one ``normalised`` batch message at a time, per partition, in order.

Concurrency stays 1 (faust-streaming issue #606: with more it can commit past an in-flight
message). All work happens in :meth:`HubRuntime.process_normalised`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

if TYPE_CHECKING:
    from hub.pipeline.runtime import HubRuntime


def register(app: faust.App, runtime: HubRuntime) -> None:
    @app.agent(runtime.normalised_topic, name="hub.correlate", concurrency=1)
    async def correlate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await runtime.process_normalised(event.message.partition, event.value)
