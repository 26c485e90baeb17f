"""Helpers the per-address rules share: evidence times, flattened refs, case-pair alerts."""

from __future__ import annotations

from collections.abc import Iterable

from hub.engine.cases import CaseState
from hub.engine.lifecycle import CaseRef, Desired, content_digest, fingerprint


def since(cases: Iterable[CaseState]) -> int:
    """Event time the condition holds since: the latest ``occurred_at`` of its evidence."""
    return max(c.occurred_at_ms for c in cases)


def flat(refs: Iterable[CaseRef]) -> list[str]:
    """``[(s, c), ...]`` -> ``[s, c, ...]`` for digests."""
    out: list[str] = []
    for s, c in refs:
        out.append(s)
        out.append(c)
    return out


def by_ref(c: CaseState) -> CaseRef:
    return (c.source, c.case_id)


def pair(
    rule: str,
    a: CaseState,
    b: CaseState,
    address_key: str,
    gm: str,
    sg: str,
    detail: dict[str, str],
) -> Desired:
    """An alert about two cases; identity uses the sorted pair so arrival order cannot matter."""
    if (a.source, a.case_id) > (b.source, b.case_id):
        a, b = b, a
    digest = content_digest(rule, sg, gm, *(f"{k}={v}" for k, v in detail.items()))
    fp = fingerprint(rule, address_key, a.source, a.case_id, b.source, b.case_id)
    refs = ((a.source, a.case_id), (b.source, b.case_id))
    return Desired(fp, rule, refs, None, detail, digest, max(a.occurred_at_ms, b.occurred_at_ms))
