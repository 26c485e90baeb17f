"""Test-only offset trace: which input offsets each agent batch covered (``HUB_TRACE_BATCHES=1``).

A fault test that finds events skipped reads the worker logs to see whether any worker processed
their offsets (and when), which tells a commit past unprocessed input from a stale state. Offsets
and partitions only: no keys, no event content.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("hub.trace")
ENABLED = os.environ.get("HUB_TRACE_BATCHES", "") not in ("", "0", "false")


def batch_done(stage: str, events: Sequence[Any]) -> None:
    """Log ``stage: p<partition>=<first>-<last>/<count> ...`` for a processed batch."""
    if not ENABLED:
        return
    spans: dict[int, list[int]] = {}
    for event in events:
        message = event.message
        span = spans.setdefault(message.partition, [message.offset, message.offset, 0])
        span[0] = min(span[0], message.offset)
        span[1] = max(span[1], message.offset)
        span[2] += 1
    text = " ".join(f"p{p}={a}-{b}/{n}" for p, (a, b, n) in sorted(spans.items()))
    log.warning("trace %s done %s", stage, text)
