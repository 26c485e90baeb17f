"""Schema evolution on the real broker: an event written with a CaseEvent version the hub does
not ship yet is dead-lettered as UNKNOWN_SCHEMA, not lost, and ``hub dlq replay --reason
UNKNOWN_SCHEMA`` re-submits it once the schema ships, after which the ingest stage accepts it.

"Shipping the schema" is a test-only schema directory (``HUB_SCHEMA_DIR``: the released files
plus the test-only ``tests/fixtures/avro_v2/CaseEvent.v2.avsc``), never a change to
``schemas/avro``; the cached schema set and codec are dropped around the switch, as a worker
restart would.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from typer.testing import CliRunner

from hub.answers import H_REPLAYED_FROM, read_dead_letters
from hub.contracts.avro import default_schema_set, load_schema_file, schema_dir
from hub.contracts.codec import AvroCodec, get_codec
from hub.contracts.decode import case_event_to_avro_dict, decode_case_event, parse_case_event_json
from hub.contracts.events import CaseEvent
from hub.pipeline.clients import producer_config
from hub.pipeline.ingest import IngestStage
from hub.pipeline.topics import Topics, delete_topics, ensure_topics
from hub.settings import Settings
from hubctl.main import app
from tests.integration.kafka_helpers import sample

V2_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "avro_v2" / "CaseEvent.v2.avsc"
KEY = b"IMG-EVOLVE-1"


@pytest.fixture
def fresh_schemas(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start from the released schemas; forget whatever the test loaded when it ends."""
    monkeypatch.delenv("HUB_SCHEMA_DIR", raising=False)
    default_schema_set.cache_clear()
    get_codec.cache_clear()
    yield
    monkeypatch.delenv("HUB_SCHEMA_DIR", raising=False)
    default_schema_set.cache_clear()
    get_codec.cache_clear()


@pytest.fixture
def settings(broker: str) -> Iterator[Settings]:
    token = uuid.uuid4().hex[:10]
    prefix = f"test.evolve.{token}."
    settings = Settings(broker=broker, topic_prefix=prefix, partitions=2, app_id=f"evolve-{token}")
    ensure_topics(settings)
    yield settings
    delete_topics(broker, prefixes=(prefix, f"{settings.app_id}-"))


def _read(settings: Settings, topic: str, start: dict[int, int] | None = None) -> list[Message]:
    """Every message of ``topic`` from ``start`` (partition -> offset; default 0) to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.broker,
            "group.id": f"{settings.app_id}-check",
            "enable.auto.commit": False,
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        out: list[Message] = []
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            first = max(low, (start or {}).get(p, 0))
            if first >= high:
                continue
            consumer.assign([TopicPartition(topic, p, first)])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = consumer.poll(1)
                if msg is None or msg.error():
                    continue
                out.append(msg)
                if msg.offset() + 1 >= high:
                    break
            else:
                raise AssertionError(f"{topic}[{p}]: did not reach offset {high}")
        return out
    finally:
        consumer.close()


def _ends(settings: Settings, topic: str) -> dict[int, int]:
    return {m.partition(): m.offset() + 1 for m in _read(settings, topic)}


def _ship_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deploy CaseEvent v2 next to every released schema, then 'restart' (drop the caches)."""
    shipped = tmp_path / "avro"
    shipped.mkdir()
    for avsc in schema_dir().glob("*.avsc"):
        shutil.copy(avsc, shipped)
    shutil.copy(V2_FILE, shipped)
    monkeypatch.setenv("HUB_SCHEMA_DIR", str(shipped))
    default_schema_set.cache_clear()
    get_codec.cache_clear()


def _replay(settings: Settings) -> Any:
    env = {
        "HUB_BROKER": settings.broker,
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_PARTITIONS": str(settings.partitions),
        "HUB_APP_ID": settings.app_id,
    }
    result = CliRunner().invoke(app, ["dlq", "replay", "--reason", "UNKNOWN_SCHEMA"], env=env)
    assert result.exit_code == 0, result.output
    return result


def test_newer_schema_event_is_dead_lettered_then_accepted_after_the_schema_ships_and_replay(
    settings: Settings,
    fresh_schemas: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = Topics.from_settings(settings)
    expected = parse_case_event_json(sample(event_id="evolve-1", case_id="IMG-EVOLVE-1"))
    assert isinstance(expected, CaseEvent), expected

    # An agency writes CaseEvent v2 (an added optional field), single-object encoded.
    v2 = load_schema_file(V2_FILE)
    writer = AvroCodec(default_schema_set().with_versions([v2]))
    raw = writer.encode_with(v2, dict(case_event_to_avro_dict(expected), channel="phone"))
    assert raw[2:10] == v2.fingerprint
    producer = Producer(producer_config(settings))
    producer.produce(topics.case_events, key=KEY, value=raw)
    assert producer.flush(30) == 0

    # The hub (v1 only) dead-letters it as UNKNOWN_SCHEMA with the original key and bytes.
    inbound = _read(settings, topics.case_events)
    assert [(m.key(), m.value()) for m in inbound] == [(KEY, raw)]
    before = IngestStage(settings, producer)
    before.process(inbound)
    assert producer.flush(30) == 0
    assert (before.stats.accepted, dict(before.stats.rejected)) == (0, {"UNKNOWN_SCHEMA": 1})
    letters = read_dead_letters(settings, "UNKNOWN_SCHEMA")
    assert [(e.letter.key, e.letter.payload) for e in letters] == [(KEY, raw)]
    assert letters[0].letter.topic == topics.case_events
    assert "ship its .avsc" in letters[0].letter.message

    # The schema ships; the operator replays the UNKNOWN_SCHEMA dead letters.
    _ship_v2(tmp_path, monkeypatch)
    ends = _ends(settings, topics.case_events)
    first = _replay(settings)
    assert f"replayed 1 dead letter(s) ({topics.case_events}: 1)" in first.stdout
    replayed = _read(settings, topics.case_events, ends)
    assert [(m.key(), m.value()) for m in replayed] == [(KEY, raw)]
    origin = dict(replayed[0].headers() or [])[H_REPLAYED_FROM].decode()
    assert origin == f"{topics.dead_letter}:{letters[0].partition}:{letters[0].offset}"

    # A worker with the new schema accepts it; the field it does not model is ignored.
    after = IngestStage(settings, producer)
    after.process(replayed)
    assert producer.flush(30) == 0
    assert (after.stats.accepted, dict(after.stats.rejected)) == (1, {})
    assert after.stats.normalised >= 1
    assert get_codec().decode(raw, "CaseEvent")[1]["channel"] == "phone"
    assert decode_case_event(raw) == expected
    assert len(read_dead_letters(settings)) == 1

    # A second replay re-sends nothing: the dead letter is marked as replayed.
    again = _replay(settings)
    assert "replayed 0 dead letter(s)" in again.stdout and "already replayed 1" in again.stdout
    assert [(m.key(), m.value()) for m in _read(settings, topics.case_events)] == [(KEY, raw)] * 2
