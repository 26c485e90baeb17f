"""The pure pipeline on one core, no Kafka: the CPU floor of the hub's per-event work.

Same parts and order as :func:`hub.oracle.run_oracle`, but timed stage by stage over the wire
bytes: Avro decode + pydantic validation (``decode_case_events``), address resolution
(``Ingestor``), and the engine (``Engine.process``: dossiers, rules, areas). The hub spends at
least this much CPU per event; everything above it is Kafka, Faust and serialisation of state.
"""

from __future__ import annotations

import time
from typing import Any

from hub.address.resolve import Ingestor
from hub.contracts.decode import Rejection, decode_case_events
from hub.contracts.events import CaseEvent
from hub.contracts.normalised import NormalisedEvent
from hub.engine.engine import Engine, gc_paused


def measure_engine(values: list[bytes], chunk: int = 5000) -> dict[str, Any]:
    """Stage timings (seconds) and events/s over ``values`` (wire bytes, simulator order)."""
    decode_s = resolve_s = engine_s = 0.0
    ingestor = Ingestor()
    engine = Engine()
    rejected = normalised_n = transitions = 0
    with gc_paused():  # like the backtest: state is cycle-free, full GCs only walk it
        for start in range(0, len(values), chunk):
            t0 = time.perf_counter()
            decoded = decode_case_events(values[start : start + chunk])
            t1 = time.perf_counter()
            normalised: list[NormalisedEvent] = []
            for event in decoded:
                if isinstance(event, Rejection):
                    rejected += 1
                    continue
                assert isinstance(event, CaseEvent)
                result = ingestor.ingest(event, 0)
                if result.error is not None:
                    rejected += 1
                    continue
                normalised.extend(result.normalised)
                normalised.extend(result.released)
            t2 = time.perf_counter()
            for resolved in normalised:
                transitions += len(engine.process(resolved))
            t3 = time.perf_counter()
            decode_s += t1 - t0
            resolve_s += t2 - t1
            engine_s += t3 - t2
            normalised_n += len(normalised)
    n = len(values)
    total = decode_s + resolve_s + engine_s
    return {
        "events": n,
        "normalised_events": normalised_n,
        "rejected": rejected,
        "transitions": transitions,
        "dossiers": len(engine.dossiers),
        "decode_validate_s": round(decode_s, 3),
        "resolve_s": round(resolve_s, 3),
        "engine_s": round(engine_s, 3),
        "decode_validate_per_s": round(n / decode_s) if decode_s else None,
        "resolve_per_s": round(n / resolve_s) if resolve_s else None,
        "engine_per_s": round(n / engine_s) if engine_s else None,
        "all_stages_per_s": round(n / total) if total else None,
    }
