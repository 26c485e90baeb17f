"""The scaling row of ``make bench`` (issue 16): the hub with 1 and then 2 workers on the same
8-partition inbound topic, in the same run, and the ratio.

Each case gets a fresh hub (own topics, app id, data dirs) with the same pre-produced events,
then starts its workers together and is observed from outside: throughput is events / seconds
from the first ingested batch (any worker) to lag 0 on both consumer groups, so the first
rebalance of the two-worker case is inside the measurement, as it would be in production.
``cores busy`` per worker is its process tree's CPU seconds (worker + ingest child) over that
window: on a 2-core machine two workers cannot exceed 2 cores together, so the ratio is bounded
by the cores, not by the partitions (docs/operations.md, "Scaling: partitions and workers").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.harness import BenchHub, Worker
from bench.phases import INGEST_SUM
from bench.workload import Workload, produce_all
from hub.settings import Settings

PARTITIONS = 8
MAX_EVENTS = 200_000  # per case: the scaling row must not double the bench's wall time


def measure_case(
    base: Settings, root: Path, run_id: str, workers: int, workload: Workload, timeout: float
) -> dict[str, Any]:
    """``workers`` workers on a fresh hub holding ``workload``; events/s and CPU per worker."""
    hub = BenchHub(base, root / f"scale{workers}", f"{run_id}-w{workers}", PARTITIONS)
    hub.root.mkdir(parents=True, exist_ok=True)
    try:
        hub.create_topics()
        produce_all(hub.settings, hub.topics.case_events, workload.keys, workload.values)
        started = [hub.start_worker(f"hub-data{i}") for i in range(workers)]
        return _observe(hub, started, len(workload), timeout)
    finally:
        for worker in hub.workers:
            worker.stop()
        hub.close()


def _observe(hub: BenchHub, workers: list[Worker], expected: int, timeout: float) -> dict[str, Any]:
    first: float | None = None
    cpu_first: list[float] = []
    ingested_first = 0.0
    lag0: float | None = None
    lag_checked = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            worker.check_alive()
        now = time.monotonic()
        ingested = [w.metrics().get(INGEST_SUM, 0.0) for w in workers]
        if first is None and sum(ingested) > 0:
            first, ingested_first = now, sum(ingested)
            cpu_first = [w.cpu() or 0.0 for w in workers]
        if first is not None and sum(ingested) >= expected and now - lag_checked >= 0.5:
            lag_checked = now
            if hub.lag() == 0:
                lag0 = time.monotonic()
                break
        time.sleep(0.25)
    if first is None or lag0 is None:
        raise TimeoutError(f"{len(workers)} worker(s): not at lag 0 within {timeout:.0f}s")
    seconds = lag0 - first
    cpu = [(w.cpu() or 0.0) - c for w, c in zip(workers, cpu_first, strict=True)]
    shares = [w.metrics().get(INGEST_SUM, 0.0) for w in workers]
    return {
        "workers": len(workers),
        "events": expected,
        "seconds": round(seconds, 2),
        "events_per_s": round((expected - ingested_first) / seconds) if seconds > 0 else None,
        "cores_busy_per_worker": [round(c / seconds, 2) for c in cpu],
        "cores_busy_total": round(sum(cpu) / seconds, 2),
        "ingested_share": [round(s / max(1.0, sum(shares)), 2) for s in shares],
    }


def measure_scaling(
    base: Settings, root: Path, run_id: str, workload: Workload, timeout: float
) -> dict[str, Any]:
    """One worker, then two, on the same events (at most MAX_EVENTS); the ratio 2 : 1."""
    load = workload.head(min(MAX_EVENTS, len(workload)))
    one = measure_case(base, root, run_id, 1, load, timeout)
    two = measure_case(base, root, run_id, 2, load, timeout)
    ratio = (
        round(two["events_per_s"] / one["events_per_s"], 2)
        if one["events_per_s"] and two["events_per_s"]
        else None
    )
    return {"partitions": PARTITIONS, "one": one, "two": two, "ratio_two_over_one": ratio}


def render_row(s: dict[str, Any]) -> tuple[str, str, str]:
    """(measure, result, notes) for the bench table."""
    one, two = s["one"], s["two"]
    return (
        f"scaling: 1 → 2 workers, {s['partitions']} partitions",
        f"{one['events_per_s']:,} → {two['events_per_s']:,} ev/s (x{s['ratio_two_over_one']})",
        f"{one['events']:,} events each; cores busy: 1 worker {one['cores_busy_per_worker']}, "
        f"2 workers {two['cores_busy_per_worker']} (total {two['cores_busy_total']}); "
        f"ingest share {two['ingested_share']}",
    )
