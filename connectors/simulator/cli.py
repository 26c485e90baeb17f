"""Output of a simulation: JSON Lines, the BAG register CSV, the manifest as JSON, the CLI."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson

from connectors.simulator.planner import Manifest
from connectors.simulator.stream import Item, Simulation, simulate


def _dump(item: Item) -> bytes:
    if isinstance(item, str):
        return item.replace("\n", " ").encode() + b"\n"
    return orjson.dumps(item) + b"\n"


def write_jsonl(target: Path | str | IO[bytes], sim: Simulation) -> int:
    """Write the stream as JSON Lines (malformed raw lines as they are); returns the line count."""
    if isinstance(target, (str, Path)):
        with Path(target).open("wb") as fh:
            return write_jsonl(fh, sim)
    n = 0
    buf: list[bytes] = []
    for item in sim:
        buf.append(_dump(item))
        n += 1
        if len(buf) >= 4096:
            target.write(b"".join(buf))
            buf.clear()
    target.write(b"".join(buf))
    return n


def write_register_csv(path: Path | str, sim: Simulation) -> int:
    """Write the simulated BAG extract for ``AddressRegister.load_csv``; returns the row count."""
    n = 0
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = None
        for row in sim.register_rows():
            if writer is None:
                writer = csv.DictWriter(fh, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            n += 1
    return n


def run_simulate_cli(
    addresses: int,
    events: int,
    seed: int,
    out: Path | None = None,
    malformed_share: float = 0.01,
    manifest_out: Path | None = None,
) -> Manifest:
    """``hub simulate``: JSON Lines to ``out`` (or stdout), a count summary on stderr.

    ``manifest_out`` (optional) receives the manifest as JSON (keys and case refs, no contacts).
    """
    began = time.perf_counter()
    sim = simulate(addresses, events, seed, malformed_share)
    if out is None:
        n = write_jsonl(sys.stdout.buffer, sim)
        sys.stdout.buffer.flush()
    else:
        n = write_jsonl(out, sim)
    elapsed = time.perf_counter() - began
    m = sim.manifest
    if manifest_out is not None:
        Path(manifest_out).write_bytes(
            orjson.dumps(manifest_to_dict(m), option=orjson.OPT_INDENT_2)
        )
    summary = m.summary() | {
        "lines": n,
        "seconds": round(elapsed, 2),
        "events_per_second": round(n / elapsed) if elapsed else None,
    }
    sys.stderr.write(orjson.dumps(summary).decode() + "\n")
    return m


def manifest_to_dict(m: Manifest) -> dict[str, Any]:
    """A JSON-ready form of the manifest (sorted lists)."""
    out: dict[str, Any] = {}
    for name, value in vars(m).items():
        if name == "addresses":
            out[name] = {k: v._asdict() for k, v in sorted(value.items())}
        elif name == "shares":
            out[name] = vars(value)
        elif isinstance(value, frozenset):
            out[name] = sorted(value)
        else:
            out[name] = value
    return out
