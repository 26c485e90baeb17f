"""Rule 6 AREA_CLUSTER, declared: the step itself is :func:`hub.engine.area.apply`.

It looks across addresses of a 4-digit postcode area, so it is not a per-address rule; this
module holds only its declaration and its keys in rules.toml.
"""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.contracts.enums import RuleName
from hub.engine.rules.spec import SIGNAL, RuleSpec

AREA_CLUSTER = RuleName.AREA_CLUSTER.value


class Settings(BaseModel):
    """Its keys in rules.toml (defaults there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    area_threshold: int = Field(ge=1)
    area_rules: list[str]

    @field_validator("area_rules")
    @classmethod
    def _area_rules(cls, value: list[str]) -> list[str]:
        from hub.engine.rules import AREA_SIGNALS  # late: the registry imports this module

        wrong = sorted(set(value) - AREA_SIGNALS)
        if wrong:
            raise ValueError(
                f"area_rules may only name per-address signals ({', '.join(sorted(AREA_SIGNALS))}),"
                f" not {', '.join(wrong)}"
            )
        return sorted(set(value))

    @cached_property
    def area_rule_set(self) -> frozenset[str]:
        return frozenset(self.area_rules)


SPECS = (
    RuleSpec(
        kind=AREA_CLUSTER,
        number=6,
        category=SIGNAL,
        per_case=False,
        evaluate=None,
        settings=Settings,
        identity="rule + 4-digit postcode area",
        fires_while=(
            "≥ `area_threshold` distinct addresses of the area each have a FIRING signal of "
            "`area_rules` (rules 2-4 by default)"
        ),
        scope="area",
    ),
)
