"""The Avro codec: both framings, schema evolution, and what it does with bytes it cannot read."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hub.contracts.avro import default_schema_set, load_schema_file
from hub.contracts.codec import (
    AvroCodec,
    DecodeError,
    EncodeError,
    InMemorySchemaRegistry,
    to_epoch_ms,
)
from hub.contracts.deadletter import DeadLetter
from hub.contracts.decode import (
    Rejection,
    RejectReason,
    case_event_to_avro_dict,
    decode_case_event,
    parse_case_event_json,
)
from hub.contracts.events import CaseEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLES: dict[str, Any] = json.loads((FIXTURES / "contracts" / "samples.json").read_text())


def _case_event() -> CaseEvent:
    event = parse_case_event_json(SAMPLES["CaseEvent"])
    assert isinstance(event, CaseEvent), event
    return event


def _sample(name: str) -> dict[str, Any]:
    if name == "CaseEvent":
        return case_event_to_avro_dict(_case_event())
    if name == "DeadLetter":
        return DeadLetter(
            reason="INVALID_FIELD",
            message="address.postcode: 'SS12' is not a Dutch postcode",
            stage="validate",
            exception_class="pydantic_core.ValidationError",
            field="address.postcode",
            topic="hub.case-events",
            partition=3,
            offset=42,
            rejected_at_ms=1714550400000,
            key=b"k",
            payload=b"\xc3\x01 original bytes",
        ).to_avro_dict()
    return json.loads(json.dumps(SAMPLES[name]))


def _normalise(value: Any) -> Any:
    """Compare decoded records with inputs: datetimes -> epoch ms, dates/decimals -> str."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, datetime):
        return to_epoch_ms(value)
    if isinstance(value, date | Decimal):
        return str(value)
    return value


def _codecs() -> dict[str, AvroCodec]:
    return {
        "single_object": AvroCodec(),
        "confluent": AvroCodec(registry=InMemorySchemaRegistry()),
    }


RECORDS = ["CaseEvent", "Alert", "AddressDossier", "DeadLetter"]


@pytest.mark.parametrize("framing", ["single_object", "confluent"])
@pytest.mark.parametrize("name", RECORDS)
def test_every_schema_round_trips_in_both_framings(name: str, framing: str) -> None:
    codec = _codecs()[framing]
    record = _sample(name)
    raw = codec.encode(name, record)
    assert raw[:2] == b"\xc3\x01" if framing == "single_object" else raw[:1] == b"\x00"
    decoded_name, decoded = codec.decode(raw)
    assert decoded_name == name
    assert _normalise(decoded) == _normalise(record)


def test_single_object_header_is_magic_plus_little_endian_fingerprint() -> None:
    raw = AvroCodec().encode("Alert", _sample("Alert"))
    assert raw[:10] == b"\xc3\x01" + default_schema_set().current("Alert").fingerprint


def test_confluent_header_is_zero_plus_big_endian_schema_id() -> None:
    registry = InMemorySchemaRegistry()
    for _ in range(4):  # push the id of CaseEvent past 1
        registry.register("other", json.dumps({"type": "record", "name": f"X{_}", "fields": []}))
    codec = AvroCodec(registry=registry)
    raw = codec.encode("CaseEvent", _sample("CaseEvent"))
    assert raw[0] == 0 and int.from_bytes(raw[1:5], "big") == 5


def test_a_reader_decodes_both_framings_whatever_it_writes() -> None:
    registry = InMemorySchemaRegistry()
    writer = AvroCodec(registry=registry)
    reader = AvroCodec(registry=registry, framing="single_object")
    record = _sample("Alert")
    for raw in (writer.encode("Alert", record), reader.encode("Alert", record)):
        assert _normalise(reader.decode(raw, "Alert")[1]) == _normalise(record)


def test_timestamps_are_accepted_as_epoch_ms_or_datetimes_and_decode_as_utc_datetimes() -> None:
    codec = AvroCodec()
    as_int = _sample("Alert")
    as_dt = dict(as_int, starts_at=datetime.fromtimestamp(as_int["starts_at"] / 1000, UTC))
    a = codec.decode(codec.encode("Alert", as_int))[1]
    b = codec.decode(codec.encode("Alert", as_dt))[1]
    assert a == b
    assert a["starts_at"] == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert to_epoch_ms(a["starts_at"]) == as_int["starts_at"]


def test_encoding_a_record_that_does_not_fit_raises_encode_error() -> None:
    record = _sample("Alert")
    del record["fingerprint"]
    with pytest.raises(EncodeError):
        AvroCodec().encode("Alert", record)
    with pytest.raises(EncodeError):
        AvroCodec().encode("NoSuchRecord", {})


# ------------------------------------------------------------------------------ evolution


def _v2() -> Any:
    return load_schema_file(FIXTURES / "avro_v2" / "CaseEvent.v2.avsc")


def test_v1_data_is_read_by_a_v2_reader_with_the_new_field_defaulted() -> None:
    v1_writer = AvroCodec()
    v2_reader = AvroCodec(default_schema_set().with_versions([_v2()]))
    assert v2_reader.schemas.current("CaseEvent").version == 2
    raw = v1_writer.encode("CaseEvent", _sample("CaseEvent"))
    _, record = v2_reader.decode(raw, "CaseEvent")
    assert record["channel"] is None
    assert record["event_id"] == SAMPLES["CaseEvent"]["event_id"]


def test_v2_data_is_read_by_a_v1_reader_that_knows_the_v2_schema() -> None:
    schemas = default_schema_set().with_versions([_v2()], pinned={"CaseEvent": 1})
    v1_reader = AvroCodec(schemas)
    record = dict(_sample("CaseEvent"), channel="phone")
    raw = v1_reader.encode_with(_v2(), record)
    _, decoded = v1_reader.decode(raw, "CaseEvent")
    assert "channel" not in decoded
    assert _normalise(decoded) == _normalise(_sample("CaseEvent"))


def test_a_source_added_later_reaches_an_old_reader_as_unknown_and_is_rejected() -> None:
    schemas = default_schema_set().with_versions([_v2()], pinned={"CaseEvent": 1})
    v1_reader = AvroCodec(schemas)
    raw = v1_reader.encode_with(_v2(), dict(_sample("CaseEvent"), source="WATER_COMPANY"))
    assert v1_reader.decode(raw)[1]["source"] == "UNKNOWN"
    result = decode_case_event(raw, v1_reader)
    assert isinstance(result, Rejection)
    assert result.reason_code == RejectReason.UNKNOWN_SOURCE and result.field == "source"


def test_data_from_an_incompatible_writer_is_rejected_not_misread() -> None:
    bad = load_schema_file(FIXTURES / "avro_incompatible" / "CaseEvent.v2.avsc")
    schemas = default_schema_set().with_versions([bad], pinned={"CaseEvent": 1})
    codec = AvroCodec(schemas)
    record = _sample("CaseEvent")
    del record["case_id"]
    raw = codec.encode_with(bad, record)
    result = decode_case_event(raw, codec)
    assert isinstance(result, Rejection)
    assert result.reason_code == RejectReason.INCOMPATIBLE_SCHEMA


def test_registry_framed_data_of_a_schema_we_do_not_ship_resolves_to_our_current_version() -> None:
    registry = InMemorySchemaRegistry()
    writer = AvroCodec(default_schema_set().with_versions([_v2()]), registry=registry)
    raw = writer.encode("CaseEvent", dict(_sample("CaseEvent"), channel="web"))
    reader = AvroCodec(registry=registry)  # knows only v1 locally
    _, record = reader.decode(raw, "CaseEvent")
    assert "channel" not in record and record["case_id"] == SAMPLES["CaseEvent"]["case_id"]


# ------------------------------------------------------------------------------ bad bytes


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "UNDECODABLE"),
        (b'{"event_id": "x"}', "UNDECODABLE"),
        (b"\xc3\x02" + bytes(8), "UNDECODABLE"),
        (b"\xc3\x01" + bytes(8) + b"\x02", "UNKNOWN_SCHEMA"),
        (b"\x00\x00\x00\x00\x07\x02", "UNKNOWN_SCHEMA"),
    ],
)
def test_unreadable_values_raise_decode_error_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        AvroCodec(registry=InMemorySchemaRegistry(), framing="single_object").decode(raw)
    assert info.value.reason == reason


def test_truncated_and_padded_bodies_are_undecodable() -> None:
    codec = AvroCodec()
    raw = codec.encode("CaseEvent", _sample("CaseEvent"))
    for broken in (raw[:-5], raw + b"\x00"):
        with pytest.raises(DecodeError) as info:
            codec.decode(broken)
        assert info.value.reason == "UNDECODABLE"


def test_a_valid_record_of_another_type_is_a_wrong_record_type() -> None:
    codec = AvroCodec()
    raw = codec.encode("Alert", _sample("Alert"))
    with pytest.raises(DecodeError) as info:
        codec.decode(raw, "CaseEvent")
    assert info.value.reason == "WRONG_RECORD_TYPE"


def test_batch_decode_keeps_order_and_puts_failures_in_their_slot() -> None:
    codec = AvroCodec()
    good = codec.encode("CaseEvent", _sample("CaseEvent"))
    out = codec.decode_batch(
        [good, b"junk", good[:-1], codec.encode("Alert", _sample("Alert"))], "CaseEvent"
    )
    assert isinstance(out[0], dict)
    assert [o.reason for o in out[1:]] == ["UNDECODABLE", "UNDECODABLE", "WRONG_RECORD_TYPE"]  # type: ignore[union-attr]


def test_confluent_mock_registry_round_trip() -> None:
    sr = pytest.importorskip(
        "confluent_kafka.schema_registry",
        reason="needs confluent-kafka[schemaregistry] (authlib, cachetools, httpx)",
    )
    from hub.contracts.codec import ConfluentSchemaRegistry

    registry = ConfluentSchemaRegistry.from_url("mock://hub-contracts-test")
    assert type(registry._client).__name__ == "MockSchemaRegistryClient"
    assert sr is not None
    codec = AvroCodec(registry=registry)
    record = _sample("CaseEvent")
    raw = codec.encode("CaseEvent", record)
    assert raw[0] == 0
    fresh_reader = AvroCodec(registry=registry, framing="single_object")
    assert _normalise(fresh_reader.decode(raw, "CaseEvent")[1]) == _normalise(record)


def test_confluent_avro_serializer_and_our_codec_understand_each_other() -> None:
    pytest.importorskip(
        "confluent_kafka.schema_registry",
        reason="needs confluent-kafka[schemaregistry] (authlib, cachetools, httpx)",
    )
    from confluent_kafka.schema_registry import record_subject_name_strategy
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from hub.contracts.codec import ConfluentSchemaRegistry

    registry = ConfluentSchemaRegistry.from_url("mock://hub-contracts-interop")
    current = default_schema_set().current("Alert")
    ctx = SerializationContext("hub.signals", MessageField.VALUE)
    theirs = AvroSerializer(
        registry._client,
        current.schema_str,
        conf={"subject.name.strategy": record_subject_name_strategy},
    )(_sample("Alert"), ctx)
    codec = AvroCodec(registry=registry)
    assert _normalise(codec.decode(theirs, "Alert")[1]) == _normalise(_sample("Alert"))
    ours = codec.encode("Alert", _sample("Alert"))
    back = AvroDeserializer(registry._client)(ours, ctx)
    assert _normalise(back) == _normalise(_sample("Alert"))
