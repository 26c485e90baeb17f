"""A stopping worker exits by its deadline, even if a part of the graceful stop hangs.

SIGTERM starts Faust's graceful stop: wait for the agents' steps, commit, settle the state,
leave the group, stop the ingest child. Each of those waits is bounded where a cause is known
(``STOP_COMMIT_S``, ``STOP_WAIT_EMPTY_S``, ``REVOKE_SETTLE_S``, the retrying steps), but the
stop goes through Faust's, mode's and aiokafka's code, and one unbounded wait there kept a
worker running while the broker was away until Kubernetes would kill it. So the signal also
arms a deadline: if the process still runs :data:`STOP_DEADLINE_S` later, it logs where every
task of the event loop waits (code locations, no data), tells the ingest child to stop and exits
with status :data:`EXIT_STATUS`.

Exiting there loses nothing: it is what a SIGKILL does, which the fault suite proves safe (the
offsets of unprocessed batches were never committed, the next owner processes them and skips
what its state holds). It only comes earlier, with a trace that says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

#: Below the worker's Kubernetes grace period (120 s, deploy/kubernetes/base/worker.yaml).
STOP_DEADLINE_S = 90.0
#: The exit status of a stop that ran out of time (EX_SOFTWARE).
EXIT_STATUS = 70
#: How long the expiry waits for the event loop to write its tasks' stacks.
DUMP_WAIT_S = 2.0

log = logging.getLogger(__name__)


def task_stacks(loop: asyncio.AbstractEventLoop, only: str | None = None) -> str:
    """Every task of ``loop`` with the chain of awaits it waits in, outermost first; with
    ``only``, the tasks with a frame whose file name contains it.

    ``Task.print_stack`` shows a suspended coroutine's own frame only; the await chain down to
    the call that actually waits (a broker flush, a lock) is what tells a hang's cause.
    """
    out = io.StringIO()
    for task in asyncio.all_tasks(loop):
        chain = await_chain(task.get_coro())
        if only is not None and not any(only in where for where in chain):
            continue
        out.write(f"task {task.get_name()}:\n")
        for where in chain:
            out.write(f"  {where}\n")
    return out.getvalue()


def await_chain(coro: Any, limit: int = 40) -> list[str]:
    """``function (file:line)`` of ``coro`` and of each coroutine or generator it awaits."""
    chain: list[str] = []
    while coro is not None and len(chain) < limit:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        # "name (file:line)": the log's redaction reads "1035 in" as a postcode
        chain.append(f"{code.co_name} ({code.co_filename}:{frame.f_lineno})")
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        coro = nxt or getattr(coro, "gi_yieldfrom", None)
    return chain


def exit_hard(status: int) -> None:
    """``os._exit`` after flushing the root logger's handlers: the last lines say why."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(status)


class StopDeadline:
    """Armed once by the stop signal; on expiry dumps the loop's tasks and exits the process."""

    def __init__(
        self,
        seconds: float = STOP_DEADLINE_S,
        stop_children: Callable[[], None] = lambda: None,
        exit_process: Callable[[int], None] = exit_hard,
    ) -> None:
        self.seconds = seconds
        self.stop_children = stop_children
        self.exit_process = exit_process
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: threading.Timer | None = None

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the countdown (again: no effect). The timer thread is a daemon."""
        if self._timer is not None:
            return
        self._loop = loop
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        log.error(
            "worker still stopping %.0f s after the stop signal: exiting without finishing the "
            "stop (uncommitted batches are processed by the partitions' next owner)",
            self.seconds,
        )
        dumped = threading.Event()
        if self._loop is not None and not self._loop.is_closed():

            def dump() -> None:
                stacks = task_stacks(asyncio.get_running_loop())
                log.error("where the worker's tasks wait:\n%s", stacks)
                dumped.set()

            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(dump)
            dumped.wait(DUMP_WAIT_S)
        try:
            self.stop_children()
        finally:
            self.exit_process(EXIT_STATUS)
