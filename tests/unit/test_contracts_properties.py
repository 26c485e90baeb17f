"""Property tests: whatever arrives ends as a CaseEvent or a Rejection with a reason."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.contracts.avro import default_schema_set
from hub.contracts.codec import AvroCodec, InMemorySchemaRegistry
from hub.contracts.decode import (
    Rejection,
    RejectReason,
    case_event_to_avro_dict,
    decode_case_event,
    decode_case_events,
    encode_case_event,
    parse_case_event_json,
)
from hub.contracts.enums import CaseStatus, CaseType, ContactRole, Source
from hub.contracts.events import Address, CaseEvent, Contact

SAMPLE = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "samples.json").read_text()
)["CaseEvent"]
REGISTRY = InMemorySchemaRegistry()
CODEC = AvroCodec(registry=REGISTRY, framing="single_object")
CONFLUENT = AvroCodec(registry=REGISTRY)
VALID = encode_case_event(parse_case_event_json(SAMPLE), CODEC)  # type: ignore[arg-type]
VALID_CF = encode_case_event(parse_case_event_json(SAMPLE), CONFLUENT)  # type: ignore[arg-type]
HEADER = b"\xc3\x01" + default_schema_set().current("CaseEvent").fingerprint
KNOWN_REASONS = {r.value for r in RejectReason}
PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ends_well(result: Any) -> None:
    assert isinstance(result, CaseEvent | Rejection)
    if isinstance(result, Rejection):
        assert result.reason_code in KNOWN_REASONS
        assert result.message and result.stage in ("decode", "validate")


@PROPS
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_exceptions(raw: bytes) -> None:
    _ends_well(decode_case_event(raw, CODEC))


@PROPS
@given(st.sampled_from([HEADER, b"\x00\x00\x00\x00\x01"]), st.binary(max_size=300))
def test_random_bodies_behind_a_valid_header_never_escape(header: bytes, body: bytes) -> None:
    _ends_well(decode_case_event(header + body, CODEC))


@PROPS
@given(st.sampled_from([VALID, VALID_CF]), st.data())
def test_corrupted_valid_messages_never_escape(valid: bytes, data: st.DataObject) -> None:
    raw = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos : pos + data.draw(st.integers(1, 8))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _ends_well(decode_case_event(bytes(raw), CODEC))


@PROPS
@given(st.lists(st.binary(max_size=60) | st.just(VALID), max_size=8))
def test_batch_decode_never_escapes_and_keeps_one_result_per_input(raws: list[bytes]) -> None:
    out = decode_case_events(raws, CODEC)
    assert len(out) == len(raws)
    for result in out:
        _ends_well(result)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@PROPS
@given(json_values)
def test_random_json_never_escapes(value: Any) -> None:
    _ends_well(parse_case_event_json(value))
    try:
        text = json.dumps(value)
    except ValueError:
        return
    _ends_well(parse_case_event_json(text))


FIELD_PATHS = [
    *[(k,) for k in SAMPLE],
    *[("address", k) for k in SAMPLE["address"]],
    *[("contact", k) for k in SAMPLE["contact"]],
]


@PROPS
@given(st.sampled_from(FIELD_PATHS), json_values)
def test_random_values_in_each_field_give_a_rejection_naming_a_field(
    path: tuple[str, ...], value: Any
) -> None:
    event = json.loads(json.dumps(SAMPLE))
    target = event
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    result = parse_case_event_json(event)
    _ends_well(result)
    if isinstance(result, Rejection) and result.reason_code != RejectReason.UNDECODABLE:
        assert result.field is not None
        assert result.message.startswith(f"{result.field}:")


# ------------------------------------------------------------------ valid events round-trip

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
_clean = _text.map(str.strip).filter(bool)
# occurred_at within the plausible range (2012-01-01Z .. now + 1 day; a past upper end suffices)
_when = st.datetimes(
    min_value=datetime(2012, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
_day = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1))
_digits = st.text("0123456789", min_size=10, max_size=10)

addresses = st.sampled_from(["0014", "1979"]).flatmap(
    lambda gm: st.builds(
        Address,
        nummeraanduiding_id=st.none() | _digits.map(lambda d: f"{gm}20{d}"),
        pand_id=st.none() | _digits.map(lambda d: f"{gm}10{d}"),
        postcode=st.just("9711AB") | st.just("9934 cd"),
        huisnummer=st.integers(1, 99999) | st.just("12A"),
        huisletter=st.none() | st.sampled_from("ABCabc"),
        huisnummertoevoeging=st.none() | st.just("2"),
        gemeentecode=st.none() | st.just(f"GM{gm}"),
    )
)

events = st.builds(
    CaseEvent,
    event_id=_clean,
    source=st.sampled_from([s for s in Source if s is not Source.UNKNOWN]),
    source_org=st.none() | _clean,
    case_id=_clean,
    case_type=st.sampled_from(CaseType),
    status=st.sampled_from(CaseStatus),
    occurred_at=_when,
    address=addresses,
    planned_start=st.none() | _day,
    planned_end=st.none(),
    contact=st.none()
    | st.builds(
        Contact,
        name=st.none() | _clean,
        role=st.none() | st.sampled_from(ContactRole),
        phone=st.none() | st.just("+31 50 123 4567"),
        email=st.none() | st.just("a@example.nl"),
    ),
    amount_eur=st.none() | st.decimals(min_value=0, max_value=Decimal("999999999999.99"), places=2),
    attributes=st.dictionaries(_clean, _clean, max_size=3),
)


@PROPS
@given(events, st.sampled_from([CODEC, CONFLUENT]), st.integers(0, 400))
def test_valid_events_round_trip_through_avro_and_json(
    event: CaseEvent, codec: AvroCodec, days: int
) -> None:
    if event.planned_start is not None:
        event = event.model_copy(update={"planned_end": event.planned_start + timedelta(days)})
    assert decode_case_event(encode_case_event(event, codec), codec) == event
    assert parse_case_event_json(event.model_dump_json()) == event
    assert CaseEvent.model_validate(case_event_to_avro_dict(event)) == event
