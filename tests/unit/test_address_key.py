"""The address key: format, round trip, area."""

from __future__ import annotations

import pytest

from hub.address.key import address_key, area_of, is_key, make_key, parse_key
from hub.address.normalise import AddressError, AddressParts


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (AddressParts("9711AB", 12), "9711AB-12"),
        (AddressParts("9711AB", 12, "A"), "9711AB-12A"),
        (AddressParts("9711AB", 12, None, "2"), "9711AB-12-2"),
        (AddressParts("9711AB", 12, "A", "2"), "9711AB-12A-2"),
        (AddressParts("9711AB", 12, None, "A"), "9711AB-12-A"),  # toevoeging A, not letter A
        (AddressParts("9999ZZ", 99999, "Z", "ZZZZ"), "9999ZZ-99999Z-ZZZZ"),
    ],
)
def test_make_and_parse_key(parts: AddressParts, key: str) -> None:
    assert make_key(parts) == key
    assert parse_key(key) == parts
    assert area_of(key) == parts.postcode[:4]


def test_letter_and_toevoeging_stay_apart() -> None:
    assert address_key("9711AB", "12A") != address_key("9711AB", "12-A")
    assert address_key("9711AB", 12, "A") == "9711AB-12A"
    assert address_key("9711AB", 12, None, "A") == "9711AB-12-A"


@pytest.mark.parametrize(
    "key",
    [
        "9711ab-12",  # lower case
        "9711 AB-12",
        "9711AB-012",  # leading zero
        "9711AB-0",
        "9711AB-100000",
        "0711AB-12",
        "9711SS-12",
        "9711AB-12AB",
        "9711AB-12-ABCDE",
        "9711AB-12A-",
        "9711AB",
        "",
    ],
)
def test_parse_key_rejects_non_canonical(key: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_key(key)
    assert info.value.field == "address_key"
    assert not is_key(key)


def test_address_key_cache_is_typed() -> None:
    assert address_key("9711AB", 1) == "9711AB-1"
    with pytest.raises(AddressError):
        address_key("9711AB", True)
    with pytest.raises(AddressError):
        address_key("9711AB", 1.0)  # type: ignore[arg-type]
