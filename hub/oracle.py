"""The whole hub in memory, on one core: CaseEvents in, final alert state out.

It chains the same pure parts the stream uses (contract validation, :class:`Ingestor` for address
resolution and building fan-out, :class:`Engine` for dossiers, rules and areas) without Kafka.
Tests use it as the oracle for the distributed pipeline, ``run_oracle(events, config)`` judges a
rules config on a history of CaseEvents (``hub.engine.engine.backtest`` does the same from
normalised events), and the benchmark (``bench/engine.py``) uses it for the pure-engine figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.address.resolve import Ingestor
from hub.contracts.decode import Rejection, parse_case_event_json
from hub.contracts.events import CaseEvent
from hub.contracts.normalised import NormalisedEvent
from hub.engine.config import RulesConfig, default_config
from hub.engine.dossier import DUPLICATE_EVENT_ID_CONFLICT
from hub.engine.engine import Engine
from hub.engine.lifecycle import Transition


@dataclass
class OracleResult:
    engine: Engine
    transitions: list[Transition] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)  # dead letters by reason code
    accepted: int = 0

    @property
    def conflicts(self) -> list[NormalisedEvent]:
        """Events whose (source, event_id) was applied before with other content: the stream
        dead-letters each (per address it reached) as ``DUPLICATE_EVENT_ID_CONFLICT``."""
        return self.engine.repeats.conflicts

    @property
    def duplicates(self) -> Counter[str]:
        """Exact repeats dropped, per source (the ``hub_events_duplicates`` metric)."""
        return Counter(e.source for e in self.engine.repeats.duplicates)

    def firing(self) -> set[str]:
        return self.engine.firing()

    def firing_records(self) -> dict[str, dict[str, Any]]:
        return self.engine.firing_records()


def run_oracle(
    events: Iterable[CaseEvent | dict[str, Any] | bytes | str],
    config: RulesConfig | None = None,
    ingestor: Ingestor | None = None,
    ingested_at_ms: int = 0,
) -> OracleResult:
    """Feed events in order; JSON forms are validated like the HTTP/file ingress does."""
    engine = Engine(config if config is not None else default_config())
    ingestor = ingestor if ingestor is not None else Ingestor()
    result = OracleResult(engine)
    for raw in events:
        event = raw if isinstance(raw, CaseEvent) else parse_case_event_json(raw)
        if isinstance(event, Rejection):
            result.rejected[event.reason_code] += 1
            continue
        resolved = ingestor.ingest(event, ingested_at_ms)
        if resolved.error is not None:
            result.rejected["INVALID_ADDRESS"] += 1
            continue
        result.accepted += 1
        for normalised in (*resolved.normalised, *resolved.released):
            result.transitions.extend(engine.process(normalised))
    if engine.repeats.conflicts:
        result.rejected[DUPLICATE_EVENT_ID_CONFLICT] += len(engine.repeats.conflicts)
    return result
