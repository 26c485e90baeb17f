"""Which inbound event made each correlated event possible: the latency bench's second clock.

An event whose address the register does not know yet is parked; it is correlated when a later
event (of another agency, often seconds later in the workload) teaches the register its address,
and a building-level case is fanned out to an address when a later event links the two. The
output record of such an event names it as its trigger, but the hub could not have produced the
record before the *enabling* event arrived. Measuring from the trigger's own produce time puts
the workload's wait for the other agency into the hub's latency (the parked samples, seconds).

:func:`enabling_events` replays the inbound workload through the hub's own pure resolver
(:class:`hub.address.resolve.Ingestor`, as the ingest stage runs it) and records, for each
normalised event (event id, address key), the inbound event whose ingest produced it: itself, or
the event that released it. The latency bench then measures each record from the later of the
two produce times. Pure Python, no broker; the same code as the stream, so no second model of
the parking rules.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from pathlib import Path

from hub.address.resolve import Ingestor
from hub.contracts.decode import Rejection, decode_inbound_many
from hub.settings import PROJECT_ROOT

Enablers = dict[tuple[str, str], str]  # (event id, address key) → enabling inbound event id

_CHUNK = 5000


def enabling_events(values: Sequence[bytes], ingested_at_ms: int = 0) -> Enablers:
    """Replay ``values`` (wire records, in produce order) and map each normalised event to the
    inbound event that produced it. The first application wins: an exact repeat changes
    nothing downstream, so its record (if any) came from the first."""
    ingestor = Ingestor()
    enablers: Enablers = {}
    for start in range(0, len(values), _CHUNK):
        for event in decode_inbound_many(values[start : start + _CHUNK]):
            if isinstance(event, Rejection):
                continue
            result = ingestor.ingest(event, ingested_at_ms)
            for normalised in (*result.normalised, *result.released):
                enablers.setdefault((normalised.event_id, normalised.address_key), event.event_id)
    return enablers


def cached_enabling_events(values: Sequence[bytes], workloads: Sequence[Path]) -> Enablers:
    """:func:`enabling_events`, cached beside the workloads (a full run spent ~110 s on it).

    Keyed by the workloads' cache files (their sizes, seeds and the code that encoded them) and
    the code of the resolver and decoder that replay them.
    """
    digest = hashlib.sha256()
    for workload in workloads:
        digest.update(workload.name.encode())
    for path in sorted(
        [
            *(PROJECT_ROOT / "hub" / "address").rglob("*.py"),
            *(PROJECT_ROOT / "hub" / "contracts").rglob("*.py"),
            Path(__file__),
        ]
    ):
        digest.update(path.read_bytes())
    path = workloads[0].parent / f"enablers-{digest.hexdigest()[:16]}.pickle"
    if path.exists():
        cached: Enablers = pickle.loads(path.read_bytes())
        return cached
    enablers = enabling_events(values)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(enablers, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.rename(path)
    return enablers


def enabled_at(
    trigger: str,
    address_key: str | None,
    sent: dict[str, float],
    enablers: Enablers,
    by_event: dict[str, list[str]],
    received: float,
) -> float | None:
    """When the record of ``trigger`` at ``address_key`` became possible: the later of the
    trigger's and its enabling event's produce times (None if the trigger was not sent in the
    measured window).

    A record without an address key (an area signal) does not say which application of its
    trigger produced it; a building-level case is applied at once to the addresses known and
    again, released, to each address learned later. In the pure engine every area signal
    emitted long after its trigger came from such a released application (checked over the
    quick workload: 32 of 202, all released). So it counts from the latest enabler produced
    before the record arrived.
    """
    produced = sent.get(trigger)
    if produced is None:
        return None
    if address_key:
        enabler = enablers.get((trigger, address_key))
        return produced if enabler is None else max(produced, sent.get(enabler, produced))
    since = produced
    for enabler in by_event.get(trigger, ()):
        at = sent.get(enabler)
        if at is not None and since < at <= received:
            since = at
    return since


def enablers_by_event(enablers: Enablers) -> dict[str, list[str]]:
    """event id → every inbound event that applied it somewhere (in replay order)."""
    out: dict[str, list[str]] = {}
    for (event_id, _key), enabler in enablers.items():
        out.setdefault(event_id, []).append(enabler)
    return out
