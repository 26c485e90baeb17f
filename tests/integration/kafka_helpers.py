"""Kafka and sample helpers shared by the connector tests."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

SAMPLES = Path(__file__).parents[1] / "fixtures" / "contracts" / "samples.json"


def sample(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(json.loads(SAMPLES.read_text())["CaseEvent"])
    event.update(changes)
    return event


def wait_for_leaders(broker: str, topic: str, timeout: float = 15.0) -> None:
    """A fresh topic's partitions get leaders a moment after creation; wait for them."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "metadata"})
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if (
                meta is not None
                and meta.error is None
                and meta.partitions
                and all(p.leader >= 0 and p.error is None for p in meta.partitions.values())
            ):
                return
            time.sleep(0.1)
    finally:
        consumer.close()
    raise AssertionError(f"topic {topic} has no leaders after {timeout}s")


def published_count(broker: str, topic: str) -> int:
    """Messages on ``topic`` (sum of high watermarks): exact, with no consuming timeout."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "watermarks"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        deadline = time.monotonic() + 15
        while True:
            try:
                return sum(
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in meta.partitions
                )
            except KafkaException:  # a fresh partition's leader is still settling
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def consume(broker: str, topic: str, n: int, timeout: float = 30.0) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"reader.{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
    finally:
        consumer.close()
    return out
