"""The benchmark's workload: simulator events in the hub's Avro framing, built once and cached.

Encoding 1M events (pydantic validation + fastavro) takes about a minute, so the wire records are
cached under ``.local/bench/cache`` keyed by the sizes, the seed and a hash of the code that
produces them (simulator, contracts, schemas): a changed simulator or schema never reuses a stale
cache.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

from connectors.kafka_publish import to_wire
from connectors.simulator import simulate
from hub.pipeline.clients import produce_waiting, producer_config
from hub.settings import PROJECT_ROOT, Settings

CACHE_DIR = PROJECT_ROOT / ".local" / "bench" / "cache"
_CODE = [
    *sorted((PROJECT_ROOT / "connectors" / "simulator").glob("*.py")),
    PROJECT_ROOT / "hub" / "config" / "rules.toml",  # the simulator plants against these
    PROJECT_ROOT / "connectors" / "kafka_publish.py",
    *sorted((PROJECT_ROOT / "hub" / "contracts").glob("*.py")),
    *sorted((PROJECT_ROOT / "schemas").rglob("*.avsc")),
]


@dataclass
class Workload:
    """Wire records in simulator order; ``event_ids[i]`` is None for malformed items."""

    addresses: int
    events: int
    seed: int
    keys: list[bytes | None]
    values: list[bytes]
    event_ids: list[str | None]
    build_s: float = 0.0
    cached: bool = False

    def __len__(self) -> int:
        return len(self.values)

    @property
    def wire_bytes(self) -> int:
        return sum(len(v) for v in self.values)

    def head(self, n: int) -> Workload:
        """The first ``n`` records (the naive baseline's capped input)."""
        return Workload(
            self.addresses,
            min(n, self.events),
            self.seed,
            self.keys[:n],
            self.values[:n],
            self.event_ids[:n],
        )


def _code_hash() -> str:
    digest = hashlib.sha256()
    for path in _CODE:
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build(addresses: int, events: int, seed: int, cache: bool = True) -> Workload:
    """Simulate and encode (or load the cached encoding of) ``events`` events."""
    began = time.monotonic()
    path = cache_path_for(addresses, events, seed)
    if cache and path.exists():
        cached_keys, cached_values, cached_ids = pickle.loads(path.read_bytes())
        return Workload(
            addresses,
            events,
            seed,
            cached_keys,
            cached_values,
            cached_ids,
            time.monotonic() - began,
            True,
        )
    keys: list[bytes | None] = []
    values: list[bytes] = []
    ids: list[str | None] = []
    for item in simulate(addresses, events, seed):
        key, value = to_wire(item)
        keys.append(key)
        values.append(value)
        is_avro = value[:1] in (b"\xc3", b"\x00") and isinstance(item, dict)
        ids.append(item.get("event_id") if is_avro else None)  # type: ignore[union-attr]
    if cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for stale in CACHE_DIR.glob(f"workload-{addresses}-{events}-{seed}-*.pickle"):
            stale.unlink()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps((keys, values, ids), protocol=pickle.HIGHEST_PROTOCOL))
        tmp.rename(path)
    return Workload(addresses, events, seed, keys, values, ids, time.monotonic() - began, False)


def produce_all(
    settings: Settings, topic: str, keys: Iterable[bytes | None], values: Iterable[bytes]
) -> float:
    """Produce every record (acks=all, idempotent) and wait for all acks; returns seconds."""
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    failed: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    began = time.monotonic()
    for n, (key, value) in enumerate(zip(keys, values, strict=True), 1):
        produce_waiting(producer, topic, key, value, on_delivery)
        if n % 20_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining or failed:
        raise RuntimeError(f"pre-produce failed: {remaining} unacknowledged, errors {failed[:3]}")
    return time.monotonic() - began


def cache_path_for(addresses: int, events: int, seed: int) -> Path:
    """Where the encoding of these sizes and this seed, by the current code, is cached."""
    return CACHE_DIR / f"workload-{addresses}-{events}-{seed}-{_code_hash()}.pickle"
