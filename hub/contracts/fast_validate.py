"""A decoded Avro CaseEvent that plainly satisfies the contract, built without pydantic.

pydantic's validation of an inbound CaseEvent (three models, five Python validators) was about
half of the ingest stage's decode + validate CPU (17 of 32 µs an event, issue 17), and the
ingest child bounds the hub's throughput. The Avro decoder has already guaranteed every type
(strings, enum symbols, ints, aware datetimes, dates, Decimals), so what is left to check is
short: lengths, patterns, ranges and the cross-field rules of :mod:`hub.contracts.events`.

Only a fast path, never a second opinion (like :mod:`hub.contracts.avro_reader`):
:func:`accept` returns the CaseEvent pydantic would build (same values, same objects where
pydantic passes them through, same ``model_fields_set``) or ``None`` whenever anything is
unusual: a blank or unstripped string, an unknown or UNKNOWN enum symbol, any bound not
plainly met. ``None`` sends the record to pydantic, so every rejection, with its field and
message, is pydantic's. ``tests/unit/test_fast_validate.py`` compares both over generated
records, valid and invalid.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel

from hub.contracts import events
from hub.contracts.enums import CaseStatus, CaseType, ContactRole, Source
from hub.contracts.events import (
    GEMEENTECODE_PATTERN,
    HUISNUMMER_STR_PATTERN,
    MAX_AMOUNT_DIGITS,
    MAX_ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_CONTACT_EMAIL,
    MAX_CONTACT_NAME,
    MAX_CONTACT_PHONE,
    MAX_HUISLETTER,
    MAX_HUISNUMMER,
    MAX_HUISNUMMER_TEXT,
    MAX_ID_LENGTH,
    MAX_TOEVOEGING,
    NUMMERAANDUIDING_PATTERN,
    PAND_PATTERN,
    POSTCODE_PATTERN,
    Address,
    CaseEvent,
    Contact,
    occurred_at_bounds,
)

log = logging.getLogger(__name__)

#: sha256 of the source of :mod:`hub.contracts.events` this fast path was checked against. Any
#: edit there (a field, a bound, a validator) turns the fast path off, so pydantic alone
#: validates, until someone has brought this module in line and updated the digest
#: (``tests/unit/test_fast_validate.py`` fails meanwhile and prints the new one).
REVIEWED_CONTRACT = "61c66395506768a0aa2d4098725a2c9a094c798e892c08dfcd0b40b00d9d431a"


def contract_digest() -> str | None:
    """The digest of :mod:`hub.contracts.events` as installed (None: its source is absent)."""
    try:
        source = inspect.getsource(events)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()


#: False when the contract changed since the review: every record goes to pydantic.
ENABLED = contract_digest() == REVIEWED_CONTRACT
if not ENABLED:
    log.info("CaseEvent fast path off: hub.contracts.events changed since fast_validate's review")


def _full(pattern: str) -> Any:
    """``pattern`` (anchored ``^...$`` for pydantic) as a whole-string matcher: no ``$`` that
    also matches before a final newline."""
    return re.compile(pattern.removeprefix("^").removesuffix("$")).fullmatch


_NUMMERAANDUIDING = _full(NUMMERAANDUIDING_PATTERN)
_PAND = _full(PAND_PATTERN)
_POSTCODE = _full(POSTCODE_PATTERN)
_GEMEENTECODE = _full(GEMEENTECODE_PATTERN)
_HUISNUMMER_STR = _full(HUISNUMMER_STR_PATTERN)  # "." without DOTALL, like pydantic's regex

_AMOUNT_PLACES = 2  # CaseEvent.amount_eur's decimal_places

_SOURCES = {s.value: s for s in Source if s is not Source.UNKNOWN}
_CASE_TYPES = {s.value: s for s in CaseType}
_STATUSES = {s.value: s for s in CaseStatus}
_ROLES = {s.value: s for s in ContactRole}

M = TypeVar("M", bound=BaseModel)

# the fields in the models' order, which is the schema's and the Avro reader's: a dict in any
# other order would give the model another __dict__ order than pydantic's
_ADDRESS_KEYS = tuple(Address.model_fields)
_CONTACT_KEYS = tuple(Contact.model_fields)
_EVENT_KEYS = tuple(CaseEvent.model_fields)
# BaseModel's own slot setters: what model_construct does with object.__setattr__, at half the cost
_SET_DICT = BaseModel.__dict__["__dict__"].__set__
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__


def _text(value: Any, max_length: int) -> bool:
    """A present string pydantic keeps as it is: not blank, nothing to strip, short enough."""
    return (
        value.__class__ is str
        and 0 < len(value) <= max_length
        and value.strip() is value  # CPython returns the string itself when nothing is stripped
    )


def _build(model: type[M], values: dict[str, Any]) -> M:
    """``model.model_construct(**values)`` for a dict holding every field: what pydantic sets."""
    obj = model.__new__(model)
    _SET_DICT(obj, values)
    _SET_FIELDS_SET(obj, set(values))
    _SET_EXTRA(obj, None)
    _SET_PRIVATE(obj, None)
    return obj


def _address(raw: Any) -> Address | None:
    # exactly the model's fields, in the reader's (schema) order, like pydantic's __dict__
    if raw.__class__ is not dict or tuple(raw) != _ADDRESS_KEYS:
        return None
    nid = raw["nummeraanduiding_id"]
    pand = raw["pand_id"]
    postcode = raw["postcode"]
    number = raw["huisnummer"]
    gemeentecode = raw["gemeentecode"]
    letter = raw["huisletter"]
    addition = raw["huisnummertoevoeging"]
    if nid is not None and (nid.__class__ is not str or _NUMMERAANDUIDING(nid) is None):
        return None
    if pand is not None and (pand.__class__ is not str or _PAND(pand) is None):
        return None
    if postcode is not None and (postcode.__class__ is not str or _POSTCODE(postcode) is None):
        return None
    if gemeentecode is not None and (
        gemeentecode.__class__ is not str or _GEMEENTECODE(gemeentecode) is None
    ):
        return None
    if letter is not None and not _text(letter, MAX_HUISLETTER):
        return None
    if addition is not None and not _text(addition, MAX_TOEVOEGING):
        return None
    if number.__class__ is int:
        if not 1 <= number <= MAX_HUISNUMMER:
            return None
    elif number is not None and not (
        _text(number, MAX_HUISNUMMER_TEXT) and _HUISNUMMER_STR(number) is not None
    ):
        return None
    if not ((postcode is not None and number is not None) or nid or pand):
        return None
    return _build(Address, dict(raw))


def _contact(raw: Any) -> Contact | None:
    if raw.__class__ is not dict or tuple(raw) != _CONTACT_KEYS:
        return None
    name, phone, email = raw["name"], raw["phone"], raw["email"]
    if name is not None and not _text(name, MAX_CONTACT_NAME):
        return None
    if phone is not None and not _text(phone, MAX_CONTACT_PHONE):
        return None
    if email is not None and not _text(email, MAX_CONTACT_EMAIL):
        return None
    values = dict(raw)
    role = raw["role"]
    if role is not None:
        role = values["role"] = _ROLES.get(role) if role.__class__ is str else None
        if role is None:
            return None
    return _build(Contact, values)


def _attributes(raw: Any) -> dict[str, str] | None:
    if raw.__class__ is not dict or len(raw) > MAX_ATTRIBUTES:
        return None
    chars = 0
    for key, value in raw.items():
        if not _text(key, MAX_ATTRIBUTE_KEY):
            return None
        # a value may be "" (kept as it is), but never needs stripping
        if value.__class__ is not str or len(value) > MAX_ATTRIBUTE_VALUE:
            return None
        if value and value.strip() is not value:
            return None
        chars += len(key) + len(value)
    if chars * 4 > MAX_ATTRIBUTES_BYTES:  # maybe too large in UTF-8 bytes: pydantic decides
        return None
    return dict(raw)  # pydantic's is a new dict too


def _amount(value: Any) -> bool:
    """A finite Decimal >= 0 with at most 2 decimal places and 14 digits, so at most 12 before
    the point, however pydantic counts them (with or without trailing zeros)."""
    if value.__class__ is not Decimal or not value.is_finite() or value < 0:
        return False
    _, digits, exponent = value.as_tuple()
    return (
        isinstance(exponent, int)
        and -_AMOUNT_PLACES <= exponent <= 0
        and len(digits) + exponent <= MAX_AMOUNT_DIGITS - _AMOUNT_PLACES
    )


def accept(record: Any, floor: datetime, latest: float) -> CaseEvent | None:
    """The CaseEvent of a decoded Avro record, or None: then pydantic validates it.

    ``floor`` and ``latest`` (epoch seconds) bound ``occurred_at`` (see :func:`bounds`). The
    record is not changed: the models get copies of its dicts (pydantic's are new dicts too).
    """
    if record.__class__ is not dict or tuple(record) != _EVENT_KEYS:
        return None
    source, case_type, status = record["source"], record["case_type"], record["status"]
    if source.__class__ is not str or case_type.__class__ is not str or status.__class__ is not str:
        return None
    source = _SOURCES.get(source)
    case_type = _CASE_TYPES.get(case_type)
    status = _STATUSES.get(status)
    if source is None or case_type is None or status is None:
        return None
    occurred_at = record["occurred_at"]
    if (
        occurred_at.__class__ is not datetime
        or occurred_at.tzinfo is not UTC  # what the Avro reader gives: aware, in UTC
        or occurred_at < floor
        or occurred_at.timestamp() > latest
    ):
        return None
    source_org = record["source_org"]
    amount = record["amount_eur"]
    if not (
        _text(record["event_id"], MAX_ID_LENGTH)
        and _text(record["case_id"], MAX_ID_LENGTH)
        and (source_org is None or _text(source_org, MAX_ID_LENGTH))
        and (amount is None or _amount(amount))
    ):
        return None
    start, end = record["planned_start"], record["planned_end"]
    if start is not None and start.__class__ is not date:
        return None
    if end is not None and (end.__class__ is not date or (start is not None and end < start)):
        return None
    contact = record["contact"]
    if contact is not None and (contact.__class__ is not dict or tuple(contact) != _CONTACT_KEYS):
        return None
    attributes = _attributes(record["attributes"])
    if attributes is None:
        return None
    address = _address(record["address"])
    if address is None:
        return None
    if contact is not None:
        contact = _contact(contact)
        if contact is None:
            return None
    values = dict(record)
    values["source"] = source
    values["case_type"] = case_type
    values["status"] = status
    values["address"] = address
    values["contact"] = contact
    values["attributes"] = attributes
    return _build(CaseEvent, values)


def bounds() -> tuple[datetime, float]:
    """``occurred_at``'s floor and latest plausible instant now (the bounds pydantic applies),
    read once per batch."""
    current = occurred_at_bounds()
    return current.floor, current.clock() + current.max_future.total_seconds()
