"""Size bounds of the CaseEvent contract and the plausibility of occurred_at (issue 12 D1/D2, D6).

Every refusal names the field and the rule; values of contact data and attributes are never
echoed. Both the JSON and the Avro path are checked: they share the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.contracts.avro import CASE_EVENT
from hub.contracts.codec import AvroCodec
from hub.contracts.decode import (
    Rejection,
    RejectReason,
    Stage,
    case_event_to_avro_dict,
    decode_case_event,
    decode_case_events,
    parse_case_event_json,
)
from hub.contracts.events import (
    MAX_ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_RECORD_BYTES,
    CaseEvent,
    OccurredAtBounds,
    occurred_at_bounds,
    set_occurred_at_bounds,
)
from hub.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLE: dict[str, Any] = json.loads((FIXTURES / "contracts" / "samples.json").read_text())[
    "CaseEvent"
]
CODEC = AvroCodec()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock() -> Iterator[None]:
    """Default bounds, but a fixed 'now' so the future margin is exact and testable."""
    set_occurred_at_bounds(OccurredAtBounds(clock=NOW.timestamp))
    yield
    set_occurred_at_bounds(None)


def _event(**changes: Any) -> dict[str, Any]:
    event = deepcopy(SAMPLE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = event
        for p in parents:
            target = target[p]
        target[leaf] = value
    return event


def _json(obj: dict[str, Any]) -> CaseEvent | Rejection:
    return parse_case_event_json(json.dumps(obj).encode())


def _avro(obj: dict[str, Any]) -> CaseEvent | Rejection:
    """The same event through the Avro path (encoded without validation, as an agency would)."""
    valid = parse_case_event_json(_event())
    assert isinstance(valid, CaseEvent)
    record = case_event_to_avro_dict(valid)
    for key in ("event_id", "case_id", "source_org", "attributes"):
        record[key] = obj.get(key, record[key])
    record["address"] = {**record["address"], **obj.get("address", {})}
    if obj.get("contact") is not None:
        record["contact"] = {**(record["contact"] or {}), **obj["contact"]}
    if "occurred_at" in obj:
        record["occurred_at"] = datetime.fromisoformat(obj["occurred_at"])
    return decode_case_event(CODEC.encode(CASE_EVENT, record), CODEC)


BOUNDED_STRINGS = [
    # (dotted field, longest accepted value, shortest refused value, personal?)
    ("event_id", "e" * 200, "e" * 201, False),
    ("case_id", "c" * 200, "c" * 201, False),
    ("source_org", "o" * 200, "o" * 201, False),
    ("address__huisnummer", "12" + "A" * 30, "12" + "A" * 31, False),
    ("address__huisletter", "A" * 8, "A" * 9, False),
    ("address__huisnummertoevoeging", "B" * 16, "B" * 17, False),
    ("contact__name", "N" * 200, "N" * 201, True),
    ("contact__phone", "0" * 40, "0" * 41, True),
    ("contact__email", "a@" + "x" * 252, "a@" + "x" * 253, True),
]


@pytest.mark.parametrize("decode", [_json, _avro], ids=["json", "avro"])
@pytest.mark.parametrize(("field", "longest", "too_long", "personal"), BOUNDED_STRINGS)
def test_every_free_string_is_bounded_and_the_refusal_names_the_field(
    decode: Any, field: str, longest: str, too_long: str, personal: bool
) -> None:
    assert isinstance(decode(_event(**{field: longest})), CaseEvent)
    refused = decode(_event(**{field: too_long}))
    assert isinstance(refused, Rejection)
    assert refused.reason_code == RejectReason.INVALID_FIELD
    assert refused.field == field.replace("__", ".")
    assert refused.stage == Stage.VALIDATE
    if personal:
        assert too_long[:10] not in refused.message


@pytest.mark.parametrize("decode", [_json, _avro], ids=["json", "avro"])
def test_more_than_64_attributes_are_refused(decode: Any) -> None:
    at_limit = {f"k{i}": "v" for i in range(MAX_ATTRIBUTES)}
    assert isinstance(decode(_event(attributes=at_limit)), CaseEvent)
    refused = decode(_event(attributes={**at_limit, "one_more": "v"}))
    assert isinstance(refused, Rejection)
    assert (refused.reason_code, refused.field) == (RejectReason.INVALID_FIELD, "attributes")
    assert f"at most {MAX_ATTRIBUTES} items" in refused.message


@pytest.mark.parametrize("decode", [_json, _avro], ids=["json", "avro"])
def test_an_attribute_key_over_64_characters_is_refused_without_naming_it(decode: Any) -> None:
    assert isinstance(decode(_event(attributes={"k" * MAX_ATTRIBUTE_KEY: "v"})), CaseEvent)
    key = "Jan Jansen " + "k" * MAX_ATTRIBUTE_KEY
    refused = decode(_event(attributes={key: "v"}))
    assert isinstance(refused, Rejection)
    assert (refused.reason_code, refused.field) == (RejectReason.INVALID_FIELD, "attributes")
    assert "a key should have at most 64 characters" in refused.message
    assert "Jan" not in refused.message and all("Jan" not in d for d in refused.details)


@pytest.mark.parametrize("decode", [_json, _avro], ids=["json", "avro"])
def test_an_attribute_value_over_2000_characters_is_refused_without_echoing_it(
    decode: Any,
) -> None:
    assert isinstance(decode(_event(attributes={"note": "v" * MAX_ATTRIBUTE_VALUE})), CaseEvent)
    refused = decode(_event(attributes={"note": "Jansen" + "v" * MAX_ATTRIBUTE_VALUE}))
    assert isinstance(refused, Rejection)
    assert (refused.reason_code, refused.field) == (RejectReason.INVALID_FIELD, "attributes.note")
    assert "at most 2000 characters" in refused.message and "Jansen" not in refused.message


@pytest.mark.parametrize("decode", [_json, _avro], ids=["json", "avro"])
def test_attributes_over_64_kib_in_total_are_refused(decode: Any) -> None:
    """Each entry within its bound, but 64 x 600 two-byte characters is 75 KB together."""
    refused = decode(_event(attributes={f"k{i}": "é" * 600 for i in range(MAX_ATTRIBUTES)}))
    assert isinstance(refused, Rejection)
    assert (refused.reason_code, refused.field) == (RejectReason.INVALID_FIELD, "attributes")
    assert f"at most {MAX_ATTRIBUTES_BYTES} bytes" in refused.message and "é" not in refused.message


def test_the_largest_event_valid_field_by_field_fits_the_record_bound() -> None:
    """What HTTP and file import accept (they validate parsed JSON, not bytes) is never refused
    for its size by the ingest stage: every field at its bound, 4-byte characters throughout."""
    wide = "\U0001f3e0"  # 4 bytes in UTF-8
    per_value = MAX_ATTRIBUTES_BYTES // MAX_ATTRIBUTES // 4 - 2
    attributes = {f"k{i:02d}": wide * per_value for i in range(MAX_ATTRIBUTES)}
    event = _event(
        event_id=wide * 200,
        case_id=wide * 200,
        source_org=wide * 200,
        contact={"name": wide * 200, "phone": wide * 40, "email": wide * 254},
        attributes=attributes,
        address__huisletter=wide * 8,
        address__huisnummertoevoeging=wide * 16,
    )
    valid = _json(event)
    assert isinstance(valid, CaseEvent)
    encoded = CODEC.encode(CASE_EVENT, case_event_to_avro_dict(valid))
    assert len(encoded) < MAX_RECORD_BYTES
    assert isinstance(decode_case_event(encoded, CODEC), CaseEvent)


def test_an_attribute_key_that_is_not_plain_text_is_never_a_field_path() -> None:
    refused = _json(_event(attributes={"line\nCRITICAL forged": "v" * (MAX_ATTRIBUTE_VALUE + 1)}))
    assert isinstance(refused, Rejection)
    assert refused.field == "attributes" and "\n" not in refused.message


def test_a_record_over_256_kib_is_refused_at_decode_before_parsing() -> None:
    """JSON, Avro, and the batch decoder; the batch keeps its other results in place."""
    huge_json = json.dumps(_event(attributes={"pad": "x" * MAX_RECORD_BYTES})).encode()
    avro_ok = CODEC.encode(CASE_EVENT, case_event_to_avro_dict(CaseEvent.model_validate(_event())))
    huge_avro = avro_ok + b"\x00" * MAX_RECORD_BYTES
    for refused in (parse_case_event_json(huge_json), decode_case_event(huge_avro, CODEC)):
        assert isinstance(refused, Rejection)
        assert refused.reason_code == RejectReason.RECORD_TOO_LARGE
        assert refused.stage == Stage.DECODE and refused.field is None
        assert str(MAX_RECORD_BYTES) in refused.message
    batch = decode_case_events([avro_ok, huge_avro, avro_ok], CODEC)
    assert [type(r).__name__ for r in batch] == ["CaseEvent", "Rejection", "CaseEvent"]
    assert isinstance(batch[1], Rejection)
    assert batch[1].reason_code == RejectReason.RECORD_TOO_LARGE


def test_a_record_of_exactly_256_kib_is_not_refused_for_its_size() -> None:
    raw = json.dumps(_event(attributes={"pad": "x"})).encode()
    padded = raw[:-1] + b" " * (MAX_RECORD_BYTES - len(raw)) + b"}"
    assert len(padded) == MAX_RECORD_BYTES
    assert isinstance(parse_case_event_json(padded), CaseEvent)


# ----------------------------------------------------------------------------- occurred_at


@pytest.mark.parametrize("decode", [_json, _avro], ids=["json", "avro"])
def test_occurred_at_more_than_a_day_ahead_is_refused(decode: Any) -> None:
    edge = (NOW + timedelta(days=1)).isoformat()
    assert isinstance(decode(_event(occurred_at=edge)), CaseEvent)
    typo = decode(_event(occurred_at="2204-05-01T10:00:00+02:00"))
    just_over = decode(_event(occurred_at=(NOW + timedelta(days=1, seconds=1)).isoformat()))
    for refused in (typo, just_over):
        assert isinstance(refused, Rejection)
        assert (refused.reason_code, refused.field) == (RejectReason.INVALID_FIELD, "occurred_at")
        assert "is more than 1 day in the future" in refused.message


@pytest.mark.parametrize("decode", [_json, _avro], ids=["json", "avro"])
def test_occurred_at_before_the_huizinge_quake_is_refused(decode: Any) -> None:
    assert isinstance(decode(_event(occurred_at="2012-01-01T00:00:00Z")), CaseEvent)
    refused = decode(_event(occurred_at="2011-12-31T23:59:59Z"))
    assert isinstance(refused, Rejection)
    assert (refused.reason_code, refused.field) == (RejectReason.INVALID_FIELD, "occurred_at")
    assert "is before 2012-01-01T00:00:00Z" in refused.message


def test_occurred_at_bounds_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_OCCURRED_AT_FLOOR", "2018-01-01T00:00:00Z")
    monkeypatch.setenv("HUB_OCCURRED_AT_MAX_FUTURE", "PT6H")
    settings = Settings()
    assert settings.occurred_at_floor == datetime(2018, 1, 1, tzinfo=UTC)
    assert settings.occurred_at_max_future == timedelta(hours=6)
    set_occurred_at_bounds(
        OccurredAtBounds(settings.occurred_at_floor, settings.occurred_at_max_future, NOW.timestamp)
    )
    old = _json(_event(occurred_at="2017-06-01T00:00:00Z"))
    ahead = _json(_event(occurred_at=(NOW + timedelta(hours=7)).isoformat()))
    assert isinstance(old, Rejection) and isinstance(ahead, Rejection)
    assert "is more than 6 hours in the future" in ahead.message


def test_default_bounds_are_the_settings_defaults() -> None:
    set_occurred_at_bounds(None)
    bounds = occurred_at_bounds()
    assert bounds.floor == datetime(2012, 1, 1, tzinfo=UTC)
    assert bounds.max_future == timedelta(days=1)


def test_a_floor_without_offset_is_refused_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_OCCURRED_AT_FLOOR", "2012-01-01T00:00:00")
    with pytest.raises(ValueError, match="occurred_at_floor"):
        Settings()
