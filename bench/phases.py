"""The benchmark's measured phases that drive worker processes: naive Faust, hub, recovery.

Timing rule, the same for every contender: the clock starts once the first batch has been
*processed* (a raw consumer's first decoded fetch, the hub's first ingest batch as seen on its
``/metrics``, the naive agent's first event) and those events are not counted; it stops at the
last processed event ("processed") and, separately, when the broker shows committed lag 0
("lag 0", which adds up to a commit interval: 1 s for the hub, 2.8 s for Faust's default).
Ratios use "processed". Start-up (process start → first event) is reported on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import profile as pyspy
from bench.harness import BenchHub, StealSampler, Worker, cores_between, topic_size
from hub.pipeline.lag import group_lag
from hub.settings import PROJECT_ROOT, Settings

INGEST_SUM = 'hub_batch_size_events_sum{stage="ingest"}'
CORRELATE_SUM = 'hub_batch_size_events_sum{stage="correlate"}'
CORRELATE_COUNT = 'hub_batch_size_events_count{stage="correlate"}'


def _rate(events: float, seconds: float | None) -> float | None:
    return round(events / seconds) if seconds else None


def run_naive(
    base: Settings, root: Path, run: str, topic: str, expected: int, partitions: int, timeout: float
) -> dict[str, Any]:
    """The naive Faust app (``bench.naive_app``) over ``expected`` events on ``topic``."""
    app_id = f"bench-{run}-naive"
    result_file = root / "naive-result.json"
    log = root / "naive.worker.log"
    env = {
        **os.environ,
        "HUB_BROKER": base.broker,
        "NAIVE_APP_ID": app_id,
        "NAIVE_DATA_DIR": str(root / "naive-data"),
        "NAIVE_IN": topic,
        "NAIVE_EXPECT": str(expected),
        "NAIVE_RESULT": str(result_file),
        "NAIVE_PARTITIONS": str(partitions),
    }
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.naive_app", "worker", "-l", "warn", "--without-web"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        done: dict[str, Any] | None = None
        lag0: float | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"naive worker exited {proc.returncode}:\n{tail}")
            if done is None and result_file.exists():
                done = json.loads(result_file.read_text())
            if done is not None and sum(group_lag(base, app_id, [topic]).values()) == 0:
                lag0 = time.time()
                break
            time.sleep(0.25)
        if done is None:
            raise TimeoutError(f"naive worker did not finish {expected} events in {timeout:.0f}s")
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    timed = done["n"] - 1
    processed_s = done["last"] - done["first"]
    lag0_s = (lag0 - done["first"]) if lag0 else None
    return {
        "events": done["n"],
        "startup_s": round(done["first"] - started, 2),
        "processed_s": round(processed_s, 2),
        "lag0_s": round(lag0_s, 2) if lag0_s else None,
        "events_per_s": _rate(timed, processed_s),
        "events_per_s_to_lag0": _rate(timed, lag0_s),
        "note": f"first {done['n']:,} events of the workload (capped: Faust's per-event path is "
        "slow); decode + one table update per event, no validation, no group_by",
    }


QUIX_PYTHON = PROJECT_ROOT / ".local" / "venv-quix" / "bin" / "python"


def run_quix(
    base: Settings, root: Path, run: str, topic: str, out_topic: str, expected: int, timeout: float
) -> dict[str, Any] | None:
    """The Quix Streams peer (``bench.quix_app``, its own venv) over ``expected`` events on
    ``topic``; None (and the row says why) when its venv is missing (``make bench`` builds it)."""
    if not QUIX_PYTHON.exists():
        return None
    app_id = f"bench-{run}-quix"
    result_file = root / "quix-result.json"
    log = root / "quix.worker.log"
    env = {
        **os.environ,
        "HUB_BROKER": base.broker,
        "QUIX_APP_ID": app_id,
        "QUIX_STATE_DIR": str(root / "quix-state"),
        "QUIX_IN": topic,
        "QUIX_OUT": out_topic,
        "QUIX_EXPECT": str(expected),
        "QUIX_RESULT": str(result_file),
    }
    started = time.time()
    proc = subprocess.Popen(
        [str(QUIX_PYTHON), "-m", "bench.quix_app"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        done: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"quix app exited {proc.returncode}:\n{tail}")
            if result_file.exists():
                done = json.loads(result_file.read_text())
                break
            time.sleep(0.25)
        if done is None:
            raise TimeoutError(f"quix app did not finish {expected} events in {timeout:.0f}s")
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    timed = done["n"] - 1
    processed_s = done["last"] - done["first"]
    return {
        "events": done["n"],
        "normalised_events": done["normalised"],
        "startup_s": round(done["first"] - started, 2),
        "processed_s": round(processed_s, 2),
        "events_per_s": _rate(timed, processed_s),
        "cpu_s": round(done["cpu_s"], 2),
        "cores_busy": round(done["cpu_s"] / processed_s, 2) if processed_s else None,
        "cpu_us_per_event": round(done["cpu_s"] / timed * 1e6, 1) if timed else None,
        "note": "Quix Streams (bench/quix_app.py): decode_inbound + Ingestor (stateless), "
        "group_by address_key, Dossier fold in RocksDB state (stateful), transitions out; "
        "documented defaults, 5 s commit interval; same topic as the hub",
    }


def run_hub_throughput(
    hub: BenchHub,
    worker: Worker,
    expected: int,
    timeout: float,
    profile_to: Path | None = None,
    poll: float = 0.25,
) -> dict[str, Any]:
    """From the worker's first processed ingest batch to lag 0, observed from outside.

    ``/metrics`` is scraped every ``poll`` seconds: rendering it costs the worker CPU (a 0.1 s
    poll took ~5% of its samples), so the poll is a trade between precision and disturbance.
    """
    spy = None
    cpu_first = cpu_last = None
    roles_first: dict[str, float] = {}
    roles_last: dict[str, float] = {}
    waits_first: dict[str, float] = {}
    waits_last: dict[str, float] = {}
    ready_s: float | None = None
    first: tuple[float, float] | None = None  # (time, events ingested by then)
    last_signature: tuple[float, ...] = ()
    last_change = 0.0
    lag_checked = 0.0
    lag0: float | None = None
    with StealSampler() as steal:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            worker.check_alive()
            metrics = worker.metrics()
            now = time.monotonic()
            if not metrics:
                time.sleep(poll)
                continue
            if profile_to is not None and spy is None:
                spy = pyspy.start(worker.pid, profile_to)
            ingested = metrics.get(INGEST_SUM, 0.0)
            if first is None and ingested > 0:
                first = (now, ingested)
                cpu_first = worker.cpu()
                roles_first = worker.cpu_by_role()
                waits_first = worker.run_queue_by_role()
            signature = (
                ingested,
                metrics.get(CORRELATE_SUM, 0.0),
                metrics.get(CORRELATE_COUNT, 0.0),
            )
            if signature != last_signature:
                last_signature, last_change = signature, now
                cpu_last = worker.cpu()
                roles_last = worker.cpu_by_role()
                waits_last = worker.run_queue_by_role()
            if ready_s is None and metrics.get('hub_table_recovered{table="dossiers"}') == 1.0:
                ready_s = now - worker.started
            if ingested >= expected and now - lag_checked >= 0.5:
                lag_checked = now
                if hub.lag() == 0:
                    lag0 = time.monotonic()
                    break
            time.sleep(poll)
        pyspy.stop(spy)
    if first is None or lag0 is None:
        raise TimeoutError(f"hub did not reach lag 0 within {timeout:.0f}s; see {worker.log}")
    t_first, n_first = first
    timed = expected - n_first
    processed_s = last_change - t_first
    lag0_s = lag0 - t_first
    normalised = last_signature[1]
    cpu_s = cpu_last - cpu_first if cpu_first is not None and cpu_last is not None else None
    return {
        "events": expected,
        "normalised_events": int(normalised),
        "untimed_first_batch": int(n_first),
        "startup_s": round(t_first - worker.started, 2),
        "tables_recovered_after_s": round(ready_s, 2) if ready_s else None,
        "processed_s": round(processed_s, 2),
        "lag0_s": round(lag0_s, 2),
        "events_per_s": _rate(timed, processed_s),
        "events_per_s_to_lag0": _rate(timed, lag0_s),
        "process_start_to_lag0_s": round(lag0 - worker.started, 2),
        "worker_cpu_s": round(cpu_s, 2) if cpu_s is not None else None,
        "worker_cores_busy": round(cpu_s / processed_s, 2) if cpu_s and processed_s else None,
        "cpu_us_per_event": round(cpu_s / timed * 1e6, 1) if cpu_s else None,
        "cores_by_process": cores_between(roles_first, roles_last, processed_s),
        "run_queue_wait_by_process": cores_between(waits_first, waits_last, processed_s),
        "steal": steal.between(t_first, last_change),
        "profiled": profile_to is not None and spy is not None,
    }


def run_recovery(hub: BenchHub, data_dir: str, timeout: float) -> dict[str, Any]:
    """A fresh worker, empty data dir, same app id: seconds until ``/readyz`` is 200."""
    s = hub.settings
    changelogs = {
        name: topic_size(s.broker, f"{s.app_id}-{name}-changelog") for name in ("dossiers", "areas")
    }
    hub.wipe(data_dir)
    worker = hub.start_worker(data_dir)
    try:
        ready_s = worker.wait_ready(timeout)
        memory = worker.memory()
    finally:
        worker.stop()
    return {
        "ready_s": round(ready_s, 2),
        "changelog_records": changelogs,
        "rss_bytes_when_ready": memory.get("VmRSS"),
        "note": "process start → /readyz 200 (Faust recovery done, no rebalance pending, ingest "
        "state restored); includes interpreter/Faust start-up, checked every 0.1 s "
        "(the worker updates readiness once a second)",
    }
