"""When the cyclic GC may stop the process: young collections as usual, full ones on a timer.

A full (generation 2) collection walks every tracked object of the process while holding the
GIL. Measured at the bench's full size with ``HUB_TRACE_TIMINGS=1`` (issue 17): the worker ran
one every ~1.4 s during a backfill, 55-140 ms each (several per cent of its time), and every
~17 s at 1,000 events/s, 135-165 ms each; an event that arrives during one waits it out, so four
a minute are ~0.7 % of the latency samples: the p99's neighbourhood. Python starts a full
collection after ten young-generation collections once the objects promoted since the last one
reach a quarter of the old generation, and a pipeline promotes many short-lived objects (events
held for a step, buffers), which refcounting frees anyway: the hub's state has no reference
cycles (``hub.engine.engine.gc_paused`` says why the steps pause the GC altogether).

So each process of a worker (the Faust process and the ingest child), once set up, freezes what
exists then (``gc.freeze``: imports, codecs, the address register; never walked again), turns the
automatic full collections off, and runs one every :data:`FULL_EVERY_S` itself
(:class:`FullCollections`, from a timer or between ingest cycles). Young collections stay
automatic, so cyclic garbage of short life is still freed at once; cycles that outlive two young
collections wait for the next full collection, at most :data:`FULL_EVERY_S`.

In the ingest child each timed collection freezes its survivors too (``freeze_survivors``), so
the next one walks only what was created since. Without that its full collections took 110-160
ms at the bench's full size (what it learned after the start-up freeze, walked again every 30 s;
with it 13-52 ms), its cycles stood still meanwhile, and an event arriving then waited it out
(issue 17). A cycle whose objects were all alive at a freeze and die later is not freed by these
collections, so every :data:`COMPLETE_EVERY_S` one collection unfreezes everything first: such
garbage lives ten minutes at most, and that collection is the one long pause of the interval.
The worker does not freeze its survivors: Faust keeps the messages its streams took in a weak
set and, before a rebalance or a stop goes on (``Consumer.wait_empty``), waits until every one is
acked or collected, calling ``gc.collect()`` for the latter. A message frozen while in flight
would never be collected, so that wait could last until the consumer is stopped for good. (A
stopping worker that hung in the fault suite was first blamed on this; it hung again without
it, so the cause of that hang is still open.) Its full collections were 21-44 ms anyway.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from hub.pipeline import trace

#: Seconds between full collections (the automatic ones are off).
FULL_EVERY_S = 30.0
#: Seconds between complete collections: frozen survivors of earlier ones are walked again.
COMPLETE_EVERY_S = 600.0
#: A generation-2 threshold no process reaches (Python counts young collections against it).
_NEVER = 1 << 30


def defer_full_collections() -> None:
    """Freeze the objects that exist now and stop automatic full collections."""
    gen0, gen1, _gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, _NEVER)
    gc.freeze()


class FullCollections:
    """A full collection at most every ``every_s`` seconds, when :meth:`maybe` is called (the
    ingest child, between cycles), or at each :meth:`collect` (the worker, from a timer).

    With ``freeze_survivors`` (the ingest child's) its survivors are frozen, and every
    ``complete_every_s`` a collection unfreezes all first."""

    def __init__(
        self,
        every_s: float = FULL_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        complete_every_s: float = COMPLETE_EVERY_S,
        freeze_survivors: bool = False,
    ) -> None:
        self.every_s = every_s
        self.freeze_survivors = freeze_survivors
        self.complete_every_s = complete_every_s
        self.clock = clock
        self._last = clock()
        self._last_complete = self._last
        self.runs = 0
        self.complete_runs = 0

    def maybe(self) -> bool:
        """Collect all generations if the last full collection is ``every_s`` old; say so."""
        if self.clock() - self._last < self.every_s:
            return False
        self.collect()
        return True

    def collect(self) -> None:
        """Collect all generations now (traced with ``HUB_TRACE_TIMINGS``); with
        ``freeze_survivors``, freeze them, and a complete one first unfreezes what earlier ones
        froze."""
        began = time.perf_counter()
        complete = (
            self.freeze_survivors and self.clock() - self._last_complete >= self.complete_every_s
        )
        if complete:
            gc.unfreeze()
        gc.collect()
        if self.freeze_survivors:
            gc.freeze()
        self._last = self.clock()
        self.runs += 1
        if complete:
            self._last_complete = self._last
            self.complete_runs += 1
        if trace.TIMINGS:
            trace.timings(
                "gc-full", ms=(time.perf_counter() - began) * 1e3, complete=float(complete)
            )
