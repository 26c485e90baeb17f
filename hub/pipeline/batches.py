"""The internal batch message of ``hub.normalised``: many NormalisedEvents of one partition.

Faust's per-message machinery costs tens of microseconds, so the ingest stage hands it one message
per batch of events that all belong to the same partition (murmur2 of their address key). Faust's
table changelog goes to the partition of the message being processed, so this keeps the dossier
table co-partitioned: all events (and so all table writes) of one address key always land on the
same partition. The partition is CRC-32 of the address key modulo the partition count: any stable
hash works because nothing else derives table partitions from keys (the table is written only from
this topic), and CRC-32 runs in C (pure-Python murmur2 cost 20 µs per key).
The format is internal and versioned: ``{"v": 1, "events": [NormalisedEvent as object, ...]}``.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator

import orjson

from hub.contracts.normalised import NormalisedEvent

FORMAT_VERSION = 1
MAX_EVENTS_PER_MESSAGE = 2000


class BatchFormatError(ValueError):
    """An internal batch message the worker cannot read (wrong version or shape)."""


def partition_of(address_key: str, partitions: int) -> int:
    return zlib.crc32(address_key.encode()) % partitions


def group_by_partition(
    events: Iterable[NormalisedEvent], partitions: int
) -> dict[int, list[NormalisedEvent]]:
    grouped: dict[int, list[NormalisedEvent]] = defaultdict(list)
    for event in events:
        grouped[partition_of(event.address_key, partitions)].append(event)
    return grouped


def encode_batches(events: list[NormalisedEvent]) -> Iterator[bytes]:
    """Split one partition's events into messages of at most MAX_EVENTS_PER_MESSAGE."""
    for start in range(0, len(events), MAX_EVENTS_PER_MESSAGE):
        yield orjson.dumps(
            {"v": FORMAT_VERSION, "events": events[start : start + MAX_EVENTS_PER_MESSAGE]}
        )


def decode_batch(raw: bytes) -> list[NormalisedEvent]:
    try:
        payload = orjson.loads(raw)
        if payload.get("v") != FORMAT_VERSION:
            raise BatchFormatError(f"unsupported batch format version {payload.get('v')!r}")
        return [NormalisedEvent(**item) for item in payload["events"]]
    except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        raise BatchFormatError(f"unreadable batch message: {exc}") from exc
