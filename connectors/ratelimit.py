"""Per-client token buckets for the HTTP ingress (429 + ``Retry-After``).

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request takes one.
Keys are token labels (authenticated clients) or remote addresses (failed authentication), so
one noisy agency or one token-guessing host cannot starve the others. In-process and
per-worker: enough for one ingress process; several replicas each apply the limits.

The key table is bounded (least recently used keys are dropped) so a flood of distinct source
addresses cannot grow memory without limit; a dropped key starts again with a full bucket.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BucketConfig:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")


class TokenBuckets:
    """One token bucket per key."""

    def __init__(
        self,
        config: BucketConfig,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.config.burst, now))
        return min(self.config.burst, tokens + (now - at) * self.config.rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def take(self, key: str) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens = self._level(key, now)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now)
            return 0.0
        self._store(key, tokens, now)
        return (1.0 - tokens) / self.config.rate

    def wait_time(self, key: str) -> float:
        """Seconds until ``key`` has a token again, without taking one (0.0: it has one)."""
        if key not in self._buckets:
            return 0.0
        tokens = self._level(key, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.config.rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(seconds: float) -> str:
    """An HTTP ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
