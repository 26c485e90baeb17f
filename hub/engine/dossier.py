"""Per-address dossier and the per-address step the correlate agent calls.

The dossier is everything the engine knows about one address: its cases (latest state each),
a bounded set of recent event identities (``(source, event_id)`` with a short content digest, so
a repeat is told apart from a conflicting reuse of the id), the alerts/signals of the address and
whether it currently contributes to its area's cluster. It lives in a RocksDB-backed Faust table,
hence the compact, fast ``to_bytes``/``from_bytes`` (orjson over positional rows).

:func:`apply_many` is the one fold of events into a dossier (``apply`` is its single-event form).
It updates the dossier *in place* (and returns it) for speed: the caller owns it (a table value or
the in-memory :class:`~hub.engine.engine.Engine`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson

from hub.contracts.normalised import NormalisedEvent
from hub.engine.area import AreaUpdate, area_of
from hub.engine.cases import DOSSIER_CASE_FIELDS, CaseState
from hub.engine.config import RulesConfig
from hub.engine.lifecycle import (
    FIRING,
    RESOLVED,
    AlertState,
    CaseRef,
    Transition,
    prune_resolved,
    reconcile,
)
from hub.engine.rules import ADDRESS_RULES, category_of, evaluate

UNASSIGNED = "UNASSIGNED"
# 1: ``recent`` held bare event ids (still read: see ``from_bytes``); 2: (source, id, digest)
_FORMAT = 2
_LEGACY_FORMAT = 1

# _ingest outcomes
_NOOP = 0  # exact repeat of an event already applied: nothing changed
_BOOKKEEPING = 1  # dossier changed, but nothing a rule looks at
_RELEVANT = 2  # rules must be re-evaluated
_CONFLICT = 3  # (source, event_id) already applied with other content: not applied

#: Reject reason of a conflicting event id (``hub.contracts.enums.RejectReason``).
DUPLICATE_EVENT_ID_CONFLICT = "DUPLICATE_EVENT_ID_CONFLICT"

EventIdentity = tuple[str, str]  # (source, event_id): event ids are unique per agency only


def content_digest(ev: NormalisedEvent) -> str:
    """Short digest of what the agency said in an event, to tell a repeat from a conflict.

    Only fields the agency sent: the address key, nummeraanduiding id and municipality may be
    derived from the register (and differ per address of a building case), and ``ingested_at``
    differs on every resend, so none of them count.
    """
    payload = orjson.dumps(
        (
            ev.case_id,
            ev.case_type,
            ev.status,
            ev.occurred_at_ms,
            ev.source_org,
            ev.pand_id,
            ev.planned_start,
            ev.planned_end,
            ev.contact_name,
            ev.contact_role,
            ev.contact_phone,
            ev.contact_email,
            ev.amount_cents,
            ev.attributes,
        ),
        option=orjson.OPT_SORT_KEYS,
    )
    return blake2b(payload, digest_size=8).hexdigest()


@dataclass(slots=True)
class Repeats:
    """Events a step did not apply because their (source, event_id) was applied before."""

    duplicates: list[NormalisedEvent] = field(default_factory=list)  # exact repeats: dropped
    conflicts: list[NormalisedEvent] = field(default_factory=list)  # other content: dead letter


@dataclass(slots=True)
class Dossier:
    address_key: str
    gemeentecode: str | None = None
    steering_group: str = UNASSIGNED
    attrs_ms: int = -(1 << 62)  # occurred_at of the event that set gemeentecode/steering_group
    # Tuples, not lists: rarely change, and tuples of str drop out of the cyclic GC's work.
    nummeraanduiding_ids: tuple[str, ...] = ()
    pand_ids: tuple[str, ...] = ()
    cases: dict[CaseRef, CaseState] = field(default_factory=dict)
    # recent (source, event_id) -> content digest, oldest first; source "" / digest "" come
    # from format-1 dossiers (unknown source matches any source, unknown digest any content)
    recent: dict[EventIdentity, str] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)  # fingerprint -> state
    lead: CaseRef | None = None  # the address's point of contact (top-ranked active case)
    area_flag: bool = False  # last AreaUpdate sent: has a FIRING signal of config.area_rules
    area_group: str | None = None  # steering group sent with that update
    version_floor: int = 0  # highest version of a dropped resolved alert (see lifecycle)
    version: int = 0
    updated_at: int = 0  # the latest occurred_at applied (event time: a replay gives the same)

    @property
    def area(self) -> str:
        return area_of(self.address_key)

    def active_cases(self) -> list[CaseState]:
        return [c for c in self.cases.values() if c.active]

    def firing(self) -> dict[str, AlertState]:
        return {fp: st for fp, st in self.alerts.items() if st.status == FIRING}

    # -- serialisation ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            [
                _FORMAT,
                self.address_key,
                self.gemeentecode,
                self.steering_group,
                self.attrs_ms,
                self.nummeraanduiding_ids,
                self.pand_ids,
                [c.to_row() for c in self.cases.values()],
                [x for (source, eid), digest in self.recent.items() for x in (source, eid, digest)],
                [a.to_row() for a in self.alerts.values()],
                self.lead,
                self.area_flag,
                self.area_group,
                self.version_floor,
                self.version,
                self.updated_at,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Dossier:
        row = orjson.loads(data)
        fmt = row[0]
        if fmt != _FORMAT and fmt != _LEGACY_FORMAT:
            raise ValueError(f"unknown dossier format {fmt}")
        cases: dict[CaseRef, CaseState] = {}
        for r in row[7]:
            cases[(r[0], r[1])] = CaseState(*r)
        flat = row[8]
        if fmt == _FORMAT:
            recent = {(flat[i], flat[i + 1]): flat[i + 2] for i in range(0, len(flat), 3)}
            updated_at = row[15]
        else:
            recent, updated_at = _migrate_legacy(flat, cases)
        alerts = {}
        for r in row[9]:
            st = AlertState.from_row(r)
            alerts[st.fp] = st
        lead = row[10]
        return cls(
            row[1],
            row[2],
            row[3],
            row[4],
            tuple(row[5]),
            tuple(row[6]),
            cases,
            recent,
            alerts,
            (lead[0], lead[1]) if lead is not None else None,
            row[11],
            row[12],
            row[13],
            row[14],
            updated_at,
        )

    def to_record(self) -> dict[str, Any]:
        """The AddressDossier record (schemas/avro/AddressDossier.v1.avsc)."""
        cases = sorted(self.cases.values(), key=_record_order)
        return {
            "address_key": self.address_key,
            "nummeraanduiding_ids": list(self.nummeraanduiding_ids),
            "pand_ids": list(self.pand_ids),
            "gemeentecode": self.gemeentecode,
            "steering_group": self.steering_group,
            "cases": [c.dossier_case() for c in cases],
            "lead": (
                {"source": self.lead[0], "case_id": self.lead[1]} if self.lead is not None else None
            ),
            "version": self.version,
            "updated_at": self.updated_at,
        }

    def record_row(self) -> tuple[Any, ...]:
        """:meth:`to_record` as nested rows in :data:`RECORD_LAYOUT` (tuples of the values in
        schema field order), for ``AvroCodec.row_encoder``: same values, no dicts."""
        cases = self.cases
        ordered = cases.values() if len(cases) < 2 else sorted(cases.values(), key=_record_order)
        return (
            self.address_key,
            self.nummeraanduiding_ids,
            self.pand_ids,
            self.gemeentecode,
            self.steering_group,
            [c.dossier_case_row() for c in ordered],
            self.lead,  # (source, case_id): the LeadRef row
            self.version,
            self.updated_at,
        )


#: The rows of :meth:`Dossier.record_row`: record -> its fields in row order. They must be the
#: schema's (``AvroCodec.row_encoder`` checks and declines otherwise; a test checks the values).
RECORD_LAYOUT: dict[str, tuple[str, ...]] = {
    "AddressDossier": (
        "address_key",
        "nummeraanduiding_ids",
        "pand_ids",
        "gemeentecode",
        "steering_group",
        "cases",
        "lead",
        "version",
        "updated_at",
    ),
    "DossierCase": DOSSIER_CASE_FIELDS,
    "LeadRef": ("source", "case_id"),
}


def _record_order(c: CaseState) -> tuple[bool, str, str]:
    """Cases in the published record: active first, then by (source, case_id)."""
    return (not c.active, c.source, c.case_id)


def _migrate_legacy(
    ids: list[str], cases: dict[CaseRef, CaseState]
) -> tuple[dict[EventIdentity, str], int]:
    """Format 1 (bare event ids, wall-clock ``updated_at``) to format 2.

    An id that is a case's last event gets that case's source; others get source "" (matches
    any source, as format 1 did). Digests are unknown (""): a repeat counts as exact. The
    event-time ``updated_at`` is the newest ``occurred_at`` among the kept cases.
    """
    source_of: dict[str, str] = {}
    for c in cases.values():
        source_of[c.last_event_id] = "" if c.last_event_id in source_of else c.source
    recent = {(source_of.get(eid, ""), eid): "" for eid in ids}
    updated_at = max((c.occurred_at_ms for c in cases.values()), default=0)
    return recent, updated_at


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ingest(d: Dossier, ev: NormalisedEvent, config: RulesConfig) -> int:
    """Fold one event's case state into the dossier; say how much changed."""
    recent = d.recent
    ident = (ev.source, ev.event_id)
    seen = recent.get(ident)
    if seen is None and recent:
        seen = recent.get(("", ev.event_id))  # format-1 entry: source unknown
    if seen is not None:
        return _CONFLICT if seen and seen != content_digest(ev) else _NOOP
    window = config.dedup_window
    if window:
        recent[ident] = content_digest(ev)
        if len(recent) > window:
            del recent[next(iter(recent))]
    outcome = _BOOKKEEPING
    at = ev.occurred_at_ms
    if at > d.updated_at:
        d.updated_at = at

    # Address attributes: the latest event (by event time) with a value wins.
    if at >= d.attrs_ms:
        d.attrs_ms = at
        gm = ev.gemeentecode
        sg = ev.steering_group
        if gm != d.gemeentecode or sg != d.steering_group:
            if gm is not None and gm != d.gemeentecode:
                d.gemeentecode = gm
                outcome = _RELEVANT
            if sg and sg != d.steering_group and (sg != UNASSIGNED or d.gemeentecode is None):
                d.steering_group = sg
                outcome = _RELEVANT
    nid = ev.nummeraanduiding_id
    if nid is not None and nid not in d.nummeraanduiding_ids:
        d.nummeraanduiding_ids = (*d.nummeraanduiding_ids, nid)
    pid = ev.pand_id
    if pid is not None and pid not in d.pand_ids:
        d.pand_ids = (*d.pand_ids, pid)

    ref = (ev.source, ev.case_id)
    cs = d.cases.get(ref)
    if cs is None:
        cs = CaseState.from_event(ev)
        d.cases[ref] = cs
        if not cs.active:
            _evict_closed(d, config)
        return _RELEVANT
    if at < cs.occurred_at_ms:
        # Late, older state: never overwrites; it can only move "first seen" earlier.
        if at < cs.first_ms:
            cs.first_ms = at
            if cs.active:
                return _RELEVANT
        return outcome
    was_active = cs.active
    if cs.overwrite(ev):
        if was_active and not cs.active:
            _evict_closed(d, config)
        return _RELEVANT
    return outcome


def _evict_closed(d: Dossier, config: RulesConfig) -> None:
    """Bounded memory: keep at most ``max_closed_cases`` closed summaries (newest kept)."""
    closed = [c for c in d.cases.values() if not c.active]
    excess = len(closed) - config.max_closed_cases
    if excess > 0:
        closed.sort(key=lambda c: (c.occurred_at_ms, c.source, c.case_id))
        for c in closed[:excess]:
            del d.cases[(c.source, c.case_id)]


def _transition(
    d: Dossier,
    st: AlertState,
    config: RulesConfig,
    now_ms: int,
    trigger: NormalisedEvent | None,
) -> Transition:
    cases = d.cases
    listed: list[dict[str, str | None]] = []
    event_ids: list[str] = []
    for ref in st.refs:
        c = cases.get(ref)
        if c is not None:
            listed.append(c.alert_case())
            event_ids.append(c.last_event_id)
    lead = None
    if st.lead is not None:
        c = cases.get(st.lead)
        if c is not None:
            lead = c.lead_record()
    return Transition(
        fingerprint=st.fp,
        kind=st.rule,
        category=category_of(st.rule),
        status=st.status,
        version=st.version,
        address_key=d.address_key,
        area=d.address_key[:4],
        gemeentecode=d.gemeentecode,
        steering_group=st.steering_group,
        lead=lead,
        cases=listed,
        event_ids=event_ids,
        detail=st.detail,
        config_version=config.config_version,
        starts_at=st.starts_at,
        ends_at=st.ends_at,
        emitted_at=now_ms,
        trigger_event_id=trigger.event_id if trigger is not None else None,
        trigger_ingested_at=(trigger.ingested_at_ms or None) if trigger is not None else None,
    )


def current_records(d: Dossier, config: RulesConfig, now_ms: int) -> list[Transition]:
    """The address's alerts as they stand (FIRING and kept RESOLVED), without a trigger."""
    return [_transition(d, st, config, now_ms, None) for st in d.alerts.values()]


def _evaluate(
    d: Dossier, config: RulesConfig, trigger: NormalisedEvent, now_ms: int
) -> tuple[list[Transition], list[AreaUpdate]]:
    active = [c for c in d.cases.values() if c.active]
    desired, lead = evaluate(active, d.address_key, d.gemeentecode, d.steering_group, config)
    if lead is None:
        d.lead = None
    else:
        old = d.lead
        if old is None or old[1] != lead.case_id or old[0] != lead.source:
            d.lead = (lead.source, lead.case_id)
    alerts = d.alerts
    if not desired and not alerts:
        return [], []  # nothing fires nor fired: the area flag is False already
    changed = reconcile(
        alerts, desired, trigger.occurred_at_ms, d.version_floor, d.steering_group, ADDRESS_RULES
    )
    if not changed and not (d.area_flag and d.steering_group != d.area_group):
        return [], []
    transitions = [_transition(d, st, config, now_ms, trigger) for st in changed]
    for st in changed:
        if st.status == RESOLVED:
            d.version_floor = prune_resolved(alerts, config.max_resolved_alerts, d.version_floor)
            break

    # Area contribution: report only flips of the flag (or of the group while flagged).
    area_rules = config.area_rules
    flag = False
    for st in alerts.values():
        if st.status == FIRING and st.rule in area_rules:
            flag = True
            break
    if flag == d.area_flag and (not flag or d.steering_group == d.area_group):
        return transitions, []
    d.area_flag = flag
    d.area_group = d.steering_group if flag else None
    update = AreaUpdate(
        area=d.address_key[:4],
        address_key=d.address_key,
        has_firing_signal=flag,
        steering_group=d.steering_group,
        occurred_at_ms=trigger.occurred_at_ms,
        event_id=trigger.event_id,
        ingested_at_ms=trigger.ingested_at_ms or None,
    )
    return transitions, [update]


def apply(
    dossier: Dossier | None,
    event: NormalisedEvent,
    config: RulesConfig,
    now_ms: int | None = None,
    repeats: Repeats | None = None,
) -> tuple[Dossier, list[Transition], list[AreaUpdate]]:
    """The single-event form of :func:`apply_many` (the one fold), for callers with one event.

    Returns the (same, mutated) dossier, the alert transitions to emit and the area updates to
    forward. ``now_ms`` (wall clock, only for ``emitted_at``) is injectable for tests. An event
    whose (source, event_id) was applied before is not applied; ``repeats`` collects it.
    """
    d = dossier if dossier is not None else Dossier(event.address_key)
    _, transitions, updates = apply_many(d, (event,), config, now_ms, repeats)
    return d, transitions, updates


def apply_many(
    dossier: Dossier | None,
    events: Iterable[NormalisedEvent],
    config: RulesConfig,
    now_ms: int | None = None,
    repeats: Repeats | None = None,
) -> tuple[Dossier | None, list[Transition], list[AreaUpdate]]:
    """The per-address step: fold events into the dossier, evaluate the rules once.

    The only fold of events into a dossier (``apply``, the stream and the in-memory
    :class:`~hub.engine.engine.Engine` all come here). The final state equals applying the events
    one by one; intermediate flaps inside the batch are not emitted. The trigger (evidence,
    ``trigger_event_id``) is the last event that changed something a rule looks at. Returns
    ``None`` as dossier only for an empty batch on ``None``. Repeated (source, event_id)s are not
    applied; ``repeats`` collects them. The dossier is mutated in place.
    """
    d = dossier
    trigger: NormalisedEvent | None = None
    touched = False
    for ev in events:
        if d is None:
            d = Dossier(ev.address_key)
        elif ev.address_key != d.address_key:
            raise ValueError("event belongs to another address than the dossier")
        outcome = _ingest(d, ev, config)
        if outcome in (_NOOP, _CONFLICT):
            if repeats is not None:
                (repeats.conflicts if outcome == _CONFLICT else repeats.duplicates).append(ev)
            continue
        touched = True
        if outcome == _RELEVANT:
            trigger = ev
    if d is None or not touched:
        return d, [], []
    d.version += 1
    if trigger is None:
        return d, [], []
    now = now_ms if now_ms is not None else _now_ms()
    transitions, updates = _evaluate(d, config, trigger, now)
    return d, transitions, updates
