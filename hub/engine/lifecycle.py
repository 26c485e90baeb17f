"""Alert lifecycle, learned from Alertmanager: stable fingerprints, versions, minimal transitions.

* The fingerprint hashes the alert's *identity* only (rule + address, rule + case pair + address,
  rule + case + address, rule + area), so it survives content changes and restarts.
* The content digest hashes what a reader cares about (cases, lead, contact, detail, routing).
  A transition is emitted only when the status flips or, while FIRING, the digest changes, so
  reprocessing identical input emits nothing.
* Versions strictly increase per fingerprint. Resolved records may be dropped to bound memory; the
  owner then keeps a ``version_floor`` (the highest version ever dropped) and new fingerprints start
  above it, so a (fingerprint, version) pair is never emitted twice even after a drop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from hub.contracts.enums import AlertStatus

FIRING = AlertStatus.FIRING.value
RESOLVED = AlertStatus.RESOLVED.value
NONE_KNOWN = "NONE_KNOWN"

CaseRef = tuple[str, str]  # (source, case_id)

_SEP = "\x1f"  # unit separator: cannot occur in ids, so joined identities cannot collide


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@lru_cache(maxsize=1 << 16)
def fingerprint(*identity: str) -> str:
    """16 hex chars (64 bits, like Alertmanager) over the identity parts, in the given order."""
    return _hash(_SEP.join(identity))


def content_digest(*parts: str) -> str:
    """Digest of an alert's content; compared, never interpreted."""
    return _hash(_SEP.join(parts))


@dataclass(slots=True)
class Desired:
    """What a rule wants to be FIRING now: identity (``fp``), content and evidence."""

    fp: str
    rule: str
    refs: tuple[CaseRef, ...]  # the cases it is about (evidence), in display order
    lead: CaseRef | None
    detail: dict[str, str]
    digest: str
    since_ms: int  # event time the condition holds since (latest evidence occurred_at)


@dataclass(slots=True)
class AlertState:
    """The remembered state of one fingerprint (FIRING or RESOLVED)."""

    fp: str
    rule: str
    status: str
    version: int
    digest: str
    starts_at: int
    ends_at: int | None
    refs: tuple[CaseRef, ...]
    lead: CaseRef | None
    detail: dict[str, str]
    steering_group: str  # where it was last sent FIRING: the resolution goes to the same group

    def to_row(self) -> list[Any]:
        return [
            self.fp,
            self.rule,
            self.status,
            self.version,
            self.digest,
            self.starts_at,
            self.ends_at,
            self.refs,
            self.lead,
            self.detail,
            self.steering_group,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> AlertState:
        lead = row[8]
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            tuple((r[0], r[1]) for r in row[7]),
            (lead[0], lead[1]) if lead is not None else None,
            row[9],
            row[10],
        )


def reconcile(
    alerts: dict[str, AlertState],
    desired: dict[str, Desired],
    at_ms: int,
    version_floor: int,
    steering_group: str,
    scope: set[str] | frozenset[str] | None = None,
) -> list[AlertState]:
    """Bring ``alerts`` (mutated) to ``desired``; return the states that must be emitted.

    ``scope`` limits which rules are resolved when absent from ``desired`` (None: all rules).
    ``at_ms`` (event time) becomes ``ends_at`` of resolved alerts.
    """
    changed: list[AlertState] = []
    for fp, want in desired.items():
        st = alerts.get(fp)
        if st is None:
            st = AlertState(
                fp,
                want.rule,
                FIRING,
                version_floor + 1,
                want.digest,
                want.since_ms,
                None,
                want.refs,
                want.lead,
                want.detail,
                steering_group,
            )
            alerts[fp] = st
            changed.append(st)
        elif st.status != FIRING:
            st.status = FIRING
            st.version += 1
            st.digest = want.digest
            st.starts_at = want.since_ms
            st.ends_at = None
            st.refs = want.refs
            st.lead = want.lead
            st.detail = want.detail
            st.steering_group = steering_group
            changed.append(st)
        elif st.digest != want.digest:
            st.version += 1
            st.digest = want.digest
            st.refs = want.refs
            st.lead = want.lead
            st.detail = want.detail
            st.steering_group = steering_group
            changed.append(st)
    for fp, st in alerts.items():
        if st.status == FIRING and fp not in desired and (scope is None or st.rule in scope):
            st.status = RESOLVED
            st.version += 1
            st.ends_at = at_ms
            changed.append(st)
    return changed


def prune_resolved(alerts: dict[str, AlertState], keep: int, version_floor: int) -> int:
    """Drop the oldest resolved states beyond ``keep``; return the new version floor."""
    resolved = [st for st in alerts.values() if st.status == RESOLVED]
    if len(resolved) <= keep:
        return version_floor
    resolved.sort(key=lambda st: (st.ends_at or 0, st.fp))
    for st in resolved[: len(resolved) - keep]:
        version_floor = max(version_floor, st.version)
        del alerts[st.fp]
    return version_floor


@dataclass(slots=True)
class Transition:
    """One emitted alert/signal record; ``to_record()`` matches schemas/avro/Alert.v1.avsc."""

    fingerprint: str
    kind: str
    category: str
    status: str
    version: int
    address_key: str | None
    area: str | None
    gemeentecode: str | None
    steering_group: str
    lead: dict[str, str | None] | None
    cases: list[dict[str, str | None]]
    event_ids: list[str]
    detail: dict[str, str]
    config_version: str
    starts_at: int
    ends_at: int | None
    emitted_at: int
    trigger_event_id: str | None
    trigger_ingested_at: int | None

    @property
    def key(self) -> tuple[str, int]:
        return (self.fingerprint, self.version)

    def to_record(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "category": self.category,
            "status": self.status,
            "version": self.version,
            "address_key": self.address_key,
            "area": self.area,
            "gemeentecode": self.gemeentecode,
            "steering_group": self.steering_group,
            "lead": dict(self.lead) if self.lead is not None else None,
            "cases": [dict(c) for c in self.cases],
            "event_ids": list(self.event_ids),
            "detail": dict(self.detail),
            "config_version": self.config_version,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "emitted_at": self.emitted_at,
            "trigger_event_id": self.trigger_event_id,
            "trigger_ingested_at": self.trigger_ingested_at,
        }
