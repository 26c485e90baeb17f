"""One partition's batch through the engine: state in, records and state writes out.

Kafka-free so it can be tested in milliseconds; the Faust agent (``hub.agents.correlate``) feeds
it a decoded batch and the partition's current dossiers, then produces what it returns.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from hub.contracts.codec import AvroCodec
from hub.contracts.deadletter import Headers, dead_letter_headers
from hub.contracts.decode import Rejection
from hub.contracts.normalised import NormalisedEvent
from hub.engine import dossier as dossier_step
from hub.engine.area import AreaUpdate
from hub.engine.config import RulesConfig
from hub.engine.dossier import DUPLICATE_EVENT_ID_CONFLICT, RECORD_LAYOUT, Dossier, Repeats
from hub.engine.lifecycle import Transition

STAGE = "correlate"
_SHOWN_ID = 64  # echoed identifiers are shortened (docs/contracts.md, section 4)


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
    headers: Headers | None = None  # dead letters only: Connect-style error headers


@dataclass(slots=True)
class BatchOutcome:
    writes: dict[bytes, bytes] = field(default_factory=dict)  # table key → dossier bytes
    records: list[OutRecord] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    area_updates: list[AreaUpdate] = field(default_factory=list)
    events: int = 0
    unchanged: int = 0  # events of keys whose dossier did not change at all
    duplicates: Counter[str] = field(default_factory=Counter)  # exact repeats, by source
    # same (source, event_id) as an applied event, other content: not applied, dead-lettered
    conflicts: list[NormalisedEvent] = field(default_factory=list)
    # their dead-letter records (topic OutputTopics.dead_letter, headers set); produce them
    # with ``headers=record.headers`` and count them as rejected (DUPLICATE_EVENT_ID_CONFLICT)
    dead_letters: list[OutRecord] = field(default_factory=list)
    firing_delta: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, group)
    new_dossiers: int = 0


@dataclass(frozen=True)
class OutputTopics:
    dossiers: str
    contact_routing: str
    signals: str
    area_updates: str
    dead_letter: str | None = None  # None: conflicts are listed but no records are built


Encoder = Callable[[str, dict], bytes]
DossierEncoder = Callable[[Dossier], bytes]
DOSSIER_RECORD = "AddressDossier"


def dossier_encoder(encode: Encoder) -> DossierEncoder:
    """The AddressDossier bytes of a dossier, as ``encode(DOSSIER_RECORD, d.to_record())``.

    When ``encode`` is an :class:`AvroCodec`'s own ``encode`` (the worker's, unless the privacy
    option wraps it) and the current schema has the dossier's row layout, the record is written
    from rows instead (``AvroCodec.row_encoder``): same bytes, no dict per dossier and case
    (issue 17: the dossier's encode is paid by every changed address of every step). Any other
    ``encode`` (a redacting wrapper, a test double) gets the records as before.
    """
    codec = getattr(encode, "__self__", None)
    if isinstance(codec, AvroCodec) and getattr(encode, "__func__", None) is AvroCodec.encode:
        by_row = codec.row_encoder(DOSSIER_RECORD, RECORD_LAYOUT)
        if by_row is not None:
            return lambda d: by_row(d.record_row())
    return lambda d: encode(DOSSIER_RECORD, d.to_record())


def group_by_key(events: list[NormalisedEvent]) -> dict[str, list[NormalisedEvent]]:
    """Events per address key, each key's events in arrival order."""
    grouped: dict[str, list[NormalisedEvent]] = {}
    for event in events:
        bucket = grouped.get(event.address_key)
        if bucket is None:
            grouped[event.address_key] = [event]
        else:
            bucket.append(event)
    return grouped


def transition_record(transition: Transition, topics: OutputTopics, encode: Encoder) -> OutRecord:
    """Alerts keyed by address key; signals keyed by steering group (one group in order)."""
    record = transition.to_record()
    if record["category"] == "ALERT":
        key = record["address_key"] or record["area"] or ""
        return OutRecord(topics.contact_routing, key.encode(), encode("Alert", record))
    return OutRecord(topics.signals, record["steering_group"].encode(), encode("Alert", record))


def firing_snapshot(alerts: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """fingerprint → (kind, steering group) of what is FIRING now, before a step mutates it."""
    return {fp: (st.rule, st.steering_group) for fp, st in alerts.items() if st.status == "FIRING"}


def count_firing_delta(
    prior: dict[str, tuple[str, str]],
    transitions: list[Transition],
    into: Counter[tuple[str, str]],
) -> None:
    """Exact change of the 'currently firing' gauge: refires and group moves included."""
    for t in transitions:
        was = prior.get(t.fingerprint)
        if was is not None:
            into[was] -= 1
        if t.status == "FIRING":
            into[(t.kind, t.steering_group)] += 1


def conflict_rejection(event: NormalisedEvent) -> Rejection:
    """Why a reused (source, event_id) was refused; identifiers only, never contact data."""
    return Rejection(
        reason_code=DUPLICATE_EVENT_ID_CONFLICT,
        field="event_id",
        message=(
            f"event_id: {event.event_id[:_SHOWN_ID]!r} of {event.source} was already applied "
            f"with other content at {event.address_key}; case {event.case_id[:_SHOWN_ID]!r} "
            "was not updated from it"
        ),
        stage=STAGE,
        exception_class="hub.engine.dossier.EventIdConflict",
    )


def conflict_record(event: NormalisedEvent, topic: str, rejected_at_ms: int) -> OutRecord:
    """The dead letter of a conflicting event: key = case id, value = the event as normalised.

    The original bytes are not at hand after the ingest stage, so the value is the
    ``NormalisedEvent`` JSON; no topic/partition/offset headers (it came from an internal batch),
    so ``hub dlq replay`` leaves it alone: the agency must send a new event id.
    """
    headers = dead_letter_headers(
        conflict_rejection(event),
        topic=None,
        partition=None,
        offset=None,
        stage=STAGE,
        rejected_at_ms=rejected_at_ms,
    )
    return OutRecord(topic, event.case_id.encode(), orjson.dumps(event.to_dict()), headers)


def _account_repeats(
    repeats: Repeats, out: BatchOutcome, topics: OutputTopics, now_ms: int | None
) -> None:
    for event in repeats.duplicates:
        out.duplicates[event.source] += 1
    out.conflicts.extend(repeats.conflicts)
    if topics.dead_letter is not None:
        at = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        for event in repeats.conflicts:
            out.dead_letters.append(conflict_record(event, topics.dead_letter, at))


def correlate_batch(
    grouped: dict[str, list[NormalisedEvent]],
    current: dict[str, bytes | None],
    config: RulesConfig,
    topics: OutputTopics,
    encode: Encoder,
    now_ms: int | None = None,
    encode_dossier: DossierEncoder | None = None,
) -> BatchOutcome:
    """Fold each key's events into its dossier once; collect writes and records to emit.

    ``encode_dossier`` (see :func:`dossier_encoder`, made once by the caller) writes the
    AddressDossier records; by default ``encode`` does.
    """
    out = BatchOutcome()
    for key, events in grouped.items():
        out.events += len(events)
        raw = current.get(key)
        before = Dossier.from_bytes(raw) if raw is not None else None
        version_before = before.version if before is not None else 0
        prior = firing_snapshot(before.alerts) if before is not None else {}
        repeats = Repeats()
        after, transitions, area_updates = dossier_step.apply_many(
            before, events, config, now_ms, repeats
        )
        if repeats.duplicates or repeats.conflicts:
            _account_repeats(repeats, out, topics, now_ms)
        if after is None or after.version == version_before:
            out.unchanged += len(events)
            continue
        if before is None:
            out.new_dossiers += 1
        key_bytes = key.encode()
        out.writes[key_bytes] = after.to_bytes()
        value = (
            encode_dossier(after)
            if encode_dossier is not None
            else encode(DOSSIER_RECORD, after.to_record())
        )
        out.records.append(OutRecord(topics.dossiers, key_bytes, value))
        for transition in transitions:
            out.records.append(transition_record(transition, topics, encode))
        out.transitions.extend(transitions)
        count_firing_delta(prior, transitions, out.firing_delta)
        out.area_updates.extend(area_updates)
    return out
