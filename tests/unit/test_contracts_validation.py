"""Validation of CaseEvents (JSON and Avro): field-named reasons, no personal data echoed."""

from __future__ import annotations

import json
from copy import deepcopy
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hub.contracts.codec import AvroCodec
from hub.contracts.decode import (
    InvalidCaseEvent,
    Rejection,
    RejectReason,
    case_event_from_avro_dict,
    case_event_to_avro_dict,
    case_event_to_json,
    decode_case_event,
    decode_case_events,
    decode_inbound_many,
    encode_case_event,
    parse_case_event_json,
)
from hub.contracts.enums import Source
from hub.contracts.events import CaseEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLE: dict[str, Any] = json.loads((FIXTURES / "contracts" / "samples.json").read_text())[
    "CaseEvent"
]
CODEC = AvroCodec()


def _with(**changes: Any) -> dict[str, Any]:
    event = deepcopy(SAMPLE)
    for dotted, value in changes.items():
        target = event
        *parents, leaf = dotted.split("__")
        for p in parents:
            target = target[p]
        if value is ...:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return event


def _rejected(obj: Any) -> Rejection:
    result = parse_case_event_json(obj)
    assert isinstance(result, Rejection), result
    return result


def test_the_sample_event_is_valid_in_json_and_survives_avro() -> None:
    event = parse_case_event_json(json.dumps(SAMPLE).encode())
    assert isinstance(event, CaseEvent)
    assert event.occurred_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert event.amount_eur == Decimal("48250.00")
    assert decode_case_event(encode_case_event(event, CODEC), CODEC) == event


def test_avro_dict_conversion_round_trips() -> None:
    event = parse_case_event_json(SAMPLE)
    assert isinstance(event, CaseEvent)
    assert case_event_from_avro_dict(case_event_to_avro_dict(event)) == event
    assert parse_case_event_json(case_event_to_json(event)) == event


def test_the_raising_conversion_carries_the_rejection() -> None:
    record = case_event_to_avro_dict(parse_case_event_json(SAMPLE))  # type: ignore[arg-type]
    record["address"]["postcode"] = "SS12"
    with pytest.raises(InvalidCaseEvent) as info:
        case_event_from_avro_dict(record)
    assert info.value.rejection.field == "address.postcode"


def test_bad_postcode_message_names_field_value_and_rule() -> None:
    r = _rejected(_with(address__postcode="SS12"))
    assert r.reason_code == RejectReason.INVALID_FIELD
    assert r.field == "address.postcode"
    assert r.message == "address.postcode: 'SS12' is not a Dutch postcode"


@pytest.mark.parametrize("postcode", ["9711SA", "9711 sd", "0711AB", "9711A", "97111AB"])
def test_postcodes_that_cannot_exist_are_rejected(postcode: str) -> None:
    assert _rejected(_with(address__postcode=postcode)).field == "address.postcode"


@pytest.mark.parametrize("postcode", ["9711AB", "9711 ab", " 9711ab "])
def test_postcodes_in_source_spelling_are_accepted_unnormalised(postcode: str) -> None:
    event = parse_case_event_json(_with(address__postcode=postcode))
    assert isinstance(event, CaseEvent)
    assert event.address.postcode == postcode.strip()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("address__nummeraanduiding_id", "0014100000123456"),
        ("address__pand_id", "14100000654321"),
        ("address__gemeentecode", "0014"),
        ("address__huisnummer", 0),
        ("address__huisnummer", 100000),
        ("address__huisnummer", "A12"),
        ("address__huisnummer", True),
    ],
)
def test_bag_shapes_are_checked(field: str, value: Any) -> None:
    r = _rejected(_with(**{field: value}))
    assert r.field == field.replace("__", ".")
    assert r.reason_code == RejectReason.INVALID_FIELD


def test_an_address_must_identify_a_place() -> None:
    r = _rejected(
        _with(address={"postcode": "9711AB", "huisletter": "A", "gemeentecode": "GM0014"})
    )
    assert r.field == "address"
    assert "postcode + huisnummer" in r.message


def test_empty_strings_count_as_absent() -> None:
    event = parse_case_event_json(
        _with(address__huisletter="", address__pand_id="", source_org="", contact__phone="")
    )
    assert isinstance(event, CaseEvent)
    assert event.address.pand_id is None and event.source_org is None
    assert event.contact is not None and event.contact.phone is None


def test_missing_required_field_is_missing_field() -> None:
    r = _rejected(_with(case_id=...))
    assert (r.reason_code, r.field, r.message) == (
        RejectReason.MISSING_FIELD,
        "case_id",
        "case_id: is required",
    )


def test_unknown_field_is_invalid() -> None:
    r = _rejected(_with(priority="high"))
    assert r.field == "priority" and "not a field" in r.message


@pytest.mark.parametrize("source", ["WATER_COMPANY", "ncg", "UNKNOWN", None])
def test_unknown_sources_are_unknown_source(source: Any) -> None:
    r = _rejected(_with(source=source))
    assert (r.reason_code, r.field) == (RejectReason.UNKNOWN_SOURCE, "source")


@pytest.mark.parametrize(
    "occurred_at",
    ["2024-05-01T10:00:00", "2024-05-01", 1714557600, "1714557600", "yesterday", None],
)
def test_occurred_at_must_be_iso_8601_with_offset(occurred_at: Any) -> None:
    r = _rejected(_with(occurred_at=occurred_at))
    assert r.field == "occurred_at"


def test_occurred_at_with_z_or_offset_is_the_same_instant() -> None:
    a = parse_case_event_json(_with(occurred_at="2024-05-01T08:00:00Z"))
    b = parse_case_event_json(_with(occurred_at="2024-05-01T10:00:00+02:00"))
    assert isinstance(a, CaseEvent) and isinstance(b, CaseEvent)
    assert a.occurred_at == b.occurred_at


@pytest.mark.parametrize("value", ["2024-13-01", 20240901, "next week"])
def test_planned_dates_must_be_iso_dates(value: Any) -> None:
    assert _rejected(_with(planned_start=value)).field == "planned_start"


def test_work_window_must_not_end_before_it_starts() -> None:
    r = _rejected(_with(planned_start="2025-02-01", planned_end="2025-01-31"))
    assert r.field == "planned_end" and "on or after planned_start" in r.message


@pytest.mark.parametrize("amount", ["-1.00", "1.234", "NaN", "Infinity", "1e20", True, "abc"])
def test_amounts_must_be_non_negative_with_two_decimals(amount: Any) -> None:
    assert _rejected(_with(amount_eur=amount)).field == "amount_eur"


@pytest.mark.parametrize(("amount", "expected"), [(0.1, "0.1"), ("12.5", "12.5"), (5000, "5000")])
def test_amounts_may_be_strings_or_numbers_without_float_noise(amount: Any, expected: str) -> None:
    event = parse_case_event_json(_with(amount_eur=amount))
    assert isinstance(event, CaseEvent) and event.amount_eur == Decimal(expected)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contact__name", "X" * 300),
        ("contact__phone", "06-" + "9" * 60),
        ("contact__email", "secret@" + "x" * 300),
        ("contact__role", "NEIGHBOUR_JAN_JANSEN"),
    ],
)
def test_contact_values_are_never_echoed(field: str, value: str) -> None:
    r = _rejected(_with(**{field: value}))
    assert r.field == field.replace("__", ".")
    assert value not in r.message and value[:10] not in r.message
    assert all(value[:10] not in d for d in r.details)


def test_attribute_values_are_never_echoed() -> None:
    r = _rejected(_with(attributes={"note": 12345678}))
    assert r.field == "attributes.note" and "12345678" not in r.message


def test_several_errors_lead_with_the_first_and_count_the_rest() -> None:
    r = _rejected(_with(case_type="SOMETHING", address__postcode="SS12"))
    assert r.field == "case_type"
    assert r.message.endswith("(and 1 more)")
    assert any(d.startswith("address.postcode:") for d in r.details)


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1, 2]", b"null", b'"str"', b"{", "{}".encode("utf-16")]
)
def test_non_objects_are_undecodable_or_missing_fields(raw: bytes) -> None:
    r = _rejected(raw)
    assert r.reason_code in (RejectReason.UNDECODABLE, RejectReason.MISSING_FIELD)


def test_json_rejection_echoes_long_values_shortened() -> None:
    r = _rejected(_with(event_id="e" * 500))
    assert r.field == "event_id" and len(r.message) < 200


def test_avro_rejections_carry_the_same_field_and_message_as_json() -> None:
    bad_json = _with(address__postcode="SS12")
    record = case_event_to_avro_dict(parse_case_event_json(SAMPLE))  # type: ignore[arg-type]
    record["address"]["postcode"] = "SS12"
    raw = CODEC.encode("CaseEvent", record)
    via_avro = decode_case_event(raw, CODEC)
    via_json = _rejected(bad_json)
    assert isinstance(via_avro, Rejection)
    assert (via_avro.reason_code, via_avro.field, via_avro.message) == (
        via_json.reason_code,
        via_json.field,
        via_json.message,
    )
    assert via_avro.stage == "validate"


def test_publishing_the_reader_default_source_is_rejected_in_avro_too() -> None:
    record = case_event_to_avro_dict(parse_case_event_json(SAMPLE))  # type: ignore[arg-type]
    record["source"] = Source.UNKNOWN.value
    result = decode_case_event(CODEC.encode("CaseEvent", record), CODEC)
    assert isinstance(result, Rejection) and result.reason_code == RejectReason.UNKNOWN_SOURCE


def test_batch_decode_matches_one_by_one() -> None:
    good = encode_case_event(parse_case_event_json(SAMPLE), CODEC)  # type: ignore[arg-type]
    record = case_event_to_avro_dict(parse_case_event_json(SAMPLE))  # type: ignore[arg-type]
    record["address"]["gemeentecode"] = "GM14"
    invalid = CODEC.encode("CaseEvent", record)
    raws = [good, b"\xc3\x01garbage", invalid, good]
    assert decode_case_events(raws, CODEC) == [decode_case_event(r, CODEC) for r in raws]
    kinds = [type(x).__name__ for x in decode_case_events(raws, CODEC)]
    assert kinds == ["CaseEvent", "Rejection", "Rejection", "CaseEvent"]


def test_inbound_batch_decoder_gives_what_the_per_message_path_gives_in_order() -> None:
    """The ingest stage decodes a poll batch at once: JSON and Avro mixed, good and bad, too
    large, empty; every slot equals what decode_case_event / parse_case_event_json return."""
    good = CODEC.encode("CaseEvent", case_event_to_avro_dict(CaseEvent.model_validate(SAMPLE)))
    record = case_event_to_avro_dict(CaseEvent.model_validate(SAMPLE))
    record["address"]["gemeentecode"] = "GM14"
    invalid = CODEC.encode("CaseEvent", record)
    json_good = json.dumps(SAMPLE).encode()
    json_bad = json.dumps(_with(address__postcode="SS12")).encode()
    huge = b"{" + b" " * (300 * 1024) + b"}"
    huge_avro = b"\xc3\x01" + b"\x00" * (300 * 1024)
    raws = [good, json_good, b"\xc3\x01garbage", invalid, json_bad, b"", b"{not json", huge]
    raws += [huge_avro, good]

    def one(raw: bytes) -> object:
        return parse_case_event_json(raw) if raw[:1] == b"{" else decode_case_event(raw, CODEC)

    got = decode_inbound_many(raws, CODEC)
    assert got == [one(r) for r in raws]
    assert [type(x).__name__ for x in got] == [
        "CaseEvent",
        "CaseEvent",
        "Rejection",
        "Rejection",
        "Rejection",
        "Rejection",
        "Rejection",
        "Rejection",
        "Rejection",
        "CaseEvent",
    ]
    assert decode_inbound_many([good, invalid], CODEC) == decode_case_events([good, invalid], CODEC)
