"""Compact builders of NormalisedEvents for engine and pipeline tests (test-only helpers).

Event ids default to a function of (source, case, status, time), so building the same event twice
gives a true duplicate, and times are seconds after a fixed epoch so tests read as a timeline.
"""

from __future__ import annotations

from decimal import Decimal

from hub.contracts.normalised import NormalisedEvent

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ADDRESS = "9711AB-12-"  # in Groningen (GM0014)


def event(
    source: str = "NCG",
    case_id: str = "c1",
    case_type: str = "STRENGTHENING",
    status: str = "OPENED",
    at: int = 0,
    *,
    address_key: str = ADDRESS,
    gemeentecode: str | None = "GM0014",
    steering_group: str = "Groningen",
    start: str | None = None,
    end: str | None = None,
    amount: str | None = None,
    contact_name: str | None = None,
    contact_role: str | None = None,
    contact_phone: str | None = None,
    contact_email: str | None = None,
    pand_id: str | None = None,
    nummeraanduiding_id: str | None = None,
    event_id: str | None = None,
) -> NormalisedEvent:
    """One case state at ``at`` seconds after T0; ``amount`` is EUR text, e.g. '50000.01'."""
    cents = int(Decimal(amount) * 100) if amount is not None else None
    return NormalisedEvent(
        event_id=event_id or f"{source}/{case_id}/{status}/{at}/{address_key}",
        source=source,
        case_id=case_id,
        case_type=case_type,
        status=status,
        occurred_at_ms=T0_MS + at * 1000,
        address_key=address_key,
        gemeentecode=gemeentecode,
        steering_group=steering_group,
        nummeraanduiding_id=nummeraanduiding_id,
        pand_id=pand_id,
        planned_start=start,
        planned_end=end,
        contact_name=contact_name,
        contact_role=contact_role,
        contact_phone=contact_phone,
        contact_email=contact_email,
        amount_cents=cents,
        ingested_at_ms=T0_MS + at * 1000 + 5,
    )
