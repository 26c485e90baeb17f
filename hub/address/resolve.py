"""Resolution of a validated ``CaseEvent`` into one ``NormalisedEvent`` per address it applies to.

The :class:`Ingestor` is pure (no I/O, no Kafka) but stateful: it holds the address register, the
memory of building-level cases and the parked events. The ingest stage owns one per worker.

Rules:

* postcode + huisnummer -> the key comes from them, and the event teaches the register the
  nummeraanduiding id, pand id and gemeentecode it carries;
* only a nummeraanduiding id -> the key comes from the register, or the event is *parked* until
  the register learns that id (from a later event, a fact of another worker or a seed + replay);
* an event that identifies an address (postcode + huisnummer, or a nummeraanduiding id) is an
  address-level case, whatever else it carries: its pand id is only a register fact (this address
  is in that building) and never makes the case reach the building's other addresses;
* only a pand id (no postcode + huisnummer, no nummeraanduiding id) -> a building-level case: it
  applies to every address of the building the register knows, and it is remembered per
  (pand, source, case_id), latest ``occurred_at`` wins, so an address that joins the building
  later receives it (``released``). With no known address in the building yet it is parked until
  one is.

Current municipality of an address: the event's ``gemeentecode`` (mapped through the merger
table), else the register, else the 4-digit prefix of a BAG id (nummeraanduiding, then pand)
through the merger table. Steering group from the reference config; none -> ``UNASSIGNED``.

Parked events keep only the latest state per (source, case_id): events carry a case's full state.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN
from pathlib import Path
from typing import Any

from hub.address.key import address_key
from hub.address.municipalities import Municipalities, default_municipalities
from hub.address.normalise import (
    AddressError,
    normalise_nummeraanduiding_id,
    normalise_pand_id,
)
from hub.address.register import (
    FACT_NUMMERAANDUIDING,
    FACT_PAND,
    AddressRegister,
    Fact,
    LoadReport,
)
from hub.contracts.events import Address, CaseEvent
from hub.contracts.normalised import NormalisedEvent, from_values, retarget

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

CaseRef = tuple[str, str]  # (source, case_id)


@dataclass(slots=True)
class IngestResult:
    """What one ``ingest`` (or ``apply_fact``/``replay_parked``) produced."""

    normalised: list[NormalisedEvent] = field(default_factory=list)  # this event, per address
    parked: list[CaseEvent] = field(default_factory=list)  # waiting for a register mapping
    released: list[NormalisedEvent] = field(default_factory=list)  # unlocked by what was learned
    learned: list[Fact] = field(default_factory=list)  # new register facts, to publish
    error: AddressError | None = None  # the address cannot be a Dutch address: dead-letter
    # the building-level case this event remembered (pand-only events), to persist; None for an
    # address-level event, whose pand id is only a register fact
    building_case: NormalisedEvent | None = None
    # (source, event_id) of parked events that left the parking without being released as
    # themselves: superseded by a later event of their case, or served by the building memory.
    # Their parked records must go (tombstones), or a restart would re-ingest and deliver them.
    unparked: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Parked:
    event: CaseEvent
    ingested_at_ms: int


def _shared_strings(t: NormalisedEvent) -> NormalisedEvent:
    """An equal template whose repeated strings (source, type, status, municipality, steering
    group, organisation, dates, contact role, attribute names and short values) are shared.

    Building cases stay in memory for good (issue 17, memory: ~1.5 kB each, ~60k at 1M
    addresses); decoded fresh, each held its own copy of every one of these strings.
    """
    intern = _shared
    return from_values(
        t.event_id,
        intern(t.source),
        t.case_id,
        intern(t.case_type),
        intern(t.status),
        t.occurred_at_ms,
        t.address_key,
        _shared(t.gemeentecode),
        intern(t.steering_group),
        t.nummeraanduiding_id,
        t.pand_id,
        _shared(t.source_org),
        _shared(t.planned_start),
        _shared(t.planned_end),
        t.contact_name,
        _shared(t.contact_role),
        t.contact_phone,
        t.contact_email,
        t.amount_cents,
        t.ingested_at_ms,
        {intern(k): intern(v) for k, v in t.attributes.items()},
    )


def _shared(value: Any) -> Any:
    """``value`` interned when a short str (a code, a date, a name from a small vocabulary)."""
    if type(value) is not str or len(value) > _SHARED_MAX:
        return value
    return sys.intern(value)


_SHARED_MAX = 40  # longer strings are free text: interning them would only cost


def occurred_at_ms(moment: datetime) -> int:
    """Epoch milliseconds (UTC) of an offset-aware datetime, exact integer arithmetic."""
    return (moment - _EPOCH) // _MS


class Ingestor:
    """Resolves case events against the register; see the module docstring for the rules."""

    def __init__(
        self,
        register: AddressRegister | None = None,
        municipalities: Municipalities | None = None,
    ) -> None:
        self.register = register if register is not None else AddressRegister()
        self.municipalities = (
            municipalities if municipalities is not None else default_municipalities()
        )
        # pand -> case -> latest state as a template (address_key = own key or "")
        self._buildings: dict[str, dict[CaseRef, NormalisedEvent]] = {}
        self._parked_on_id: dict[str, dict[CaseRef, _Parked]] = {}
        self._parked_on_pand: dict[str, dict[CaseRef, _Parked]] = {}
        self._parked = 0  # entries of both, kept as they change (read after every batch)
        # nummeraanduiding id -> pands an event placed it in before the id's key was known
        self._pending_links: dict[str, set[str]] = {}

    # -- public API -------------------------------------------------------------------------

    def ingest(self, event: CaseEvent, ingested_at_ms: int) -> IngestResult:
        """Resolve one validated event. Never raises for a bad address: see ``result.error``."""
        result = IngestResult()
        self._process(event, ingested_at_ms, result, release=False)
        return result

    def apply_fact(self, fact: Fact) -> IngestResult:
        """Learn a fact another worker published; ``released`` holds what it unlocked.

        ``learned`` holds only facts *derived* here (not ``fact`` itself, already published).
        Raises ValueError for a malformed fact.
        """
        result = IngestResult()
        new = self.register.apply_fact(fact)
        if new:
            self._drain(new, result, skip=None)
        return result

    def parked_events(self) -> list[CaseEvent]:
        """Every parked event (latest state per case and wait reason)."""
        out = [p.event for waiting in self._parked_on_id.values() for p in waiting.values()]
        out.extend(p.event for waiting in self._parked_on_pand.values() for p in waiting.values())
        return out

    @property
    def parked_count(self) -> int:
        """Parked events (one per case and wait reason), counted as they come and go: the
        ingest stage reads it after every batch that parks, and a sum over every waiting id
        and pand grew with the backlog of parked events (issue 17)."""
        return self._parked

    def replay_parked(self) -> IngestResult:
        """Retry every parked event against the register as it is now (the operator command).

        Needed after the register learned without going through ``ingest``/``apply_fact`` (a CSV
        seed). Resolved events go to ``released``; those still unresolved are re-parked and
        listed in ``parked``.
        """
        pending = [p for waiting in self._parked_on_id.values() for p in waiting.values()]
        pending.extend(p for waiting in self._parked_on_pand.values() for p in waiting.values())
        self._parked_on_id.clear()
        self._parked_on_pand.clear()
        self._parked = 0
        result = IngestResult()
        for p in pending:
            self._process(p.event, p.ingested_at_ms, result, release=True)
        return result

    def seed_csv(self, path: Path) -> tuple[LoadReport, IngestResult]:
        """Seed the register from a BAG extract (codes merger-mapped), then replay parked events.

        Building cases remembered before the seed are not re-targeted to the seeded addresses:
        seed at start-up, before consuming.
        """
        report = self.register.load_csv(path, map_gemeentecode=self.municipalities.current_code)
        return report, self.replay_parked()

    def building_cases(self, pand_id: str) -> list[NormalisedEvent]:
        """The remembered latest state of each building-level case of a pand."""
        return list(self._buildings.get(pand_id, {}).values())

    def building_releases(self, key: str, pand_id: str) -> list[NormalisedEvent]:
        """Every remembered case of building ``pand_id``, re-targeted to its address ``key``.

        What learning "key is in pand" releases; the ingest stage sends these again after a
        restart for links whose releases it cannot prove were delivered.
        """
        return [self._target(t, key) for t in self._buildings.get(pand_id, {}).values()]

    def iter_building_cases(self) -> Iterator[NormalisedEvent]:
        """Every remembered building case (to persist; restore with :meth:`remember`)."""
        for cases in self._buildings.values():
            yield from cases.values()

    def remember(self, templates: Iterable[NormalisedEvent]) -> None:
        """Restore building-case memory from :meth:`iter_building_cases` output (no emission).

        Templates that identify an address (own key or nummeraanduiding id) are skipped: older
        versions also remembered address-level events that carried a pand id, and those must not
        reach the building's other addresses.
        """
        for t in templates:
            if t.pand_id is not None and not t.address_key and t.nummeraanduiding_id is None:
                self._remember(t.pand_id, t)

    # -- internals --------------------------------------------------------------------------

    def _process(
        self, event: CaseEvent, ingested_at_ms: int, result: IngestResult, *, release: bool
    ) -> None:
        try:
            key, nid, pand, gm = self._resolve_address(event.address)
        except AddressError as exc:
            if release:  # cannot happen for an event that was parked, but never lose it silently
                log.warning("parked event %s no longer resolves: %s", event.event_id, exc.field)
            else:
                result.error = exc
            return
        register = self.register
        if key is None and nid is not None:
            key = register.key_for_id(nid)
        base = self._base(event, ingested_at_ms, key, nid, gm, pand)

        if key is not None:
            facts = register.learn(key, nummeraanduiding_id=nid, pand_id=pand, gemeentecode=gm)
        else:
            facts = []
            if nid is not None and pand is not None:
                self._pending_links.setdefault(nid, set()).add(pand)
        building_level = pand is not None and key is None and nid is None
        skip = base  # what the drain must not release again: this event, as remembered
        if building_level:
            assert pand is not None
            skip = self._remember(pand, base) or base
            result.building_case = base
        if facts:
            result.learned.extend(facts)
            self._drain(facts, result, skip=skip)

        if building_level:
            assert pand is not None
            targets = register.keys_in_building(pand)
        else:
            targets = (key,) if key is not None else ()
        if not targets:
            self._park(event, ingested_at_ms, nid, pand if building_level else None, result)
            result.parked.append(event)
            return
        out = result.released if release else result.normalised
        for target in targets:
            out.append(self._target(base, target))

    def _resolve_address(
        self, address: Address
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """(key or None, nummeraanduiding id, pand id, current gemeentecode) of an address."""
        key = None
        if address.postcode is not None and address.huisnummer not in (None, ""):
            key = address_key(
                address.postcode,
                address.huisnummer,
                address.huisletter,
                address.huisnummertoevoeging,
            )
        nid = address.nummeraanduiding_id
        if nid is not None:
            nid = normalise_nummeraanduiding_id(nid)
        pand = address.pand_id
        if pand is not None:
            pand = normalise_pand_id(pand)
        gm = address.gemeentecode
        if gm is not None:
            gm = self.municipalities.current_code(gm)
        return key, nid, pand, gm

    def _base(
        self,
        event: CaseEvent,
        ingested_at_ms: int,
        key: str | None,
        nid: str | None,
        gm: str | None,
        pand: str | None,
    ) -> NormalisedEvent:
        """The event for its own address (key may be unknown: ``""``), fields normalised once."""
        register = self.register
        if nid is None and key is not None:
            ids = register.ids_of(key)
            nid = ids[0] if ids else None
        if gm is None:
            gm = register.municipality_of(key) if key is not None else None
            if gm is None:
                gm = self.municipalities.code_from_bag_id(nid or pand)
        contact = event.contact
        amount = event.amount_eur
        # NormalisedEvent(...): every field, in field order, positionally (issue 17: a call
        # with 21 keywords cost about as much again as the construction itself)
        return from_values(
            event.event_id,  # event_id
            str(event.source),  # source
            event.case_id,  # case_id
            str(event.case_type),  # case_type
            str(event.status),  # status
            occurred_at_ms(event.occurred_at),  # occurred_at_ms
            key or "",  # address_key
            gm,  # gemeentecode
            self.municipalities.steering_group(gm),  # steering_group
            nid,  # nummeraanduiding_id
            pand,  # pand_id
            event.source_org,  # source_org
            event.planned_start.isoformat() if event.planned_start else None,  # planned_start
            event.planned_end.isoformat() if event.planned_end else None,  # planned_end
            contact.name if contact else None,  # contact_name
            str(contact.role) if contact and contact.role else None,  # contact_role
            contact.phone if contact else None,  # contact_phone
            contact.email if contact else None,  # contact_email
            # amount has at most 2 decimals (contract), so scaling by 10^2 is exact
            (  # amount_cents
                int(amount.scaleb(2).to_integral_value(rounding=ROUND_HALF_EVEN))
                if amount is not None
                else None
            ),
            ingested_at_ms,  # ingested_at_ms
            dict(event.attributes),  # attributes
        )

    def _target(self, base: NormalisedEvent, key: str) -> NormalisedEvent:
        """``base`` re-targeted to another address of its building (id, municipality per key)."""
        if key == base.address_key:
            return base
        register = self.register
        nid = base.nummeraanduiding_id
        if nid is None or register.key_for_id(nid) != key:  # not the event's own address
            ids = register.ids_of(key)
            nid = ids[0] if ids else None
        gm = register.municipality_of(key)
        if gm is None and nid is not None:
            gm = self.municipalities.code_from_bag_id(nid)
        if gm is None:
            gm = base.gemeentecode  # same building: the event's own municipality or pand prefix
        return retarget(base, key, nid, gm, self.municipalities.steering_group(gm))

    def _remember(self, pand: str, template: NormalisedEvent) -> NormalisedEvent | None:
        """Keep ``template`` as its case's latest state; returns the copy kept (None: older)."""
        cases = self._buildings.get(pand)
        if cases is None:
            cases = self._buildings[pand] = {}
        ref = template.case_ref
        previous = cases.get(ref)
        if previous is None or previous.occurred_at_ms <= template.occurred_at_ms:
            kept = cases[ref] = _shared_strings(template)
            return kept
        return None

    def _park(
        self,
        event: CaseEvent,
        ingested_at_ms: int,
        nid: str | None,
        pand: str | None,
        result: IngestResult,
    ) -> None:
        """Keep the latest event per case and wait reason; the other one is ``unparked``."""
        if pand is not None:  # released through the building memory once the pand has an address
            store, wait_on = self._parked_on_pand, pand
        else:
            assert nid is not None  # an Address has postcode+huisnummer, an id or a pand
            store, wait_on = self._parked_on_id, nid
        waiting = store.setdefault(wait_on, {})
        ref: CaseRef = (str(event.source), event.case_id)
        previous = waiting.get(ref)
        if previous is None:
            self._parked += 1
        if previous is None or previous.event.occurred_at <= event.occurred_at:
            waiting[ref] = _Parked(event, ingested_at_ms)
            if previous is not None and previous.event.event_id != event.event_id:
                result.unparked.append((str(previous.event.source), previous.event.event_id))
        else:  # an older event of the case than the one waiting: never released itself
            result.unparked.append((str(event.source), event.event_id))
        log.debug("parked %s: waiting for %s", event.event_id, "pand" if pand else "id")

    def _drain(
        self, facts: list[Fact], result: IngestResult, *, skip: NormalisedEvent | None
    ) -> None:
        """Release what new facts unlock; facts derived on the way are learned and drained too."""
        queue = deque(facts)
        register = self.register
        while queue:
            fact = queue.popleft()
            kind = fact["fact"]
            if kind == FACT_NUMMERAANDUIDING:
                nid, key = fact["nummeraanduiding_id"], fact["address_key"]
                for pand in self._pending_links.pop(nid, ()):
                    derived = register.learn(key, pand_id=pand)
                    result.learned.extend(derived)
                    queue.extend(derived)
                waiting = self._parked_on_id.pop(nid, None)
                if waiting:
                    self._parked -= len(waiting)
                    for p in waiting.values():
                        self._process(p.event, p.ingested_at_ms, result, release=True)
            elif kind == FACT_PAND:
                pand, key = fact["pand_id"], fact["address_key"]
                served = self._parked_on_pand.pop(pand, None)  # by the building memory below
                if served:
                    self._parked -= len(served)
                    result.unparked.extend(
                        (str(p.event.source), p.event.event_id) for p in served.values()
                    )
                cases = self._buildings.get(pand)
                if cases:
                    for template in list(cases.values()):
                        if template is not skip:
                            result.released.append(self._target(template, key))
