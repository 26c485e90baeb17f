"""Throughput benchmark of the pure engine on a synthetic, realistic history.

``python -m bench.engine_synthetic --events 1000000 --addresses 250000 [--profile] [--mode ...]``

The history mimics the region: most addresses have one case (a damage claim), a minority have
strengthening, insulation, housing-corporation work, permits or bottlenecks alongside; cases move
through OPENED -> ... -> CLOSED with work windows once planned; ~1% of events are duplicated and
~5% arrive out of order. Event generation is not timed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import time
from collections.abc import Callable
from datetime import date, timedelta

from hub.contracts.normalised import NormalisedEvent
from hub.engine.config import RulesConfig, default_config
from hub.engine.dossier import Dossier, apply_many
from hub.engine.engine import Engine, gc_paused

_MUNICIPALITIES = [
    ("GM1979", "Eemsdelta"),
    ("GM0014", "Groningen"),
    ("GM1966", "Het Hogeland"),
    ("GM1952", "Midden-Groningen"),
    ("GM1895", "Oldambt"),
    ("GM0047", "REGIONAL"),
    ("GM1969", "REGIONAL"),
]
# case type -> (source, relative frequency)
_TYPES = {
    "DAMAGE": ("IMG", 40),
    "STRENGTHENING": ("NCG", 15),
    "INSULATION": ("MUNICIPALITY", 14),
    "MAINTENANCE": ("HOUSING_CORPORATION", 6),
    "RENOVATION": ("HOUSING_CORPORATION", 4),
    "PERMIT": ("MUNICIPALITY", 5),
    "PUBLIC_WORKS": ("MUNICIPALITY", 5),
    "PSYCHOSOCIAL_SUPPORT": ("MUNICIPALITY", 4),
    "ACUTE_UNSAFE": ("IMG", 3),
    "BOTTLENECK": ("NCG", 4),
}
_PATH = ["OPENED", "ON_HOLD", "DECIDED", "PLANNED", "IN_PROGRESS", "CLOSED"]
_T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
_DAY_MS = 86_400_000
_D0 = date(2024, 1, 1)


def generate(n_events: int, n_addresses: int, seed: int = 5) -> list[NormalisedEvent]:
    """A shuffled-ish history of exactly ``n_events`` events over ``n_addresses`` addresses."""
    rnd = random.Random(seed)
    types = list(_TYPES)
    weights = [_TYPES[t][1] for t in types]
    dates = [(_D0 + timedelta(days=i)).isoformat() for i in range(4 * 366)]
    per_address = n_events / n_addresses
    events: list[tuple[int, NormalisedEvent]] = []
    seq = 0
    for a in range(n_addresses):
        # unique key per address: mixed radix over (area, postcode letters, house number)
        pc4 = 9400 + a % 600
        rest = a // 600
        key = f"{pc4}{chr(65 + rest % 26)}{chr(65 + (rest // 26) % 26)}-{1 + rest // 676}-"
        gm, sg = _MUNICIPALITIES[pc4 % len(_MUNICIPALITIES)]
        n_cases = rnd.choices((1, 2, 3, 4), (55, 28, 12, 5))[0]
        budget = max(1, round(rnd.gauss(per_address, 1.0)))
        case_types = rnd.choices(types, weights, k=n_cases)
        for ci, ctype in enumerate(case_types):
            source = _TYPES[ctype][0]
            steps = max(1, budget // n_cases + (1 if ci < budget % n_cases else 0))
            path = _PATH[: min(steps, len(_PATH))]
            t = _T0 + rnd.randrange(0, 700) * _DAY_MS
            start = rnd.randrange(0, 1000)
            length = rnd.randrange(5, 200)
            amount = rnd.randrange(100_000, 9_000_000) if ctype == "BOTTLENECK" else None
            contact = rnd.random() < 0.7
            for status in path:
                t += rnd.randrange(1, 60) * _DAY_MS
                planned = status in ("PLANNED", "IN_PROGRESS")
                seq += 1
                ev = NormalisedEvent(
                    event_id=f"{source}-{a}-{ci}-{seq}",
                    source=source,
                    case_id=f"{ctype[:3]}{a}-{ci}",
                    case_type=ctype,
                    status=status,
                    occurred_at_ms=t,
                    address_key=key,
                    gemeentecode=gm,
                    steering_group=sg,
                    nummeraanduiding_id=f"{pc4:04d}20{a:010d}",
                    planned_start=dates[start] if planned else None,
                    planned_end=dates[start + length] if planned else None,
                    contact_name="Counsellor" if contact else None,
                    contact_role="CASE_COUNSELLOR" if contact else None,
                    contact_phone="0501234567" if contact else None,
                    amount_cents=amount,
                    ingested_at_ms=t,
                )
                jitter = rnd.randrange(0, 90) * _DAY_MS if rnd.random() < 0.05 else 0
                events.append((t + jitter, ev))
                if rnd.random() < 0.01:
                    events.append((t + rnd.randrange(0, 5) * _DAY_MS, ev))  # duplicate delivery
    events.sort(key=lambda x: x[0])
    out = [ev for _, ev in events]
    if len(out) > n_events:
        out = out[:n_events]
    while len(out) < n_events:  # top up with re-deliveries (no-ops, but realistic)
        out.append(out[rnd.randrange(len(out))])
    return out


Result = tuple[float, float, int]  # (cpu seconds, wall seconds, transitions)


def _timed(body: Callable[[], int]) -> Result:
    c0, w0 = time.process_time(), time.perf_counter()
    n_out = body()
    return time.process_time() - c0, time.perf_counter() - w0, n_out


def run_engine(events: list[NormalisedEvent], config: RulesConfig) -> Result:
    """Engine.process per event, the interpreter's default GC."""
    engine = Engine(config, clock=lambda: 0)

    def body() -> int:
        process = engine.process
        return sum(len(process(ev)) for ev in events)

    return _timed(body)


def run_engine_gc_paused(events: list[NormalisedEvent], config: RulesConfig) -> Result:
    """Engine.process per event with the cyclic GC paused, as backtest() runs."""
    engine = Engine(config, clock=lambda: 0)

    def body() -> int:
        process = engine.process
        with gc_paused():
            return sum(len(process(ev)) for ev in events)

    return _timed(body)


def run_batches(events: list[NormalisedEvent], config: RulesConfig, size: int = 1000) -> Result:
    """Engine.process_many per batch of ``size`` (rules once per address per batch)."""
    engine = Engine(config, clock=lambda: 0)

    def body() -> int:
        return sum(
            len(engine.process_many(events[i : i + size])) for i in range(0, len(events), size)
        )

    return _timed(body)


def run_serialised(events: list[NormalisedEvent], config: RulesConfig, size: int = 1000) -> Result:
    """Like the Faust agent: per batch and key, from_bytes -> apply_many -> to_bytes."""
    table: dict[str, bytes] = {}

    def body() -> int:
        n_out = 0
        for i in range(0, len(events), size):
            groups: dict[str, list[NormalisedEvent]] = {}
            for ev in events[i : i + size]:
                groups.setdefault(ev.address_key, []).append(ev)
            for key, evs in groups.items():
                raw = table.get(key)
                d = Dossier.from_bytes(raw) if raw is not None else None
                d, ts, _ups = apply_many(d, evs, config, 0)
                if d is not None:
                    table[key] = d.to_bytes()
                n_out += len(ts)
        return n_out

    return _timed(body)


MODES: dict[str, Callable[[list[NormalisedEvent], RulesConfig], Result]] = {
    "engine": run_engine,
    "engine-gc-paused": run_engine_gc_paused,
    "batches": run_batches,
    "serialised": run_serialised,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=250_000)
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    config = default_config()
    t0 = time.perf_counter()
    events = generate(args.events, args.addresses)
    gc.collect()
    gc.freeze()  # the input history is not engine state: keep it out of the GC's work
    print(f"generated {len(events):,} events in {time.perf_counter() - t0:.1f}s")
    for name in list(MODES) if args.mode == "all" else [args.mode]:
        prof = cProfile.Profile() if args.profile else None
        if prof is not None:
            prof.enable()
        cpu, wall, n_out = MODES[name](events, config)
        if prof is not None:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        print(
            f"{name:>16}: {len(events) / cpu:,.0f} events/s per CPU second "
            f"({len(events) / wall:,.0f}/s wall; {cpu:.1f}s CPU, {n_out:,} transitions)",
            flush=True,
        )


if __name__ == "__main__":
    main()
