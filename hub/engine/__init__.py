"""The correlation engine: dossiers per address, rules 1-6, alert lifecycle, backtest.

Pure domain: imports the standard library, pydantic, orjson and ``hub.contracts``; no Kafka or
Faust client, no ``hub.pipeline``/``hub.agents``. The Faust agents in ``hub.agents`` call
:func:`apply_many` per address key per batch and :func:`hub.engine.area.apply` per area update;
:class:`Engine` composes both in memory for tests and :func:`backtest`.
"""

from hub.engine.area import AreaState, AreaUpdate
from hub.engine.config import RulesConfig, default_config, load_config, parse_config
from hub.engine.dossier import Dossier, apply, apply_many
from hub.engine.engine import BacktestResult, Engine, backtest
from hub.engine.lifecycle import Transition

__all__ = [
    "AreaState",
    "AreaUpdate",
    "BacktestResult",
    "Dossier",
    "Engine",
    "RulesConfig",
    "Transition",
    "apply",
    "apply_many",
    "backtest",
    "default_config",
    "load_config",
    "parse_config",
]
