"""The raw limit: plain consumers that only read and Avro-decode (fastavro) every event.

No group coordination (partitions are assigned), no validation, no state, no output: what is
left is the client's fetch path plus ``AvroCodec.decode_batch``, i.e. the most any Python
consumer of this topic can do per core. Timed from the first non-empty fetch to the last decoded
record, so connection set-up does not count. Exactly like the hub's figure, the clock starts when
the first batch has been *processed* and that batch's records are not counted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from hub.contracts.codec import AvroCodec, DecodeError
from hub.pipeline.clients import consumer_config
from hub.settings import Settings


@dataclass
class RawResult:
    client: str
    events: int
    decoded: int
    failed: int
    untimed: int  # records of the first batch, read before the clock started
    seconds: float

    @property
    def rate(self) -> float:
        timed = self.events - self.untimed
        return timed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_s": round(self.rate)}


def _partitions(settings: Settings, topic: str) -> list[int]:
    """Partition ids from the broker (aiokafka only knows metadata of subscribed topics)."""
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": settings.broker}).list_topics(topic, timeout=10)
    return sorted(meta.topics[topic].partitions)


def _count(decoded: list[dict[str, Any] | DecodeError]) -> int:
    return sum(1 for d in decoded if d.__class__ is dict)


async def _aiokafka(settings: Settings, topic: str, expected: int, timeout: float) -> RawResult:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP

    codec = AvroCodec()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8_388_608,
        fetch_max_bytes=52_428_800,
    )
    await consumer.start()
    try:
        parts = [ATP(topic, p) for p in _partitions(settings, topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen = decoded = skipped = 0
        first: float | None = None
        deadline = time.monotonic() + timeout
        while seen < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                seen += len(records)
                decoded += _count(codec.decode_batch([r.value for r in records], "CaseEvent"))
            if first is None and seen:
                first, skipped = time.monotonic(), seen
        end = time.monotonic()
    finally:
        await consumer.stop()
    return RawResult("aiokafka", seen, decoded, seen - decoded, skipped, end - (first or end))


def aiokafka_rate(settings: Settings, topic: str, expected: int, timeout: float = 600) -> RawResult:
    """aiokafka ``getmany`` + decode, until ``expected`` records were read."""
    return asyncio.run(_aiokafka(settings, topic, expected, timeout))


def confluent_rate(
    settings: Settings, topic: str, expected: int, timeout: float = 600
) -> RawResult:
    """confluent-kafka ``consume`` batches + decode, until ``expected`` records were read."""
    codec = AvroCodec()
    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-raw-confluent"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        seen = decoded = skipped = 0
        first: float | None = None
        deadline = time.monotonic() + timeout
        while seen < expected and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=10_000, timeout=0.5)
            if not messages:
                continue
            values = [v for m in messages if m.error() is None and (v := m.value()) is not None]
            seen += len(values)
            decoded += _count(codec.decode_batch(values, "CaseEvent"))
            if first is None:
                first, skipped = time.monotonic(), seen
        end = time.monotonic()
    finally:
        consumer.close()
    return RawResult(
        "confluent-kafka", seen, decoded, seen - decoded, skipped, end - (first or end)
    )
