"""Issue 12 D1 on the real broker: a message just under 1 MiB on the inbound topic (created with
the hub's own topic configs) is dead-lettered by the ingest stage, truncated with a pointer to
the original, and the event after it is still processed; the stage's flush does not fail."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from hub.contracts.deadletter import MAX_DEAD_LETTER_PAYLOAD, parse_dead_letter
from hub.contracts.decode import encode_case_event, parse_case_event_json
from hub.contracts.events import CaseEvent, set_occurred_at_bounds
from hub.pipeline.batches import decode_batch
from hub.pipeline.clients import consumer_config, producer_config
from hub.pipeline.ingest import IngestStage
from hub.pipeline.topics import Topics, delete_topics, ensure_topics
from hub.settings import Settings
from tests.integration.kafka_helpers import sample, wait_for_leaders

OVERSIZED = 1_048_500  # what the issue put on case-events


@pytest.fixture
def settings(broker: str) -> Iterator[Settings]:
    token = uuid.uuid4().hex[:8]
    settings = Settings(
        broker=broker,
        topic_prefix=f"test.size.{token}.",
        app_id=f"test-size-{token}",
        partitions=1,
    )
    ensure_topics(settings)  # the real configs: case-events 1 MiB, dead-letter 2 MiB
    yield settings
    set_occurred_at_bounds(None)
    delete_topics(broker, prefixes=(settings.topic_prefix, settings.app_id))


def _read(settings: Settings, topic: str, n: int, timeout: float = 30.0) -> list[Any]:
    consumer = Consumer(consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=n - len(out), timeout=0.5):
                if msg.error() is None:
                    out.append(msg)
    finally:
        consumer.close()
    return out


def test_a_message_just_under_1_mib_is_dead_lettered_truncated_and_the_next_event_processed(
    settings: Settings,
) -> None:
    topics = Topics.from_settings(settings)
    for topic in (topics.case_events, topics.dead_letter, topics.normalised):
        wait_for_leaders(settings.broker, topic)
    valid = parse_case_event_json(sample(event_id="after-the-big-one"))
    assert isinstance(valid, CaseEvent)
    oversized = b"\xc3\x01" + os.urandom(OVERSIZED - 2)  # incompressible: the real size counts
    agency = Producer(producer_config(settings, **{"compression.type": "none"}))
    agency.produce(topics.case_events, key=b"k", value=oversized)
    agency.produce(topics.case_events, key=b"k", value=encode_case_event(valid))
    assert agency.flush(30) == 0

    inbound = _read(settings, topics.case_events, 2)
    assert [len(m.value()) for m in inbound] == [OVERSIZED, len(encode_case_event(valid))]
    stage = IngestStage(settings, Producer(producer_config(settings)))
    stage.process(inbound)
    stage.persist()  # what the stage does before committing: must not raise DeliveryFailed

    (letter_msg,) = _read(settings, topics.dead_letter, 1)
    letter = parse_dead_letter(letter_msg.headers(), letter_msg.value(), letter_msg.key())
    assert letter.reason == "RECORD_TOO_LARGE" and letter.stage == "decode"
    assert (letter.topic, letter.partition, letter.offset) == (
        topics.case_events,
        inbound[0].partition(),
        inbound[0].offset(),
    )
    assert letter.payload_truncated and letter.payload_size == OVERSIZED
    assert letter.payload == oversized[:MAX_DEAD_LETTER_PAYLOAD] and letter.key == b"k"

    batches = _read(settings, topics.normalised, 1)
    assert [e.event_id for m in batches for e in decode_batch(m.value())] == ["after-the-big-one"]
