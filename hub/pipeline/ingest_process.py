"""The ingest stage in its own process, so it runs on a second core beside the Faust agents.

Python runs one thread at a time per process; decoding, validating and resolving inbound events
costs about as much CPU as correlating them, so a worker runs the ingest stage in a child
process (``multiprocessing`` spawn). The child:

- sends its metrics to the parent as batch-level calls of the :mod:`hub.metrics` helpers (a
  queue drained by a parent thread), so one ``/metrics`` endpoint shows the whole worker;
- reports readiness and failure through the process state (an Event, its exit code); a child
  that exits unasked (broker away too long, a failed delivery) is restarted by the worker with
  back-off and resumes from its last committed offsets;
- stops when told to, and also when its parent disappears (a SIGKILLed worker must not leave an
  orphan consuming in its consumer group).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from typing import Any

from hub import metrics
from hub.pipeline.stop_deadline import exit_hard
from hub.security import settings_json_with_secret
from hub.settings import Settings

log = logging.getLogger(__name__)

# The metrics helpers the ingest stage calls; only these may cross the process boundary.
FORWARDED = frozenset(
    {
        "set_consumer_lags",
        "set_parked",
        "record_released",
        "record_received",
        "record_rejected",
        "record_parked",
        "observe_batch",
        "record_producer_error",
        "init_producer_errors",
    }
)


class ForwardingMetrics:
    """Stands in for :mod:`hub.metrics` in the child: calls are collected and :meth:`flush`
    sends them as one queue message per ingest cycle.

    A message per call was ~5 per cycle: pickling, the queue's feeder thread and the parent's
    pump applying them cost ~4 % of the worker's CPU at 1,000 events/s (py-spy, issue 17).
    """

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._calls: list[tuple[str, tuple[Any, ...]]] = []

    def _send(self, name: str, *args: Any) -> None:
        self._calls.append((name, args))

    def flush(self) -> None:
        """Send the calls collected since the last flush (the end of each ingest cycle)."""
        if not self._calls:
            return
        calls, self._calls = self._calls, []
        with contextlib.suppress(queue.Full):  # metrics must never stall ingestion
            self._channel.put_nowait(calls)

    def set_consumer_lags(self, lags: Any) -> None:
        self._send("set_consumer_lags", dict(lags))

    def set_parked(self, current: int) -> None:
        self._send("set_parked", current)

    def record_released(self, counts: Any) -> None:
        self._send("record_released", counts)

    def record_received(self, counts: Any) -> None:
        self._send("record_received", dict(counts))

    def record_rejected(self, counts: Any) -> None:
        self._send("record_rejected", dict(counts))

    def record_parked(self, counts: Any) -> None:
        self._send("record_parked", counts)

    def observe_batch(self, stage: str, size: int) -> None:
        self._send("observe_batch", stage, size)

    def record_producer_error(self, topic: str, error: str = metrics.OTHER, n: int = 1) -> None:
        self._send("record_producer_error", topic, error, n)

    def init_producer_errors(self, topics: Any) -> None:
        self._send("init_producer_errors", list(topics))


#: The child's exit code when it stopped with records the broker never acknowledged.
EXIT_UNFLUSHED = 75


#: A child told to stop that still runs this much later exits without closing its clients.
CHILD_STOP_S = 20.0


def _child_main(
    settings_json: str,
    ready: Any,
    channel: Any,
    parent: int,
    stop_deadline_s: float = CHILD_STOP_S,
) -> None:
    from confluent_kafka import Producer

    from hub.logs import setup_logging
    from hub.pipeline.clients import producer_config
    from hub.pipeline.gc_policy import FullCollections
    from hub.pipeline.ingest import IngestStage
    from hub.pipeline.state import DeliveryFailed
    from hub.pipeline.stuck import StuckProducerGuard, broker_probe

    settings = Settings.model_validate_json(settings_json)
    setup_logging(level=settings.log_level, json=settings.log_json)
    stage = IngestStage(
        settings,
        Producer(producer_config(settings)),
        metrics_sink=ForwardingMetrics(channel),
        guard=StuckProducerGuard(broker_probe(settings)),
        full_collections=FullCollections(freeze_survivors=True),
    )
    channel.cancel_join_thread()  # exiting must never wait on undelivered metrics
    stop = threading.Event()
    # The parent stops us with SIGTERM (never by waiting on a shared Event: a process that dies
    # while waiting on a multiprocessing Condition can block the other side's notify forever).
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us

    def watch() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:  # the worker died (SIGKILL): do not linger as an orphan
                stop.set()
            elif stage.ready.is_set() and not ready.is_set():
                ready.set()
        # told to stop: the flush gives up at once, but librdkafka's commit and close wait for
        # an absent broker (seen: the child still there 60 s after SIGTERM, stop 41)
        time.sleep(stop_deadline_s)  # a daemon thread: a child that exits meanwhile ends it
        log.warning(
            "ingest: still stopping %.0f s after being told (broker away?); exiting without "
            "closing the consumers (uncommitted batches are read again)",
            stop_deadline_s,
        )
        exit_hard(EXIT_UNFLUSHED)

    threading.Thread(target=watch, name="hub-ingest-watch", daemon=True).start()
    try:
        stage.run(stop)
    except DeliveryFailed as exc:
        if not stage.stopped_unflushed:
            raise
        # asked to stop while the broker is away: exit without librdkafka's close and its
        # destructors, which would wait for the broker; nothing of the batch was committed, so
        # the next owner reads it again (as after a kill -9 of this process)
        log.warning("ingest: stopping with records not acknowledged (%s); exiting", exc)
        logging.shutdown()
        os._exit(EXIT_UNFLUSHED)


class IngestProcess:
    """Parent-side handle: start, readiness, liveness, stop; applies forwarded metrics."""

    def __init__(self, settings: Settings) -> None:
        # with the SASL password: the dump masks it (SecretStr); it goes over the spawn pipe only
        self._settings_json = settings_json_with_secret(settings)
        self._ctx = mp.get_context("spawn")
        self._channel = self._ctx.Queue(maxsize=10_000)
        self._pump = threading.Thread(
            target=self._apply_metrics, name="hub-ingest-metrics", daemon=True
        )
        self._stopping = False
        self._spawn()

    def _spawn(self) -> None:
        self._ready = self._ctx.Event()  # set by the child once, only ever read here
        self._process = self._ctx.Process(
            target=_child_main,
            name="hub-ingest",
            daemon=True,
            args=(self._settings_json, self._ready, self._channel, os.getpid()),
        )

    def start(self) -> None:
        self._process.start()
        if not self._pump.is_alive():
            self._pump.start()

    def restart(self) -> None:
        """Start a new child after the last one exited: it resumes from the committed offsets.

        The child commits inbound offsets only after everything a batch produced was
        acknowledged, so whatever the old child had not committed is read again.
        """
        if self._process.is_alive():
            return
        self._process.join(1)
        self._spawn()
        self.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def failed(self) -> int | None:
        """The child's exit code if it ended without being asked to."""
        if self._stopping or self._process.exitcode is None:
            return None
        return self._process.exitcode

    def stop(self, timeout: float = CHILD_STOP_S + 10.0) -> None:
        """SIGTERM; a child not gone within ``timeout`` (it exits by itself after
        :data:`CHILD_STOP_S`) is killed. Either way nothing is lost: uncommitted batches are
        read again."""
        self._stopping = True
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def _apply_metrics(self) -> None:
        while True:
            try:
                calls = self._channel.get(timeout=1.0)
            except queue.Empty:
                if self._stopping and not self._process.is_alive():
                    return
                continue
            except (EOFError, OSError):
                return
            apply_forwarded(calls)


def apply_forwarded(calls: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Apply one cycle's calls of the child, in order: only the ingest stage's helpers."""
    for name, args in calls:
        if name in FORWARDED:
            getattr(metrics, name)(*args)
