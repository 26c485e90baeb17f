"""Faust's ``Stream.take_events`` with a byte bound as well as a message bound.

The correlate agent hands each step what arrived since the previous one, so one flush and one
RocksDB write cover it all. A bound on messages alone does not fit both ends of the load:
- at a steady 1,000 events/s the ingest stage writes many small messages (about two events
  each, one per partition and poll), and a 32-message bound held a step to ~60 events. Each
  step costs two broker round trips whatever its size, so the worker fell behind at 1,000/s
  and the queue grew to seconds (issue 17, measured with ``HUB_TRACE_TIMINGS``);
- during a backfill each message carries hundreds of events, and a large message bound would
  make a step of hundreds of thousands of events (memory, and one long stall).
So a step takes up to ``max_messages`` messages or ``max_bytes`` bytes of message values,
whichever comes first, or what arrived until ``within`` seconds after the previous step began.

``within`` paces steps; it does not hold up an idle pipeline. A message that arrives more than
``within`` after the last step began goes out after :data:`BURST_S` (the rest of its burst with
it), where Faust's ``take_events`` waited for a whole window, and an idle take wakes once a
second instead of once a window. Under a steady load a step begins at most every ``within``
seconds (issue 17; at 50 events/s the ingest → correlated hop's p50 went from 11-12 to 7-8 ms,
at 1,000 events/s no change beyond the noise).

This is faust-streaming's own ``take_events`` (the pinned version in pyproject.toml) with the byte
bound and this pacing; it uses the same stream internals. Acks are unchanged: the taken events are
acked only after the caller's loop body returns for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from faust.types import EventT, StreamT
from mode.utils.futures import notify

#: How often an idle take looks at ``should_stop`` while it waits for a first message.
IDLE_WAKE_S = 1.0
#: After an idle spell, how long the first message waits for the rest of its burst (the ingest
#: stage writes one message per partition in a cycle, all within a millisecond or two).
BURST_S = 0.003


def take_bounded(
    stream: StreamT,
    max_messages: int,
    max_bytes: int,
    within: float,
    busy_within: float | None = None,
    busy_bytes: int = 0,
) -> AsyncGenerator[Sequence[EventT], None]:
    """Yield lists of events: full (by count or bytes), or what arrived in the step's window.

    Once values arrive at ``busy_bytes`` per ``within`` or faster, the windows are
    ``busy_within`` (if given) until the rate falls below half of that: a short window keeps a
    moderate rate's latency down, a longer one under a high rate keeps the steps (each a flush
    and a RocksDB write) few enough for the worker to keep up. The rate, not the size of one
    list, decides, so a longer busy window does not keep a moderate rate busy.

    Registered with the stream like Faust's own buffering generators, so stopping the stream
    closes it (and acks what was consumed).
    """
    windows = (within, within if busy_within is None else busy_within)
    agen = _take_bounded(stream, max_messages, max_bytes, windows, busy_bytes)
    active = getattr(stream, "_active_agens", None)
    if active is not None:
        active.add(agen)
    return agen


async def _take_bounded(
    stream: StreamT,
    max_messages: int,
    max_bytes: int,
    windows: tuple[float, float],
    busy_bytes: int,
) -> AsyncGenerator[Sequence[EventT], None]:
    s: Any = stream  # the Stream implementation (its StreamT stubs lack these internals)
    events: list[EventT] = []
    size = 0
    arrived = asyncio.Event()  # the buffer holds at least one event
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    buffer_consuming: asyncio.Future | None = None
    stream_enable_acks: bool = s.enable_acks

    channel_it = aiter(s.channel)
    loop = asyncio.get_running_loop()
    busy_rate = busy_bytes / windows[0]  # bytes per second from which the busy window applies
    busy = False

    async def add_to_buffer(value: Any) -> Any:
        nonlocal buffer_consuming, size
        try:
            if buffer_consuming is not None:  # the caller is processing the last list
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            event = s.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            events.append(event)
            arrived.set()
            message_value = event.message.value
            size += len(message_value) if message_value is not None else 0
            if len(events) >= max_messages or size >= max_bytes:
                buffer_full.set()
                buffer_consumed.clear()
                await s.wait(buffer_consumed)  # strict: no more until the list is consumed
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            s.log.exception("Error adding to take buffer: %r", exc)
            await s.crash(exc)
        return value

    s.enable_acks = False  # acked below, only after the caller is done with them
    s.add_processor(add_to_buffer)
    s._enable_passive(channel_it)
    within = windows[0]
    last_step = -within  # loop time the last step began
    try:
        while not s.should_stop:
            if not events:
                await s.wait_for_stopped(arrived, timeout=IDLE_WAKE_S)
                if not events:
                    continue
            # paced: the rest of the window since the last step began; after an idle spell
            # only a moment, for the rest of the burst the first message came with
            remaining = max(within - (loop.time() - last_step), min(within, BURST_S))
            if not buffer_full.is_set():
                await s.wait_for_stopped(buffer_full, timeout=remaining)
            if events:
                now = loop.time()
                if busy_bytes > 0:  # the rate since the last step began (after idling: low)
                    rate = size / max(now - last_step, windows[0])
                    busy = rate >= (busy_rate / 2 if busy else busy_rate)
                last_step = now
                within = windows[busy]
                buffer_consuming = s.loop.create_future()
                try:
                    yield list(events)
                finally:
                    taken = list(events)
                    events.clear()
                    arrived.clear()
                    size = 0
                    for event in taken:
                        await s.ack(event)
                    notify(buffer_consuming)  # lets add_to_buffer go on
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        s.enable_acks = stream_enable_acks
        s._processors.remove(add_to_buffer)
