"""The fast path of CaseEvent validation builds exactly pydantic's CaseEvent, or steps aside.

:func:`hub.contracts.fast_validate.accept` may return None for anything (pydantic then decides);
what it must never do is accept a record pydantic refuses, or build a CaseEvent that differs from
pydantic's in any value, type, field order or ``model_fields_set``, or change the caller's record.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bench.workload import to_wire
from connectors.simulator import simulate
from hub.contracts import decode, fast_validate
from hub.contracts.codec import get_codec
from hub.contracts.decode import CASE_EVENT, validate_avro_case_event, validate_avro_case_events
from hub.contracts.events import CaseEvent
from tests.unit.test_batch_validation import RECORD as SAMPLE
from tests.unit.test_batch_validation import _mutated

# the sample as the Avro reader gives it: occurred_at in UTC (timestamp-millis)
RECORD = {**SAMPLE, "occurred_at": SAMPLE["occurred_at"].astimezone(UTC)}

_AVRO_EXTRA: Any = "ignore"

# every kind of character at either end that one side might strip and the other not
_EDGES = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680", "\u2000"]
_EDGES += ["\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff", "é", "0"]


def _around(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", *_EDGES]), core, st.sampled_from(["", *_EDGES])).map(
        "".join
    )


def _sized(n: int) -> st.SearchStrategy[str]:
    """Strings at and around a length bound."""
    return st.sampled_from([0, 1, n - 1, n, n + 1]).map(lambda k: "x" * max(k, 0))


_TEXT = _around(st.sampled_from(["", "a", "Zaakbegeleider 116", "x" * 199, "x" * 200]))
_MAYBE_TEXT = st.none() | _TEXT | _sized(200) | _sized(40) | _sized(254)

_FIELDS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("event_id",): _TEXT | _sized(200) | st.integers(0, 3),
    ("case_id",): _TEXT | _sized(200) | st.none(),
    ("source_org",): _MAYBE_TEXT,
    ("source",): st.sampled_from(["NCG", "IMG", "UNKNOWN", "ncg", " NCG", "", "OTHER", None])
    | st.just(["NCG"]),
    ("case_type",): st.sampled_from(["DAMAGE", "STRENGTHENING", "damage", "", None, 1]),
    ("status",): st.sampled_from(["OPENED", "CLOSED", "opened", "", None]),
    ("occurred_at",): st.sampled_from(
        [
            datetime(2024, 5, 1, 10, tzinfo=UTC),
            datetime(2012, 1, 1, tzinfo=UTC),  # the floor itself
            datetime(2011, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 5, 1, 10),  # naive
            datetime.now(UTC) + timedelta(hours=23),
            datetime.now(UTC) + timedelta(days=2),
            date(2024, 5, 1),
            "2024-05-01T10:00:00Z",
        ]
    ),
    ("planned_start",): st.none() | st.dates(date(2023, 1, 1), date(2023, 1, 5)),
    ("planned_end",): st.none()
    | st.dates(date(2023, 1, 1), date(2023, 1, 5))
    | st.just(datetime(2023, 1, 3, tzinfo=UTC)),
    ("amount_eur",): st.none()
    | st.sampled_from(
        [
            Decimal("0.00"),
            Decimal("-0.00"),
            Decimal("-1.00"),
            Decimal("5000.00"),
            Decimal("5000"),
            Decimal("5000.5"),
            Decimal("5000.505"),
            Decimal("1E+3"),
            Decimal("999999999999.99"),
            Decimal("9999999999999.99"),
            Decimal("99999999999999"),
            Decimal("999999999999"),
            Decimal("9999999999999"),
            Decimal("0.05"),
            Decimal("NaN"),
            Decimal("Infinity"),
            1.5,
            100,
        ]
    ),
    ("attributes",): st.dictionaries(
        _around(st.sampled_from(["", "k", "x" * 63, "x" * 64, "x" * 65])),
        _around(st.sampled_from(["", "v", "x" * 1999, "x" * 2000])),
        max_size=3,
    )
    | st.just({f"k{i}": "v" for i in range(65)})
    | st.just({f"k{i}": "€" * 1000 for i in range(40)})
    | st.just({f"k{i}": "x" * 2000 for i in range(20)})
    | st.just({"k": 1})
    | st.just([("k", "v")]),
    ("address", "nummeraanduiding_id"): st.none()
    | _around(st.sampled_from(["0014200000084615", "0014100000084615", "001420000008461", "١٢"])),
    ("address", "pand_id"): st.none()
    | _around(st.sampled_from(["0014100000291730", "0014200000291730", "00141000002917301"])),
    ("address", "postcode"): st.none()
    | _around(st.sampled_from(["9711RK", "9711 rk", "9711  RK", "0711RK", "9711SA", "9711SB"])),
    ("address", "huisnummer"): st.none()
    | st.sampled_from([0, 1, 114, 99999, 100000, -3, True, 1.0])
    | _around(st.sampled_from(["12", "12A", "10-6", "0", "12\nA", "123456", "12" + "x" * 30])),
    ("address", "huisletter"): st.none() | _around(st.sampled_from(["", "A", "x" * 8, "x" * 9])),
    ("address", "huisnummertoevoeging"): st.none() | _around(st.sampled_from(["", "10", "x" * 17])),
    ("address", "gemeentecode"): st.none()
    | _around(st.sampled_from(["GM0014", "gm0014", "GM14", "GM00145", ""])),
    ("contact", "name"): _MAYBE_TEXT,
    ("contact", "role"): st.sampled_from([None, "OTHER", "CASE_COUNSELLOR", "other", "", " OTHER"]),
    ("contact", "phone"): _MAYBE_TEXT,
    ("contact", "email"): _MAYBE_TEXT,
}
_PATHS = sorted(_FIELDS)
_WHOLE = {
    ("address",): st.just(None) | st.just({}) | st.just("9711RK 114"),
    ("contact",): st.just(None) | st.just({}),
    ("extra",): st.just("a field the model does not have"),
}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """The sample record with up to six fields changed (or dropped)."""
    paths = draw(st.lists(st.sampled_from(_PATHS + sorted(_WHOLE)), max_size=6, unique=True))
    edits = []
    for path in paths:
        strategy = _FIELDS[path] if path in _FIELDS else _WHOLE[path]
        value = draw(st.just(...) | strategy) if draw(st.integers(0, 9)) == 0 else draw(strategy)
        edits.append((path, value))
    return _mutated(edits, base=RECORD)


def _identical(a: Any, b: Any) -> bool:
    """Same models all the way down: values, their types, field order and fields set."""
    if type(a) is not type(b):
        return False
    if isinstance(a, BaseModel):
        return (
            a.model_fields_set == b.model_fields_set
            and list(a.__dict__) == list(b.__dict__)
            and all(_identical(a.__dict__[k], b.__dict__[k]) for k in a.__dict__)
            and a.__pydantic_extra__ == b.__pydantic_extra__
            and a.__pydantic_private__ == b.__pydantic_private__
        )
    if isinstance(a, dict):
        return list(a) == list(b) and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, datetime):
        return a == b and type(a.tzinfo) is type(b.tzinfo) and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def _accept(record: dict[str, Any]) -> CaseEvent | None:
    floor, latest = fast_validate.bounds()
    return fast_validate.accept(record, floor, latest)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_what_the_fast_path_accepts_pydantic_builds_identically(record: dict[str, Any]) -> None:
    original = deepcopy(record)
    fast = _accept(record)
    assert record == original  # the caller's record is never changed
    if fast is None:
        return
    try:
        slow = CaseEvent.model_validate(deepcopy(record), extra=_AVRO_EXTRA)
    except ValidationError as exc:  # pragma: no cover - the failure this test exists for
        raise AssertionError(f"accepted what pydantic refuses: {exc}") from exc
    assert _identical(fast, slow)
    assert fast.model_dump_json() == slow.model_dump_json()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=6))
def test_a_batch_with_the_fast_path_equals_pydantic_one_by_one(batch: list[dict[str, Any]]) -> None:
    expected = [validate_avro_case_event(deepcopy(r)) for r in batch]
    got = validate_avro_case_events(batch)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert _identical(g, e) if isinstance(e, CaseEvent) else g == e


_EDGE_EDITS: list[tuple[tuple[str, ...], Any]] = [
    (("amount_eur",), Decimal("99999999999999")),  # 14 digits, 12 allowed before the point
    (("amount_eur",), Decimal("999999999999.99")),  # the largest amount
    (("amount_eur",), Decimal("9999999999999.00")),
    (("amount_eur",), Decimal("1.005")),
    (("address", "huisletter"), "x" * 9),
    (("address", "huisnummertoevoeging"), "x" * 17),
    (("address", "huisnummer"), 100000),
    (("address", "huisnummer"), "0"),
    (("address", "huisnummer"), "12\nA"),  # valid: "[^0-9]" takes a newline
    (("address", "postcode"), "9711SA"),
    (("address", "postcode"), "9711AB\n"),
    (("address", "nummeraanduiding_id"), "001420000012345\u0661"),
    (("planned_end",), date(2024, 8, 31)),  # before the sample's planned_start
    (("source",), "UNKNOWN"),
    (("contact", "role"), "other"),
    (("contact", "email"), "x" * 255),
    (("attributes",), {f"k{i}": "€" * 1000 for i in range(40)}),
    (("attributes",), {" k": "v"}),
    (("event_id",), "x" * 201),
    (("source_org",), "\u3000NCG"),
]


@pytest.mark.parametrize(("path", "value"), _EDGE_EDITS)
def test_records_at_and_past_each_bound_get_exactly_pydantics_result(
    path: tuple[str, ...], value: Any
) -> None:
    record = deepcopy(RECORD)
    target = record
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    expected = validate_avro_case_event(deepcopy(record))
    fast = _accept(deepcopy(record))
    assert fast is None or _identical(fast, expected)
    (got,) = validate_avro_case_events([record])
    assert _identical(got, expected) if isinstance(expected, CaseEvent) else got == expected


def test_the_fast_path_takes_every_valid_event_of_the_simulator() -> None:
    """Realistic traffic goes the fast way (else the fast path only costs): and identically."""
    codec = get_codec()
    raws = [to_wire(item)[1] for item in simulate(300, 2_000, seed=7)]
    decoded = [r for r in codec.decode_batch(raws, CASE_EVENT) if isinstance(r, dict)]
    valid = [r for r in decoded if isinstance(validate_avro_case_event(deepcopy(r)), CaseEvent)]
    assert len(valid) > 1_500
    assert _accept(deepcopy(RECORD)) is not None  # the base of the generated records
    for record in valid:
        fast = _accept(deepcopy(record))
        assert fast is not None, record
        assert _identical(fast, CaseEvent.model_validate(record, extra=_AVRO_EXTRA))


def test_the_bounds_of_occurred_at_are_the_ones_pydantic_applies() -> None:
    floor, latest = fast_validate.bounds()
    at_floor = {**deepcopy(RECORD), "occurred_at": floor}
    before = {**deepcopy(RECORD), "occurred_at": floor - timedelta(milliseconds=1)}
    ahead = datetime.fromtimestamp(latest + 60, UTC)
    assert _accept(at_floor) is not None
    assert _accept(before) is None and _accept({**deepcopy(RECORD), "occurred_at": ahead}) is None
    with pytest.raises(ValidationError):
        CaseEvent.model_validate(before, extra=_AVRO_EXTRA)


def _pydantic_decides(fast_path: Any, monkeypatch: pytest.MonkeyPatch, **patch: Any) -> None:
    """With ``accept`` replaced by ``fast_path``, a valid and an invalid record come out exactly
    as pydantic alone decides them."""
    bad = deepcopy(RECORD)
    bad["address"]["postcode"] = "SS12"
    expected = [validate_avro_case_event(deepcopy(r)) for r in (RECORD, bad)]
    for name, value in patch.items():
        monkeypatch.setattr(decode.fast_validate, name, value)
    monkeypatch.setattr(decode.fast_validate, "accept", fast_path)
    assert validate_avro_case_events([deepcopy(RECORD), bad]) == expected


def test_a_fault_in_the_fast_path_leaves_the_decision_to_pydantic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: Any) -> CaseEvent | None:
        raise RuntimeError("fast path bug")

    _pydantic_decides(broken, monkeypatch)


def test_the_fast_path_was_reviewed_against_the_current_contract() -> None:
    """An edit of hub.contracts.events turns the fast path off until it is reviewed."""
    current = fast_validate.contract_digest()
    assert current == fast_validate.REVIEWED_CONTRACT, (
        "hub/contracts/events.py changed: bring hub/contracts/fast_validate.py in line with it "
        f"(fields, bounds, validators), then set REVIEWED_CONTRACT = {current!r}"
    )
    assert fast_validate.ENABLED


def test_with_the_fast_path_off_every_record_goes_to_pydantic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    original = fast_validate.accept

    def counted(*args: Any) -> CaseEvent | None:
        calls.append(args)  # an exception here would be swallowed: count the calls instead
        return original(*args)

    _pydantic_decides(counted, monkeypatch, ENABLED=False)
    assert calls == []
