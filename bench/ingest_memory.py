"""What the ingest child holds per address, measured in process in seconds instead of a broker run.

``python -m bench.ingest_memory [--addresses N] [--events M]`` feeds the bench workload (built and
cached by :func:`bench.workload.build`; default 100k addresses, 2 events each like the 1M memory
row) through ``IngestStage.process`` as the ingest child does (a producer that drops what it is
given, no broker), with tracemalloc on from the start. It prints:

- the bytes traced after the run (all that the stage keeps), per address the register knows;
- the deep size of each per-address structure of the ``Ingestor`` (register, building cases,
  parked events, pending links) and of the address-key caches, each object counted once;
- the top allocation sites of what is still live.

The 1M row (``python -m bench.memory``) remains the figure that counts; this is the quick loop
for changing the layouts (RSS is about the traced bytes plus allocator slack and the imports).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.cpu_ab import FIXED_NOW, POLL_BATCH, NoMetrics, WireMessage
from bench.workload import build


class _DropProducer:
    """Counts what the stage produces and keeps nothing (the broker is not the child's memory)."""

    def __init__(self) -> None:
        self.produced = 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.produced += 1

    def flush(self, timeout: float = 0) -> int:
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


_SHARED_KINDS = (type, types.ModuleType)


def deep_size(roots: Iterable[object], seen: set[int]) -> int:
    """Bytes of the objects reachable from ``roots`` not already in ``seen`` (updated).

    Follows containers and slotted/plain instances; types, modules and functions are not
    followed (shared by the process, not per address)."""
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SHARED_KINDS) or callable(obj):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        else:
            for cls in type(obj).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
            if hasattr(obj, "__dict__"):
                stack.append(obj.__dict__)
    return total


def _status(field: str) -> int:
    """A ``/proc/self/status`` figure in bytes (VmRSS, VmHWM); 0 where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(
    addresses: int, events: int, seed: int = 2024, top: int = 12, trace: bool = True
) -> dict[str, Any]:
    from hub.address.key import _normalised_key
    from hub.address.normalise import normalise_postcode
    from hub.pipeline.ingest import IngestStage, ReleaseCheckpoint
    from hub.settings import Settings

    workload = build(addresses, events, seed)
    messages = [
        WireMessage(k, v, i)
        for i, (k, v) in enumerate(zip(workload.keys, workload.values, strict=True))
    ]
    del workload
    gc.collect()
    rss_before = _status("VmRSS")
    if trace:
        tracemalloc.start(1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), partitions=8)
        stage = IngestStage(
            settings,
            _DropProducer(),  # type: ignore[arg-type]
            clock=lambda: FIXED_NOW,
            metrics_sink=NoMetrics(),
            checkpoint=ReleaseCheckpoint(None),
        )
        gc.collect()
        base, _ = tracemalloc.get_traced_memory()
        began = time.process_time()
        for start in range(0, len(messages), POLL_BATCH):
            stage.process(messages[start : start + POLL_BATCH])  # type: ignore[arg-type]
            stage.persist()
        cpu_s = time.process_time() - began
        del messages
        gc.collect()
        rss_after, hwm = _status("VmRSS"), _status("VmHWM")
        held, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot() if trace else None
        tracemalloc.stop()
        ing = stage.ingestor
        reg = ing.register
        seen: set[int] = set()
        parts = {
            "register": deep_size([reg], seen),
            "building cases": deep_size([ing._buildings], seen),
            "parked": deep_size([ing._parked_on_id, ing._parked_on_pand], seen),
            "pending links": deep_size([ing._pending_links], seen),
        }
        caches = {"address_key cache": _normalised_key, "postcode cache": normalise_postcode}
        for name, fn in caches.items():
            info = fn.cache_info()
            parts[name] = info.currsize  # entries (the lru_cache's internals are not reachable)
        n = len(reg)
        sites = [
            (str(stat.traceback[0]), stat.size, stat.count)
            for stat in (snapshot.statistics("lineno")[:top] if snapshot else [])
        ]
    return {
        "addresses": addresses,
        "events": events,
        "register_keys": n,
        "register_ids": len(reg._key_by_id),  # internals: a measurement
        "buildings": reg.building_count,
        "building_cases": sum(len(c) for c in ing._buildings.values()),
        "parked": ing.parked_count,
        "traced_held_bytes": held - base,
        "traced_peak_bytes": peak - base,
        "held_bytes_per_key": round((held - base) / max(n, 1), 1),
        "deep_bytes": parts,
        "register_bytes_per_key": round(parts["register"] / max(n, 1), 1),
        "cpu_s": round(cpu_s, 1),
        "traced": trace,
        # untraced runs: what the run added to the process (the workload was loaded before)
        "rss_growth_bytes": rss_after - rss_before,
        "rss_peak_growth_bytes": hwm - rss_before,
        "top_sites": sites,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_memory", description=__doc__)
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--events", type=int, help="default: 2 per address")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--rss", action="store_true", help="no tracemalloc: RSS growth and CPU time only"
    )
    args = parser.parse_args(argv)
    m = measure(args.addresses, args.events or 2 * args.addresses, args.seed, trace=not args.rss)
    n = max(m["register_keys"], 1)
    print(
        f"{m['addresses']:,} addresses / {m['events']:,} events: {m['register_keys']:,} keys, "
        f"{m['register_ids']:,} ids, {m['buildings']:,} pands, {m['building_cases']:,} building "
        f"cases, {m['parked']:,} parked"
    )
    print(
        f"held after the run (traced): {m['traced_held_bytes'] / 2**20:,.1f} MiB = "
        f"{m['held_bytes_per_key']:,.0f} B per key (peak {m['traced_peak_bytes'] / 2**20:,.1f} MiB)"
    )
    print(
        f"RSS growth over the run: {m['rss_growth_bytes'] / 2**20:,.1f} MiB at the end, "
        f"peak {m['rss_peak_growth_bytes'] / 2**20:,.1f} MiB; CPU {m['cpu_s']} s"
        + (" (traced)" if m["traced"] else "")
    )
    for name, size in m["deep_bytes"].items():
        if name.endswith("cache"):
            print(f"  {name:18} {size:>12,} entries")
        else:
            print(f"  {name:18} {size / 2**20:>9,.1f} MiB  {size / n:>7,.0f} B/key")
    print("top live allocation sites:")
    for site, size, count in m["top_sites"]:
        print(f"  {size / 2**20:8.1f} MiB {count:>9,}  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
