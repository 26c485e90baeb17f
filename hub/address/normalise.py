"""Parse and normalise Dutch address parts (BAG terms) from messy agency input.

Hot path: every inbound event goes through :func:`normalise_address` (via the cached
:func:`hub.address.key.address_key`), so the code uses precompiled regular expressions, plain
tuples, a fast path for plain digit house numbers and small LRU caches. No pydantic here.

Rules (see ``docs/addresses.md``):

* postcode: 4 digits, the first 1-9, then 2 letters that are not SA, SD or SS; spaces, dashes and
  case are free (``" 9711-ab "`` -> ``"9711AB"``).
* huisnummer: a whole number 1..99999; leading zeros and surrounding blanks are dropped.
* huisletter: exactly one letter A-Z, upper-cased.
* huisnummertoevoeging: 1-4 letters or digits, upper-cased; a leading dash/slash is dropped.
* free text in the huisnummer field (``"12A"``, ``"12 a"``, ``"12-2"``, ``"12A-2"``, ``"12 bis"``):
  one single letter right after the number (glued, or after blanks, and standing alone) is the
  huisletter; anything after a dash or slash, and any longer token, is the toevoeging. So ``"12A"``
  and ``"12 a"`` are letter A, ``"12-A"`` is toevoeging A, ``"12AB"`` and ``"12 bis"`` are
  toevoegingen. This matches the key format, where the letter is glued to the number and the
  toevoeging follows a dash, so a key's house-number part parses back to the same parts.
* BAG ids are 16-digit strings ``GGGGTTNNNNNNNNNN`` (municipality, type code, number); they stay
  strings because the leading zeros matter (Groningen is 0014).

Error messages quote the offending value: they go to the dead-letter topic, never to logs at INFO
or above (privacy).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

# Field names used in AddressError.field: the path inside a CaseEvent.
F_POSTCODE = "address.postcode"
F_HUISNUMMER = "address.huisnummer"
F_HUISLETTER = "address.huisletter"
F_TOEVOEGING = "address.huisnummertoevoeging"
F_NUMMERAANDUIDING = "address.nummeraanduiding_id"
F_PAND = "address.pand_id"
F_GEMEENTECODE = "address.gemeentecode"

MAX_HUISNUMMER = 99_999
MAX_TOEVOEGING = 4
FORBIDDEN_POSTCODE_LETTERS = frozenset({"SA", "SD", "SS"})
TYPE_NUMMERAANDUIDING = "20"
TYPE_PAND = "10"
TYPE_VERBLIJFSOBJECT = "01"

# Explicit ASCII classes: with re.IGNORECASE, [a-z] would also match 'ı', 'ſ' and the Kelvin sign.
_POSTCODE_RE = re.compile(r"\s*([1-9][0-9]{3})[\s\-]*([A-Za-z]{2})\s*")
_POSTCODE_SHAPE_RE = re.compile(r"\s*([0-9]{4})[\s\-]*([A-Za-z]{2})\s*")
_HOUSE_RE = re.compile(
    r"\s*([0-9]+)"  # huisnummer
    r"(?:\s*([A-Za-z])(?![A-Za-z0-9]))?"  # huisletter: one letter standing alone
    r"(?:[\s\-/]*([A-Za-z0-9]+))?"  # toevoeging: after blanks, a dash or a slash
    r"[\s\-/]*"  # tolerate a dangling separator ("12-" from "nr-toev" with empty toev)
)
_LETTER_RE = re.compile(r"\s*([A-Za-z])\s*")
_TOEVOEGING_RE = re.compile(r"[\s\-/]*([A-Za-z0-9]+)\s*")
_BAG_ID_RE = re.compile(r"\s*([0-9]{16})\s*")
_GEMEENTECODE_RE = re.compile(r"\s*(?:[Gg][Mm])?\s*([0-9]{1,4})\s*")


class AddressError(ValueError):
    """The input cannot be a Dutch address: ``field`` names the part, ``reason`` says why.

    A ValueError so callers that validate generically still catch it; the pipeline turns it into
    a dead-letter record with these two values as headers.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[AddressError], tuple[str, str]]:
        return (AddressError, (self.field, self.reason))


class AddressParts(NamedTuple):
    """A normalised address: the four parts the address key is made of."""

    postcode: str  # "9711AB"
    huisnummer: int  # 1..99999
    huisletter: str | None = None  # "A"
    huisnummertoevoeging: str | None = None  # "2", "BIS", "HS"


@lru_cache(maxsize=16_384)
def normalise_postcode(value: str) -> str:
    """``" 9711-ab "`` -> ``"9711AB"``; raises AddressError for anything that is not a postcode."""
    if type(value) is not str:
        raise AddressError(F_POSTCODE, f"{value!r} is not a Dutch postcode: must be text")
    m = _POSTCODE_RE.fullmatch(value)
    if m is None:
        shape = _POSTCODE_SHAPE_RE.fullmatch(value)
        if shape is not None:  # only the first digit is wrong
            raise AddressError(
                F_POSTCODE, f"{value!r} is not a Dutch postcode: the first digit cannot be 0"
            )
        raise AddressError(
            F_POSTCODE, f"{value!r} is not a Dutch postcode: expected 4 digits and 2 letters"
        )
    letters = m.group(2).upper()
    if letters in FORBIDDEN_POSTCODE_LETTERS:
        raise AddressError(
            F_POSTCODE, f"{value!r} is not a Dutch postcode: letters SA, SD and SS are never used"
        )
    return m.group(1) + letters


def _check_number(number: int, raw: object) -> int:
    if 1 <= number <= MAX_HUISNUMMER:
        return number
    raise AddressError(F_HUISNUMMER, f"{raw!r} is outside 1..{MAX_HUISNUMMER}")


def normalise_huisletter(value: str | None) -> str | None:
    """``" a "`` -> ``"A"``; blank -> None."""
    if value is None:
        return None
    if type(value) is not str:
        raise AddressError(F_HUISLETTER, f"{value!r} is not a house letter: must be text")
    if not value or value.isspace():
        return None
    m = _LETTER_RE.fullmatch(value)
    if m is None:
        raise AddressError(F_HUISLETTER, f"{value!r} is not a house letter: must be one letter")
    return m.group(1).upper()


def normalise_toevoeging(value: str | int | None) -> str | None:
    """``"-2"`` -> ``"2"``, ``"bis"`` -> ``"BIS"``; blank -> None; more than 4 characters fails."""
    if value is None:
        return None
    if type(value) is int:
        value = str(value)
    if type(value) is not str:
        raise AddressError(F_TOEVOEGING, f"{value!r} is not a toevoeging: must be text")
    if not value or value.isspace():
        return None
    m = _TOEVOEGING_RE.fullmatch(value)
    if m is None:
        raise AddressError(F_TOEVOEGING, f"{value!r} is not a toevoeging: letters or digits only")
    out = m.group(1)
    if len(out) > MAX_TOEVOEGING:
        raise AddressError(
            F_TOEVOEGING, f"{value!r} is longer than {MAX_TOEVOEGING} letters or digits"
        )
    return out.upper()


def parse_house_number(value: str | int) -> tuple[int, str | None, str | None]:
    """Split a house number that may carry letter and toevoeging as free text.

    ``12`` / ``"0012"`` -> (12, None, None); ``"12A"`` / ``"12 a"`` -> (12, "A", None);
    ``"12-A"`` -> (12, None, "A"); ``"12A-2"`` -> (12, "A", "2"); ``"12 bis"`` -> (12, None, "BIS").
    """
    if type(value) is int:
        return _check_number(value, value), None, None
    if type(value) is not str:  # bool, float, Decimal: a source bug, not a house number
        raise AddressError(F_HUISNUMMER, f"{value!r} is not a house number: must be whole")
    if value.isdigit() and value.isascii():  # the common case, no regex
        return _check_number(int(value), value), None, None
    m = _HOUSE_RE.fullmatch(value)
    if m is None:
        raise AddressError(F_HUISNUMMER, f"{value!r} is not a house number")
    number = _check_number(int(m.group(1)), value)
    letter = m.group(2)
    toevoeging = m.group(3)
    if toevoeging is not None and len(toevoeging) > MAX_TOEVOEGING:
        raise AddressError(
            F_TOEVOEGING, f"{value!r} has a toevoeging longer than {MAX_TOEVOEGING} characters"
        )
    return (
        number,
        letter.upper() if letter is not None else None,
        toevoeging.upper() if toevoeging is not None else None,
    )


def normalise_address(
    postcode: str,
    huisnummer: str | int,
    huisletter: str | None = None,
    huisnummertoevoeging: str | int | None = None,
) -> AddressParts:
    """Normalise the four postal parts of an address into :class:`AddressParts`.

    ``huisnummer`` may carry letter and toevoeging as free text (see module docs); when the
    separate fields are also filled they must agree with it, otherwise the input is ambiguous and
    rejected. Not cached itself (a cache miss costs more than the work); the postcode part is,
    and :func:`hub.address.key.address_key` caches whole inputs for the hot path.
    """
    pc = normalise_postcode(postcode)
    number, text_letter, text_toev = parse_house_number(huisnummer)
    letter = normalise_huisletter(huisletter)
    toev = normalise_toevoeging(huisnummertoevoeging)
    if text_letter is not None:
        if letter is not None and letter != text_letter:
            raise AddressError(
                F_HUISLETTER,
                f"{huisletter!r} conflicts with the letter in huisnummer {huisnummer!r}",
            )
        letter = text_letter
    if text_toev is not None:
        if toev is not None and toev != text_toev:
            raise AddressError(
                F_TOEVOEGING,
                f"{huisnummertoevoeging!r} conflicts with the toevoeging in huisnummer "
                f"{huisnummer!r}",
            )
        toev = text_toev
    return AddressParts(pc, number, letter, toev)


def _bag_id(value: object, field: str, type_code: str, what: str) -> str:
    if (  # already canonical (the common case): the same string the regex below returns
        type(value) is str
        and len(value) == 16
        and value.isdigit()
        and value.isascii()
        and value[4:6] == type_code
    ):
        return value
    return _parse_bag_id(value, field, type_code, what)


def _parse_bag_id(value: object, field: str, type_code: str, what: str) -> str:
    """The full check of :func:`_bag_id` (blanks around the digits, every error)."""
    if type(value) is not str:
        raise AddressError(field, f"{value!r} is not a {what} id: must be a 16-digit string")
    m = _BAG_ID_RE.fullmatch(value)
    if m is None:
        raise AddressError(field, f"{value!r} is not a {what} id: must be 16 digits")
    out = m.group(1)
    if out[4:6] != type_code:
        raise AddressError(
            field, f"{value!r} is not a {what} id: type code {out[4:6]!r}, expected {type_code!r}"
        )
    return out


def normalise_nummeraanduiding_id(value: str) -> str:
    """A 16-digit nummeraanduiding id (type code 20), kept as a string."""
    return _bag_id(value, F_NUMMERAANDUIDING, TYPE_NUMMERAANDUIDING, "nummeraanduiding")


def normalise_pand_id(value: str) -> str:
    """A 16-digit pand id (type code 10), kept as a string."""
    return _bag_id(value, F_PAND, TYPE_PAND, "pand")


@lru_cache(maxsize=1024)
def normalise_gemeentecode(value: str) -> str:
    """``"GM0014"``, ``"gm14"``, ``"0014"`` -> ``"GM0014"`` (CBS code; not merger-mapped here)."""
    if type(value) is not str:
        raise AddressError(F_GEMEENTECODE, f"{value!r} is not a gemeentecode: must be text")
    m = _GEMEENTECODE_RE.fullmatch(value)
    if m is None:
        raise AddressError(F_GEMEENTECODE, f"{value!r} is not a gemeentecode like 'GM0014'")
    return "GM" + m.group(1).zfill(4)


def municipality_prefix(bag_id: str) -> str:
    """The CBS code a BAG id was created in: ``"0003200000123456"`` -> ``"GM0003"``.

    After a merger this is an old code; map it through the merger table before routing.
    """
    return "GM" + bag_id[:4]
