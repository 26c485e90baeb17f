"""Rules 1-5, evaluated per address as pure functions of its active cases and the config.

Each rule returns the alerts it *wants* FIRING now (:class:`~hub.engine.lifecycle.Desired`):
identity (fingerprint), content (cases, lead, detail) and its digest. The lifecycle turns the
difference with what is already FIRING into transitions. Because the rules only look at the
current case states, the outcome does not depend on the order the events arrived in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hub.contracts.enums import UNDECIDED_STATUSES, CaseType, RuleName
from hub.engine.cases import CaseState, format_cents
from hub.engine.config import RulesConfig
from hub.engine.lifecycle import NONE_KNOWN, CaseRef, Desired, content_digest, fingerprint

CONTACT_ROUTING = RuleName.CONTACT_ROUTING.value
SAMENLOOP = RuleName.SAMENLOOP.value
REPAIR_BEFORE = RuleName.REPAIR_BEFORE_STRENGTHENING.value
INSULATION_BEFORE = RuleName.INSULATION_BEFORE_STRENGTHENING.value
PLAN_OVERLAP = RuleName.PLAN_OVERLAP.value
MANDATE_EXCEEDED = RuleName.MANDATE_EXCEEDED.value

ADDRESS_RULES = frozenset(
    {CONTACT_ROUTING, SAMENLOOP, REPAIR_BEFORE, INSULATION_BEFORE, PLAN_OVERLAP, MANDATE_EXCEEDED}
)

_STRENGTHENING = CaseType.STRENGTHENING.value
_DAMAGE = CaseType.DAMAGE.value
_INSULATION = CaseType.INSULATION.value
_BOTTLENECK = CaseType.BOTTLENECK.value
_UNDECIDED = frozenset(s.value for s in UNDECIDED_STATUSES)
# Work that is wasted when strengthening follows: case type -> rule 3 variant.
_BEFORE_RULE = {_DAMAGE: REPAIR_BEFORE, _INSULATION: INSULATION_BEFORE}


def lead_key(rank: dict[str, int]) -> Callable[[CaseState], tuple[int, int, str, str]]:
    """Sort key: highest-ranked type, then first seen earliest, then (source, case_id)."""
    unranked = len(rank)
    return lambda c: (rank.get(c.case_type, unranked), c.first_ms, c.source, c.case_id)


def lead_of(active: list[CaseState], config: RulesConfig) -> CaseState | None:
    return min(active, key=lead_key(config.rank)) if active else None


def _since(cases: Iterable[CaseState]) -> int:
    return max(c.occurred_at_ms for c in cases)


def _flat(refs: Iterable[CaseRef]) -> list[str]:
    out: list[str] = []
    for s, c in refs:
        out.append(s)
        out.append(c)
    return out


def contact_routing(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rule 1: >= 2 distinct sources active -> one lead case, every other case routes through it.

    ``active`` must be in lead order (see :func:`lead_key`), as :func:`evaluate` passes it.
    """
    sources = {c.source for c in active}
    if len(sources) < 2:
        return []
    ordered = active  # evaluate() passes the cases in lead order
    lead = ordered[0]
    contact = (lead.contact_role, lead.contact_name, lead.contact_phone, lead.contact_email)
    known = any(v for v in contact)
    refs = tuple([(c.source, c.case_id) for c in ordered])
    detail = {
        "lead_case": f"{lead.source}/{lead.case_id}",
        "lead_case_type": lead.case_type,
        "lead_contact": "KNOWN" if known else NONE_KNOWN,
        "sources": ",".join(sorted(sources)),
        "case_count": str(len(ordered)),
    }
    # Content = lead (and its contact: the point of contact is what operations acts on) + the set
    # of cases + routing; the order of the non-lead cases is display only.
    digest = content_digest(
        CONTACT_ROUTING, sg, gm, *refs[0], *[v or "" for v in contact], *_flat(sorted(refs))
    )
    fp = fingerprint(CONTACT_ROUTING, address_key)
    return [Desired(fp, CONTACT_ROUTING, refs, refs[0], detail, digest, _since(ordered))]


def samenloop(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rule 2: active strengthening + undecided damage claim, in an AMvB municipality."""
    if gm not in config.samenloop_municipalities:
        return []
    strengthening = [c for c in active if c.case_type == _STRENGTHENING]
    if not strengthening:
        return []
    undecided = [c for c in active if c.case_type == _DAMAGE and c.status in _UNDECIDED]
    if not undecided:
        return []
    cases = sorted(strengthening, key=_by_ref) + sorted(undecided, key=_by_ref)
    refs = tuple([(c.source, c.case_id) for c in cases])
    detail = {
        "strengthening_cases": str(len(strengthening)),
        "undecided_damage_cases": str(len(undecided)),
    }
    digest = content_digest(SAMENLOOP, sg, gm, *_flat(refs))
    fp = fingerprint(SAMENLOOP, address_key)
    return [Desired(fp, SAMENLOOP, refs, None, detail, digest, _since(cases))]


def _by_ref(c: CaseState) -> CaseRef:
    return (c.source, c.case_id)


def _pair(
    rule: str, a: CaseState, b: CaseState, address_key: str, gm: str, sg: str, detail: dict
) -> Desired:
    if (a.source, a.case_id) > (b.source, b.case_id):
        a, b = b, a
    digest = content_digest(rule, sg, gm, *(f"{k}={v}" for k, v in detail.items()))
    fp = fingerprint(rule, address_key, a.source, a.case_id, b.source, b.case_id)
    since = max(a.occurred_at_ms, b.occurred_at_ms)
    refs = ((a.source, a.case_id), (b.source, b.case_id))
    return Desired(fp, rule, refs, None, detail, digest, since)


def collisions(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rules 3 and 4 over every pair of active cases with a full work window (start and end).

    Rule 3: repair/insulation window ends before strengthening starts, at most
    ``wasted_work_horizon_days`` before. Rule 4: different sources, gap = later start - earlier end
    (days) < ``min_gap_days``; gap <= 0 is an overlap (touching windows: gap 0). A pair matching
    rule 3 is not also reported by rule 4.
    """
    windowed = [c for c in active if c.start_day is not None and c.end_day is not None]
    n = len(windowed)
    if n < 2:
        return []
    out: list[Desired] = []
    horizon = config.wasted_work_horizon_days
    min_gap = config.min_gap_days
    for i in range(n):
        a = windowed[i]
        for j in range(i + 1, n):
            b = windowed[j]
            before = None
            if b.case_type == _STRENGTHENING:
                before, work, st = _BEFORE_RULE.get(a.case_type), a, b
            elif a.case_type == _STRENGTHENING:
                before, work, st = _BEFORE_RULE.get(b.case_type), b, a
            if before is not None:
                lead_days = st.start_day - work.end_day  # type: ignore[operator]
                if 0 < lead_days <= horizon:
                    detail = {
                        "gap_days": str(lead_days),
                        "work_end": work.planned_end or "",
                        "strengthening_start": st.planned_start or "",
                    }
                    out.append(_pair(before, work, st, address_key, gm, sg, detail))
                    continue
            if a.source == b.source:
                continue
            gap = max(a.start_day, b.start_day) - min(a.end_day, b.end_day)  # type: ignore[type-var,operator]
            if gap < min_gap:
                detail = {
                    "gap_days": str(gap),
                    "overlap": "true" if gap <= 0 else "false",
                    "min_gap_days": str(min_gap),
                }
                out.append(_pair(PLAN_OVERLAP, a, b, address_key, gm, sg, detail))
    return out


def mandate_exceeded(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rule 5: an active bottleneck whose amount is strictly above the mandate (exact cents)."""
    out: list[Desired] = []
    mandate = config.mandate_cents
    for c in active:
        if c.case_type == _BOTTLENECK and c.amount_cents is not None and c.amount_cents > mandate:
            detail = {
                "amount": format_cents(c.amount_cents) or "",
                "mandate": format_cents(mandate) or "",
            }
            digest = content_digest(MANDATE_EXCEEDED, sg, gm, detail["amount"], detail["mandate"])
            fp = fingerprint(MANDATE_EXCEEDED, address_key, c.source, c.case_id)
            out.append(
                Desired(fp, MANDATE_EXCEEDED, (c.ref,), None, detail, digest, c.occurred_at_ms)
            )
    return out


RULES = (contact_routing, samenloop, collisions, mandate_exceeded)


def evaluate(
    active: list[CaseState],
    address_key: str,
    gemeentecode: str | None,
    steering_group: str,
    config: RulesConfig,
) -> tuple[dict[str, Desired], CaseState | None]:
    """All per-address rules: (fingerprint -> desired alert, the lead case of the address).

    The cases are sorted once by the lead order; every rule sees that order.
    """
    n = len(active)
    if n == 0:
        return {}, None
    if n == 1:  # only the per-case rule can fire
        c = active[0]
        if c.case_type != _BOTTLENECK or c.amount_cents is None:
            return {}, c
        found = mandate_exceeded(active, address_key, gemeentecode or "", steering_group, config)
        return {d.fp: d for d in found}, c
    ordered = sorted(active, key=lead_key(config.rank))
    gm = gemeentecode or ""
    found = []
    for rule in RULES:
        found.extend(rule(ordered, address_key, gm, steering_group, config))
    return {d.fp: d for d in found}, ordered[0]
