"""The rule registry: every rule kind is declared once, in its own module, and listed here.

Adding a rule kind: a module in this package with its evaluate function, its ``Settings`` (its
keys in ``hub/config/rules.toml``) and its ``SPECS``; one line in :data:`REGISTRY`; its keys
in rules.toml; its tests. Everything else derives from the declarations: the record's category
(and so its topic), the single-case shortcut, the rules config schema, metric label values and
the rules table in ``docs/rules.md`` (:func:`docs_table`, checked by a test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.engine.cases import CaseState
from hub.engine.lifecycle import Desired
from hub.engine.rules import area_cluster, collisions, contact_routing, mandate, samenloop
from hub.engine.rules.contact_routing import lead_key
from hub.engine.rules.spec import ALERT, SIGNAL, Evaluate, RuleSpec

if TYPE_CHECKING:
    from pydantic import BaseModel

    from hub.engine.config import RulesConfig

#: Every rule kind, in evaluation and documentation order.
REGISTRY: tuple[RuleSpec, ...] = (
    *contact_routing.SPECS,
    *samenloop.SPECS,
    *collisions.SPECS,
    *mandate.SPECS,
    *area_cluster.SPECS,
)

SPECS_BY_KIND: dict[str, RuleSpec] = {s.kind: s for s in REGISTRY}
#: Every kind a record can carry (metric label values).
KINDS: frozenset[str] = frozenset(SPECS_BY_KIND)
#: Kinds decided per address: resolved by the per-address step when no longer wanted.
ADDRESS_RULES: frozenset[str] = frozenset(s.kind for s in REGISTRY if s.scope == "address")
#: Per-address signals: what ``area_rules`` may name.
AREA_SIGNALS: frozenset[str] = frozenset(
    s.kind for s in REGISTRY if s.scope == "address" and s.category == SIGNAL
)


def _unique_evaluates(specs: tuple[RuleSpec, ...]) -> tuple[Evaluate, ...]:
    """Each evaluate function once (one function may decide several kinds), in registry order."""
    out: list[Evaluate] = []
    for s in specs:
        if s.evaluate is not None and s.evaluate not in out:
            out.append(s.evaluate)
    return tuple(out)


#: Per-address evaluate functions, run at addresses with two or more active cases.
EVALUATES: tuple[Evaluate, ...] = _unique_evaluates(REGISTRY)
#: The ones that can fire on one case alone: the only ones run at a single-case address.
PER_CASE_EVALUATES: tuple[Evaluate, ...] = _unique_evaluates(
    tuple(s for s in REGISTRY if s.per_case)
)


def settings_models() -> tuple[type[BaseModel], ...]:
    """Each rule's config model once, in registry order (the rules config is their union)."""
    out: list[type[BaseModel]] = []
    for s in REGISTRY:
        if s.settings is not None and s.settings not in out:
            out.append(s.settings)
    return tuple(out)


def category_of(kind: str) -> str:
    """ALERT or SIGNAL, as declared (an unknown kind is a SIGNAL, as before the registry)."""
    spec = SPECS_BY_KIND.get(kind)
    return spec.category if spec is not None else SIGNAL


def lead_of(active: list[CaseState], config: RulesConfig) -> CaseState | None:
    """The address's point of contact: the top case in lead order."""
    return min(active, key=lead_key(config.rank)) if active else None


def evaluate(
    active: list[CaseState],
    address_key: str,
    gemeentecode: str | None,
    steering_group: str,
    config: RulesConfig,
) -> tuple[dict[str, Desired], CaseState | None]:
    """All per-address rules: (fingerprint -> desired alert, the lead case of the address).

    The cases are sorted once by the lead order; every rule sees that order. With one active
    case only the per-case rules run (the others need two cases).
    """
    n = len(active)
    if n == 0:
        return {}, None
    gm = gemeentecode or ""
    if n == 1:
        found = [
            d
            for rule in PER_CASE_EVALUATES
            for d in rule(active, address_key, gm, steering_group, config)
        ]
        return {d.fp: d for d in found}, active[0]
    ordered = sorted(active, key=lead_key(config.rank))
    found = []
    for rule in EVALUATES:
        found.extend(rule(ordered, address_key, gm, steering_group, config))
    return {d.fp: d for d in found}, ordered[0]


def docs_table() -> str:
    """The rules table of ``docs/rules.md``, from the declarations (a test keeps them equal)."""
    lines = [
        "| # | kind | category → topic | per case | identity (fingerprint input) | fires while |",
        "|---|---|---|---|---|---|",
    ]
    for s in REGISTRY:
        topic = f"`{s.category}` → `hub.{s.output}`"
        per_case = "yes" if s.per_case else "no"
        lines.append(
            f"| {s.number} | `{s.kind}` | {topic} | {per_case} | {s.identity} | {s.fires_while} |"
        )
    return "\n".join(lines) + "\n"


# Names the rest of the code imported from the former single ``rules`` module.
CONTACT_ROUTING = contact_routing.CONTACT_ROUTING
SAMENLOOP = samenloop.SAMENLOOP
REPAIR_BEFORE = collisions.REPAIR_BEFORE
INSULATION_BEFORE = collisions.INSULATION_BEFORE
PLAN_OVERLAP = collisions.PLAN_OVERLAP
MANDATE_EXCEEDED = mandate.MANDATE_EXCEEDED
AREA_CLUSTER = area_cluster.AREA_CLUSTER

__all__ = [
    "ADDRESS_RULES",
    "ALERT",
    "AREA_CLUSTER",
    "AREA_SIGNALS",
    "CONTACT_ROUTING",
    "EVALUATES",
    "INSULATION_BEFORE",
    "KINDS",
    "MANDATE_EXCEEDED",
    "PER_CASE_EVALUATES",
    "PLAN_OVERLAP",
    "REGISTRY",
    "REPAIR_BEFORE",
    "SAMENLOOP",
    "SIGNAL",
    "SPECS_BY_KIND",
    "RuleSpec",
    "category_of",
    "docs_table",
    "evaluate",
    "lead_key",
    "lead_of",
    "settings_models",
]
