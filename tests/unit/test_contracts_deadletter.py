"""Dead-letter headers in Kafka Connect style, their parser, and the DeadLetter record."""

from __future__ import annotations

from hub.contracts.codec import AvroCodec
from hub.contracts.deadletter import (
    H_EXCEPTION_CLASS,
    H_EXCEPTION_MESSAGE,
    H_FIELD,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_STAGE,
    H_TIMESTAMP,
    H_TOPIC,
    DeadLetter,
    dead_letter_headers,
    parse_dead_letter,
    rejection_headers,
)
from hub.contracts.decode import Rejection, decode_case_event, parse_case_event_json

ORIGINAL = b"\xc3\x01\x00\x01\x02 not really avro"


def _rejection() -> Rejection:
    result = decode_case_event(ORIGINAL, AvroCodec())
    assert isinstance(result, Rejection)
    return result


def test_headers_follow_kafka_connect_names_and_carry_hub_reason_and_field() -> None:
    rejection = parse_case_event_json(
        b'{"event_id":"e","source":"NCG","case_id":"c","case_type":"DAMAGE","status":"OPENED",'
        b'"occurred_at":"2024-05-01T10:00:00+02:00","address":{"postcode":"SS12","huisnummer":1}}'
    )
    assert isinstance(rejection, Rejection)
    headers = rejection_headers(
        rejection, topic="hub.case-events", partition=2, offset=1234, rejected_at_ms=1714550400000
    )
    as_dict = dict(headers)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers)
    assert as_dict[H_TOPIC] == b"hub.case-events"
    assert as_dict[H_PARTITION] == b"2"
    assert as_dict[H_OFFSET] == b"1234"
    assert as_dict[H_EXCEPTION_CLASS] == b"pydantic_core.ValidationError"
    assert as_dict[H_EXCEPTION_MESSAGE] == b"address.postcode: 'SS12' is not a Dutch postcode"
    assert as_dict[H_REASON] == b"INVALID_FIELD"
    assert as_dict[H_FIELD] == b"address.postcode"
    assert as_dict[H_STAGE] == b"validate"
    assert as_dict[H_TIMESTAMP] == b"1714550400000"


def test_headers_parse_back_into_the_same_dead_letter_with_original_bytes() -> None:
    dl = DeadLetter.from_rejection(
        _rejection(), payload=ORIGINAL, key=b"9711AB-12A-", topic="t", partition=0, offset=7
    )
    parsed = parse_dead_letter(dl.headers(), ORIGINAL, b"9711AB-12A-")
    assert parsed == dl
    assert parsed.payload is ORIGINAL  # untouched, not re-encoded


def test_decode_failures_have_no_field_and_the_decode_stage() -> None:
    dl = DeadLetter.from_rejection(_rejection(), payload=ORIGINAL, topic="t", partition=0, offset=1)
    names = [name for name, _ in dl.headers()]
    assert H_FIELD not in names
    assert dl.stage == "decode" and dl.reason == "UNKNOWN_SCHEMA"


def test_non_kafka_rejects_omit_topic_partition_offset_but_say_where_they_came_from() -> None:
    dl = DeadLetter.from_rejection(
        _rejection(), payload=b"{}", origin="file", location="import/2024-05.jsonl", offset=17
    )
    names = [name for name, _ in dl.headers()]
    assert H_TOPIC not in names and H_PARTITION not in names
    assert parse_dead_letter(dl.headers(), b"{}").location == "import/2024-05.jsonl"


def test_foreign_or_missing_headers_still_parse() -> None:
    dl = parse_dead_letter([("x", b"y"), (H_PARTITION, b"not-a-number"), ("z", None)], None)
    assert dl.reason == "UNKNOWN" and dl.partition is None and dl.payload is None
    assert parse_dead_letter(None, b"v").payload == b"v"


def test_dead_letter_record_round_trips_through_avro_with_bytes_intact() -> None:
    codec = AvroCodec()
    dl = DeadLetter.from_rejection(
        _rejection(), payload=ORIGINAL, key=None, origin="http", location="req-1"
    )
    name, record = codec.decode(codec.encode("DeadLetter", dl.to_avro_dict()))
    assert name == "DeadLetter"
    assert DeadLetter.from_avro_dict(record) == dl


def test_long_messages_are_cut() -> None:
    rejection = Rejection("INVALID_FIELD", "x", "x: " + "y" * 5000)
    headers = dict(rejection_headers(rejection, topic="t", partition=0, offset=0))
    assert len(headers[H_EXCEPTION_MESSAGE]) == 1000


def test_stage_override_replaces_the_rejection_stage_only_when_given() -> None:
    rejection = Rejection("INVALID_FIELD", "x", "x: bad", stage="validate")
    default = dict(dead_letter_headers(rejection, topic="t", partition=0, offset=0))
    override = dict(
        dead_letter_headers(rejection, topic="t", partition=0, offset=0, stage="ingest")
    )
    assert default[H_STAGE] == b"validate" and override[H_STAGE] == b"ingest"
