"""In-memory composition of the per-address and per-area steps: the test oracle and the backtest.

The stream layer does the same thing distributed (dossiers and areas in Faust tables, area
updates through hub.area-updates); this class keeps both in dicts so a whole history can be run
on one core and its outcome compared with the stream's.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hub.contracts.normalised import NormalisedEvent
from hub.engine import area as area_step
from hub.engine.area import AreaState, AreaUpdate
from hub.engine.area import current_records as area_records
from hub.engine.config import RulesConfig, default_config
from hub.engine.dossier import Dossier, Repeats, apply_many
from hub.engine.dossier import current_records as dossier_records
from hub.engine.lifecycle import FIRING, Transition

Clock = Callable[[], int]


class Engine:
    """Dossiers by address key + area states by 4-digit area, in memory."""

    def __init__(self, config: RulesConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config if config is not None else default_config()
        self.clock = clock  # wall clock in epoch ms for emitted_at; None: real time
        self.dossiers: dict[str, Dossier] = {}
        self.areas: dict[str, AreaState] = {}
        # events not applied because their (source, event_id) was seen: exact repeats (dropped
        # and counted) and conflicts (other content: the stream dead-letters them)
        self.repeats = Repeats()

    def _now(self) -> int | None:
        return self.clock() if self.clock is not None else None

    def _areas(self, updates: list[AreaUpdate], now: int | None, out: list[Transition]) -> None:
        for up in updates:
            st, ts = area_step.apply(self.areas.get(up.area), up, self.config, now)
            self.areas[up.area] = st
            out.extend(ts)

    def process(self, event: NormalisedEvent) -> list[Transition]:
        """One event through its address (and, when its flag flips, its area)."""
        key = event.address_key
        d = self.dossiers.get(key)
        if d is None:
            d = self.dossiers[key] = Dossier(key)
        now = self.clock() if self.clock is not None else time.time_ns() // 1_000_000
        _, out, updates = apply_many(d, (event,), self.config, now, self.repeats)
        if updates:
            self._areas(updates, now, out)
        return out

    def process_many(self, events: Iterable[NormalisedEvent]) -> list[Transition]:
        """A batch: grouped per address (arrival order kept), rules evaluated once per address."""
        groups: dict[str, list[NormalisedEvent]] = {}
        for ev in events:
            groups.setdefault(ev.address_key, []).append(ev)
        now = self._now()
        out: list[Transition] = []
        updates: list[AreaUpdate] = []
        for key, evs in groups.items():
            d, ts, ups = apply_many(self.dossiers.get(key), evs, self.config, now, self.repeats)
            if d is not None:
                self.dossiers[key] = d
            out.extend(ts)
            updates.extend(ups)
        self._areas(updates, now, out)
        return out

    def firing(self) -> set[str]:
        """Fingerprints currently FIRING (from the states, not from emitted history)."""
        out = {
            fp for d in self.dossiers.values() for fp, st in d.alerts.items() if st.status == FIRING
        }
        out.update(
            fp for a in self.areas.values() for fp, st in a.alerts.items() if st.status == FIRING
        )
        return out

    def firing_records(self, now_ms: int | None = None) -> dict[str, dict[str, Any]]:
        """fingerprint -> record of every FIRING alert as it stands (no trigger fields)."""
        now = now_ms if now_ms is not None else (self._now() or 0)
        out: dict[str, dict[str, Any]] = {}
        for d in self.dossiers.values():
            if d.alerts:
                for t in dossier_records(d, self.config, now):
                    if t.status == FIRING:
                        out[t.fingerprint] = t.to_record()
        for a in self.areas.values():
            for t in area_records(a, self.config, now):
                if t.status == FIRING:
                    out[t.fingerprint] = t.to_record()
        return out


@dataclass(slots=True)
class BacktestResult:
    final_state: dict[str, dict[str, Any]]  # fingerprint -> last record (FIRING or RESOLVED)
    transitions: list[Transition] = field(default_factory=list)

    @property
    def firing(self) -> dict[str, dict[str, Any]]:
        return {fp: r for fp, r in self.final_state.items() if r["status"] == FIRING}

    def counts(self) -> dict[str, int]:
        """FIRING count per rule: the first thing to compare between two configs."""
        out: dict[str, int] = {}
        for r in self.firing.values():
            out[r["kind"]] = out.get(r["kind"], 0) + 1
        return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC for a batch run.

    Engine state has no reference cycles (refcounting frees it), but hundreds of thousands of
    long-lived dossiers make every full collection walk them all: ~20% of a backtest's time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def backtest(
    config: RulesConfig,
    events: Iterable[NormalisedEvent],
    clock: Clock | None = None,
    batch_size: int = 0,
) -> BacktestResult:
    """Run ``config`` over a history of events from a clean state.

    ``batch_size`` > 0 feeds the events in batches like the stream layer does (fewer, coarser
    transitions; same final state).
    """
    engine = Engine(config, clock)
    transitions: list[Transition] = []
    with gc_paused():
        if batch_size > 0:
            batch: list[NormalisedEvent] = []
            for ev in events:
                batch.append(ev)
                if len(batch) >= batch_size:
                    transitions.extend(engine.process_many(batch))
                    batch = []
            if batch:
                transitions.extend(engine.process_many(batch))
        else:
            for ev in events:
                transitions.extend(engine.process(ev))
    final = {t.fingerprint: t for t in transitions}
    return BacktestResult({fp: t.to_record() for fp, t in final.items()}, transitions)
