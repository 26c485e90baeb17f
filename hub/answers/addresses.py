"""Address queries: free text or a nummeraanduiding id -> the address key."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from hub.address.key import is_key, make_key
from hub.address.normalise import AddressError, normalise_address, normalise_nummeraanduiding_id
from hub.address.register import FACT_NUMMERAANDUIDING
from hub.answers.reading import read_to_end
from hub.pipeline.topics import Topics
from hub.settings import Settings

_ID_RE = re.compile(r"\s*([0-9]{16})\s*")
_POSTCODE_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{3})[\s\-]*([A-Za-z]{2})(?![A-Za-z])")
_HOUSE_AT_END = re.compile(r"([0-9]+(?:[\s\-/]*[A-Za-z0-9]{1,4}){0,2})[\s,]*$")


@dataclass(frozen=True, slots=True)
class AddressQuery:
    """What ``hub dossier ADDRESS`` was given: an address key or a nummeraanduiding id."""

    text: str
    address_key: str | None = None
    nummeraanduiding_id: str | None = None


def parse_address_query(text: str) -> AddressQuery:
    """Any spelling of an address, or a 16-digit nummeraanduiding id, into a query.

    Accepted: a canonical key (``9711AB-12A-2``); postcode and house number in free text in
    either order (``9711 ab 12a``, ``9711AB 12A-2``, ``Vismarkt 12a, 9711 AB Groningen``; a
    city after the house number needs a comma); a 16-digit id. House-number text follows
    :func:`hub.address.normalise.parse_house_number`: ``12a`` is letter A, ``12-a`` toevoeging
    A. Raises :class:`AddressError` with a readable reason.
    """
    stripped = text.strip()
    m = _ID_RE.fullmatch(stripped)
    if m is not None:
        return AddressQuery(text, nummeraanduiding_id=normalise_nummeraanduiding_id(m.group(1)))
    if is_key(stripped):
        return AddressQuery(text, address_key=stripped)
    pc = _POSTCODE_IN_TEXT.search(stripped)
    if pc is None:
        raise AddressError(
            "address", f"{text!r} has no postcode (like 9711 AB) and is not a 16-digit id"
        )
    postcode = pc.group(1) + pc.group(2)
    after = stripped[pc.end() :].lstrip(" ,").split(",")[0].strip()
    if after[:1].isdigit():
        house = after
    else:
        before = _HOUSE_AT_END.search(stripped[: pc.start()])
        if before is None:
            raise AddressError("address", f"{text!r} has no house number")
        house = before.group(1).strip()
    return AddressQuery(text, address_key=make_key(normalise_address(postcode, house)))


def resolve_nummeraanduiding(settings: Settings, nummeraanduiding_id: str) -> str | None:
    """The address key the register facts give for an id (latest fact per Kafka key wins)."""
    topics = Topics.from_settings(settings)
    found: str | None = None
    wanted = f"nummeraanduiding:{nummeraanduiding_id}".encode()
    for msg in read_to_end(settings, [topics.address_register]):
        if msg.key is not None and msg.key != wanted:
            continue
        if msg.value is None:  # tombstone: the mapping was withdrawn
            if msg.key == wanted:
                found = None
            continue
        try:
            fact = orjson.loads(msg.value)
        except orjson.JSONDecodeError:
            continue
        if (
            isinstance(fact, dict)
            and fact.get("fact") == FACT_NUMMERAANDUIDING
            and fact.get("nummeraanduiding_id") == nummeraanduiding_id
        ):
            found = fact.get("address_key")
    return found
