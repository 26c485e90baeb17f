"""The Quix Streams peer: the hub's own pure code on Quix Streams' runtime, as its docs teach.

Only the runtime differs from the hub, so hub/Quix measures the hub's runtime design:

1. a stateless step, one call per inbound message: ``decode_inbound`` (Avro decode + pydantic
   validation, as the hub's ingest stage does) and :class:`~hub.address.resolve.Ingestor`
   (address normalisation and resolution, building fan-out); one ``NormalisedEvent`` dict per
   address (``expand=True``), nothing for a rejected event;
2. ``group_by("address_key")``: Quix's repartition topic, JSON (its default serialisers);
3. a stateful step (``stateful=True``), one call per event: the address's dossier from its
   RocksDB state (``State.get_bytes``) → ``Dossier.from_bytes`` → ``apply_many`` →
   ``to_bytes`` → ``State.set_bytes``; the transitions are emitted (``expand=True``) to an output
   topic (``to_topic``, JSON).

Documented defaults everywhere (at-least-once, changelog topics on, JSON serialisers) except the
commit interval, set to its documented 5 s explicitly, and ``auto_offset_reset="earliest"`` to
read the pre-produced topic. It does less than the hub: no dead-letter records, no dossier or
area records, no area step; so the hub/Quix ratio is, if anything, generous to Quix.

Run as ``python -m bench.quix_app`` (its own venv: ``make bench`` builds ``.local/venv-quix``)
with ``QUIX_*`` in the environment. When the stateless step has seen ``QUIX_EXPECT`` inbound
events and the stateful step has folded every event the first one emitted, it writes the first
and last timestamps and the process CPU seconds between them to ``QUIX_RESULT`` (JSON).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from quixstreams import Application, State

from hub.address.resolve import Ingestor
from hub.contracts.decode import Rejection
from hub.contracts.normalised import NormalisedEvent
from hub.engine.config import default_config
from hub.engine.dossier import Dossier, apply_many
from hub.pipeline.ingest import decode_inbound

EXPECT = int(os.environ.get("QUIX_EXPECT", "0"))
RESULT = Path(os.environ.get("QUIX_RESULT", "quix-result.json"))

app = Application(
    broker_address=os.environ.get("HUB_BROKER", "localhost:19092"),
    consumer_group=os.environ.get("QUIX_APP_ID", "bench-quix"),
    auto_offset_reset="earliest",
    commit_interval=5.0,
    state_dir=os.environ.get("QUIX_STATE_DIR", "quix-state"),
    loglevel="WARNING",
)
inbound = app.topic(
    os.environ.get("QUIX_IN", "bench.quix-in"), key_deserializer="bytes", value_deserializer="bytes"
)
transitions_out = app.topic(os.environ.get("QUIX_OUT", "bench.quix-out"))

ingestor = Ingestor()
config = default_config()
progress: dict[str, Any] = {"in": 0, "emitted": 0, "folded": 0, "first": None, "done": False}


def decode_and_resolve(raw: bytes) -> list[dict[str, Any]]:
    """Stateless: bytes → validated CaseEvent → one NormalisedEvent dict per address."""
    if progress["first"] is None:
        progress["first"], progress["cpu_first"] = time.time(), time.process_time()
    progress["in"] += 1
    try:
        decoded = decode_inbound(raw)
        if isinstance(decoded, Rejection):
            return []
        result = ingestor.ingest(decoded, time.time_ns() // 1_000_000)
        if result.error is not None:
            return []
        normalised = [*result.normalised, *result.released]
        progress["emitted"] += len(normalised)
        return [event.to_dict() for event in normalised]
    finally:
        _maybe_done()


def fold_into_dossier(value: dict[str, Any], state: State) -> list[dict[str, Any]]:
    """Stateful, keyed by address: the event into the address's dossier; the transitions out."""
    event = NormalisedEvent(**value)
    raw = state.get_bytes("dossier")
    before = Dossier.from_bytes(raw) if raw is not None else None
    version_before = before.version if before is not None else 0
    after, transitions, _area_updates = apply_many(before, [event], config)
    if after is not None and after.version != version_before:
        state.set_bytes("dossier", after.to_bytes())
    progress["folded"] += 1
    _maybe_done()
    return [t.to_record() for t in transitions]


def _maybe_done() -> None:
    if progress["done"] or progress["in"] < EXPECT or progress["folded"] < progress["emitted"]:
        return
    progress["done"] = True
    RESULT.write_text(
        json.dumps(
            {
                "first": progress["first"],
                "last": time.time(),
                "cpu_s": time.process_time() - progress["cpu_first"],
                "n": progress["in"],
                "normalised": progress["emitted"],
            }
        )
    )


sdf = app.dataframe(inbound)
sdf = sdf.apply(decode_and_resolve, expand=True)
sdf = sdf.group_by("address_key")
sdf = sdf.apply(fold_into_dossier, stateful=True, expand=True)
sdf = sdf.to_topic(transitions_out)

if __name__ == "__main__":
    app.run()
