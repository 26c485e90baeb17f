"""Limits of the HTTP ingress: body size, delivery timeouts, per-client rates."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: How long a request waits for broker acknowledgements before answering 503.
DELIVERY_TIMEOUT_S = 30.0
#: The producer gives up on a message a little earlier, so the request sees a real error.
MESSAGE_TIMEOUT_MS = 25_000


@dataclass(frozen=True, slots=True)
class IngressLimits:
    """Per-client limits of the ingress (environment names in brackets).

    - ``requests_per_s`` / ``burst`` per token, and for the notificaties callback as a whole
      [``HUB_INGRESS_RATE``, ``HUB_INGRESS_BURST``]: above it 429 with ``Retry-After``.
    - ``auth_failures_per_min`` / ``auth_failures_burst`` per remote address
      [``HUB_INGRESS_AUTH_FAILURES_PER_MIN``, ``HUB_INGRESS_AUTH_FAILURES_BURST``]: every
      request without a valid credential takes one; when none is left, every request from that
      address is 429 until one has refilled, before its credential is even looked at (so
      guessing stays at ~10 tries a minute instead of thousands a second).
    - ``read_timeout_s`` [``HUB_INGRESS_READ_TIMEOUT_S``]: the whole body must arrive within
      it, else 408 and the connection is closed (a half-sent body no longer holds it open).
    """

    requests_per_s: float = 20.0
    burst: float = 40.0
    auth_failures_per_min: float = 10.0
    auth_failures_burst: float = 10.0
    read_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngressLimits:
        env = os.environ if env is None else env
        names = {
            "requests_per_s": "HUB_INGRESS_RATE",
            "burst": "HUB_INGRESS_BURST",
            "auth_failures_per_min": "HUB_INGRESS_AUTH_FAILURES_PER_MIN",
            "auth_failures_burst": "HUB_INGRESS_AUTH_FAILURES_BURST",
            "read_timeout_s": "HUB_INGRESS_READ_TIMEOUT_S",
        }
        values: dict[str, float] = {}
        for attr, name in names.items():
            text = env.get(name, "").strip()
            if text:
                try:
                    values[attr] = float(text)
                except ValueError as exc:
                    raise ValueError(f"{name}: expected a number, got {text!r}") from exc
        limits = cls(**values)
        if limits.read_timeout_s <= 0:
            raise ValueError("HUB_INGRESS_READ_TIMEOUT_S must be > 0")
        return limits
