"""Area agent: folds per-address flag changes into 4-digit postcode areas (AREA_CLUSTER).

Low volume (only flips of an address's signal state), so it uses the plain Faust table API; it
takes up to 500 updates or 50 ms at a time to amortise the flush of emitted signals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

if TYPE_CHECKING:
    from hub.pipeline.runtime import HubRuntime


def register(app: faust.App, runtime: HubRuntime) -> None:
    @app.agent(runtime.area_topic, name="hub.area", concurrency=1)
    async def areas(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(500, within=0.05):
            await runtime.process_area_updates(
                [(event.message.partition, event.value) for event in batch]
            )
