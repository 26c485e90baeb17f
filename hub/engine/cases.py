"""The state of one case at one address, as the dossier keeps it.

Every event carries the case's full state, so the state is simply the fields of the winning event
(latest ``occurred_at``; ties: processed last) plus ``first_ms``, the earliest ``occurred_at`` ever
seen for the case (the lead tie-breaker; a minimum, so it does not depend on arrival order).
Work windows are kept as day ordinals too, so the collision rules compare ints, not dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from hub.contracts.enums import INACTIVE_STATUSES
from hub.contracts.normalised import NormalisedEvent

_INACTIVE = frozenset(s.value for s in INACTIVE_STATUSES)


@lru_cache(maxsize=1 << 14)
def day_ordinal(iso: str) -> int:
    """'2024-05-01' -> proleptic ordinal (days), cached: planned dates repeat a lot."""
    return date.fromisoformat(iso).toordinal()


def format_cents(cents: int | None) -> str | None:
    """Exact EUR text from integer cents: 5000001 -> '50000.01'."""
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


#: The DossierCase fields (schemas/avro/AddressDossier.v1.avsc), in the order of
#: :meth:`CaseState.dossier_case_row`.
DOSSIER_CASE_FIELDS: tuple[str, ...] = (
    "source",
    "case_id",
    "case_type",
    "status",
    "active",
    "occurred_at",
    "planned_start",
    "planned_end",
    "contact_role",
    "contact_name",
    "contact_phone",
    "contact_email",
    "amount_eur",
    "last_event_id",
)


@dataclass(slots=True)
class CaseState:
    source: str
    case_id: str
    case_type: str
    status: str
    active: bool
    occurred_at_ms: int
    first_ms: int
    planned_start: str | None
    planned_end: str | None
    start_day: int | None
    end_day: int | None
    contact_role: str | None
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    amount_cents: int | None
    last_event_id: str

    @classmethod
    def from_event(cls, ev: NormalisedEvent) -> CaseState:
        st = cls(
            ev.source,
            ev.case_id,
            "",
            "",
            False,
            ev.occurred_at_ms,
            ev.occurred_at_ms,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            "",
        )
        st.overwrite(ev)
        return st

    @property
    def ref(self) -> tuple[str, str]:
        return (self.source, self.case_id)

    @property
    def has_window(self) -> bool:
        return self.start_day is not None and self.end_day is not None

    def overwrite(self, ev: NormalisedEvent) -> bool:
        """Take the event's full state (the caller checked it is not older).

        Returns whether anything a rule looks at changed (type, status, window, contact, amount),
        so an event that only repeats the state skips rule evaluation.
        """
        status = ev.status
        changed = status != self.status or ev.case_type != self.case_type
        self.case_type = ev.case_type
        self.status = status
        self.occurred_at_ms = ev.occurred_at_ms
        self.last_event_id = ev.event_id
        if status in _INACTIVE:
            self.active = False
            self.shrink()
            return changed
        self.active = True
        ps = ev.planned_start
        if ps != self.planned_start:
            self.planned_start = ps
            self.start_day = day_ordinal(ps) if ps else None
            changed = True
        pe = ev.planned_end
        if pe != self.planned_end:
            self.planned_end = pe
            self.end_day = day_ordinal(pe) if pe else None
            changed = True
        if (
            ev.amount_cents != self.amount_cents
            or ev.contact_name != self.contact_name
            or ev.contact_role != self.contact_role
            or ev.contact_phone != self.contact_phone
            or ev.contact_email != self.contact_email
        ):
            self.amount_cents = ev.amount_cents
            self.contact_name = ev.contact_name
            self.contact_role = ev.contact_role
            self.contact_phone = ev.contact_phone
            self.contact_email = ev.contact_email
            changed = True
        return changed

    def shrink(self) -> None:
        """A closed case becomes a short summary: no windows, contacts (personal data) or amount."""
        self.planned_start = self.planned_end = None
        self.start_day = self.end_day = None
        self.contact_role = self.contact_name = self.contact_phone = self.contact_email = None
        self.amount_cents = None

    def to_row(self) -> list[Any]:
        return [
            self.source,
            self.case_id,
            self.case_type,
            self.status,
            self.active,
            self.occurred_at_ms,
            self.first_ms,
            self.planned_start,
            self.planned_end,
            self.start_day,
            self.end_day,
            self.contact_role,
            self.contact_name,
            self.contact_phone,
            self.contact_email,
            self.amount_cents,
            self.last_event_id,
        ]

    def alert_case(self) -> dict[str, str | None]:
        """The case as listed in an alert record (no personal data)."""
        return {
            "source": self.source,
            "case_id": self.case_id,
            "case_type": self.case_type,
            "status": self.status,
            "planned_start": self.planned_start,
            "planned_end": self.planned_end,
            "amount_eur": format_cents(self.amount_cents),
        }

    def lead_record(self) -> dict[str, str | None]:
        return {
            "source": self.source,
            "case_id": self.case_id,
            "case_type": self.case_type,
            "contact_role": self.contact_role,
            "contact_name": self.contact_name,
            "contact_phone": self.contact_phone,
            "contact_email": self.contact_email,
        }

    def dossier_case_row(self) -> tuple[Any, ...]:
        """:meth:`dossier_case` as a row of :data:`DOSSIER_CASE_FIELDS` (no dict)."""
        cents = self.amount_cents
        return (
            self.source,
            self.case_id,
            self.case_type,
            self.status,
            self.active,
            self.occurred_at_ms,
            self.planned_start,
            self.planned_end,
            self.contact_role,
            self.contact_name,
            self.contact_phone,
            self.contact_email,
            format_cents(cents) if cents is not None else None,
            self.last_event_id,
        )

    def dossier_case(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "case_id": self.case_id,
            "case_type": self.case_type,
            "status": self.status,
            "active": self.active,
            "occurred_at": self.occurred_at_ms,
            "planned_start": self.planned_start,
            "planned_end": self.planned_end,
            "contact_role": self.contact_role,
            "contact_name": self.contact_name,
            "contact_phone": self.contact_phone,
            "contact_email": self.contact_email,
            "amount_eur": format_cents(self.amount_cents),
            "last_event_id": self.last_event_id,
        }
