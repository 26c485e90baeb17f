"""Diagnostic traces in the worker log, off unless asked for by an environment variable.

- ``HUB_TRACE_BATCHES=1``: which input offsets each agent batch covered. A fault test that finds
  events skipped reads the worker logs to see whether any worker processed their offsets (and
  when), which tells a commit past unprocessed input from a stale state.
- ``HUB_TRACE_TIMINGS=1``: where each step's time goes (ms per phase: the take's size and age,
  the correlate step's processing and each flush, the ingest cycle), and the worker's cyclic-GC
  collections of 5 ms or more (:func:`watch_gc`). Issue 17's latency work read these.
Offsets, counts and durations only: no keys, no event content.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("hub.trace")
ENABLED = os.environ.get("HUB_TRACE_BATCHES", "") not in ("", "0", "false")


def batch_done(stage: str, events: Sequence[Any]) -> None:
    """Log ``stage: p<partition>=<first>-<last>/<count> ...`` for a processed batch."""
    if not ENABLED:
        return
    log.warning("trace %s done %s", stage, offset_spans(events))


def offset_spans(events: Sequence[Any]) -> str:
    """``p<partition>=<first>-<last>/<count> ...`` of Faust events, by partition."""
    spans: dict[int, list[int]] = {}
    for event in events:
        message = event.message
        span = spans.setdefault(message.partition, [message.offset, message.offset, 0])
        span[0] = min(span[0], message.offset)
        span[1] = max(span[1], message.offset)
        span[2] += 1
    return " ".join(f"p{p}={a}-{b}/{n}" for p, (a, b, n) in sorted(spans.items()))


TIMINGS = os.environ.get("HUB_TRACE_TIMINGS", "") not in ("", "0", "false")


class Spans:
    """Durations between marks, in ms, for :func:`timings` (a few perf_counter calls a step)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def mark(self, name: str) -> None:
        """The time since the previous mark (or the start) is ``name``'s."""
        now = time.perf_counter()
        self.ms[name] = (now - self._last) * 1e3
        self._last = now


def timings(stage: str, **values: float) -> None:
    """Log one step's figures (``HUB_TRACE_TIMINGS=1``)."""
    if TIMINGS:
        text = " ".join(f"{k}={v:.1f}" for k, v in values.items())
        log.warning("timing %s %s", stage, text)


def watch_gc(min_ms: float = 5.0) -> None:
    """Log each cyclic-GC collection of ``min_ms`` or longer (``HUB_TRACE_TIMINGS=1``).

    A full collection walks every tracked object of the process; in a worker holding large
    caches that is a pause of the event loop, seen as a latency tail.
    """
    if not TIMINGS:
        return
    import gc
    from collections import Counter

    started: list[float] = [0.0]
    census_at: list[float] = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - started[0]) * 1e3
        if ms >= min_ms:
            timings("gc", generation=info["generation"], ms=ms, collected=info["collected"])
        if ms >= 50 and info["generation"] == 2 and time.monotonic() - census_at[0] > 20:
            census_at[0] = time.monotonic()
            objects = gc.get_objects()
            counts = Counter(type(o).__name__ for o in objects)
            sized = sorted(
                ((len(o), type(o).__name__) for o in objects if isinstance(o, dict | list | set)),
                reverse=True,
            )
            log.warning(
                "gc census: %d objects; %s; largest containers %s",
                len(objects),
                counts.most_common(8),
                sized[:8],
            )

    gc.callbacks.append(callback)


def watch_changelog_applies(table: Any) -> None:
    """With ``HUB_TRACE_BATCHES``: log the changelog offsets each recovery or standby apply of
    ``table`` wrote, per partition (``trace <table> applied p<partition>=<first>-<last>/<n>``)."""
    if not ENABLED:
        return
    apply = table.apply_changelog_batch

    def traced(batch: Any) -> None:
        events = list(batch)
        apply(events)
        if events:
            log.warning("trace %s applied %s", table.name, offset_spans(events))

    table.apply_changelog_batch = traced
