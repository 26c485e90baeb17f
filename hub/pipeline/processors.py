"""The agents' processors: state and records in, state writes and records out. No Kafka here.

Kafka Streams' processor shape: a processor reads the current state of the keys it needs from a
:class:`Store` (RocksDB in the worker, a dict in the unit tests), runs the pure engine, and
returns a :class:`StepResult`: the records to produce (in order), the state to write per
partition, and what to count. The runtime (:mod:`hub.pipeline.runtime`) produces the records,
persists the writes (outputs first, then changelog, then RocksDB) and updates the metrics; the
agents (:mod:`hub.agents`) only feed it batches.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from hub.contracts.enums import RejectReason
from hub.engine import area as area_step
from hub.engine.area import AreaState, AreaUpdate
from hub.engine.config import RulesConfig
from hub.engine.engine import gc_paused
from hub.engine.lifecycle import Transition
from hub.pipeline.batches import BatchFormatError, decode_batch
from hub.pipeline.correlate import (
    BatchOutcome,
    Encoder,
    OutputTopics,
    OutRecord,
    correlate_batch,
    count_firing_delta,
    dossier_encoder,
    firing_snapshot,
    group_by_key,
    transition_record,
)

log = logging.getLogger(__name__)

BAD_INTERNAL_BATCH = RejectReason.BAD_INTERNAL_BATCH.value


class Store(Protocol):
    """Read access to one table's state, per partition."""

    def get_many(self, partition: int, keys: list[bytes]) -> list[bytes | None]: ...


@dataclass
class StepResult:
    records: list[OutRecord] = field(default_factory=list)  # to produce, in this order
    writes: dict[int, dict[bytes, bytes]] = field(default_factory=dict)  # partition → state
    outcomes: list[BatchOutcome] = field(default_factory=list)  # per message, for accounting
    transitions: list[Transition] = field(default_factory=list)  # area step's emissions
    firing_delta: Counter[tuple[str, str]] = field(default_factory=Counter)  # area step's
    rejected: Counter[str] = field(default_factory=Counter)  # dead letters by reason


def internal_dead_letter(dead_letter: str, key: bytes, raw: bytes, stage: str) -> OutRecord:
    """An unreadable internal message, kept whole on the dead-letter topic."""
    headers = [
        ("hub.errors.reason", BAD_INTERNAL_BATCH.encode()),
        ("hub.errors.stage", stage.encode()),
    ]
    return OutRecord(dead_letter, key, raw, headers)


class CorrelateProcessor:
    """``normalised`` batch messages → dossiers, alerts, signals, area updates, dead letters."""

    def __init__(self, config: RulesConfig, outputs: OutputTopics, encode: Encoder) -> None:
        if outputs.dead_letter is None:
            raise ValueError("the correlate processor needs a dead-letter topic")
        self.config = config
        self.outputs = outputs
        self.dead_letter: str = outputs.dead_letter
        self.encode = encode
        self.encode_dossier = dossier_encoder(encode)

    def process(self, messages: list[tuple[int, bytes]], store: Store) -> StepResult:
        """Each message exactly as if alone: later messages see earlier ones' pending writes.

        One call covers several messages so the runtime flushes once for all of them (at
        moderate rates many small messages with a flush each were the bottleneck). The cyclic GC
        waits until the step is done, as in the ingest stage (``gc_paused``).
        """
        with gc_paused():
            return self._process(messages, store)

    def _process(self, messages: list[tuple[int, bytes]], store: Store) -> StepResult:
        result = StepResult()
        for partition, raw in messages:
            try:
                events = decode_batch(raw)
            except BatchFormatError as exc:
                log.error("unreadable internal batch on partition %d: %s", partition, exc)
                result.records.append(
                    internal_dead_letter(self.dead_letter, b"batch", raw, "correlate")
                )
                result.rejected[BAD_INTERNAL_BATCH] += 1
                continue
            grouped = group_by_key(events)
            overlay = result.writes.setdefault(partition, {})
            keys = [k.encode() for k in grouped]
            missing = [k for k in keys if k not in overlay]
            stored = dict(zip(missing, store.get_many(partition, missing), strict=True))
            current = {
                key: overlay[kb] if kb in overlay else stored[kb]
                for key, kb in zip(grouped, keys, strict=True)
            }
            outcome = correlate_batch(
                grouped,
                current,
                self.config,
                self.outputs,
                self.encode,
                encode_dossier=self.encode_dossier,
            )
            result.records.extend(outcome.records)
            result.records.extend(outcome.dead_letters)  # same (source, id), other content
            for update in outcome.area_updates:
                result.records.append(
                    OutRecord(
                        self.outputs.area_updates,
                        update.area.encode(),
                        orjson.dumps(update.to_record()),
                    )
                )
            if outcome.conflicts:
                result.rejected[RejectReason.DUPLICATE_EVENT_ID_CONFLICT.value] += len(
                    outcome.conflicts
                )
            overlay.update(outcome.writes)
            result.outcomes.append(outcome)
        return result


class AreaProcessor:
    """``area-updates`` (per-address flag changes) → area state and AREA_CLUSTER signals."""

    def __init__(self, config: RulesConfig, outputs: OutputTopics, encode: Encoder) -> None:
        if outputs.dead_letter is None:
            raise ValueError("the area processor needs a dead-letter topic")
        self.config = config
        self.outputs = outputs
        self.dead_letter: str = outputs.dead_letter
        self.encode = encode

    def process(self, updates: list[tuple[int, bytes]], store: Store) -> StepResult:
        result = StepResult()
        by_partition: dict[int, dict[str, list[AreaUpdate]]] = {}
        for partition, raw in updates:
            try:
                update = AreaUpdate.from_record(orjson.loads(raw))
            except (ValueError, TypeError, KeyError) as exc:
                log.error(
                    "unreadable area update on partition %d: %s", partition, type(exc).__name__
                )
                result.records.append(
                    internal_dead_letter(self.dead_letter, b"area-update", raw, "area")
                )
                result.rejected[BAD_INTERNAL_BATCH] += 1
                continue
            by_partition.setdefault(partition, {}).setdefault(update.area, []).append(update)
        for partition, per_area in by_partition.items():
            keys = [area.encode() for area in per_area]
            stored = store.get_many(partition, keys)
            for area_updates, key, current in zip(per_area.values(), keys, stored, strict=True):
                state = AreaState.from_bytes(current) if current is not None else None
                for update in area_updates:
                    prior = firing_snapshot(state.alerts) if state is not None else {}
                    state, out = area_step.apply(state, update, self.config)
                    count_firing_delta(prior, out, result.firing_delta)
                    result.transitions.extend(out)
                if state is not None:
                    result.writes.setdefault(partition, {})[key] = state.to_bytes()
        for t in result.transitions:
            result.records.append(transition_record(t, self.outputs, self.encode))
        return result
