"""Telling a producer that is stuck from a broker that is away.

The writers flush until every record is acknowledged, however long the broker is away. That
relies on librdkafka resuming by itself once the broker is back, and it does not always: after a
120 s broker outage the fault suite saw the correlate writer's idempotent producer log
``Failed to acquire idempotence PID ... Coordinator load in progress: retrying`` once and then
deliver nothing for minutes while a fresh producer in the ingest child delivered at once
(librdkafka retries InitProducerId on the same broker connection; confluent-kafka-python #1335,
librdkafka #3848). Waiting for ``message.timeout.ms`` and retrying on the same producer stalled
again.

So while records wait, the writer asks this guard: once the wait is older than ``after_s`` it
probes the broker with a fresh, short-lived client; if the broker has answered for
``reachable_for_s`` while the producer still delivers nothing, the producer is declared stuck.
The writer then purges it (records not acknowledged fail the attempt, so the batch is retried:
exact repeats at worst) and continues with a new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import AdminClient

from hub.pipeline.clients import admin_config
from hub.settings import Settings

log = logging.getLogger(__name__)

Probe = Callable[[], bool]


def purge_waiting(producer: Any) -> None:
    """Drop every record a confluent-kafka producer still holds, queued or in flight; their
    delivery reports (served here) say they failed, so the caller's batch fails and is retried.
    """
    producer.purge(in_queue=True, in_flight=True, blocking=False)
    producer.flush(1.0)  # serves the purged records' delivery reports


def purge_stuck(producer: Any, remaining: int) -> str:
    """Drop what a stuck producer still holds (:func:`purge_waiting`).

    Returns the error line the caller adds to its batch's failures (the batch is retried).
    """
    purge_waiting(producer)
    return f"{remaining} record(s) purged from a stuck producer"


def broker_probe(settings: Settings, timeout_s: float = 5.0) -> Probe:
    """A probe that asks the cluster for its brokers with a client of its own."""

    def probe() -> bool:
        try:
            metadata = AdminClient(admin_config(settings)).list_topics(timeout=timeout_s)
        except Exception:  # unreachable, authentication refused, ...: not answering
            return False
        return bool(metadata.brokers)

    return probe


class StuckProducerGuard:
    """Decides, during one wait for acknowledgements, whether the producer is stuck."""

    def __init__(
        self,
        probe: Probe,
        after_s: float = 30.0,
        reachable_for_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.after_s = after_s
        self.reachable_for_s = reachable_for_s
        self.clock = clock
        self._waiting_since: float | None = None
        self._reachable_since: float | None = None

    def reset(self) -> None:
        """The wait is over (everything acknowledged or failed)."""
        self._waiting_since = None
        self._reachable_since = None

    def stuck(self) -> bool:
        """Called while records still wait; True once the broker answers and they still wait."""
        now = self.clock()
        if self._waiting_since is None:
            self._waiting_since = now
        if now - self._waiting_since < self.after_s:
            return False
        if not self.probe():
            self._reachable_since = None
            return False
        if self._reachable_since is None:
            self._reachable_since = now
        if now - self._reachable_since < self.reachable_for_s:
            return False
        log.warning(
            "producer delivered nothing for %.0f s while the broker answered for %.0f s: "
            "replacing it",
            now - self._waiting_since,
            now - self._reachable_since,
        )
        self.reset()
        return True
