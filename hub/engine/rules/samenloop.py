"""Rule 2 SAMENLOOP: strengthening and an undecided damage claim at one home (AMvB 2023)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, field_validator

from hub.contracts.enums import UNDECIDED_STATUSES, CaseType, RuleName
from hub.engine.cases import CaseState
from hub.engine.lifecycle import Desired, content_digest, fingerprint
from hub.engine.rules.common import by_ref, flat, since
from hub.engine.rules.spec import SIGNAL, RuleSpec

if TYPE_CHECKING:
    from hub.engine.config import RulesConfig

SAMENLOOP = RuleName.SAMENLOOP.value
_STRENGTHENING = CaseType.STRENGTHENING.value
_DAMAGE = CaseType.DAMAGE.value
_UNDECIDED = frozenset(s.value for s in UNDECIDED_STATUSES)


class Settings(BaseModel):
    """Its keys in rules.toml (defaults there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samenloop_municipalities: list[str]

    @field_validator("samenloop_municipalities")
    @classmethod
    def _gemeentecodes(cls, value: list[str]) -> list[str]:
        for code in value:
            if len(code) != 6 or not code.startswith("GM") or not code[2:].isdigit():
                raise ValueError(f"{code!r} is not a CBS gemeentecode like 'GM0014'")
        return sorted(set(value))

    @cached_property
    def municipalities(self) -> frozenset[str]:
        return frozenset(self.samenloop_municipalities)


def samenloop(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rule 2: active strengthening + undecided damage claim, in an AMvB municipality."""
    if gm not in config.section(Settings).municipalities:
        return []
    strengthening = [c for c in active if c.case_type == _STRENGTHENING]
    if not strengthening:
        return []
    undecided = [c for c in active if c.case_type == _DAMAGE and c.status in _UNDECIDED]
    if not undecided:
        return []
    cases = sorted(strengthening, key=by_ref) + sorted(undecided, key=by_ref)
    refs = tuple([(c.source, c.case_id) for c in cases])
    detail = {
        "strengthening_cases": str(len(strengthening)),
        "undecided_damage_cases": str(len(undecided)),
    }
    digest = content_digest(SAMENLOOP, sg, gm, *flat(refs))
    fp = fingerprint(SAMENLOOP, address_key)
    return [Desired(fp, SAMENLOOP, refs, None, detail, digest, since(cases))]


SPECS = (
    RuleSpec(
        kind=SAMENLOOP,
        number=2,
        category=SIGNAL,
        per_case=False,
        evaluate=samenloop,
        settings=Settings,
        identity="rule + address",
        fires_while=(
            "active `STRENGTHENING` + `DAMAGE` in `OPENED`/`ON_HOLD`, and `gemeentecode` ∈ "
            "`samenloop_municipalities`"
        ),
    ),
)
