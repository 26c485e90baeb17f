"""The scaling row of ``make bench`` (issue 16): the hub with 1 and then 2 workers on the same
8-partition inbound topic, in the same run, and the ratio.

Each case gets a fresh hub (own topics, app id, data dirs). Its workers start on the empty
topics and the case waits until every worker is ready and both consumer groups (the ingest
stage's and Faust's) are stable with all members: the steady state, not the start-up rebalance,
is measured. Then the same events are produced as fast as the producer goes, and the case is
observed from outside: throughput is events / seconds from the first ingested batch to lag 0.
``stalled_s`` counts the seconds in that window in which no worker made progress (a rebalance
or a stall shows there). ``cores busy`` per worker is its process tree's CPU seconds (worker +
ingest child) over the window: on a 2-core machine two workers cannot exceed 2 cores together
(minus what the broker and the producer take), so the ratio is bounded by the cores, not by the
partitions (docs/operations.md, "Scaling: partitions and workers").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.harness import BenchHub, Worker
from bench.phases import CORRELATE_SUM, INGEST_SUM
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
        started = [hub.start_worker(f"hub-data{i}") for i in range(workers)]
        for worker in started:
            worker.wait_ready(timeout)
        settle_s = _wait_groups(hub, workers, timeout)
        produce_s = produce_all(
            hub.settings, hub.topics.case_events, workload.keys, workload.values
        )
        result = _observe(hub, started, len(workload), timeout)
        return {**result, "groups_stable_after_s": settle_s, "produce_s": round(produce_s, 2)}
    finally:
        for worker in hub.workers:
            worker.stop()
        hub.close()


def _wait_groups(hub: BenchHub, members: int, timeout: float) -> float:
    """Seconds until the ingest and agent consumer groups are stable with ``members`` each."""
    from confluent_kafka.admin import AdminClient

    s = hub.settings
    groups = [s.app_id, f"{s.app_id}-ingest"]
    admin = AdminClient({"bootstrap.servers": s.broker})
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            described = [f.result(10) for f in admin.describe_consumer_groups(groups).values()]
        except Exception:  # a group not yet known to its coordinator: ask again
            described = []
        if len(described) == len(groups) and all(
            str(d.state).endswith("STABLE") and len(d.members) == members for d in described
        ):
            return round(time.monotonic() - began, 2)
        time.sleep(0.5)
    raise TimeoutError(f"consumer groups not stable with {members} member(s) in {timeout:.0f}s")


def _observe(hub: BenchHub, workers: list[Worker], expected: int, timeout: float) -> dict[str, Any]:
    first: float | None = None
    cpu_first: list[float] = []
    ingested_first = 0.0
    lag0: float | None = None
    lag_checked = 0.0
    last_total = -1.0
    last_progress = 0.0
    stalled = 0.0
    previous = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            worker.check_alive()
        now = time.monotonic()
        scraped = [w.metrics() for w in workers]
        ingested = [m.get(INGEST_SUM, 0.0) for m in scraped]
        total = sum(m.get(INGEST_SUM, 0.0) + m.get(CORRELATE_SUM, 0.0) for m in scraped)
        if first is not None:
            if total != last_total:
                last_total, last_progress = total, now
            elif now - last_progress > 1.0:  # no progress for more than a second: stalled
                stalled += now - max(previous, last_progress + 1.0)
        previous = now
        if first is None and sum(ingested) > 0:
            last_total, last_progress = total, now
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
        "stalled_s": round(stalled, 1),
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
        f"ingest share {two['ingested_share']}; no progress for {one['stalled_s']} s / "
        f"{two['stalled_s']} s; steady state (groups stable before the events are produced)",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scaling``: the scaling row alone (same workload cache as bench.run)."""
    import argparse
    import json
    import shutil
    import uuid

    from bench.workload import build
    from hub.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--addresses", type=int, default=25_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    root = PROJECT_ROOT / ".local" / "bench" / run_id
    try:
        result = measure_scaling(
            Settings(), root, run_id, build(args.addresses, args.events, args.seed), args.timeout
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(" | ".join(render_row(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
