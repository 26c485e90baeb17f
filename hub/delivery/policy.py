"""Retry policy, attempt outcomes and the delivery log entry.

Every notification is tried until the receiver answers 2xx, or until ``max_attempts`` attempts
or ``max_age_s`` seconds since its first attempt have passed; then it goes to the subscription's
dead-letter topic with the last error. Waits grow exponentially with random jitter (tenacity's
``wait_exponential_jitter``): ``initial * 2**n + U(0, jitter)``, capped at ``backoff_max_s``.
Every non-2xx answer is retried (a 4xx is usually a receiver misconfigured for a while:
a wrong token, a route not deployed yet); the limits decide when to give up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tenacity import stop_after_attempt, stop_after_delay, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from hub.delivery.config import DeliverySettings

#: outcomes of one attempt (the ``outcome`` label of ``hub_delivery_attempts_total``)
DELIVERED = "delivered"
HTTP_ERROR = "http_error"  # the receiver answered, not 2xx
TIMEOUT = "timeout"
NETWORK = "network"  # refused, reset, DNS, TLS
REFUSED = "refused"  # destination policy or a redirect elsewhere: never sent
OUTCOMES: frozenset[str] = frozenset({DELIVERED, HTTP_ERROR, TIMEOUT, NETWORK, REFUSED})
DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one POST: outcome, HTTP status (None if none), seconds taken, and a short
    error text free of secrets (no header values, no URL query)."""

    outcome: str
    status: int | None
    latency_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == DELIVERED


def classify_status(status: int) -> str:
    return DELIVERED if 200 <= status < 300 else HTTP_ERROR


def wait_strategy(s: DeliverySettings) -> wait_base:
    return wait_exponential_jitter(
        initial=s.backoff_initial_s, max=s.backoff_max_s, jitter=s.backoff_jitter_s
    )


def stop_strategy(s: DeliverySettings) -> stop_base:
    return stop_after_attempt(s.max_attempts) | stop_after_delay(s.max_age_s)


@dataclass(slots=True)
class LogEntry:
    """The delivery log of one subscription (the compacted topic keeps the latest): the last
    attempt and running totals since the subscription's first delivery."""

    subscription: str
    at_ms: int = 0
    fingerprint: str | None = None
    version: int | None = None
    attempt: int = 0
    outcome: str | None = None
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    delivered_total: int = 0
    attempts_total: int = 0
    dead_lettered_total: int = 0
    last_delivered_at_ms: int | None = None
    last_dead_lettered_at_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record_attempt(
        self, at_ms: int, fingerprint: str, version: int, number: int, attempt: Attempt
    ) -> None:
        self.at_ms = at_ms
        self.fingerprint = fingerprint
        self.version = version
        self.attempt = number
        self.outcome = attempt.outcome
        self.status_code = attempt.status
        self.latency_ms = round(attempt.latency_s * 1000.0, 1)
        self.error = attempt.error
        self.attempts_total += 1
        if attempt.ok:
            self.delivered_total += 1
            self.last_delivered_at_ms = at_ms

    def record_dead_letter(self, at_ms: int) -> None:
        self.at_ms = at_ms
        self.outcome = DEAD_LETTERED
        self.dead_lettered_total += 1
        self.last_dead_lettered_at_ms = at_ms

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LogEntry:
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        return cls(**known)
