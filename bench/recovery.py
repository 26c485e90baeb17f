"""``python -m bench.recovery``: where a wiped worker's time to ready goes (issue 17).

The bench's recovery row (:func:`bench.phases.run_recovery`) gives one figure: process start to
``/readyz`` 200 of a fresh worker with an empty data dir. This script fills a hub the way the
quick bench does (the quick workload at full speed, then the two latency loads at a paced rate,
so the changelogs hold small batches too), then times wiped workers on it again and again, and
splits each start from the worker's own log lines (JSON, INFO):

- ``startup_to_faust_restore``: process start until Faust starts replaying its changelogs
  (interpreter, imports, topic check, group join, the first rebalance); absent when Faust
  finds nothing to replay;
- ``faust_replay``: Faust's changelog replay ("Restoring state" until "Done reading");
- ``pre_restore_done_at``: the bulk changelog pre-restore done (:mod:`hub.pipeline.prerestore`);
- ``faust_ready_at``: Faust's tables recovered ("Worker ready");
- ``ingest_restored_at``: the ingest child's state restored ("ingest state restored");
- ``ready``: process start until ``/readyz`` 200 (what the bench reports).

``--keep`` keeps the topics and prints the prefix; ``--reuse RUN`` measures again on them
(``--rounds`` wiped starts each time). Nothing here is asserted: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import BenchHub, Worker, delete_groups, delete_topics, is_ready, topic_size
from bench.workload import build, produce_all
from hub.settings import PROJECT_ROOT, Settings

#: log messages that mark the phases (substring match on the JSON line's ``msg``)
MARKS = {
    "faust_start": "Restoring state from changelog topics",
    "faust_done": "Done reading from changelog topics",
    "faust_ready": "Worker ready",  # Faust's tables recovered (with or without a replay)
    "pre_restore_done": "pre-restored",
    "ingest_done": "ingest state restored",
}


def fill(
    hub: BenchHub,
    seed: int,
    paced_rate: float,
    timeout: float,
    addresses: int = 25_000,
    events: int = 100_000,
    paced_events: tuple[int, ...] = (15_000, 75_000),
) -> dict[str, Any]:
    """The quick bench's traffic (by default) through one worker, until it has no lag."""
    hub.create_topics()
    s = hub.settings
    main = build(addresses, events, seed)
    paced = [build(addresses, n, seed + 1 + i) for i, n in enumerate(paced_events)]
    worker = hub.start_worker("hub-data0")
    try:
        worker.wait_ready(timeout)
        produce_all(s, hub.topics.case_events, main.keys, main.values)
        _wait_drained(hub, worker, timeout)
        chunk = max(1, int(paced_rate / 4))
        for load in paced:
            for i in range(0, len(load), chunk):
                began = time.monotonic()
                produce_all(
                    s, hub.topics.case_events, load.keys[i : i + chunk], load.values[i : i + chunk]
                )
                time.sleep(max(0.0, 0.25 - (time.monotonic() - began)))
        _wait_drained(hub, worker, timeout)
    finally:
        worker.stop()
    return changelog_sizes(hub)


def _wait_drained(hub: BenchHub, worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()
        if hub.ingest_lag() == 0 and hub.lag() == 0:
            return
        time.sleep(1.0)
    raise TimeoutError("pipeline did not drain")


def changelog_sizes(hub: BenchHub) -> dict[str, int]:
    s = hub.settings
    return {n: topic_size(s.broker, f"{s.app_id}-{n}-changelog") for n in ("dossiers", "areas")}


def measure(hub: BenchHub, data_dir: str, timeout: float) -> dict[str, float | None]:
    """One wiped start: seconds from process start to each mark and to ``/readyz`` 200."""
    hub.wipe(data_dir)
    log = hub.root / f"{data_dir}.worker.log"
    log.unlink(missing_ok=True)
    wall_start = time.time()
    worker = hub.start_worker(data_dir, log_level="INFO", json_logs=True)
    ready: float | None = None
    memory: dict[str, int] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            worker.check_alive()
            if is_ready(worker.port):
                ready = time.monotonic() - worker.started
                memory = worker.memory()
                break
            time.sleep(0.1)
    finally:
        worker.stop()
    marks = _marks(log, wall_start)
    mib = {k: round(v / 2**20) for k, v in memory.items() if k in ("VmRSS", "VmHWM")}
    return {"ready": ready, **marks, "rss_mib": mib.get("VmRSS"), "peak_rss_mib": mib.get("VmHWM")}


def _marks(log: Path, wall_start: float) -> dict[str, float | None]:
    found: dict[str, float | None] = dict.fromkeys(MARKS)
    for line in log.read_text(errors="replace").splitlines():
        try:  # a line may start with a terminal control sequence (Faust's spinner)
            record = json.loads(line[line.find("{") :])
        except ValueError:
            continue
        msg, ts = str(record.get("msg", "")), record.get("ts")
        if not ts:
            continue
        for name, text in MARKS.items():
            if found[name] is None and text in msg:
                found[name] = datetime.fromisoformat(ts).timestamp() - wall_start
    return found


def split(m: dict[str, float | None]) -> dict[str, float | None]:
    def d(a: str | None, b: str) -> float | None:
        end, begin = m.get(b), (m.get(a) if a else 0.0)
        return None if end is None or begin is None else round(end - begin, 2)

    return {
        "ready": d(None, "ready"),
        "startup_to_faust_restore": d(None, "faust_start"),
        "faust_replay": d("faust_start", "faust_done"),
        "pre_restore_done_at": d(None, "pre_restore_done"),
        "ingest_restored_at": d(None, "ingest_done"),
        "faust_ready_at": d(None, "faust_ready"),
        "rss_mib": m.get("rss_mib"),  # worker + ingest child when ready (summed)
        "peak_rss_mib": m.get("peak_rss_mib"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reuse", help="the run id of a kept fill (topics on the broker)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--paced-rate", type=float, default=5000.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep topics for --reuse")
    parser.add_argument("--addresses", type=int, default=25_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--paced-events", default="15000,75000", help="comma-separated; empty for none"
    )
    args = parser.parse_args()
    base = Settings()
    run_id = args.reuse or time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    root = PROJECT_ROOT / ".local" / "bench" / run_id
    root.mkdir(parents=True, exist_ok=True)
    hub = BenchHub(base, root, run_id, namespace="benchrec")
    keep = args.keep or bool(args.reuse)
    try:
        if not args.reuse:
            paced = tuple(int(n) for n in args.paced_events.split(",") if n)
            sizes = fill(
                hub,
                args.seed,
                args.paced_rate,
                args.timeout,
                args.addresses,
                args.events,
                paced,
            )
            print(f"run {run_id}: changelog records {sizes}", flush=True)
        else:
            print(f"run {run_id}: changelog records {changelog_sizes(hub)}", flush=True)
        for n in range(args.rounds):
            row = split(measure(hub, f"hub-rec{n}", args.timeout))
            print(json.dumps(row), flush=True)
    finally:
        if not keep:
            hub.close()
            delete_topics(base.broker, (f"benchrec.{run_id}.", f"benchrec-{run_id}-"))
            delete_groups(base.broker, (f"benchrec-{run_id}-",))


if __name__ == "__main__":
    main()
