"""Rule 5 MANDATE_EXCEEDED: a bottleneck above the resident counsellor's mandate goes up."""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from hub.contracts.enums import CaseType, RuleName
from hub.engine.cases import CaseState, format_cents
from hub.engine.lifecycle import Desired, content_digest, fingerprint
from hub.engine.rules.spec import SIGNAL, RuleSpec

if TYPE_CHECKING:
    from hub.engine.config import RulesConfig

MANDATE_EXCEEDED = RuleName.MANDATE_EXCEEDED.value
_BOTTLENECK = CaseType.BOTTLENECK.value


class Settings(BaseModel):
    """Its keys in rules.toml (defaults there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mandate_eur: Decimal = Field(ge=0, max_digits=14, decimal_places=2)

    @field_validator("mandate_eur", mode="before")
    @classmethod
    def _exact_amount(cls, value: Any) -> Any:
        # A TOML float like 50000.01 is binary; go through its shortest repr to keep it exact.
        return str(value) if isinstance(value, float) else value

    @field_serializer("mandate_eur")
    def _canonical(self, value: Decimal) -> str:
        # config_version hashes this text: "50000", 50000 and "50000.00" are one config
        return f"{value.quantize(Decimal('0.01'))}"

    @cached_property
    def mandate_cents(self) -> int:
        return int(self.mandate_eur * 100)


def mandate_exceeded(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """Rule 5: an active bottleneck whose amount is strictly above the mandate (exact cents)."""
    out: list[Desired] = []
    mandate = config.section(Settings).mandate_cents
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


SPECS = (
    RuleSpec(
        kind=MANDATE_EXCEEDED,
        number=5,
        category=SIGNAL,
        per_case=True,
        evaluate=mandate_exceeded,
        settings=Settings,
        identity="rule + address + case",
        fires_while=(
            "active `BOTTLENECK` with `amount > mandate_eur`, compared in exact integer cents "
            "(50000.00 does not fire, 50000.01 does)"
        ),
    ),
)
