"""Municipalities, the merger table and steering groups: reference data as configuration.

The data lives in ``hub/config/reference.toml`` (package data); ``Settings.reference_config``
(``HUB_REFERENCE_CONFIG``) may point at another file. The file is validated with pydantic once at
load time; the lookups the hot path makes afterwards are plain dict reads.

Routing uses the *current* municipality: the 4-digit prefix of a BAG id is where the object was
created, which after a merger is an old code, so :meth:`Municipalities.current_code` maps old codes
through the merger table (a current code maps to itself).
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.address.normalise import municipality_prefix, normalise_gemeentecode

GemeenteCode = Annotated[str, StringConstraints(pattern=r"^GM[0-9]{4}$")]
GroupName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]


class MunicipalityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: GemeenteCode
    name: str = Field(min_length=1)
    steering_group: GroupName
    in_scope: bool = True  # False: code stays known, addresses go to the unassigned group
    scope_uncertain: bool = False  # documentation flag (Assen)


class MergerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    into: GemeenteCode
    year: int = Field(ge=1800, le=2100)
    merged: dict[GemeenteCode, str] = Field(alias="from", min_length=1)  # old code -> old name


class ReferenceConfig(BaseModel):
    """The whole reference file; cross-checks references so a typo fails at start-up."""

    model_config = ConfigDict(extra="forbid")

    regional_group: GroupName = "REGIONAL"
    unassigned_group: GroupName = "UNASSIGNED"
    steering_groups: dict[GroupName, str]  # name -> description
    municipalities: list[MunicipalityConfig] = Field(min_length=1)
    mergers: list[MergerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceConfig:
        groups = self.steering_groups
        for name in (self.regional_group, self.unassigned_group):
            if name not in groups:
                raise ValueError(f"steering group {name!r} is not declared in [steering_groups]")
        codes: set[str] = set()
        for m in self.municipalities:
            if m.code in codes:
                raise ValueError(f"municipality {m.code} is configured twice")
            codes.add(m.code)
            if m.steering_group not in groups:
                raise ValueError(
                    f"{m.code} ({m.name}): steering group {m.steering_group!r} is not declared"
                )
        old_codes: set[str] = set()
        for merger in self.mergers:
            if merger.into not in codes:
                raise ValueError(f"merger into {merger.into}: not a configured municipality")
            for old in merger.merged:
                if old in codes:
                    raise ValueError(f"merged code {old} is also a current municipality")
                if old in old_codes:
                    raise ValueError(f"merged code {old} appears in two mergers")
                old_codes.add(old)
        return self


class Municipalities:
    """Runtime lookups over a validated :class:`ReferenceConfig` (plain dicts, hot-path safe)."""

    def __init__(self, config: ReferenceConfig) -> None:
        self.config = config
        self.regional_group = config.regional_group
        self.unassigned_group = config.unassigned_group
        self._names: dict[str, str] = {m.code: m.name for m in config.municipalities}
        self._groups: dict[str, str] = {
            m.code: (m.steering_group if m.in_scope else config.unassigned_group)
            for m in config.municipalities
        }
        self._current: dict[str, str] = {m.code: m.code for m in config.municipalities}
        for merger in config.mergers:
            for old, name in merger.merged.items():
                self._current[old] = merger.into
                self._names[old] = name

    @classmethod
    def from_toml(cls, path: Path) -> Municipalities:
        """Load and validate a reference file; raises ValueError naming the problem."""
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return cls(ReferenceConfig.model_validate(data))

    @property
    def steering_groups(self) -> tuple[str, ...]:
        """Every declared group name (for metrics pre-registration and topic docs)."""
        return tuple(self.config.steering_groups)

    @property
    def codes(self) -> frozenset[str]:
        """The current municipality codes configured."""
        return frozenset(m.code for m in self.config.municipalities)

    def current_code(self, code: str | None) -> str | None:
        """``"GM0003"``/``"0003"`` -> ``"GM1979"``; a current or unknown code maps to itself.

        Raises AddressError when ``code`` is not a gemeentecode at all.
        """
        if code is None:
            return None
        gm = self._current.get(code)
        if gm is not None:
            return gm
        gm = normalise_gemeentecode(code)
        return self._current.get(gm, gm)

    def code_from_bag_id(self, bag_id: str | None) -> str | None:
        """The current municipality of a BAG id's prefix, or None when there is no id."""
        if not bag_id:
            return None
        prefix = municipality_prefix(bag_id)
        return self._current.get(prefix, prefix)

    def steering_group(self, current_code: str | None) -> str:
        """The group owning a current municipality; unknown or None -> the unassigned group."""
        if current_code is None:
            return self.unassigned_group
        return self._groups.get(current_code, self.unassigned_group)

    def name(self, code: str | None) -> str | None:
        """Readable name of a current or merged-away code, for reports (not for routing)."""
        return self._names.get(code) if code else None

    def is_known(self, code: str) -> bool:
        """True for configured current codes and merged-away codes."""
        return code in self._current


DEFAULT_REFERENCE = "config/reference.toml"


def default_reference_path() -> Path:
    """The reference file shipped as package data."""
    return Path(str(resources.files("hub").joinpath(DEFAULT_REFERENCE)))


def load_municipalities(path: Path | None = None) -> Municipalities:
    """Load ``path``, else ``Settings.reference_config``, else the packaged default."""
    if path is None:
        from hub.settings import get_settings  # late: keep settings optional for pure callers

        path = get_settings().reference_config or default_reference_path()
    return Municipalities.from_toml(path)


@lru_cache(maxsize=1)
def default_municipalities() -> Municipalities:
    """Process-wide instance from :func:`load_municipalities` (cached; config is immutable)."""
    return load_municipalities()


__all__ = [
    "MergerConfig",
    "Municipalities",
    "MunicipalityConfig",
    "ReferenceConfig",
    "default_municipalities",
    "default_reference_path",
    "load_municipalities",
]
