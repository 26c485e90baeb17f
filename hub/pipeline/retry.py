"""Retry a processing step on the same input until it succeeds.

Why retry in place rather than let the error escape: an exception that leaves a Faust agent makes
Faust restart the agent, and the events it had already taken from the stream are then acked and
committed without being processed (silent loss, issue 12 D3). So the agents never let a
processing error escape: the same batch is retried with exponential back-off (capped), the worker
reports not-ready while it retries, every retry is counted in ``hub_processing_retries_total``,
and the input offset cannot move past the batch because the agent has not returned.

A retry is safe because a step writes RocksDB only after every record it produced was
acknowledged (:mod:`hub.pipeline.state`): a failed attempt leaves the table as it was, so the
next attempt derives the same records again (exact (fingerprint, version) repeats at worst).

The retry is endless on purpose. A broker outage of any length is ridden out; a persistent bug
stalls the partition visibly (not-ready, retries and lag rising, ERROR log lines) instead of
losing events. ``CancelledError`` (shutdown, rebalance) is not an ``Exception`` and ends it.

Except once the worker is stopping (``stopping()``): then a failed attempt ends the step with
its batch unprocessed, and so does every later step of the stage while it stops, without an
attempt (the last one failed, so the broker or the stage is out of order). Faust stops its
consumer only once every message an agent took is acked, so a step retrying while the broker
was away held a SIGTERMed worker for as long as the outage lasted (seen: still running 150 s
after SIGTERM; Kubernetes kills it after its grace period). The batch is not lost: the stored
next-input offsets make the partition's next owner process it (:mod:`hub.pipeline.gaps`), as
after any step a shutdown cut short. A step that succeeds while the worker stops (a normal
stop, broker up) is processed as always.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from hub import metrics
from hub.health import Readiness

log = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised by the test-only fault hook (``HUB_FAULT_CORRELATE_ERRORS``)."""


class FaultHook:
    """Makes the first ``errors`` calls of :meth:`check` raise: a fault test's trigger."""

    def __init__(self, errors: int = 0) -> None:
        self.remaining = max(0, errors)

    def check(self) -> None:
        if self.remaining > 0:
            self.remaining -= 1
            raise InjectedFault(f"injected processing fault ({self.remaining} left)")


class StepRetry:
    """Runs one stage's step until it succeeds, with back-off, metrics and readiness."""

    def __init__(
        self,
        stage: str,
        readiness: Readiness,
        first_wait_s: float = 0.5,
        max_wait_s: float = 30.0,
        on_retry: Callable[[BaseException], Awaitable[None]] | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.stage = stage
        self.stopping = stopping
        self.abandoned = 0  # batches left unprocessed because the worker was stopping
        self.readiness = readiness
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.on_retry = on_retry
        self.retries = 0  # total, for tests and stats

    async def run(self, step: Callable[[], Awaitable[None]]) -> None:
        if self.abandoned and self.stopping():
            self.abandoned += 1  # an attempt failed while stopping: do not try again
            return
        attempts = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=self.first_wait_s, max=self.max_wait_s),
            stop=lambda _state: self.stopping(),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        self._last: BaseException | None = None
        try:
            async for attempt in attempts:
                with attempt:
                    if self._last is not None and self.on_retry is not None:
                        await self.on_retry(self._last)
                    await step()
        except Exception as exc:
            if not self.stopping():
                raise  # never: without a stop condition tenacity retries every Exception
            self.abandoned += 1
            log.warning(
                "%s: worker stopping, attempt failed with %s: the batch is left to the "
                "partition's next owner (not processed here, not lost)",
                self.stage,
                type(exc).__name__,
            )
            return
        failed = attempts.statistics.get("attempt_number", 1) - 1
        if failed:
            self.readiness.set_blocker(self.stage, None)
            log.warning("%s: batch processed after %d failed attempt(s)", self.stage, failed)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        kind = type(exc).__name__
        self._last = exc
        self.retries += 1
        metrics.record_processing_retry(self.stage, kind)
        self.readiness.set_blocker(self.stage, f"{self.stage} retrying a batch after {kind}")
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        # the exception text of a delivery or injected fault names topics, never personal data;
        # any other exception (from the engine) may quote an event: its type only at ERROR
        detail = str(exc)[:300] if kind in ("DeliveryFailed", "InjectedFault") else "see DEBUG"
        log.error(
            "%s: attempt %d failed with %s (%s); retrying the same batch in %.1f s",
            self.stage,
            state.attempt_number,
            kind,
            detail,
            wait,
        )
        log.debug("%s failure", self.stage, exc_info=exc)
