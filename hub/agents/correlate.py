"""Correlate agent: ``normalised`` batch messages, per partition in order, a few at a time.

Concurrency stays 1 (faust-streaming issue #606: with more it can commit past an in-flight
message). :func:`~hub.pipeline.take.take_bounded` hands over what arrived until 16 ms after the
previous step began (after an idle spell: within 3 ms), up to 256 messages or 2 MiB, so one flush
and one RocksDB write per partition cover them all. Faust acks the events only after ``step``
returns, and ``step`` returns only once the batch is processed (it retries on error:
:mod:`hub.pipeline.retry`), so an event is never committed unprocessed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import faust

from hub.pipeline import trace
from hub.pipeline.take import take_bounded
from hub.pipeline.trace import batch_done

MAX_MESSAGES = 256
MAX_BYTES = 2 * 1024 * 1024  # about 10 backfill messages (~600 events each)
#: A step begins at most every 16 ms (at once after an idle spell). Shorter than the ingest
#: stage's cycle (MIN_CYCLE_S, 20 ms): with a window as long as the cycle (15 ms against 10 ms
#: cycles) a cycle's messages arrived inside the window and waited out its rest (ingest →
#: correlated p50 14 ms at 1,000 events/s, 7 ms with 8 ms). 16 with 20 ms cycles rather than 8
#: with 10: fewer steps at 1,000 events/s, the worker 0.53-0.57 of a core instead of
#: 0.65-0.75 and the p99 lower (figures at MIN_CYCLE_S, stop 42).
WITHIN_S = 0.016
#: ... but while messages arrive at BUSY_BYTES per WITHIN_S or faster (~1,700 events/s; quiet
#: again below half: ``take_bounded``) a step begins at most every 30 ms. At 5,000 events/s and
#: the full bench size the worker's cost is mostly per step: 8 ms steps all the time left it
#: behind (p50 0.6-1.2 s), 15 ms ones too (p50 0.64-0.65 s, p99 3.1-5.2 s); 30 ms steps, with
#: the ingest stage's 40 ms busy cycles, p50 0.17-0.19 s, p99 0.71-0.93 s (issue 17, stop 35).
BUSY_WITHIN_S = 0.03
BUSY_BYTES = 8 * 1024


def register(
    app: faust.App,
    topic: faust.TopicT,
    step: Callable[[list[tuple[int, int, bytes]]], Awaitable[None]],
) -> None:
    @app.agent(topic, name="hub.correlate", concurrency=1)
    async def correlate(stream: faust.StreamT) -> None:
        async for batch in take_bounded(
            stream, MAX_MESSAGES, MAX_BYTES, WITHIN_S, BUSY_WITHIN_S, BUSY_BYTES
        ):
            if trace.TIMINGS:
                trace_take(batch)
            await step([(e.message.partition, e.message.offset, e.value) for e in batch])
            batch_done("correlate", batch)


def trace_take(batch: Sequence[faust.types.EventT]) -> None:
    """Size of a take and how long its messages waited since the ingest stage produced them."""
    now = time.time()
    stamps = [e.message.timestamp for e in batch]
    trace.timings(
        "take",
        msgs=len(batch),
        kb=sum(len(e.message.value or b"") for e in batch) / 1024,
        age_oldest_ms=(now - min(stamps)) * 1e3,
        age_newest_ms=(now - max(stamps)) * 1e3,
    )
