"""The memory row: one worker over a workload of many addresses, peak RSS per process and summed.

The throughput workload (250k addresses) says little about the issue's "RSS ≤ 1 GiB at 1M
addresses": a worker's memory grows with the addresses it knows (the ingest child's address
register, the dossier tables' RocksDB), not with the events. So the full bench runs one more
worker on its own topic prefix over a 1M-address workload (built once and cached like the main
workload) and reads each process's VmHWM once the pipeline is at lag 0:

- ``worker``: the Faust process (agents, dossier and area tables in RocksDB);
- ``ingest``: its ingest child (address register, building cases, parked events);
- ``resource-tracker``: multiprocessing's helper (a few MiB).

The target reads the **sum** over the processes (each one's own peak; the sum is an upper
bound of their simultaneous peak, and it is what the machine must have). ``python -m
bench.memory --addresses N --events M`` runs only this row (for measuring how memory scales).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import BenchHub, topic_size
from bench.phases import run_hub_throughput
from bench.workload import build, produce_all
from hub.settings import PROJECT_ROOT, Settings

MiB = 2**20


def run_memory_row(
    base: Settings,
    root: Path,
    run: str,
    addresses: int,
    events: int,
    seed: int,
    timeout: float,
    keep: bool = False,
) -> dict[str, Any]:
    """Pre-produce ``events`` events over ``addresses`` addresses to a fresh prefix, run one
    worker to lag 0, and return the peak RSS of each of its processes and their sum."""
    began = time.monotonic()
    workload = build(addresses, events, seed)
    build_s, cached = workload.build_s, workload.cached
    # its own namespace: a long row, and a sweep of stale ``bench.*`` topics by another run on
    # the shared broker once deleted its topics mid-run
    hub = BenchHub(base, root / "memory", run, namespace="hubmem")
    hub.root.mkdir(parents=True, exist_ok=True)
    try:
        hub.create_topics()
        produce_s = produce_all(base, hub.topics.case_events, workload.keys, workload.values)
        n = len(workload)
        del workload  # the bench's own copy is not the worker's memory, but keep the machine calm
        gc.collect()
        worker = hub.start_worker("hub-data0")
        try:
            thr = run_hub_throughput(hub, worker, n, timeout)
            by_process = worker.memory_by_process()
        finally:
            worker.stop()
        dossiers = topic_size(base.broker, f"{hub.settings.app_id}-dossiers-changelog")
    finally:
        if not keep:
            hub.close()
            shutil.rmtree(hub.root, ignore_errors=True)
    peaks = {role: m.get("VmHWM", 0) for role, m in by_process.items()}
    return {
        "addresses": addresses,
        "events": n,
        "seed": seed,
        "workload_cached": cached,
        "workload_build_s": round(build_s, 1),
        "pre_produce_s": round(produce_s, 1),
        "events_per_s": thr["events_per_s"],
        "processed_s": thr["processed_s"],
        "dossier_changelog_records": dossiers,
        "peak_rss_bytes_by_process": peaks,
        "rss_bytes_at_end_by_process": {r: m.get("VmRSS", 0) for r, m in by_process.items()},
        "peak_rss_bytes": sum(peaks.values()),
        "wall_s": round(time.monotonic() - began, 1),
        "note": "sum of each process's VmHWM (worker + ingest child + multiprocessing's resource "
        "tracker) after one worker processed the whole workload to lag 0; its own topic prefix",
    }


def render_row(m: dict[str, Any]) -> tuple[str, str, str]:
    """(measure, result, notes) for the bench table."""
    parts = ", ".join(
        f"{role} {peak / MiB:,.0f}" for role, peak in m["peak_rss_bytes_by_process"].items()
    )
    return (
        f"peak RSS at {m['addresses']:,} addresses (sum of processes)",
        f"{m['peak_rss_bytes'] / MiB:,.0f} MiB",
        f"{m['events']:,} events at {m['events_per_s']:,} ev/s; per process (MiB): {parts}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, help="default: 2 per address")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true", help="keep topics and data dirs")
    parser.add_argument("--out", type=Path, help="write the row as JSON here")
    args = parser.parse_args(argv)
    run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    root = PROJECT_ROOT / ".local" / "bench" / run
    events = args.events or 2 * args.addresses
    row = run_memory_row(
        Settings(), root, run, args.addresses, events, args.seed, args.timeout, args.keep
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(row, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    print(" | ".join(render_row(row)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
