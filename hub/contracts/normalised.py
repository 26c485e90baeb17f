"""The internal, normalised case event: what the correlation engine consumes.

Produced by the ingest stage after validation, address normalisation and resolution; one per
address the case applies to (a building-level case fans out to every address of the building).
Plain, slotted dataclass with primitive fields so it is cheap to build, compare and serialise
(``to_dict``/``from_dict`` give JSON-safe dicts for the internal topic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
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


def _compile_from_values() -> Callable[..., NormalisedEvent]:
    """A constructor that sets the slots directly, generated once from the field list.

    The dataclass's frozen ``__init__`` sets each of the 21 fields through
    ``object.__setattr__`` (a global look-up and a method call each); the ingest stage builds one
    event per inbound event and the correlate step one per event read back from a batch (issue
    17: about a third of the construction cost saved). Here each field is one call of its slot
    descriptor's ``__set__``. Every field is a required parameter, in field order, so a call
    with a missing value fails instead of taking a default. The source holds only the dataclass's
    own field names.
    """
    names = [f.name for f in fields(NormalisedEvent)]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": NormalisedEvent}
    lines = [f"def from_values({', '.join(names)}):", "    event = _new(_cls)"]
    for name in names:
        namespace[f"_set_{name}"] = NormalisedEvent.__dict__[name].__set__
        lines.append(f"    _set_{name}(event, {name})")
    lines.append("    return event")
    exec(compile("\n".join(lines), "<normalised-event>", "exec"), namespace)
    made: Callable[..., NormalisedEvent] = namespace["from_values"]
    return made


#: ``from_values(*row)`` or ``from_values(event_id=..., ...)``: every field given, in field
#: order; the same event as ``NormalisedEvent(...)`` (frozen, slotted), built faster.
from_values = _compile_from_values()


def retarget(
    base: NormalisedEvent,
    address_key: str,
    nummeraanduiding_id: str | None,
    gemeentecode: str | None,
    steering_group: str,
) -> NormalisedEvent:
    """``dataclasses.replace(base, ...)`` of the four per-address fields, without its
    per-call introspection of the fields (a building case is sent to each address)."""
    return from_values(
        base.event_id,
        base.source,
        base.case_id,
        base.case_type,
        base.status,
        base.occurred_at_ms,
        address_key,
        gemeentecode,
        steering_group,
        nummeraanduiding_id,
        base.pand_id,
        base.source_org,
        base.planned_start,
        base.planned_end,
        base.contact_name,
        base.contact_role,
        base.contact_phone,
        base.contact_email,
        base.amount_cents,
        base.ingested_at_ms,
        base.attributes,
    )
