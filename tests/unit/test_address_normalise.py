"""Normalisation of postcode, house number, letter and toevoeging; BAG ids; properties."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hub.address.key import address_key, make_key, parse_key
from hub.address.normalise import (
    AddressError,
    AddressParts,
    normalise_address,
    normalise_gemeentecode,
    normalise_nummeraanduiding_id,
    normalise_pand_id,
    normalise_postcode,
    parse_house_number,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9711AB", "9711AB"),
        ("9711 ab", "9711AB"),
        (" 9711-ab ", "9711AB"),
        ("9711  Ab", "9711AB"),
        ("9711\u00a0AB", "9711AB"),  # non-breaking space from spreadsheets
        ("1000aa", "1000AA"),
    ],
)
def test_postcode_spellings(raw: str, expected: str) -> None:
    assert normalise_postcode(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("0711AB", "first digit cannot be 0"),
        ("9711SA", "SA, SD and SS"),
        ("9711sd", "SA, SD and SS"),
        ("9711 ss", "SA, SD and SS"),
        ("SS12", "4 digits and 2 letters"),
        ("971AB", "4 digits and 2 letters"),
        ("9711A", "4 digits and 2 letters"),
        ("9711ABC", "4 digits and 2 letters"),
        ("", "4 digits and 2 letters"),
        ("９７１１AB", "4 digits and 2 letters"),  # full-width digits
        ("9711ıB", "4 digits and 2 letters"),  # dotless i is not I
    ],
)
def test_postcode_rejected(raw: str, reason_part: str) -> None:
    with pytest.raises(AddressError) as info:
        normalise_postcode(raw)
    assert info.value.field == "address.postcode"
    assert reason_part in info.value.reason
    assert str(info.value).startswith(f"address.postcode: {raw!r} is not a Dutch postcode")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (12, (12, None, None)),
        ("12", (12, None, None)),
        ("0012", (12, None, None)),
        (" 12 ", (12, None, None)),
        ("12A", (12, "A", None)),
        ("12a", (12, "A", None)),
        ("12 a", (12, "A", None)),  # a single standing letter is the huisletter
        ("12-2", (12, None, "2")),
        ("12A-2", (12, "A", "2")),
        ("12a-2", (12, "A", "2")),
        ("12 A-2", (12, "A", "2")),
        ("12 A 2", (12, "A", "2")),
        ("12 bis", (12, None, "BIS")),
        ("12bis", (12, None, "BIS")),
        ("12-A", (12, None, "A")),  # after a dash: toevoeging
        ("12/3", (12, None, "3")),
        ("12 - hs", (12, None, "HS")),
        ("12AB", (12, None, "AB")),  # more than one letter: toevoeging
        ("12-", (12, None, None)),  # dangling separator of an empty toevoeging
        (99999, (99999, None, None)),
        (1, (1, None, None)),
    ],
)
def test_house_number_free_text(
    raw: str | int, expected: tuple[int, str | None, str | None]
) -> None:
    assert parse_house_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (0, "address.huisnummer"),
        ("0", "address.huisnummer"),
        ("0000", "address.huisnummer"),
        (100000, "address.huisnummer"),
        ("100000", "address.huisnummer"),
        (-1, "address.huisnummer"),
        ("-12", "address.huisnummer"),
        ("12-2-3", "address.huisnummer"),
        ("twelve", "address.huisnummer"),
        ("", "address.huisnummer"),
        (True, "address.huisnummer"),
        (12.0, "address.huisnummer"),
        ("12 abcde", "address.huisnummertoevoeging"),
        ("12-ABCDE", "address.huisnummertoevoeging"),
    ],
)
def test_house_number_rejected(raw: object, field: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_house_number(raw)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("9711 ab", 12), AddressParts("9711AB", 12)),
        (("9711AB", "12", "a"), AddressParts("9711AB", 12, "A")),
        (("9711AB", 12, " a ", "-2"), AddressParts("9711AB", 12, "A", "2")),
        (("9711AB", 12, "", ""), AddressParts("9711AB", 12)),
        (("9711AB", 12, None, "bis"), AddressParts("9711AB", 12, None, "BIS")),
        (("9711AB", 12, None, 3), AddressParts("9711AB", 12, None, "3")),
        (("9711AB", "12A", None, "2"), AddressParts("9711AB", 12, "A", "2")),  # text + field
        (("9711AB", "12A", "a"), AddressParts("9711AB", 12, "A")),  # agreeing duplicates
        (("9711AB", "12-2", None, "2"), AddressParts("9711AB", 12, None, "2")),
    ],
)
def test_normalise_address(args: tuple, expected: AddressParts) -> None:
    assert normalise_address(*args) == expected


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("9711AB", 12, "AB"), "address.huisletter"),
        (("9711AB", 12, "1"), "address.huisletter"),
        (("9711AB", 12, None, "ABCDE"), "address.huisnummertoevoeging"),
        (("9711AB", 12, None, "2 H"), "address.huisnummertoevoeging"),
        (("9711AB", "12A", "B"), "address.huisletter"),  # conflicting letters
        (("9711AB", "12-2", None, "3"), "address.huisnummertoevoeging"),
        (("0711AB", 12), "address.postcode"),
    ],
)
def test_normalise_address_rejected(args: tuple, field: str) -> None:
    with pytest.raises(AddressError) as info:
        normalise_address(*args)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0014200000123456", "0014200000123456"), (" 0003200000000001 ", "0003200000000001")],
)
def test_nummeraanduiding_id(raw: str, expected: str) -> None:
    assert normalise_nummeraanduiding_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "001420000012345",  # 15 digits
        "00142000001234567",  # 17 digits
        "0014100000123456",  # pand type code
        "0014010000123456",  # verblijfsobject type code
        "001420000012345X",
        14200000123456,  # an int lost its leading zeros
    ],
)
def test_nummeraanduiding_id_rejected(raw: object) -> None:
    with pytest.raises(AddressError) as info:
        normalise_nummeraanduiding_id(raw)  # type: ignore[arg-type]
    assert info.value.field == "address.nummeraanduiding_id"


def test_pand_id() -> None:
    assert normalise_pand_id("0014100000000001") == "0014100000000001"
    with pytest.raises(AddressError) as info:
        normalise_pand_id("0014200000000001")
    assert info.value.field == "address.pand_id"
    assert "type code '20'" in info.value.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("GM0014", "GM0014"), ("gm0014", "GM0014"), ("0014", "GM0014"), ("14", "GM0014")],
)
def test_gemeentecode(raw: str, expected: str) -> None:
    assert normalise_gemeentecode(raw) == expected


def test_gemeentecode_rejected() -> None:
    with pytest.raises(AddressError):
        normalise_gemeentecode("Groningen")


def test_address_error_is_picklable_value_error() -> None:
    import pickle

    err = AddressError("address.postcode", "'SS12' is not a Dutch postcode")
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.field, clone.reason, str(clone)) == (err.field, err.reason, str(err))


# -- properties -------------------------------------------------------------------------------

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = _UPPER + "0123456789"


@st.composite
def valid_parts(draw: st.DrawFn) -> AddressParts:
    digits = str(draw(st.integers(1000, 9999)))
    letters = draw(
        st.text(_UPPER, min_size=2, max_size=2).filter(lambda s: s not in {"SA", "SD", "SS"})
    )
    number = draw(st.integers(1, 99999))
    letter = draw(st.none() | st.sampled_from(_UPPER))
    toev = draw(st.none() | st.text(_ALNUM, min_size=1, max_size=4))
    return AddressParts(digits + letters, number, letter, toev)


def _mixed_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.lower() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def spellings(
    draw: st.DrawFn, parts: AddressParts
) -> tuple[str, str | int, str | None, str | None]:
    """One messy but unambiguous way an agency might write ``parts``."""
    pc, number, letter, toev = parts
    blank = st.sampled_from(["", " ", "  ", "\t"])
    sep = draw(st.sampled_from(["", " ", "-", " - ", "  "]))
    postcode = draw(blank) + pc[:4] + sep + _mixed_case(draw, pc[4:]) + draw(blank)
    zeros = "0" * draw(st.integers(0, 2))
    num: str | int = draw(st.sampled_from([number, str(number), zeros + str(number)]))
    if draw(st.booleans()):  # separate fields
        hl = None if letter is None else draw(blank) + _mixed_case(draw, letter) + draw(blank)
        tv = None
        if toev is not None:
            tv = draw(st.sampled_from(["", "-", " -", "/"])) + _mixed_case(draw, toev)
        if draw(st.booleans()):
            hl = hl if hl is not None else draw(st.sampled_from([None, "", " "]))
        return postcode, num, hl, tv
    # combined free text in the huisnummer field
    text = str(num)
    if letter is not None:
        text += draw(st.sampled_from(["", " "])) + _mixed_case(draw, letter)
    if toev is not None:
        toev_seps = ["-", " - ", "/"] + ([" "] if letter is not None else [])
        text += draw(st.sampled_from(toev_seps)) + _mixed_case(draw, toev)
    return postcode, draw(blank) + text + draw(blank), None, None


@given(st.data())
def test_normalising_is_idempotent(data: st.DataObject) -> None:
    parts = data.draw(valid_parts())
    once = normalise_address(*data.draw(spellings(parts)))
    assert normalise_address(*once) == once
    assert normalise_postcode(once.postcode) == once.postcode


@given(st.data())
def test_every_key_parses_back_to_the_same_parts(data: st.DataObject) -> None:
    parts = data.draw(valid_parts())
    normalised = normalise_address(*data.draw(spellings(parts)))
    key = make_key(normalised)
    assert parse_key(key) == normalised == parts
    assert key == key.upper() and " " not in key


@given(st.data())
def test_two_spellings_of_one_address_give_one_key(data: st.DataObject) -> None:
    parts = data.draw(valid_parts())
    first = address_key(*data.draw(spellings(parts)))
    second = address_key(*data.draw(spellings(parts)))
    assert first == second == make_key(parts)


@st.composite
def invalid_inputs(draw: st.DrawFn) -> tuple[str, str | int, str | None, str | None]:
    pc, number, letter, toev = draw(valid_parts())
    broken = draw(st.sampled_from(["zero", "forbidden", "number", "toev", "letter", "junk"]))
    if broken == "zero":
        pc = "0" + pc[1:]
    elif broken == "forbidden":
        pc = pc[:4] + draw(st.sampled_from(["SA", "SD", "SS", "sa", "sd", "ss"]))
    elif broken == "number":
        number = draw(st.integers(max_value=0) | st.integers(min_value=100_000))
    elif broken == "toev":
        toev = draw(st.text(_ALNUM, min_size=5, max_size=9))
    elif broken == "letter":
        letter = draw(st.text(_UPPER, min_size=2, max_size=3) | st.sampled_from("0123456789"))
    else:
        pc = pc[:3] + draw(st.sampled_from(["", "X", "#", "12", "?"])) + pc[4:]
    return pc, number, letter, toev


@given(invalid_inputs())
def test_an_invalid_input_never_yields_a_key(args: tuple) -> None:
    with pytest.raises(AddressError):
        address_key(*args)


@given(st.text(max_size=10), st.one_of(st.integers(), st.text(max_size=12)))
def test_arbitrary_input_yields_a_canonical_key_or_an_address_error(
    postcode: str, huisnummer: str | int
) -> None:
    try:
        key = address_key(postcode, huisnummer)
    except AddressError as exc:
        assert exc.field.startswith("address.")
        return
    parts = parse_key(key)  # only valid keys come out
    assume(parts is not None)
    assert 1 <= parts.huisnummer <= 99999
    assert parts.postcode[0] != "0" and parts.postcode[4:] not in {"SA", "SD", "SS"}
