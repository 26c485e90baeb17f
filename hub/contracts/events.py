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
from datetime import date
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

_POSTCODE_RE = re.compile(POSTCODE_PATTERN)
_HUISNUMMER_STR_RE = re.compile(HUISNUMMER_STR_PATTERN, re.DOTALL)

HouseNumberInt = Annotated[int, Field(strict=True, ge=1, le=MAX_HUISNUMMER)]
HouseNumberStr = Annotated[str, Field(strict=True, pattern=HUISNUMMER_STR_PATTERN)]


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
    huisletter: str | None = Field(default=None, max_length=8)
    huisnummertoevoeging: str | None = Field(default=None, max_length=16)
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

    name: str | None = Field(default=None, max_length=200)
    role: ContactRole | None = None
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        return _blanks_to_none(data, ("name", "role", "phone", "email"))


class CaseEvent(BaseModel):
    """One agency's case, in its full current state, at ``occurred_at``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=200)
    source: Source
    source_org: str | None = Field(default=None, max_length=200)
    case_id: str = Field(min_length=1, max_length=200)
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
    attributes: dict[str, str] = Field(default_factory=dict)

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

    @field_validator("planned_end")
    @classmethod
    def _window_in_order(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("planned_start")
        if value is not None and start is not None and value < start:
            raise ValueError("must be on or after planned_start")
        return value
