"""The inbound CaseEvent (version 1) as a pydantic model: shape validation only.

Normalisation and resolution of the address belong to ``hub.address``; this model checks that
each field has the documented shape. Most rules are expressed as pydantic constraints (run in
pydantic-core, no Python call) because the model is validated once per event on the ingest hot
path; ``hub.contracts.decode`` turns pydantic's errors into "field: value rule" messages.

JSON strictness (ISO 8601 text for timestamps and dates) is enforced by
``hub.contracts.decode.parse_case_event_json`` before the model sees the data; the Avro path
hands the model typed values (aware datetimes, dates, Decimals).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hub.contracts.enums import CaseStatus, CaseType, ContactRole, Source

NUMMERAANDUIDING_PATTERN = r"^[0-9]{4}20[0-9]{10}$"
PAND_PATTERN = r"^[0-9]{4}10[0-9]{10}$"
GEMEENTECODE_PATTERN = r"^GM[0-9]{4}$"
# Shape only: 4 digits (first 1-9), an optional space, 2 letters that are not SA/SD/SS; lower case
# tolerated (normalisation is hub.address's job). No look-ahead: pydantic-core's regex engine.
POSTCODE_PATTERN = r"^[1-9][0-9]{3} ?(?:[A-Ra-rT-Zt-z][A-Za-z]|[Ss][B-Cb-cE-Re-rT-Zt-z])$"
# A house number as a string: 1-99999, optionally followed by non-digit text ("12A", "12-3").
HUISNUMMER_STR_PATTERN = r"^[1-9][0-9]{0,4}(?:[^0-9].*)?$"
MAX_HUISNUMMER = 99999
MAX_AMOUNT_DIGITS = 14

# Size bounds (docs/contracts.md, "Size limits"): every free string and the attributes map is
# bounded so that one event cannot grow the internal batch, the state or a dead letter without
# limit. The encoded record as a whole is bounded too (checked at decode, before parsing).
MAX_ID_LENGTH = 200  # event_id, case_id, source_org
MAX_HUISNUMMER_TEXT = 32  # "12A-3 bis": a house number as text, before hub.address splits it
MAX_HUISLETTER = 8
MAX_TOEVOEGING = 16
MAX_CONTACT_NAME = 200
MAX_CONTACT_PHONE = 40
MAX_CONTACT_EMAIL = 254  # RFC 5321 path limit
MAX_ATTRIBUTES = 64  # entries
MAX_ATTRIBUTE_KEY = 64  # characters
MAX_ATTRIBUTE_VALUE = 2000  # characters
# All keys and values together, UTF-8 bytes: with it, every event that is valid field by field
# encodes (Avro) far below MAX_RECORD_BYTES, so what HTTP and file import accept (they validate
# parsed JSON, not bytes) is never refused for its size by the ingest stage later.
MAX_ATTRIBUTES_BYTES = 64 * 1024
MAX_RECORD_BYTES = 256 * 1024  # one encoded CaseEvent (Avro or JSON), checked at decode

# Plausibility of occurred_at (defaults of the HUB_OCCURRED_AT_* settings).
DEFAULT_OCCURRED_AT_FLOOR = datetime(2012, 1, 1, tzinfo=UTC)  # the Huizinge quake
DEFAULT_OCCURRED_AT_MAX_FUTURE = timedelta(days=1)

#: pydantic error type of an implausible occurred_at (hub.contracts.decode keeps its message).
IMPLAUSIBLE_TIME = "implausible_time"

_POSTCODE_RE = re.compile(POSTCODE_PATTERN)
_HUISNUMMER_STR_RE = re.compile(HUISNUMMER_STR_PATTERN, re.DOTALL)

HouseNumberInt = Annotated[int, Field(strict=True, ge=1, le=MAX_HUISNUMMER)]
HouseNumberStr = Annotated[
    str, Field(strict=True, max_length=MAX_HUISNUMMER_TEXT, pattern=HUISNUMMER_STR_PATTERN)
]
AttributeKey = Annotated[str, Field(min_length=1, max_length=MAX_ATTRIBUTE_KEY)]
AttributeValue = Annotated[str, Field(max_length=MAX_ATTRIBUTE_VALUE)]


@dataclass(frozen=True, slots=True)
class OccurredAtBounds:
    """The plausible range of ``occurred_at``: not before ``floor``, not more than ``max_future``
    ahead of ``clock()`` (epoch seconds; injectable so tests need no real clock)."""

    floor: datetime = DEFAULT_OCCURRED_AT_FLOOR
    max_future: timedelta = DEFAULT_OCCURRED_AT_MAX_FUTURE
    clock: Callable[[], float] = time.time


_bounds: OccurredAtBounds | None = None


def occurred_at_bounds() -> OccurredAtBounds:
    """The bounds in force: set by :func:`set_occurred_at_bounds`, else from the settings."""
    global _bounds
    if _bounds is None:
        from hub.settings import get_settings

        settings = get_settings()
        _bounds = OccurredAtBounds(settings.occurred_at_floor, settings.occurred_at_max_future)
    return _bounds


def set_occurred_at_bounds(bounds: OccurredAtBounds | None) -> None:
    """Use ``bounds`` for every CaseEvent validated in this process (None: back to settings).

    Process-wide like the codec: validation runs inside pydantic, which has no per-call context
    on the hot path; the ingest stage sets it from its own settings.
    """
    global _bounds
    _bounds = bounds


def _describe(delta: timedelta) -> str:
    """'1 day', '36 hours', '0 hours': the margin as a reader of a dead letter thinks of it."""
    hours = delta.total_seconds() / 3600
    number, unit = (hours / 24, "day") if hours >= 24 and hours % 24 == 0 else (hours, "hour")
    return f"{number:g} {unit}" + ("" if number == 1 else "s")


def is_dutch_postcode(value: str) -> bool:
    """True if ``value`` has the shape of a Dutch postcode (case and one space tolerated)."""
    return _POSTCODE_RE.match(value.strip()) is not None


def is_house_number(value: object) -> bool:
    """True for 1-99999, or a string starting with such a number ("12", "12A", "12-3")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 1 <= value <= MAX_HUISNUMMER
    return isinstance(value, str) and _HUISNUMMER_STR_RE.match(value.strip()) is not None


def _blanks_to_none(data: Any, fields: tuple[str, ...]) -> Any:
    """Source systems send "" for "absent": treat it as absent rather than as a bad value.

    One Python call per model, and a C-level ``"" in values()`` test first: this runs for every
    event. Whitespace-only strings are not blanks here; ``str_strip_whitespace`` turns them into
    "" which a pattern then rejects.
    """
    if data.__class__ is dict and "" in data.values():
        return {k: (None if v == "" and k in fields else v) for k, v in data.items()}
    return data


class Address(BaseModel):
    """Where a case applies, in BAG terms. Free-text parts are normalised later."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    nummeraanduiding_id: str | None = Field(default=None, pattern=NUMMERAANDUIDING_PATTERN)
    pand_id: str | None = Field(default=None, pattern=PAND_PATTERN)
    postcode: str | None = Field(default=None, pattern=POSTCODE_PATTERN)
    huisnummer: HouseNumberInt | HouseNumberStr | None = None
    huisletter: str | None = Field(default=None, max_length=MAX_HUISLETTER)
    huisnummertoevoeging: str | None = Field(default=None, max_length=MAX_TOEVOEGING)
    gemeentecode: str | None = Field(default=None, pattern=GEMEENTECODE_PATTERN)

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        return _blanks_to_none(
            data,
            (
                "nummeraanduiding_id",
                "pand_id",
                "postcode",
                "huisnummer",
                "huisletter",
                "huisnummertoevoeging",
                "gemeentecode",
            ),
        )

    @model_validator(mode="after")
    def _identifies_a_place(self) -> Address:
        has_postal = self.postcode is not None and self.huisnummer is not None
        if not (has_postal or self.nummeraanduiding_id or self.pand_id):
            raise ValueError(
                "an address needs postcode + huisnummer, nummeraanduiding_id or pand_id"
            )
        return self


class Contact(BaseModel):
    """Personal data (AVG/GDPR): never logged at INFO or above, never a metric label."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=MAX_CONTACT_NAME)
    role: ContactRole | None = None
    phone: str | None = Field(default=None, max_length=MAX_CONTACT_PHONE)
    email: str | None = Field(default=None, max_length=MAX_CONTACT_EMAIL)

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        return _blanks_to_none(data, ("name", "role", "phone", "email"))


class CaseEvent(BaseModel):
    """One agency's case, in its full current state, at ``occurred_at``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    source: Source
    source_org: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    case_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    case_type: CaseType
    status: CaseStatus
    occurred_at: AwareDatetime  # an offset is required: "2024-05-01T10:00:00+02:00"
    address: Address
    planned_start: date | None = None
    planned_end: date | None = None
    contact: Contact | None = None
    amount_eur: Decimal | None = Field(
        default=None, ge=0, max_digits=MAX_AMOUNT_DIGITS, decimal_places=2
    )
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES
    )

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        return _blanks_to_none(data, ("source_org",))

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: Source) -> Source:
        if value is Source.UNKNOWN:
            raise ValueError("UNKNOWN is a reader default, not a valid source to publish")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes_in_total(cls, value: dict[str, str]) -> dict[str, str]:
        """Bound the map's total size, not only each entry's (64 x 2,064 characters of 4-byte
        UTF-8 would be 528 KB). Characters first: the byte count is needed only near the bound."""
        if not value:
            return value
        chars = sum(map(len, value)) + sum(map(len, value.values()))  # C loops, no generator
        if chars * 4 > MAX_ATTRIBUTES_BYTES:
            size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
            if size > MAX_ATTRIBUTES_BYTES:
                raise PydanticCustomError(
                    "attributes_too_large",
                    "keys and values together should have at most {limit} bytes (UTF-8), "
                    "not {size}",
                    {"limit": MAX_ATTRIBUTES_BYTES, "size": size},
                )
        return value

    @field_validator("occurred_at")
    @classmethod
    def _plausible_time(cls, value: datetime) -> datetime:
        """Refuse typos such as 2204: a far-future event would outrank every correction."""
        bounds = _bounds or occurred_at_bounds()
        if value < bounds.floor:
            raise PydanticCustomError(
                IMPLAUSIBLE_TIME,
                "is before {floor}, the earliest plausible occurred_at",
                {"floor": bounds.floor.isoformat().replace("+00:00", "Z")},
            )
        if value.timestamp() > bounds.clock() + bounds.max_future.total_seconds():
            raise PydanticCustomError(
                IMPLAUSIBLE_TIME,
                "is more than {margin} in the future",
                {"margin": _describe(bounds.max_future)},
            )
        return value

    @field_validator("planned_end")
    @classmethod
    def _window_in_order(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("planned_start")
        if value is not None and start is not None and value < start:
            raise ValueError("must be on or after planned_start")
        return value
