"""The rules config: TOML, validated by pydantic, compiled into a fast frozen object.

The defaults live in one place, the packaged ``hub/config/rules.toml``: a file (or mapping) given
to :func:`load_config`/:meth:`RulesConfig.from_mapping` only overrides keys of it. Each rule
declares its own keys (its ``Settings`` model in ``hub.engine.rules``); this module adds the
dossier's memory bounds and rejects any key nobody declared, so a typo cannot be ignored.

Validation happens once at load time; the hot path reads plain attributes and the rules' compiled
sections (:meth:`RulesConfig.section`), never validates. ``config_version`` is a short hash of the
*validated, canonical* content, so every emitted record says which thresholds produced it and a
comment or key-order edit does not change it.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field

# Rule modules only type-hint RulesConfig, so importing the registry here makes no cycle.
from hub.engine.rules import (
    area_cluster,
    collisions,
    contact_routing,
    mandate,
    samenloop,
    settings_models,
)

# Package data next to this package (works for source trees, wheels and editable installs).
DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "config" / "rules.toml"

S = TypeVar("S", bound=BaseModel)


class DossierBounds(BaseModel):
    """Keys no rule owns: bounded memory per address. Unknown keys end up here and are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dedup_window: int = Field(ge=0, le=100_000)
    max_closed_cases: int = Field(ge=0, le=100_000)
    max_resolved_alerts: int = Field(ge=0, le=100_000)


def _validate(data: dict[str, Any]) -> dict[type[BaseModel], BaseModel]:
    """Split ``data`` by the rule that owns each key and validate every part with its model.

    Raises ``pydantic.ValidationError`` (unknown keys included: :class:`DossierBounds` forbids
    extras).
    """
    rest = dict(data)
    sections: dict[type[BaseModel], BaseModel] = {}
    for model in settings_models():
        part = {k: rest.pop(k) for k in model.model_fields if k in rest}
        sections[model] = model.model_validate(part)
    sections[DossierBounds] = DossierBounds.model_validate(rest)
    return sections


@lru_cache(maxsize=1)
def _packaged() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True, eq=False)
class RulesConfig:
    """Compiled, immutable rules config: what every engine function takes as ``config``."""

    sections: dict[type[BaseModel], BaseModel]  # settings model -> its validated section
    dedup_window: int
    max_closed_cases: int
    max_resolved_alerts: int
    config_version: str
    source: dict[str, Any]  # the canonical, validated content (what config_version hashes)

    def section(self, model: type[S]) -> S:
        """The validated section of one rule (its ``Settings`` model), e.g. in its evaluate."""
        return cast(S, self.sections[model])  # keyed by its own model: see _validate

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> RulesConfig:
        """Validate a mapping (e.g. parsed TOML) over the packaged defaults and compile it.

        Raises pydantic.ValidationError.
        """
        sections = _validate({**_packaged(), **data})
        canonical: dict[str, Any] = {}
        for model in sections.values():
            canonical.update(model.model_dump(mode="json"))
        digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
        bounds = cast(DossierBounds, sections[DossierBounds])
        return cls(
            sections=sections,
            dedup_window=bounds.dedup_window,
            max_closed_cases=bounds.max_closed_cases,
            max_resolved_alerts=bounds.max_resolved_alerts,
            config_version=digest[:12],
            source=canonical,
        )

    def replace(self, **changes: Any) -> RulesConfig:
        """A new config with some keys changed (re-validated, new version): handy for backtests."""
        return RulesConfig.from_mapping({**self.source, **changes})

    # -- the rules' keys, by their rules.toml names (read access for callers and tests) --------

    @property
    def type_ranking(self) -> tuple[str, ...]:
        return tuple(t.value for t in self.section(contact_routing.Settings).type_ranking)

    @property
    def rank(self) -> dict[str, int]:
        """Case type -> position (0 = highest); unknown types rank ``len(rank)``."""
        return self.section(contact_routing.Settings).rank

    @property
    def samenloop_municipalities(self) -> frozenset[str]:
        return self.section(samenloop.Settings).municipalities

    @property
    def wasted_work_horizon_days(self) -> int:
        return self.section(collisions.Settings).wasted_work_horizon_days

    @property
    def min_gap_days(self) -> int:
        return self.section(collisions.Settings).min_gap_days

    @property
    def mandate_cents(self) -> int:
        return self.section(mandate.Settings).mandate_cents

    @property
    def mandate_eur(self) -> Decimal:
        return Decimal(self.mandate_cents) / 100

    @property
    def area_threshold(self) -> int:
        return self.section(area_cluster.Settings).area_threshold

    @property
    def area_rules(self) -> frozenset[str]:
        return self.section(area_cluster.Settings).area_rule_set


def parse_config(text: str) -> RulesConfig:
    """Parse and validate TOML text (keys it leaves out keep their packaged values)."""
    return RulesConfig.from_mapping(tomllib.loads(text))


def load_config(path: Path | str | None = None) -> RulesConfig:
    """Load a TOML rules file; ``None`` loads the packaged default ``hub/config/rules.toml``."""
    if path is None:
        return default_config()
    return parse_config(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def default_config() -> RulesConfig:
    """The packaged default rules (cached: it is immutable)."""
    return RulesConfig.from_mapping({})
