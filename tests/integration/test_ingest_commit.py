"""A batch's commit covers that batch and never the next one, on a real broker.

The ingest stage commits each persisted batch asynchronously and goes straight on to consume the
next. librdkafka's ``commit()`` without offsets commits the stored offsets as its own thread finds
them when it handles the request, and by then the next ``consume`` has stored the next batch's:
a kill -9 while that batch was processed lost it with its offsets committed (2,077 events in one
run of the fault suite's "kill -9 ingest child"). Here the stage persists and commits one batch,
consumes the next without processing it (where a kill would land), and the group's committed
offsets must be the first batch's ends.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.pipeline.clients import consumer_config, producer_config
from hub.pipeline.ingest import CONSUMER_BUFFERS, IngestStage
from tests.integration.pipeline_harness import hub_under_test


def _take(stage: IngestStage, consumer: Consumer, timeout: float = 30.0) -> list[Message]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = [m for m in stage._next_batch(consumer) if m.error() is None]
        if messages:
            return messages
    raise AssertionError("no messages consumed")


def _ends(messages: list[Message]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        ends[key] = max(ends.get(key, 0), (m.offset() or 0) + 1)
    return ends


@pytest.mark.parametrize("attempt", range(5))  # a race: the old code failed 1 to 3 of 3
def test_a_batch_commit_never_covers_the_next_consumed_batch(
    broker: str, tmp_path: Path, attempt: int
) -> None:
    with hub_under_test(broker, tmp_path, partitions=1) as hub:
        settings = hub.settings
        items = [i for i in simulate(addresses=50, events=400, seed=attempt) if isinstance(i, dict)]
        assert publish(items, settings).failed == 0
        stage = IngestStage(settings, Producer(producer_config(settings)), max_batch=100)
        group = f"{settings.app_id}-ingest"
        consumer = Consumer(
            consumer_config(settings, group, on_commit=stage._on_commit, **CONSUMER_BUFFERS)
        )
        try:
            consumer.subscribe(hub.topics.inbound(settings.shared_inbound))
            first = _take(stage, consumer)
            stage.process(first)
            stage.persist()
            stage._commit(consumer, first)
            second = _take(stage, consumer)  # consumed, not processed: a kill would land here
            assert _ends(second) != _ends(first)
            time.sleep(2.0)  # librdkafka's thread has long sent the commit
            parts = [TopicPartition(t, p) for t, p in _ends(first)]
            committed = {
                (tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=10)
            }
            assert committed == _ends(first)
        finally:
            consumer.close()
