"""The rules config: TOML, validated by pydantic, compiled into a fast frozen object.

Validation happens once at load time (pydantic); the engine's hot path only reads plain attributes
of the compiled :class:`RulesConfig` (dicts and frozensets), never a pydantic model.
``config_version`` is a short hash of the *validated, canonical* content, so every emitted record
says which thresholds produced it and a comment or key-order edit does not change it.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.contracts.enums import CaseType, RuleName

# Package data next to this package (works for source trees, wheels and editable installs).
DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "config" / "rules.toml"

DEFAULT_TYPE_RANKING: tuple[CaseType, ...] = (
    CaseType.STRENGTHENING,
    CaseType.ACUTE_UNSAFE,
    CaseType.DAMAGE,
    CaseType.RENOVATION,
    CaseType.MAINTENANCE,
    CaseType.INSULATION,
    CaseType.PERMIT,
    CaseType.PUBLIC_WORKS,
    CaseType.PSYCHOSOCIAL_SUPPORT,
    CaseType.BOTTLENECK,
)
# AMvB samenwerking IMG-NCG: Eemsdelta, Groningen, Het Hogeland, Midden-Groningen, Oldambt.
DEFAULT_SAMENLOOP_MUNICIPALITIES = ("GM1979", "GM0014", "GM1966", "GM1952", "GM1895")
DEFAULT_AREA_RULES: tuple[RuleName, ...] = (
    RuleName.SAMENLOOP,
    RuleName.REPAIR_BEFORE_STRENGTHENING,
    RuleName.INSULATION_BEFORE_STRENGTHENING,
    RuleName.PLAN_OVERLAP,
)


class RulesFile(BaseModel):
    """Schema of the TOML file; unknown keys are rejected so a typo cannot silently be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    type_ranking: list[CaseType] = Field(default_factory=lambda: list(DEFAULT_TYPE_RANKING))
    samenloop_municipalities: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SAMENLOOP_MUNICIPALITIES)
    )
    wasted_work_horizon_days: int = Field(default=365, ge=0, le=36500)
    min_gap_days: int = Field(default=14, ge=0, le=36500)
    mandate_eur: Decimal = Field(default=Decimal("50000"), ge=0, max_digits=14, decimal_places=2)
    area_threshold: int = Field(default=5, ge=1)
    area_rules: list[RuleName] = Field(default_factory=lambda: list(DEFAULT_AREA_RULES))
    dedup_window: int = Field(default=64, ge=0, le=100_000)
    max_closed_cases: int = Field(default=32, ge=0, le=100_000)
    max_resolved_alerts: int = Field(default=16, ge=0, le=100_000)

    @field_validator("type_ranking")
    @classmethod
    def _unique_types(cls, value: list[CaseType]) -> list[CaseType]:
        if len(set(value)) != len(value):
            raise ValueError("each case type may appear only once")
        return value

    @field_validator("samenloop_municipalities")
    @classmethod
    def _gemeentecodes(cls, value: list[str]) -> list[str]:
        for code in value:
            if len(code) != 6 or not code.startswith("GM") or not code[2:].isdigit():
                raise ValueError(f"{code!r} is not a CBS gemeentecode like 'GM0014'")
        return sorted(set(value))

    @field_validator("area_rules")
    @classmethod
    def _area_rules(cls, value: list[RuleName]) -> list[RuleName]:
        if RuleName.AREA_CLUSTER in value or RuleName.CONTACT_ROUTING in value:
            raise ValueError("area_rules may only name per-address signals (rules 2-5)")
        return sorted(set(value))

    @field_validator("mandate_eur", mode="before")
    @classmethod
    def _exact_amount(cls, value: Any) -> Any:
        # A TOML float like 50000.01 is binary; go through its shortest repr to keep it exact.
        return str(value) if isinstance(value, float) else value


@dataclass(frozen=True, slots=True, eq=False)
class RulesConfig:
    """Compiled, immutable rules config: what every engine function takes as ``config``."""

    type_ranking: tuple[str, ...]
    samenloop_municipalities: frozenset[str]
    wasted_work_horizon_days: int
    min_gap_days: int
    mandate_cents: int
    area_threshold: int
    area_rules: frozenset[str]
    dedup_window: int
    max_closed_cases: int
    max_resolved_alerts: int
    rank: dict[str, int]  # case type -> position (0 = highest); unknown types rank len(rank)
    config_version: str
    source: dict[str, Any]  # the canonical, validated content (what config_version hashes)

    @property
    def mandate_eur(self) -> Decimal:
        return Decimal(self.mandate_cents) / 100

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> RulesConfig:
        """Validate a mapping (e.g. parsed TOML) and compile it; raises pydantic.ValidationError."""
        model = RulesFile.model_validate(data)
        canonical = model.model_dump(mode="json")
        canonical["mandate_eur"] = f"{model.mandate_eur.quantize(Decimal('0.01'))}"
        digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
        ranking = tuple(t.value for t in model.type_ranking)
        return cls(
            type_ranking=ranking,
            samenloop_municipalities=frozenset(model.samenloop_municipalities),
            wasted_work_horizon_days=model.wasted_work_horizon_days,
            min_gap_days=model.min_gap_days,
            mandate_cents=int(model.mandate_eur * 100),
            area_threshold=model.area_threshold,
            area_rules=frozenset(r.value for r in model.area_rules),
            dedup_window=model.dedup_window,
            max_closed_cases=model.max_closed_cases,
            max_resolved_alerts=model.max_resolved_alerts,
            rank={t: i for i, t in enumerate(ranking)},
            config_version=digest[:12],
            source=canonical,
        )

    def replace(self, **changes: Any) -> RulesConfig:
        """A new config with some keys changed (re-validated, new version): handy for backtests."""
        return RulesConfig.from_mapping({**self.source, **changes})


def parse_config(text: str) -> RulesConfig:
    """Parse and validate TOML text."""
    return RulesConfig.from_mapping(tomllib.loads(text))


def load_config(path: Path | str | None = None) -> RulesConfig:
    """Load a TOML rules file; ``None`` loads the packaged default ``hub/config/rules.toml``."""
    if path is None:
        return default_config()
    return parse_config(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def default_config() -> RulesConfig:
    """The packaged default rules (cached: it is immutable)."""
    return parse_config(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
