"""What a rule kind declares about itself, so nothing else has to know it by name.

Routing (category), the single-case shortcut (``per_case``), metric label values, the rules
config (``settings``: its keys in ``hub/config/rules.toml``) and the table in ``docs/rules.md``
are all derived from these declarations by :mod:`hub.engine.rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from pydantic import BaseModel

from hub.engine.lifecycle import Desired

if TYPE_CHECKING:
    from hub.engine.cases import CaseState
    from hub.engine.config import RulesConfig

Category = Literal["ALERT", "SIGNAL"]
#: Goes to ``hub.contact-routing`` (operations), keyed by address.
ALERT: Final = "ALERT"
#: Goes to ``hub.signals`` (steering groups), keyed by steering group.
SIGNAL: Final = "SIGNAL"

#: ``(active cases in lead order, address key, gemeentecode or "", steering group, config)``
#: -> the alerts the rule wants FIRING now. Pure: the order of events must not matter.
Evaluate = Callable[[list["CaseState"], str, str, str, "RulesConfig"], list[Desired]]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule kind: the single declaration everything else derives from."""

    kind: str  # the record's ``kind`` and the metric label value
    number: int  # its row in the docs table (kinds of one evaluate function may share it)
    category: Category
    # True: can fire on one case alone, so it runs at addresses with a single active case too
    per_case: bool
    # per-address rules: called by ``evaluate``; None for the area rule (``hub.engine.area``)
    evaluate: Evaluate | None
    # its keys in rules.toml (a pydantic model, no defaults: those live in rules.toml only);
    # kinds evaluated by one function share one model
    settings: type[BaseModel] | None
    identity: str  # docs: what the fingerprint hashes
    fires_while: str  # docs: the condition, in one line
    scope: Literal["address", "area"] = "address"

    @property
    def output(self) -> str:
        """The topic role the pipeline routes it to (``transition_record`` reads ``category``)."""
        return "contact-routing" if self.category == ALERT else "signals"
