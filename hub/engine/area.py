"""Rule 6 AREA_CLUSTER: a 4-digit postcode area where many addresses carry collision signals.

The per-address step does not look across addresses; it emits an :class:`AreaUpdate` only when the
address's "has a FIRING signal of the area rules" flag (or its steering group while flagged)
flips. The area step keeps, per area, the flagged addresses and their steering groups, so its
state is small and its result depends only on the final flags (order independent).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from hub.engine.config import RulesConfig
from hub.engine.lifecycle import (
    FIRING,
    AlertState,
    Desired,
    Transition,
    content_digest,
    fingerprint,
    prune_resolved,
    reconcile,
)
from hub.engine.rules import AREA_CLUSTER, category_of

_CATEGORY = category_of(AREA_CLUSTER)
_FORMAT = 1


def area_of(address_key: str) -> str:
    """The 4-digit postcode area of an address key ('9711AB-12-' -> '9711')."""
    return address_key[:4]


@dataclass(frozen=True, slots=True)
class AreaUpdate:
    """One address's contribution to its area changed (keyed by ``area`` on hub.area-updates)."""

    area: str
    address_key: str
    has_firing_signal: bool  # a FIRING signal of one of config.area_rules (rules 2-4 by default)
    steering_group: str
    occurred_at_ms: int = 0  # event time of the triggering event (starts_at/ends_at of the area)
    event_id: str | None = None  # evidence / trigger
    ingested_at_ms: int | None = None  # for end-to-end latency

    def to_record(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "address_key": self.address_key,
            "has_firing_signal": self.has_firing_signal,
            "steering_group": self.steering_group,
            "occurred_at_ms": self.occurred_at_ms,
            "event_id": self.event_id,
            "ingested_at_ms": self.ingested_at_ms,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> AreaUpdate:
        return cls(**data)


@dataclass(slots=True)
class AreaState:
    """Flagged addresses of one area (address key -> steering group) and the area's alert."""

    area: str
    members: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)
    version_floor: int = 0
    # steering group -> number of members: derived from members, kept incrementally (not stored)
    counts: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.counts and self.members:
            self.counts = dict(Counter(self.members.values()))

    def _add(self, group: str) -> None:
        self.counts[group] = self.counts.get(group, 0) + 1

    def _remove(self, group: str) -> None:
        left = self.counts[group] - 1
        if left:
            self.counts[group] = left
        else:
            del self.counts[group]

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            [
                _FORMAT,
                self.area,
                self.members,
                [a.to_row() for a in self.alerts.values()],
                self.version_floor,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AreaState:
        fmt, area, members, alerts, floor = orjson.loads(data)
        if fmt != _FORMAT:
            raise ValueError(f"unknown area state format {fmt}")
        states = (AlertState.from_row(r) for r in alerts)
        return cls(area, members, {a.fp: a for a in states}, floor)


def steering_group_of(counts: dict[str, int]) -> str:
    """Most common steering group (group -> member count); ties alphabetical."""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _desired(
    state: AreaState, update: AreaUpdate, group: str, config: RulesConfig
) -> dict[str, Desired]:
    """The area's cluster, if any.

    Content = steering group + size bucket (members // threshold): a hot area gets a new version
    when it grows by another ``area_threshold`` addresses or changes group, not on every member
    change. The address list in ``detail`` is as of emission and is only built when emitting.
    """
    members = state.members
    threshold = config.area_threshold
    if len(members) < threshold:
        return {}
    fp = fingerprint(AREA_CLUSTER, state.area)
    bucket = str(len(members) // threshold)
    digest = content_digest(AREA_CLUSTER, group, bucket)
    current = state.alerts.get(fp)
    if current is not None and current.status == FIRING and current.digest == digest:
        detail = current.detail  # unchanged: do not rebuild the address list
    else:
        addresses = sorted(members)
        detail = {
            "address_count": str(len(addresses)),
            "addresses": ",".join(addresses),
            "threshold": str(threshold),
            "size_bucket": bucket,
        }
    return {fp: Desired(fp, AREA_CLUSTER, (), None, detail, digest, update.occurred_at_ms)}


def _transition(
    state: AreaState,
    st: AlertState,
    config: RulesConfig,
    emitted_at: int,
    update: AreaUpdate | None,
) -> Transition:
    event_id = update.event_id if update is not None else None
    return Transition(
        fingerprint=st.fp,
        kind=AREA_CLUSTER,
        category=_CATEGORY,
        status=st.status,
        version=st.version,
        address_key=None,
        area=state.area,
        gemeentecode=None,
        steering_group=st.steering_group,
        lead=None,
        cases=[],
        event_ids=[event_id] if event_id else [],
        detail=st.detail,
        config_version=config.config_version,
        starts_at=st.starts_at,
        ends_at=st.ends_at,
        emitted_at=emitted_at,
        trigger_event_id=event_id,
        trigger_ingested_at=update.ingested_at_ms if update is not None else None,
    )


def current_records(state: AreaState, config: RulesConfig, now_ms: int) -> list[Transition]:
    """The area's alert as it stands, without a trigger."""
    return [_transition(state, st, config, now_ms, None) for st in state.alerts.values()]


def apply(
    state: AreaState | None,
    update: AreaUpdate,
    config: RulesConfig,
    now_ms: int | None = None,
) -> tuple[AreaState, list[Transition]]:
    """Fold one address flag change into the area; return the area's transitions (0 or 1)."""
    if state is None:
        state = AreaState(update.area)
    members = state.members
    key = update.address_key
    previous = members.get(key)
    if update.has_firing_signal:
        if previous == update.steering_group:
            return state, []
        if previous is not None:
            state._remove(previous)
        members[key] = update.steering_group
        state._add(update.steering_group)
    else:
        if previous is None:
            return state, []
        del members[key]
        state._remove(previous)
    group = steering_group_of(state.counts) if members else update.steering_group
    desired = _desired(state, update, group, config)
    changed = reconcile(state.alerts, desired, update.occurred_at_ms, state.version_floor, group)
    if not changed:
        return state, []
    emitted_at = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    out = [_transition(state, st, config, emitted_at, update) for st in changed]
    state.version_floor = prune_resolved(state.alerts, 1, state.version_floor)
    return state, out
