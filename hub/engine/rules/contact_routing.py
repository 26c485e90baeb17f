"""Rule 1 CONTACT_ROUTING: one point of contact when several agencies are active at a home."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, field_validator

from hub.contracts.enums import CaseType, RuleName
from hub.engine.cases import CaseState
from hub.engine.lifecycle import NONE_KNOWN, Desired, content_digest, fingerprint
from hub.engine.rules.common import flat, since
from hub.engine.rules.spec import ALERT, RuleSpec

if TYPE_CHECKING:
    from hub.engine.config import RulesConfig

CONTACT_ROUTING = RuleName.CONTACT_ROUTING.value


class Settings(BaseModel):
    """Its keys in rules.toml (defaults there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type_ranking: list[CaseType]

    @field_validator("type_ranking")
    @classmethod
    def _unique_types(cls, value: list[CaseType]) -> list[CaseType]:
        if len(set(value)) != len(value):
            raise ValueError("each case type may appear only once")
        return value

    @cached_property
    def rank(self) -> dict[str, int]:
        """Case type -> position (0 = highest); unlisted types rank ``len(rank)``."""
        return {t.value: i for i, t in enumerate(self.type_ranking)}


def lead_key(rank: dict[str, int]) -> Callable[[CaseState], tuple[int, int, str, str]]:
    """Sort key: highest-ranked type, then first seen earliest, then (source, case_id)."""
    unranked = len(rank)
    return lambda c: (rank.get(c.case_type, unranked), c.first_ms, c.source, c.case_id)


def contact_routing(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rule 1: >= 2 distinct sources active -> one lead case, every other case routes through it.

    ``active`` must be in lead order (see :func:`lead_key`), as ``evaluate`` passes it.
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
        CONTACT_ROUTING, sg, gm, *refs[0], *[v or "" for v in contact], *flat(sorted(refs))
    )
    fp = fingerprint(CONTACT_ROUTING, address_key)
    return [Desired(fp, CONTACT_ROUTING, refs, refs[0], detail, digest, since(ordered))]


SPECS = (
    RuleSpec(
        kind=CONTACT_ROUTING,
        number=1,
        category=ALERT,
        per_case=False,
        evaluate=contact_routing,
        settings=Settings,
        identity="rule + address",
        fires_while="≥ 2 distinct sources have an active case at the address",
    ),
)
