"""confluent-kafka client configs shared by the pipeline and the connectors.

Producers use murmur2 (the partitioner of the Java client and of aiokafka/Faust) so a key lands
on the same partition whoever writes it, idempotence and acks=all so an acknowledged event is on
the broker for good.
"""

from __future__ import annotations

from typing import Any

from hub.security import confluent_security
from hub.settings import Settings


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.broker,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.max.bytes": 8_388_608,
        **confluent_security(settings),
    }
    config.update(overrides)
    return config


def consumer_config(settings: Settings, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.broker,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 8_388_608,
        "queued.max.messages.kbytes": 262_144,
        # every topic spread over the members: the ingest group reads the shared and each
        # agency's inbound topic, and cooperative-sticky balanced only the total count, so one
        # member often got all 8 partitions of the busy topic (bench scaling row: one of two
        # ingest children ingested everything). roundrobin interleaves each topic's partitions.
        "partition.assignment.strategy": "roundrobin",
        **confluent_security(settings),
    }
    if group_id is not None:
        config["group.id"] = group_id
    config.update(overrides)
    return config


def admin_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """An AdminClient's config: the broker and the client security settings."""
    return {"bootstrap.servers": settings.broker, **confluent_security(settings), **overrides}


_MASK = 0x7FFFFFFF


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client, aiokafka and librdkafka's murmur2 choose for ``key``."""
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & _MASK) % partitions


def produce_waiting(
    producer: Any,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    on_delivery: Any = None,
    **kwargs: Any,
) -> None:
    """``producer.produce`` that waits (serving delivery reports) while the local queue is full.

    For bulk publishers (simulator, benchmark, register seed) that outrun the broker.
    """
    while True:
        try:
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)
