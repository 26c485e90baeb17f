"""A poll batch is validated in one pydantic call; every slot must equal the one-by-one result.

The batch call (``hub.contracts.decode.validate_avro_case_events``) hands back each record it
refuses, which is then validated on its own: so a rejected event keeps exactly today's field,
reason and message, and a valid one is the same CaseEvent.
"""

from __future__ import annotations

import json
from copy import deepcopy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.contracts import decode
from hub.contracts.codec import DecodeError
from hub.contracts.decode import (
    Rejection,
    case_event_to_avro_dict,
    validate_avro_case_event,
    validate_avro_case_events,
)
from hub.contracts.events import CaseEvent

SAMPLE = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "samples.json").read_text()
)["CaseEvent"]
RECORD = case_event_to_avro_dict(CaseEvent.model_validate(SAMPLE))
PATHS = [
    *[(k,) for k in RECORD],
    *[("address", k) for k in RECORD["address"]],
    *[("contact", k) for k in RECORD["contact"]],
]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "NCG", "SS12", "9711 ab", "GM14", "0014200000123456", "12A"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
# a change: set a field (a path of the record, or an unknown one), or drop it
changes = st.tuples(
    st.sampled_from(PATHS) | st.tuples(st.sampled_from(["extra", "address"]), st.just("x")),
    values | st.just(...),
)


def _mutated(
    edits: list[tuple[tuple[str, ...], Any]], base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``base`` (the sample record) with each path set to its value, or dropped for ``...``."""
    record = deepcopy(RECORD if base is None else base)
    for path, value in edits:
        target = record
        for part in path[:-1]:
            target = target.get(part)
            if not isinstance(target, dict):
                break
        else:
            if value is ...:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(changes, max_size=3), min_size=1, max_size=8), st.data())
def test_a_batch_validates_to_exactly_what_each_record_gives_alone(
    batch: list[list[tuple[tuple[str, ...], Any]]], data: st.DataObject
) -> None:
    records: list[Any] = [_mutated(edits) for edits in batch]
    for _ in range(data.draw(st.integers(0, 2))):  # decode errors in some slots pass through
        at = data.draw(st.integers(0, len(records)))
        records.insert(at, DecodeError("UNDECODABLE", "corrupt"))
    expected = [
        r if isinstance(r, DecodeError) else validate_avro_case_event(deepcopy(r)) for r in records
    ]
    got = validate_avro_case_events(records)
    assert got == expected
    assert [type(x) for x in got] == [type(x) for x in expected]


def test_valid_and_invalid_records_keep_their_slots_and_rejections() -> None:
    bad_postcode = _mutated([(("address", "postcode"), "SS12")])
    missing = _mutated([(("case_id",), ...)])
    records = [RECORD, bad_postcode, RECORD, missing]
    got = validate_avro_case_events(records)
    assert isinstance(got[0], CaseEvent) and got[0] == got[2]
    assert isinstance(got[1], Rejection) and got[1].field == "address.postcode"
    assert got[1].message == "address.postcode: 'SS12' is not a Dutch postcode"
    assert isinstance(got[3], Rejection) and got[3].reason_code == "MISSING_FIELD"
    assert got[3].field == "case_id"


def test_a_batch_call_that_raises_falls_back_to_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        def validate_python(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("validator bug")

    records = [RECORD, _mutated([(("address", "postcode"), "SS12")])]
    expected = [validate_avro_case_event(r) for r in records]
    monkeypatch.setattr(decode, "_BATCH", Broken())
    assert validate_avro_case_events(records) == expected


_RULE_EDITS: dict[str, list[tuple[tuple[str, ...], Any]]] = {
    "unknown source": [(("source",), "UNKNOWN")],
    "before the floor": [(("occurred_at",), datetime(2001, 1, 1, tzinfo=UTC))],
    "far future": [(("occurred_at",), datetime(2204, 5, 1, tzinfo=UTC))],
    "window reversed": [
        (("planned_start",), date(2024, 6, 1)),
        (("planned_end",), date(2024, 5, 1)),
    ],
    "window in order": [
        (("planned_start",), date(2024, 5, 1)),
        (("planned_end",), date(2024, 6, 1)),
    ],
    "attributes too large": [(("attributes",), {f"k{i}": "€" * 1000 for i in range(40)})],
    "no place": [
        (("address", "postcode"), None),
        (("address", "nummeraanduiding_id"), None),
        (("address", "pand_id"), None),
    ],
    "blank place": [
        (("address", "postcode"), ""),
        (("address", "nummeraanduiding_id"), ""),
        (("address", "pand_id"), ""),
    ],
    "blanks at every level": [
        (("source_org",), ""),
        (("address", "huisletter"), ""),
        (("contact", "phone"), ""),
        (("contact", "role"), ""),
    ],
    "a rule and a constraint broken": [
        (("occurred_at",), datetime(2204, 5, 1, tzinfo=UTC)),
        (("address", "postcode"), "SS12"),
    ],
    "two rules broken": [
        (("source",), "UNKNOWN"),
        (("planned_start",), date(2024, 6, 1)),
        (("planned_end",), date(2024, 5, 1)),
    ],
}


@pytest.mark.parametrize("case", sorted(_RULE_EDITS))
def test_each_rule_of_caseevent_gives_the_same_result_in_a_batch(case: str) -> None:
    record = _mutated(_RULE_EDITS[case])
    original = deepcopy(record)
    expected = validate_avro_case_event(deepcopy(record))
    got = validate_avro_case_events([RECORD, record, RECORD])
    assert got[1] == expected and type(got[1]) is type(expected)
    assert got[0] == got[2] == validate_avro_case_event(RECORD)
    assert record == original  # the caller's record is not changed


def test_blanks_become_absent_in_a_batch_as_alone() -> None:
    record = _mutated(_RULE_EDITS["blanks at every level"])
    (event,) = validate_avro_case_events([record])
    assert isinstance(event, CaseEvent)
    assert event.source_org is None and event.address.huisletter is None
    assert event.contact is not None and event.contact.phone is None
    assert event.contact.role is None
