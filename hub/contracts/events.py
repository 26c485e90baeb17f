"""The inbound CaseEvent (version 1) as a pydantic model: shape validation only.

Normalisation and resolution of the address belong to ``hub.address``; this model checks that
each field has the documented shape and names the field and the rule when it does not.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.contracts.enums import CaseStatus, CaseType, ContactRole, Source

NUMMERAANDUIDING_PATTERN = r"^[0-9]{4}20[0-9]{10}$"
PAND_PATTERN = r"^[0-9]{4}10[0-9]{10}$"
GEMEENTECODE_PATTERN = r"^GM[0-9]{4}$"


class Address(BaseModel):
    """Where a case applies, in BAG terms. Free-text parts are normalised later."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    nummeraanduiding_id: str | None = Field(default=None, pattern=NUMMERAANDUIDING_PATTERN)
    pand_id: str | None = Field(default=None, pattern=PAND_PATTERN)
    postcode: str | None = Field(default=None, max_length=16)
    huisnummer: int | str | None = None
    huisletter: str | None = Field(default=None, max_length=8)
    huisnummertoevoeging: str | None = Field(default=None, max_length=16)
    gemeentecode: str | None = Field(default=None, pattern=GEMEENTECODE_PATTERN)

    @model_validator(mode="after")
    def _identifies_a_place(self) -> Address:
        has_postal = self.postcode is not None and self.huisnummer not in (None, "")
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


class CaseEvent(BaseModel):
    """One agency's case, in its full current state, at ``occurred_at``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=200)
    source: Source
    source_org: str | None = Field(default=None, max_length=200)
    case_id: str = Field(min_length=1, max_length=200)
    case_type: CaseType
    status: CaseStatus
    occurred_at: datetime
    address: Address
    planned_start: date | None = None
    planned_end: date | None = None
    contact: Contact | None = None
    amount_eur: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _has_offset(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset (ISO 8601, e.g. 2024-05-01T10:00:00+02:00)")
        return value

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: Source) -> Source:
        if value is Source.UNKNOWN:
            raise ValueError("UNKNOWN is a reader default, not a valid source to publish")
        return value

    @model_validator(mode="after")
    def _window_in_order(self) -> CaseEvent:
        if self.planned_start and self.planned_end and self.planned_end < self.planned_start:
            raise ValueError("planned_end must be on or after planned_start")
        return self
