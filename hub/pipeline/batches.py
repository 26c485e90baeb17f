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

import logging
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

import orjson

from hub.contracts.normalised import NormalisedEvent

FORMAT_VERSION = 1
MAX_EVENTS_PER_MESSAGE = 2000
#: Byte bound of one batch message: half the ``normalised`` topic's max.message.bytes (8 MiB,
#: hub.pipeline.topics), leaving room for record overhead and a later, larger event format.
MAX_BATCH_BYTES = 4 * 1024 * 1024

log = logging.getLogger(__name__)


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


def encode_batches(
    events: list[NormalisedEvent],
    max_bytes: int = MAX_BATCH_BYTES,
    max_events: int = MAX_EVENTS_PER_MESSAGE,
    on_oversized: Callable[[NormalisedEvent, int], None] | None = None,
) -> Iterator[bytes]:
    """Split one partition's events into messages of at most ``max_events`` events and
    ``max_bytes`` bytes, in order.

    Bytes, not only a count: an event's size depends on its free text (JSON escaping can grow
    it several times), and a message over the topic's ``max.message.bytes`` fails every retry of
    the batch. An event that cannot fit a message even alone is left out and handed to
    ``on_oversized(event, size)`` (the ingest stage dead-letters it); this never raises.
    """
    for start in range(0, len(events), max_events):
        yield from _within(events[start : start + max_events], max_bytes, on_oversized)


def _within(
    events: list[NormalisedEvent],
    max_bytes: int,
    on_oversized: Callable[[NormalisedEvent, int], None] | None,
) -> Iterator[bytes]:
    """One ``orjson.dumps`` per message in the common case (one C call: encoding event by event
    was measured 5x slower); a message over ``max_bytes`` is halved until its parts fit."""
    payload = orjson.dumps({"v": FORMAT_VERSION, "events": events})
    if len(payload) <= max_bytes:
        yield payload
    elif len(events) == 1:
        size = len(payload)
        if on_oversized is not None:
            on_oversized(events[0], size)
        else:
            log.error("left out a normalised event of %d bytes: over %d", size, max_bytes)
    else:
        middle = len(events) // 2
        yield from _within(events[:middle], max_bytes, on_oversized)
        yield from _within(events[middle:], max_bytes, on_oversized)


def decode_batch(raw: bytes) -> list[NormalisedEvent]:
    try:
        payload = orjson.loads(raw)
        if payload.get("v") != FORMAT_VERSION:
            raise BatchFormatError(f"unsupported batch format version {payload.get('v')!r}")
        return [NormalisedEvent(**item) for item in payload["events"]]
    except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        raise BatchFormatError(f"unreadable batch message: {exc}") from exc
