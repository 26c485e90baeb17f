"""The generated NormalisedEvent constructor builds exactly what the dataclass builds.

``from_values`` (ingest: one per inbound event; correlate: one per event read from a batch) and
``retarget`` (a building case per address) replace ``NormalisedEvent(...)`` and
``dataclasses.replace`` on the hot path; they must give equal, still frozen events with the very
same field values.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.contracts.normalised import NormalisedEvent, from_values, retarget

FIELDS = [f.name for f in dataclasses.fields(NormalisedEvent)]
_text = st.text(max_size=12)
_opt = st.none() | _text
values = st.tuples(
    _text,
    _text,
    _text,
    _text,
    _text,
    st.integers(-(2**62), 2**62),
    _text,
    _opt,
    _text,
    _opt,
    _opt,
    _opt,
    _opt,
    _opt,
    _opt,
    _opt,
    _opt,
    _opt,
    st.none() | st.integers(0, 10**16),
    st.integers(0, 2**62),
    st.dictionaries(_text, _text, max_size=3),
)


def _same(a: NormalisedEvent, b: NormalisedEvent) -> None:
    assert a == b
    for name in FIELDS:
        assert getattr(a, name) is getattr(b, name), name


@given(values)
def test_from_values_builds_what_the_dataclass_builds(row: tuple[Any, ...]) -> None:
    _same(from_values(*row), NormalisedEvent(*row))
    _same(from_values(**dict(zip(FIELDS, row, strict=True))), NormalisedEvent(*row))


@given(values, _text, _opt, _opt, _text)
def test_retarget_is_replace_of_the_per_address_fields(
    row: tuple[Any, ...], key: str, nid: str | None, gm: str | None, group: str
) -> None:
    base = NormalisedEvent(*row)
    expected = dataclasses.replace(
        base, address_key=key, nummeraanduiding_id=nid, gemeentecode=gm, steering_group=group
    )
    _same(retarget(base, key, nid, gm, group), expected)


def test_built_events_stay_frozen_and_picklable() -> None:
    event = from_values(*[f"v{i}" for i in range(len(FIELDS) - 1)], {"k": "v"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.status = "CLOSED"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(event)) == event
    assert not hasattr(event, "__dict__")


def test_a_missing_value_is_an_error_not_a_default() -> None:
    with pytest.raises(TypeError):
        from_values(*[f"v{i}" for i in range(len(FIELDS) - 1)])
