"""One partition's batch through the engine: state in, records and state writes out.

Kafka-free so it can be tested in milliseconds; the Faust agent (``hub.agents.correlate``) feeds
it a decoded batch and the partition's current dossiers, then produces what it returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.contracts.normalised import NormalisedEvent
from hub.engine import dossier as dossier_step
from hub.engine.area import AreaUpdate
from hub.engine.config import RulesConfig
from hub.engine.dossier import Dossier
from hub.engine.lifecycle import Transition


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class BatchOutcome:
    writes: dict[bytes, bytes] = field(default_factory=dict)  # table key → dossier bytes
    records: list[OutRecord] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    area_updates: list[AreaUpdate] = field(default_factory=list)
    events: int = 0
    unchanged: int = 0  # events of keys whose dossier did not change at all
    duplicates: Counter[str] = field(default_factory=Counter)  # repeated event ids, by source
    firing_delta: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, group)
    new_dossiers: int = 0


@dataclass(frozen=True)
class OutputTopics:
    dossiers: str
    contact_routing: str
    signals: str
    area_updates: str


Encoder = Callable[[str, dict], bytes]


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


def _count_duplicates(
    before: Dossier | None, events: list[NormalisedEvent], into: Counter[str]
) -> None:
    """Event ids the dossier already applied (or repeated in this batch): for the metrics."""
    recent = before.recent if before is not None else {}
    if len(events) == 1:
        if events[0].event_id in recent:
            into[events[0].source] += 1
        return
    seen: set[str] = set()
    for event in events:
        if event.event_id in recent or event.event_id in seen:
            into[event.source] += 1
        seen.add(event.event_id)


def correlate_batch(
    grouped: dict[str, list[NormalisedEvent]],
    current: dict[str, bytes | None],
    config: RulesConfig,
    topics: OutputTopics,
    encode: Encoder,
    now_ms: int | None = None,
) -> BatchOutcome:
    """Fold each key's events into its dossier once; collect writes and records to emit."""
    out = BatchOutcome()
    for key, events in grouped.items():
        out.events += len(events)
        raw = current.get(key)
        before = Dossier.from_bytes(raw) if raw is not None else None
        version_before = before.version if before is not None else 0
        _count_duplicates(before, events, out.duplicates)
        prior = firing_snapshot(before.alerts) if before is not None else {}
        after, transitions, area_updates = dossier_step.apply_many(before, events, config, now_ms)
        if after is None or after.version == version_before:
            out.unchanged += len(events)
            continue
        if before is None:
            out.new_dossiers += 1
        key_bytes = key.encode()
        out.writes[key_bytes] = after.to_bytes()
        out.records.append(
            OutRecord(topics.dossiers, key_bytes, encode("AddressDossier", after.to_record()))
        )
        for transition in transitions:
            out.records.append(transition_record(transition, topics, encode))
        out.transitions.extend(transitions)
        count_firing_delta(prior, transitions, out.firing_delta)
        out.area_updates.extend(area_updates)
    return out
