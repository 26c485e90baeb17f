"""Rules 3 and 4: plan collisions between two work windows at one home.

One pass over the pairs of windowed cases decides both, because a pair that is wasted work
(rule 3) must not also be reported as an overlap (rule 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from hub.contracts.enums import CaseType, RuleName
from hub.engine.cases import CaseState
from hub.engine.lifecycle import Desired
from hub.engine.rules.common import pair
from hub.engine.rules.spec import SIGNAL, RuleSpec

if TYPE_CHECKING:
    from hub.engine.config import RulesConfig

REPAIR_BEFORE = RuleName.REPAIR_BEFORE_STRENGTHENING.value
INSULATION_BEFORE = RuleName.INSULATION_BEFORE_STRENGTHENING.value
PLAN_OVERLAP = RuleName.PLAN_OVERLAP.value

_STRENGTHENING = CaseType.STRENGTHENING.value
# Work that is wasted when strengthening follows: case type -> rule 3 variant.
_BEFORE_RULE = {CaseType.DAMAGE.value: REPAIR_BEFORE, CaseType.INSULATION.value: INSULATION_BEFORE}


class Settings(BaseModel):
    """Their keys in rules.toml (defaults there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wasted_work_horizon_days: int = Field(ge=0, le=36500)
    min_gap_days: int = Field(ge=0, le=36500)


def collisions(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rules 3 and 4 over every pair of active cases with a full work window (start and end).

    Rule 3: repair/insulation window ends before strengthening starts, at most
    ``wasted_work_horizon_days`` before. Rule 4: different sources, gap = later start - earlier end
    (days) < ``min_gap_days``; gap <= 0 is an overlap (touching windows: gap 0). A pair matching
    rule 3 is not also reported by rule 4.
    """
    windowed: list[tuple[CaseState, int, int]] = [
        (c, c.start_day, c.end_day)
        for c in active
        if c.start_day is not None and c.end_day is not None
    ]
    n = len(windowed)
    if n < 2:
        return []
    out: list[Desired] = []
    settings = config.section(Settings)
    horizon = settings.wasted_work_horizon_days
    min_gap = settings.min_gap_days
    for i in range(n):
        a, a_start, a_end = windowed[i]
        for j in range(i + 1, n):
            b, b_start, b_end = windowed[j]
            before = None
            if b.case_type == _STRENGTHENING:
                before = _BEFORE_RULE.get(a.case_type)
                work, work_end, st, st_start = a, a_end, b, b_start
            elif a.case_type == _STRENGTHENING:
                before = _BEFORE_RULE.get(b.case_type)
                work, work_end, st, st_start = b, b_end, a, a_start
            if before is not None:
                lead_days = st_start - work_end
                if 0 < lead_days <= horizon:
                    detail = {
                        "gap_days": str(lead_days),
                        "work_end": work.planned_end or "",
                        "strengthening_start": st.planned_start or "",
                    }
                    out.append(pair(before, work, st, address_key, gm, sg, detail))
                    continue
            if a.source == b.source:
                continue
            gap = max(a_start, b_start) - min(a_end, b_end)
            if gap < min_gap:
                detail = {
                    "gap_days": str(gap),
                    "overlap": "true" if gap <= 0 else "false",
                    "min_gap_days": str(min_gap),
                }
                out.append(pair(PLAN_OVERLAP, a, b, address_key, gm, sg, detail))
    return out


_WASTED = (
    "active `{work}` and `STRENGTHENING`, both windowed, "
    "`0 < strengthening.start − work.end ≤ wasted_work_horizon_days`"
)
SPECS = (
    RuleSpec(
        kind=REPAIR_BEFORE,
        number=3,
        category=SIGNAL,
        per_case=False,
        evaluate=collisions,
        settings=Settings,
        identity="rule + address + sorted case pair",
        fires_while=_WASTED.format(work="DAMAGE"),
    ),
    RuleSpec(
        kind=INSULATION_BEFORE,
        number=3,
        category=SIGNAL,
        per_case=False,
        evaluate=collisions,
        settings=Settings,
        identity="rule + address + sorted case pair",
        fires_while=_WASTED.format(work="INSULATION"),
    ),
    RuleSpec(
        kind=PLAN_OVERLAP,
        number=4,
        category=SIGNAL,
        per_case=False,
        evaluate=collisions,
        settings=Settings,
        identity="rule + address + sorted case pair",
        fires_while=(
            "two active windowed cases from different sources with `gap < min_gap_days`, where "
            "`gap = max(starts) − min(ends)` (for separate windows: later start − earlier end). "
            "`gap ≤ 0` is an overlap, and touching windows give gap 0. A pair that fires rule 3 "
            "is not also reported here."
        ),
    ),
)
