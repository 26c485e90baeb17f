"""Faust's consumer with a short fetch wait: no 1.5 s stalls of the agents at a steady rate.

faust-streaming's aiokafka driver builds its consumer with ``fetch_max_wait_ms=1500`` (not a
setting). aiokafka keeps one fetch request in flight per broker, for the partitions that have
no buffered records and are not paused. When Faust's flow control has paused the busy
``normalised`` partitions (its stream buffer filled during a step), that request may cover only
quiet partitions (``area-updates``), and the broker holds it for up to the full wait. The busy
partitions, resumed meanwhile, are not fetched until it returns: in the bench at 1,000
events/s the correlate agent sat idle for 1.5 s while the ingest stage kept producing, and every
later message was taken ~1.2-1.5 s old (``HUB_TRACE_TIMINGS``). A wait of 50 ms bounds such a
stall; an idle worker sends about 20 empty fetches a second instead of one, a trivial load.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 50


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


def use_short_fetch_wait(app: faust.App) -> None:
    """Make ``app``'s (not yet created) consumer fetch with :data:`FETCH_MAX_WAIT_MS`."""
    transport: Any = app.transport
    transport.Consumer = _Consumer
