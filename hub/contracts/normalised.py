"""The internal, normalised case event: what the correlation engine consumes.

Produced by the ingest stage after validation, address normalisation and resolution; one per
address the case applies to (a building-level case fans out to every address of the building).
Plain, slotted dataclass with primitive fields so it is cheap to build, compare and serialise
(``to_dict``/``from_dict`` give JSON-safe dicts for the internal topic).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class NormalisedEvent:
    event_id: str
    source: str  # hub.contracts.enums.Source value
    case_id: str
    case_type: str  # CaseType value
    status: str  # CaseStatus value
    occurred_at_ms: int  # epoch milliseconds, UTC
    address_key: str  # canonical key, e.g. "9711AB-12A-2" (see hub.address.key)
    gemeentecode: str | None = None  # current municipality, "GM0014"; None if unknown
    steering_group: str = "UNASSIGNED"
    nummeraanduiding_id: str | None = None
    pand_id: str | None = None  # the building: a register fact, or the building-level case
    source_org: str | None = None
    planned_start: str | None = None  # ISO date "YYYY-MM-DD"
    planned_end: str | None = None
    contact_name: str | None = None
    contact_role: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    amount_cents: int | None = None  # amount_eur * 100, exact
    ingested_at_ms: int = 0  # when the hub accepted it (for latency metrics)
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def case_ref(self) -> tuple[str, str]:
        return (self.source, self.case_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalisedEvent:
        return cls(**data)
