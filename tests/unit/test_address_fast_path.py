"""The fast paths for already-canonical addresses and BAG ids give exactly the full path's result.

``address_key`` skips :func:`normalise_address` for a whole house number with a canonical (or
no) letter and toevoeging, and ``_bag_id`` skips its regex for a plain 16-digit id. For any
input, both paths must return the same key or id, or raise an AddressError with the same field
and reason. Generated inputs and the pitfalls of the domain brief (lower case, "12A" as letter
or toevoeging, leading zeros, SA/SD/SS, a first digit 0, non-ASCII digits and letters that
look like ASCII, ids whose leading zeros matter).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.address import key as key_module
from hub.address.key import address_key
from hub.address.normalise import (
    F_NUMMERAANDUIDING,
    F_PAND,
    TYPE_NUMMERAANDUIDING,
    TYPE_PAND,
    AddressError,
    _bag_id,
    _parse_bag_id,
)

_full_key = key_module._normalised_key.__wrapped__  # the full path, uncached

# characters that look like or count as digits/letters without being ASCII ones
_LOOKALIKES = "\u0661\uff19\u00b2\u0131\u017f\u212a\u00df\u00e9\u00a0\u2007"
_chars = st.sampled_from("0123456789ABSDXZabsdxz -/\t" + _LOOKALIKES)
_postcodes = st.one_of(
    st.text(_chars, max_size=9),
    st.builds(
        lambda d, sep, a, b: f"{d}{sep}{a}{b}",
        st.integers(0, 9999).map(lambda n: f"{n:04d}"),
        st.sampled_from(["", " ", "-", "  "]),
        st.sampled_from("ABSDXZabsdxz\u0131\u212a"),
        st.sampled_from("ABSDXZabsdxz\u0131\u212a"),
    ),
)
_numbers = st.one_of(
    st.integers(-5, 100_005),
    st.sampled_from([0, 1, 99_999, 100_000, 2**63]),
    st.booleans(),
    st.text(_chars, max_size=8),
    st.sampled_from(["12", "0012", "12A", "12 a", "12-A", "12A-2", "12 bis", "12AB", "1\u0661"]),
)
_letters = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "A", "a", "Z", "AB", "1", "\u0131", "\u212a", "\u00e9", " B "]),
    st.text(_chars, max_size=3),
)
_toevoegingen = st.one_of(
    st.none(),
    st.integers(-3, 12_345),
    st.sampled_from(["", "2", "A", "a", "BIS", "bis", "HS", "12345", "-2", "/3", "\u00b2"]),
    st.sampled_from(["\u0661", "A1B2", "A1B2C", " 2 "]),
    st.text(_chars, max_size=6),
)


def _outcome(fn: Any, *args: Any) -> tuple[str, ...]:
    try:
        return ("ok", fn(*args))
    except AddressError as exc:
        return ("error", exc.field, exc.reason)


@settings(max_examples=3000, deadline=None)
@given(_postcodes, _numbers, _letters, _toevoegingen)
def test_address_key_equals_the_full_path(
    postcode: str, huisnummer: Any, huisletter: Any, toevoeging: Any
) -> None:
    assert _outcome(address_key, postcode, huisnummer, huisletter, toevoeging) == _outcome(
        _full_key, postcode, huisnummer, huisletter, toevoeging
    )


@pytest.mark.parametrize(
    "args",
    [
        ("9711AB", 12, None, None),
        ("9711 ab", 12, "a", None),  # lower case letter: full path upper-cases it
        ("9711ab", 12, "A", "2"),
        ("9711AB", 12, None, "bis"),
        ("9711AB", 12, None, "BIS"),
        ("9711AB", 12, "A", "A"),  # letter A and toevoeging A are different parts
        ("9711AB", "12A", None, None),  # free text: letter A
        ("9711AB", "12-A", None, None),  # free text: toevoeging A
        ("9711AB", "0012", None, None),  # leading zeros dropped
        ("9711SA", 12, None, None),  # never-used letters
        ("0711AB", 12, None, None),  # first digit 0
        ("9711AB", 0, None, None),
        ("9711AB", 100_000, None, None),
        ("9711AB", True, None, None),  # a bool is not 1
        ("9711AB", 12, "\u212a", None),  # Kelvin sign is not K
        ("9711AB", 12, None, "\u00b2"),  # superscript two is not 2
        ("9711AB", 12, None, "\u0661"),  # Arabic-Indic one is not 1
        ("9711AB", 12, "AB", None),
        ("9711AB", 12, None, "12345"),
        ("\uff19711AB", 12, None, None),  # full-width digit
    ],
)
def test_address_key_pitfalls_equal_the_full_path(args: tuple[Any, ...]) -> None:
    assert _outcome(address_key, *args) == _outcome(_full_key, *args)


_ids = st.one_of(
    st.text(st.sampled_from("0123456789 \t" + _LOOKALIKES), max_size=18),
    st.builds(
        lambda gm, code, n, pad: f"{pad}{gm}{code}{n}{pad}",
        st.sampled_from(["0014", "0003", "1979", "\u0661014", "0\uff1914"]),
        st.sampled_from(["20", "10", "01", "2\u0660"]),
        st.integers(0, 10**10 - 1).map(lambda n: f"{n:010d}"),
        st.sampled_from(["", " ", "\t", "\u00a0"]),
    ),
    st.integers(0, 10**16),
    st.none(),
)


@settings(max_examples=2000, deadline=None)
@given(_ids, st.sampled_from([(F_NUMMERAANDUIDING, TYPE_NUMMERAANDUIDING), (F_PAND, TYPE_PAND)]))
def test_bag_id_fast_path_equals_the_full_check(value: Any, kind: tuple[str, str]) -> None:
    field, code = kind
    assert _outcome(_bag_id, value, field, code, "x") == _outcome(
        _parse_bag_id, value, field, code, "x"
    )


@pytest.mark.parametrize(
    "value",
    ["0014200000123456", "0014100000123456", " 0014200000123456", "001420000012345", "\u0661" * 16],
)
def test_bag_id_pitfalls_equal_the_full_check(value: str) -> None:
    for field, code in ((F_NUMMERAANDUIDING, TYPE_NUMMERAANDUIDING), (F_PAND, TYPE_PAND)):
        assert _outcome(_bag_id, value, field, code, "x") == _outcome(
            _parse_bag_id, value, field, code, "x"
        )
