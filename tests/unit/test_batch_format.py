"""The internal batch format: version 2 rows are written, version 1 objects are still read."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hub.contracts.normalised import NormalisedEvent
from hub.pipeline.batches import FIELDS, BatchFormatError, decode_batch, encode_batches
from hub.pipeline.ingest import IngestStage
from hub.pipeline.topics import Topics
from hub.settings import Settings

EVENTS = [
    NormalisedEvent(
        "e1",
        "NCG",
        "c-1",
        "DAMAGE",
        "OPENED",
        1_700_000_000_000,
        "9711AB-12-",
        gemeentecode="GM0014",
        contact_name='Ré "x"\n',
        amount_cents=12_345,
        attributes={"k": "v"},
    ),
    NormalisedEvent("e2", "IMG", "c-2", "STRENGTHENING", "CLOSED", 2, "9711AB-14-A"),
]


def _v2(events: list[NormalisedEvent]) -> dict[str, object]:
    payload = orjson.loads(next(iter(encode_batches(events))))
    assert isinstance(payload, dict)
    return payload


def test_a_batch_is_written_as_positional_rows_and_read_back_equal() -> None:
    payload = _v2(EVENTS)
    assert payload["v"] == 2 and payload["fields"] == list(FIELDS)
    assert payload["events"][1][:3] == ["e2", "IMG", "c-2"]  # type: ignore[index]
    assert decode_batch(orjson.dumps(payload)) == EVENTS


def test_a_version_1_batch_of_objects_is_still_read() -> None:
    legacy = orjson.dumps({"v": 1, "events": EVENTS})
    assert decode_batch(legacy) == EVENTS


def test_rows_with_fields_in_another_order_are_read_by_name() -> None:
    payload = _v2(EVENTS)
    order = list(reversed(FIELDS))
    payload["fields"] = order
    payload["events"] = [[getattr(e, name) for name in order] for e in EVENTS]
    assert decode_batch(orjson.dumps(payload)) == EVENTS


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(events=[row[:-1] for row in p["events"]]),  # a value missing
        lambda p: p.update(
            events=[{str(i): v for i, v in enumerate(row)} for row in p["events"]]
        ),  # not a row
        lambda p: p.update(fields=[*p["fields"], "x"], events=[[*r, 1] for r in p["events"]]),
        lambda p: p.pop("fields"),
        lambda p: p.update(v=3),
    ],
    ids=["short-row", "object-row", "unknown-field", "no-fields", "unknown-version"],
)
def test_a_malformed_version_2_batch_is_unreadable_not_half_read(change: object) -> None:
    payload = _v2(EVENTS)
    change(payload)  # type: ignore[operator]
    with pytest.raises(BatchFormatError):
        decode_batch(orjson.dumps(payload))


def test_format_1_is_still_written_when_asked_and_split_the_same_way() -> None:
    big = [
        NormalisedEvent(
            f"e{i}", "NCG", "c", "DAMAGE", "OPENED", i, "9711AB-1-", contact_name="x" * 900
        )
        for i in range(20)
    ]
    legacy = list(encode_batches(big, max_bytes=5_000, version=1))
    assert len(legacy) > 1 and all(len(m) <= 5_000 for m in legacy)
    assert all(orjson.loads(m)["v"] == 1 for m in legacy)
    assert [e for m in legacy for e in decode_batch(m)] == big
    with pytest.raises(ValueError, match="unknown batch format"):
        list(encode_batches(big, version=3))


def test_the_ingest_stage_writes_the_format_of_its_settings(tmp_path: Path) -> None:
    from tests.unit.test_pipeline_limits import FakeMessage, FakeProducer, _json

    for version in (1, 2):
        settings = Settings(
            topic_prefix="unit.", partitions=4, data_dir=tmp_path, batch_format=version
        )
        producer = FakeProducer()
        stage = IngestStage(settings, producer)  # type: ignore[arg-type]
        stage.process([FakeMessage(_json(event_id=f"v{version}"), 1)])  # type: ignore[list-item]
        (record,) = producer.on(Topics.from_settings(settings).normalised)
        assert orjson.loads(record.value)["v"] == version
        assert [e.event_id for e in decode_batch(record.value)] == [f"v{version}"]
