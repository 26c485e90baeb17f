"""``python -m bench.run [--quick] [--profile]``: every figure of issue 9 in one run, one broker.

Order: build the workload (cached) → pre-produce it once to a fresh inbound topic (and the
naive baseline's capped copy) → raw aiokafka and confluent-kafka consumers → naive Faust → the
hub on one worker (optionally under py-spy) → latency at 1,000 and at 5,000 events/s on that same
worker (each record also measured from the event that made it possible: ``bench.enabling``) →
its peak RSS → recovery of a fresh worker with a wiped data dir → (full run only) the memory row:
a worker over 1M addresses on its own prefix (bench.memory) → the pure engine in-process.
Each contender runs alone (the machine has 2 cores), and only ratios from the same run count.
Topics, consumer groups and data dirs of the run are removed at the end (``--keep`` keeps them;
a run warns when earlier runs' topics are on the broker, ``--drop-leftovers`` deletes them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from bench import profile as pyspy
from bench.enabling import Enablers, cached_enabling_events
from bench.engine import measure_engine
from bench.harness import (
    RUN_TOPIC_PREFIXES,
    BenchHub,
    Worker,
    delete_groups,
    delete_topics,
    leftover_topics,
)
from bench.latency import measure_latency
from bench.memory import render_row as render_memory_row
from bench.memory import run_memory_row
from bench.phases import run_hub_throughput, run_naive, run_quix, run_recovery
from bench.raw import aiokafka_rate, confluent_rate
from bench.scaling import measure_scaling, render_row
from bench.workload import build, cache_path_for, produce_all
from hub.settings import PROJECT_ROOT, Settings

RESULTS = Path(__file__).resolve().parent / "results"
QUIX_MISSING = "Quix Streams peer: skipped (no .local/venv-quix; `make bench` builds it)"
GiB = 1024**3


@dataclass(frozen=True)
class Sizes:
    name: str
    addresses: int
    events: int
    naive_events: int
    latency_rate: float
    latency_s: float
    timeout_s: float
    memory_addresses: int = 0  # the memory row's workload (0: no row)
    memory_events: int = 0
    high_rate: float = 5000.0  # the second latency phase (issue 17: p99 ≤ 150 ms at 5k/s)


FULL = Sizes("full", 250_000, 1_000_000, 100_000, 1000.0, 60.0, 900.0, 1_000_000, 2_000_000)
QUICK = Sizes("quick", 25_000, 100_000, 25_000, 1000.0, 15.0, 240.0)
# issue 17's targets; higher is better for the ratios and cores busy, lower for the rest
TARGETS = {
    "hub_over_raw_aiokafka": 0.35,
    "hub_over_naive": 10.0,
    "hub_over_quixstreams": 3.0,
    "cpu_us_per_event": 60.0,
    "worker_cores_busy": 1.6,
    "latency_p99_ms": 50.0,
    "latency_max_ms": 1000.0,
    "latency_5k_p99_ms": 150.0,
    "peak_rss_bytes": 1 * GiB,
    # the memory row (full run only): sum of the worker's and its ingest child's peak RSS
    "peak_rss_1m_bytes": 1 * GiB,
    "recovery_s": 30.0,
}
HIGHER_IS_BETTER = {"worker_cores_busy"}
MEMORY_TARGETS = {"peak_rss_bytes", "peak_rss_1m_bytes"}


# -- environment ------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count(), "platform": platform.platform()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_bytes"] = int(line.split()[1]) * 1024
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["load_avg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def versions(base: Settings) -> dict[str, Any]:
    import aiokafka
    import confluent_kafka
    import fastavro
    import faust

    from tools.local_kafka import LocalKafka

    return {
        "python": platform.python_version(),
        "faust-streaming": faust.__version__,
        "aiokafka": aiokafka.__version__,
        "confluent-kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "fastavro": fastavro.__version__,
        "kafka_broker": LocalKafka(base).status().version,
    }


def create_topic(broker: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


# -- the run ----------------------------------------------------------------------------------
def run(
    sizes: Sizes, seed: int, profile: bool, keep: bool, console: Console, only_latency: bool = False
) -> dict[str, Any]:
    base = Settings()
    _warn_of_leftovers(base.broker, console)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    root = PROJECT_ROOT / ".local" / "bench" / run_id
    root.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": run_id,
        "size": sizes.name,
        "machine": machine(),
        "versions": versions(base),
    }

    def step(msg: str) -> None:
        console.print(f"[dim]{time.monotonic() - began:6.1f}s[/] {msg}")

    step(f"bench run {run_id} ({sizes.name}) on broker {base.broker}")
    workload = build(sizes.addresses, sizes.events, seed)
    step(
        f"workload {len(workload):,} events ({'cached' if workload.cached else 'built'} "
        f"in {workload.build_s:.1f}s, {workload.wire_bytes / 1e6:.0f} MB)"
    )
    lat_n = int(sizes.latency_rate * sizes.latency_s)
    latency_load = build(sizes.addresses, lat_n, seed + 1)
    high_n = max(1, int(sizes.high_rate * sizes.latency_s))
    high_load = build(sizes.addresses, high_n, seed + 2)
    t0 = time.monotonic()
    enablers = cached_enabling_events(
        [*workload.values, *latency_load.values, *high_load.values],
        [
            cache_path_for(sizes.addresses, sizes.events, seed),
            cache_path_for(sizes.addresses, lat_n, seed + 1),
            cache_path_for(sizes.addresses, high_n, seed + 2),
        ],
    )
    step(f"enabling events of {len(enablers):,} normalised events in {time.monotonic() - t0:.1f}s")
    result["sizes"] = {
        "addresses": sizes.addresses,
        "events": len(workload),
        "seed": seed,
        "wire_bytes": workload.wire_bytes,
        "naive_events": min(sizes.naive_events, len(workload)),
        "latency_events": lat_n,
        "latency_seed": seed + 1,
        "latency_high_events": high_n,
        "latency_high_seed": seed + 2,
        "partitions": 8,
    }
    hub = BenchHub(base, root, run_id)
    naive_topic = f"bench.{run_id}.naive-in"
    try:
        hub.create_topics()
        create_topic(base.broker, naive_topic, hub.partitions)
        produce_s = produce_all(base, hub.topics.case_events, workload.keys, workload.values)
        naive_load = workload.head(sizes.naive_events)
        produce_all(base, naive_topic, naive_load.keys, naive_load.values)
        result["pre_produce_s"] = round(produce_s, 2)
        step(f"pre-produced to {hub.topics.case_events} in {produce_s:.1f}s")

        if only_latency:  # the hub's own phases only: throughput (warms the state), latency
            loads = (latency_load, high_load)
            return _hub_and_latency(hub, sizes, workload, loads, enablers, result, step, profile)

        raw_settings = hub.settings
        aio = aiokafka_rate(raw_settings, hub.topics.case_events, len(workload))
        step(f"raw aiokafka: {aio.rate:,.0f} events/s")
        ck = confluent_rate(raw_settings, hub.topics.case_events, len(workload))
        step(f"raw confluent-kafka: {ck.rate:,.0f} events/s")
        result["raw"] = {"aiokafka": aio.to_dict(), "confluent_kafka": ck.to_dict()}

        naive = run_naive(
            base, root, run_id, naive_topic, len(naive_load), hub.partitions, sizes.timeout_s
        )
        result["naive_faust"] = naive
        step(f"naive Faust: {naive['events_per_s']:,} events/s")
        _drop_phase_topics(base.broker, naive_topic, f"bench-{run_id}-naive")

        quix_out = f"bench.{run_id}.quix-out"
        create_topic(base.broker, quix_out, hub.partitions)
        quix = run_quix(
            base, root, run_id, hub.topics.case_events, quix_out, len(workload), sizes.timeout_s
        )
        result["quixstreams"] = quix
        step(f"Quix Streams peer: {quix['events_per_s']:,} events/s" if quix else QUIX_MISSING)
        internal = (f"repartition__bench-{run_id}-quix", f"changelog__bench-{run_id}-quix")
        _drop_phase_topics(base.broker, quix_out, *internal)

        worker = hub.start_worker("hub-data0")
        profile_raw = RESULTS / "profile.txt" if profile else None
        thr = run_hub_throughput(hub, worker, len(workload), sizes.timeout_s, profile_raw)
        mem_after_throughput = worker.memory()
        thr["rss_bytes_after_throughput"] = mem_after_throughput.get("VmRSS")
        result["hub"] = thr
        step(f"hub: {thr['events_per_s']:,} events/s ({thr['processed_s']}s; {_cores_text(thr)})")
        if profile_raw is not None and profile_raw.exists():
            result["profile"] = {"raw": str(profile_raw), **pyspy.summarise(profile_raw)}

        result["latency"] = _latency(hub, latency_load, sizes.latency_rate, enablers, worker)
        step(_latency_line(result["latency"]))
        result["latency_high"] = _latency(hub, high_load, sizes.high_rate, enablers, worker)
        step(_latency_line(result["latency_high"]))
        memory = worker.memory()
        result["memory"] = {
            "peak_rss_bytes": memory.get("VmHWM"),
            "rss_bytes_at_end": memory.get("VmRSS"),
            "peak_rss_bytes_by_process": {
                role: m.get("VmHWM") for role, m in worker.memory_by_process().items()
            },
            "note": "VmHWM of the hub worker after the throughput and latency phases "
            f"({sizes.addresses:,} addresses)",
        }
        worker.stop()

        result["recovery"] = run_recovery(hub, "hub-data1", sizes.timeout_s)
        step(f"recovery: ready after {result['recovery']['ready_s']}s")

        result["scaling"] = measure_scaling(base, root, run_id, workload, sizes.timeout_s)
        step(f"scaling 1 → 2 workers: x{result['scaling']['ratio_two_over_one']}")

        if sizes.memory_addresses:
            n_addresses, n_events = sizes.memory_addresses, sizes.memory_events
            step(f"memory row: {n_addresses:,} addresses, {n_events:,} events")
            result["memory_row"] = run_memory_row(
                base,
                root,
                run_id,
                n_addresses,
                n_events,
                seed,
                sizes.timeout_s * 4,
                keep,
            )
            step(f"memory row: {result['memory_row']['peak_rss_bytes'] / 2**20:,.0f} MiB summed")
    finally:
        if not keep:
            hub.close()  # the hub's topics and groups; then the naive app's and the raw readers'
            quix_internal = (f"repartition__bench-{run_id}-", f"changelog__bench-{run_id}-")
            delete_topics(base.broker, (f"bench.{run_id}.", f"bench-{run_id}-", *quix_internal))
            delete_groups(base.broker, (f"bench-{run_id}-",))
    step("pure engine (in-process, one core)")
    result["engine"] = measure_engine(workload.values)
    step(f"engine: {result['engine']['all_stages_per_s']:,} events/s all stages")
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    result["ratios"] = ratios(result)
    result["targets"] = targets(result)
    result["wall_s"] = round(time.monotonic() - began, 1)
    return result


def _warn_of_leftovers(broker: str, console: Console) -> None:
    leftovers = leftover_topics(broker)
    if leftovers:
        console.print(
            f"[yellow]warning: {len(leftovers)} topic(s) of earlier bench runs are on the broker "
            "and slow it down; `python -m bench.run --drop-leftovers` deletes them[/yellow]"
        )


def drop_leftovers(broker: str) -> int:
    """Delete every earlier run's topics and consumer groups; returns how many topics."""
    dropped = delete_topics(broker, RUN_TOPIC_PREFIXES)
    delete_groups(broker, ("bench-", "benchrec-"))
    return len(dropped)


def _drop_phase_topics(broker: str, *prefixes: str) -> None:
    """A peer's topics once its phase is over: the hub's phases then run on a broker that holds
    only their own data, as the peers' phases did (no leftover partitions, changelogs or
    repartition copies of the workload beside them)."""
    delete_topics(broker, prefixes)


def _hub_and_latency(
    hub: BenchHub,
    sizes: Sizes,
    workload: Any,
    loads: tuple[Any, Any],
    enablers: Enablers,
    result: dict[str, Any],
    step: Any,
    profile: bool = False,
) -> dict[str, Any]:
    """``--only-latency``: a quick look at the latency after a change (no ratios, no targets)."""
    worker = hub.start_worker("hub-data0")
    try:
        profile_raw = RESULTS / "profile.txt" if profile else None
        result["hub"] = run_hub_throughput(hub, worker, len(workload), sizes.timeout_s, profile_raw)
        step(f"hub: {result['hub']['events_per_s']:,} events/s ({_cores_text(result['hub'])})")
        if profile_raw is not None and profile_raw.exists():
            result["profile"] = {"raw": str(profile_raw), **pyspy.summarise(profile_raw)}
        result["latency"] = _latency(hub, loads[0], sizes.latency_rate, enablers, worker)
        step(_latency_line(result["latency"]))
        if sizes.high_rate:
            result["latency_high"] = _latency(hub, loads[1], sizes.high_rate, enablers, worker)
            step(_latency_line(result["latency_high"]))
    finally:
        worker.stop()
    return result


def _latency(
    hub: BenchHub, load: Any, rate: float, enablers: Enablers, worker: Worker
) -> dict[str, Any]:
    latency = measure_latency(
        hub.settings,
        hub.topics.case_events,
        [hub.topics.contact_routing, hub.topics.signals],
        list(zip(load.event_ids, load.keys, load.values, strict=True)),
        rate,
        lambda: _wait_lag0(hub, 120),
        parked_topic=hub.topics.parked,
        enablers=enablers,
        cpu=worker.cpu_by_role,
        run_queue=worker.run_queue_by_role,
    )
    return latency.to_dict()


def _latency_line(lat: dict[str, Any]) -> str:
    rate = lat["rate_target_per_s"]
    return f"latency: p99 {_headline_p99(lat)} ms @ {rate:.0f}/s (cores: {_cores_text(lat)})"


def _steal_text(figures: dict[str, Any]) -> str:
    """``; VM steal 0.02 cores (worst 0.5 s: 0.41)`` from a phase's ``steal``, or nothing."""
    steal = figures.get("steal")
    if not steal:
        return ""
    return (
        f"; VM steal {steal['mean_cores']:.2f} cores "
        f"(worst {steal['interval_s']} s: {steal['worst_interval_cores']:.2f})"
    )


def _cores_text(figures: dict[str, Any], key: str = "cores_by_process") -> str:
    """``worker 0.55, ingest 0.31, broker 0.73, ...`` from a phase's ``cores_by_process`` (or
    ``run_queue_wait_by_process``: seconds a second each waited for a core)."""
    cores = figures.get(key) or {}
    return ", ".join(f"{role} {value:.2f}" for role, value in cores.items() if value >= 0.01)


def _headline(lat: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets read: since the enabling event (bench.enabling) when known."""
    return lat.get("since_enabling_event") or lat


def _headline_p99(lat: dict[str, Any]) -> float | None:
    return _headline(lat).get("p99_ms")


def _wait_lag0(hub: BenchHub, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.lag() == 0:
            return
        time.sleep(0.25)
    raise TimeoutError(f"hub not caught up within {timeout:.0f}s after the latency phase")


def ratios(r: dict[str, Any]) -> dict[str, float | None]:
    def div(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    hub = r["hub"]["events_per_s"]
    return {
        "hub_over_raw_aiokafka": div(hub, r["raw"]["aiokafka"]["events_per_s"]),
        "hub_over_raw_confluent": div(hub, r["raw"]["confluent_kafka"]["events_per_s"]),
        "hub_over_naive": div(hub, r["naive_faust"]["events_per_s"]),
        "hub_over_quixstreams": div(hub, (r.get("quixstreams") or {}).get("events_per_s")),
        "hub_over_pure_engine": div(hub, r["engine"]["all_stages_per_s"]),
    }


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    got = {
        "hub_over_raw_aiokafka": r["ratios"]["hub_over_raw_aiokafka"],
        "hub_over_naive": r["ratios"]["hub_over_naive"],
        "hub_over_quixstreams": r["ratios"]["hub_over_quixstreams"],
        "cpu_us_per_event": r["hub"]["cpu_us_per_event"],
        "worker_cores_busy": r["hub"]["worker_cores_busy"],
        "latency_p99_ms": _headline(r["latency"])["p99_ms"],
        "latency_max_ms": _headline(r["latency"])["max_ms"],
        "latency_5k_p99_ms": _headline(r["latency_high"])["p99_ms"],
        "peak_rss_bytes": r["memory"]["peak_rss_bytes"],
        "peak_rss_1m_bytes": (r.get("memory_row") or {}).get("peak_rss_bytes"),
        "recovery_s": r["recovery"]["ready_s"],
    }
    out = {}
    for name, target in TARGETS.items():
        value = got[name]
        higher_is_better = name.startswith("hub_over") or name in HIGHER_IS_BETTER
        met = value is not None and (value >= target if higher_is_better else value <= target)
        if value is None and name == "peak_rss_1m_bytes":
            met = None  # the memory row runs in the full bench only
        out[name] = {"value": value, "target": target, "met": met}
    return out


# -- output -----------------------------------------------------------------------------------
def render(r: dict[str, Any], console: Console) -> None:
    s = r["sizes"]
    table = Table(
        title=f"hub benchmark ({r['size']}: {s['events']:,} events, {s['addresses']:,} addresses, "
        f"seed {s['seed']}) {r['date']}"
    )
    table.add_column("measure")
    table.add_column("result", justify="right")
    table.add_column("notes")

    def rate(x: int | None) -> str:
        return f"{x:,} ev/s" if x else "-"

    raw = r["raw"]
    table.add_row("raw aiokafka (getmany + decode)", rate(raw["aiokafka"]["events_per_s"]), "")
    table.add_row(
        "raw confluent-kafka (consume + decode)", rate(raw["confluent_kafka"]["events_per_s"]), ""
    )
    n = r["naive_faust"]
    table.add_row(
        "naive Faust (per event, table update)",
        rate(n["events_per_s"]),
        f"first {n['events']:,} events; to lag 0: {rate(n['events_per_s_to_lag0'])}",
    )
    q = r.get("quixstreams")
    table.add_row(
        "Quix Streams peer (hub's pure code)",
        rate(q["events_per_s"]) if q else "-",
        f"{q['processed_s']}s; start-up {q['startup_s']}s; {q['cores_busy']} cores busy, "
        f"{q['cpu_us_per_event']} µs CPU/event"
        if q
        else QUIX_MISSING,
    )
    h = r["hub"]
    table.add_row(
        "hub, 1 worker (first batch → processed)",
        rate(h["events_per_s"]),
        f"{h['processed_s']}s; to lag 0: {rate(h['events_per_s_to_lag0'])}; "
        f"start-up {h['startup_s']}s; {h['worker_cores_busy']} cores busy, "
        f"{h['cpu_us_per_event']} µs CPU/event" + (" [py-spy attached]" if h["profiled"] else ""),
    )
    if h.get("cores_by_process"):
        table.add_row("  cores busy per process", "", _cores_text(h))
    if h.get("run_queue_wait_by_process"):
        waits = _cores_text(h, "run_queue_wait_by_process") + _steal_text(h)
        table.add_row("  run-queue wait per process (s/s)", "", waits)
    e = r["engine"]
    table.add_row(
        "pure pipeline in-process, 1 core",
        rate(e["all_stages_per_s"]),
        f"decode+validate {rate(e['decode_validate_per_s'])}, resolve {rate(e['resolve_per_s'])},"
        f" engine {rate(e['engine_per_s'])}",
    )
    for lat in (r["latency"], r["latency_high"]):
        render_latency(table, lat)
    m = r["memory"]
    per_process = ", ".join(
        f"{role} {(peak or 0) / 2**20:,.0f}"
        for role, peak in m.get("peak_rss_bytes_by_process", {}).items()
    )
    table.add_row(
        "peak RSS of the worker (sum of processes)",
        f"{(m['peak_rss_bytes'] or 0) / 2**20:,.0f} MiB",
        f"per process (MiB): {per_process}" if per_process else "",
    )
    if r.get("memory_row"):
        table.add_row(*render_memory_row(r["memory_row"]))
    rec = r["recovery"]
    table.add_row(
        "recovery (wiped data dir → ready)",
        f"{rec['ready_s']} s",
        f"changelog records: {rec['changelog_records']}",
    )
    if "scaling" in r:
        table.add_row(*render_row(r["scaling"]))
    for name, t in r["targets"].items():
        value = t["value"]
        is_memory = name in MEMORY_TARGETS
        shown = f"{value / 2**20:,.0f} MiB" if is_memory and value else str(value)
        target = f"{t['target'] / 2**20:,.0f} MiB" if is_memory else str(t["target"])
        mark = "[green]met[/]" if t["met"] else "[red]missed[/]"
        if name == "peak_rss_1m_bytes" and value is None:
            mark = "[dim]not measured[/] (full run only: `make bench`)"
        table.add_row(f"target {name}", shown, f"{mark} (target {target})")
    console.print(table)
    mach, ver = r["machine"], r["versions"]
    console.print(
        f"{mach['cores']} cores, {mach.get('memory_bytes', 0) / GiB:.1f} GiB, "
        f"{mach.get('cpu_model', '?')}; python {ver['python']}, faust {ver['faust-streaming']}, "
        f"aiokafka {ver['aiokafka']}, confluent-kafka {ver['confluent-kafka']}, "
        f"Kafka {ver['kafka_broker']}; wall {r['wall_s']}s"
    )
    prof = r.get("profile")
    if prof:
        for kind in ("processes", "threads", "own", "cumulative_hub"):
            t = Table(title=f"py-spy: top by {kind} time ({prof['samples']:,} samples)")
            t.add_column("%", justify="right")
            t.add_column("function")
            for row in prof.get(kind, [])[:15]:
                t.add_row(f"{row['pct']}", row["function"])
            console.print(t)


def render_latency(table: Table, lat: dict[str, Any]) -> None:
    split = lat["split"]
    table.add_row(
        f"latency @ {lat['rate_target_per_s']:.0f} ev/s, {lat['duration_s']:.0f}s",
        f"p50 {lat['p50_ms']} / p95 {lat['p95_ms']} / p99 {lat['p99_ms']} ms",
        f"{lat['samples']:,} alert/signal records, from their trigger's produce; max "
        f"{lat['max_ms']} ms; p50/p99 produce→ingest {split['inbound_p50_ms']}/"
        f"{split['inbound_p99_ms']}, ingest→correlated {split['hub_p50_ms']}/"
        f"{split['hub_p99_ms']}, →received {split['outbound_p50_ms']}/"
        f"{split['outbound_p99_ms']} ms",
    )
    since = lat.get("since_enabling_event")
    if since:
        table.add_row(
            "  same, from the enabling event",
            f"p50 {since['p50_ms']} / p95 {since['p95_ms']} / p99 {since['p99_ms']} ms",
            f"max {since['max_ms']} ms; a parked event's record counted from the event that "
            "taught its address (bench/enabling.py); the targets read this row",
        )
    np = lat.get("not_parked")
    if np:
        table.add_row(
            "  same, triggers never parked",
            f"p50 {np['p50_ms']} / p99 {np['p99_ms']} ms",
            f"{np['samples']:,} samples, max {np['max_ms']} ms; {np['parked_samples']:,} samples "
            "were triggered by an event parked until its address was learned",
        )
    sp = lat.get("split_not_parked")
    if sp:
        table.add_row(
            "  legs of the never-parked samples",
            f"hub p50 {sp['hub_p50_ms']} / p99 {sp['hub_p99_ms']} ms",
            f"p50/p99 produce→ingest {sp['inbound_p50_ms']}/{sp['inbound_p99_ms']}, "
            f"ingest→correlated {sp['hub_p50_ms']}/{sp['hub_p99_ms']}, →received "
            f"{sp['outbound_p50_ms']}/{sp['outbound_p99_ms']} ms",
        )
    if lat.get("cores_by_process"):
        table.add_row("  cores busy per process at this rate", "", _cores_text(lat))
    if lat.get("run_queue_wait_by_process"):
        waits = _cores_text(lat, "run_queue_wait_by_process") + _steal_text(lat)
        table.add_row("  run-queue wait per process at this rate (s/s)", "", waits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="25k addresses / 100k events")
    parser.add_argument("--profile", action="store_true", help="py-spy the hub's throughput run")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--keep", action="store_true", help="keep topics and data dirs")
    parser.add_argument(
        "--drop-leftovers",
        action="store_true",
        help="only delete the topics and groups earlier (--keep or killed) runs left, then exit",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--timeout", type=float, help="seconds per phase (default: 240 quick, 900 full)"
    )
    parser.add_argument(
        "--only-latency",
        action="store_true",
        help="only the hub's throughput and latency phases (a quick look after a change)",
    )
    parser.add_argument("--rate", type=float, help="events/s of the first latency phase")
    parser.add_argument(
        "--high-rate", type=float, help="events/s of the second latency phase (0: skip it)"
    )
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # make/CI: do not wrap the table at 80 columns
        console = Console(width=160)
    if args.drop_leftovers:
        console.print(f"deleted {drop_leftovers(Settings().broker)} topic(s) of earlier runs")
        return 0
    sizes = QUICK if args.quick else FULL
    if args.timeout:  # a busy shared machine needs more than the default
        sizes = replace(sizes, timeout_s=args.timeout)
    if args.rate:
        sizes = replace(sizes, latency_rate=args.rate)
    if args.high_rate is not None:
        if args.high_rate <= 0 and not args.only_latency:
            parser.error("--high-rate 0 only with --only-latency (the targets need both phases)")
        sizes = replace(sizes, high_rate=max(args.high_rate, 0.0))
    result = run(sizes, args.seed, args.profile, args.keep, console, args.only_latency)
    if args.only_latency:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        for lat in (result["latency"], result.get("latency_high") or {}):
            console.print_json(json.dumps({k: v for k, v in lat.items() if k != "split"}))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    render(result, console)
    console.print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
