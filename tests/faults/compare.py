"""Judge a hub's output topics against :func:`hub.oracle.run_oracle` on the same events.

The stream folds events per address in batches (rules evaluated once per batch), the oracle one by
one, so versions and intermediate flaps legitimately differ: a stream version is never compared
with an oracle version. What must agree:

- **dossiers** (latest record per key on ``dossiers``): the key sets, and each record without its
  ``version`` (a per-batch counter) and ``updated_at`` (wall clock);
- **alerts and signals** (``contact-routing`` + ``signals``, latest version per fingerprint): the
  set of FIRING fingerprints, and for each the state a reader acts on (kind, status, address,
  area, municipality, steering group, lead and its contact, the set of cases, detail). Fields that
  depend on batch boundaries are left out: ``version``, ``starts_at``/``ends_at`` (event time of
  the batch's trigger), ``event_ids`` and case statuses in ``cases`` (not part of the content
  digest, so a later event may change them without a new version), the trigger/emission
  metadata, and AREA_CLUSTER's address list (``AS_OF_EMISSION``: order-dependent across
  partitions). A RESOLVED fingerprint the oracle never emitted is legitimate (inbound partitions
  interleave the cases of one address differently from publish order) and only counted.

Counted per run:

- ``missing``: expected by the oracle, absent from the topic (dossier key; FIRING fingerprint the
  stream does not show FIRING);
- ``extra``: on the topic, not expected (dossier key the oracle has not; fingerprint the stream
  shows FIRING that the oracle does not);
- ``wrong``: present on both sides with different content (stale dossier or alert);
- ``dup_nonexact``: (fingerprint, version) pairs emitted more than once with different content
  (everything except ``emitted_at``, ``trigger_event_id``, ``trigger_ingested_at``);
- ``dup_exact``: surplus copies of pairs whose repeats are identical in that sense;
- ``gaps``: fingerprints whose emitted versions are not exactly 1..max (a lost transition).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.contracts.codec import AvroCodec
from hub.oracle import OracleResult

#: Emission metadata: differs between two emissions of the same transition.
VOLATILE = frozenset({"emitted_at", "trigger_event_id", "trigger_ingested_at"})
#: Detail entries outside a rule's content digest, "as of emission": AREA_CLUSTER's address list
#: is built when the size bucket changes, so it depends on which addresses (of every partition)
#: had arrived by then; only the bucket and threshold are content (hub/engine/area.py).
AS_OF_EMISSION = {"AREA_CLUSTER": ("addresses", "address_count")}
#: Per-batch counters and wall clock in dossier records.
DOSSIER_VOLATILE = frozenset({"version", "updated_at"})


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def alert_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """What a reader acts on, independent of batch boundaries (see the module doc)."""
    return {
        "kind": rec["kind"],
        "category": rec["category"],
        "status": rec["status"],
        "address_key": rec["address_key"],
        "area": rec["area"],
        "gemeentecode": rec["gemeentecode"],
        "steering_group": rec["steering_group"],
        "lead": _freeze(rec["lead"]),
        "cases": tuple(sorted((c["source"], c["case_id"]) for c in rec["cases"])),
        "detail": _freeze(
            {k: v for k, v in rec["detail"].items() if k not in AS_OF_EMISSION.get(rec["kind"], ())}
        ),
    }


def alert_state(rec: dict[str, Any]) -> Any:
    return _freeze(alert_fields(rec))


def differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def emission_content(rec: dict[str, Any]) -> Any:
    return _freeze({k: v for k, v in rec.items() if k not in VOLATILE})


def dossier_state(rec: dict[str, Any]) -> Any:
    return _freeze({k: v for k, v in rec.items() if k not in DOSSIER_VOLATILE})


def latest_by_fingerprint(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in records:
        current = latest.get(rec["fingerprint"])
        if current is None or rec["version"] >= current["version"]:
            latest[rec["fingerprint"]] = rec
    return latest


def version_gaps(records: Iterable[dict[str, Any]]) -> dict[str, list[int]]:
    versions: dict[str, set[int]] = defaultdict(set)
    for rec in records:
        versions[rec["fingerprint"]].add(rec["version"])
    return {fp: sorted(v) for fp, v in versions.items() if v != set(range(1, max(v) + 1))}


def duplicates(records: Iterable[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(exact surplus copies, non-exact pairs, examples of non-exact pairs)."""
    by_pair: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for rec in records:
        by_pair[(rec["fingerprint"], rec["version"])].append(emission_content(rec))
    exact = nonexact = 0
    examples: list[str] = []
    for (fp, version), contents in by_pair.items():
        if len(contents) < 2:
            continue
        if len(set(contents)) == 1:
            exact += len(contents) - 1
        else:
            nonexact += 1
            if len(examples) < 5:
                examples.append(f"{fp} v{version} x{len(contents)}")
    return exact, nonexact, examples


@dataclass
class Comparison:
    missing: Counter[str] = field(default_factory=Counter)  # by topic
    extra: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    dup_exact: int = 0
    dup_nonexact: int = 0
    gaps: int = 0
    examples: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (
            sum(self.missing.values())
            or sum(self.extra.values())
            or sum(self.wrong.values())
            or self.dup_nonexact
            or self.gaps
        )

    def problems(self) -> list[str]:
        out: list[str] = []
        for label, counter in (("missing", self.missing), ("extra", self.extra)):
            out.extend(f"{n} {label} on {t}" for t, n in sorted(counter.items()) if n)
        out.extend(f"{n} wrong on {t}" for t, n in sorted(self.wrong.items()) if n)
        if self.dup_nonexact:
            out.append(f"{self.dup_nonexact} non-exact duplicate (fingerprint, version) pairs")
        if self.gaps:
            out.append(f"{self.gaps} fingerprints with version gaps")
        return out


def _note(cmp: Comparison, text: str) -> None:
    if len(cmp.examples) < 12:
        cmp.examples.append(text)


def compare(
    oracle: OracleResult,
    routing: list[dict[str, Any]],
    signals: list[dict[str, Any]],
    dossiers: list[dict[str, Any]],
    codec: AvroCodec,
) -> Comparison:
    """``routing``/``signals``/``dossiers``: decoded records of each topic in partition order."""
    cmp = Comparison()
    alerts = [*routing, *signals]
    cmp.counts = {
        "contact-routing": len(routing),
        "signals": len(signals),
        "dossiers": len(dossiers),
    }

    # -- dossiers: latest per key (a key lives on one partition: read order is its order)
    stream_dossiers: dict[str, dict[str, Any]] = {}
    for rec in dossiers:
        stream_dossiers[rec["address_key"]] = rec
    expected_dossiers = {
        key: codec.decode(codec.encode("AddressDossier", d.to_record()))[1]
        for key, d in oracle.engine.dossiers.items()
    }
    for key in expected_dossiers.keys() - stream_dossiers.keys():
        cmp.missing["dossiers"] += 1
        _note(cmp, f"dossier missing: {key}")
    for key in stream_dossiers.keys() - expected_dossiers.keys():
        cmp.extra["dossiers"] += 1
        _note(cmp, f"dossier extra: {key}")
    for key in expected_dossiers.keys() & stream_dossiers.keys():
        if dossier_state(expected_dossiers[key]) != dossier_state(stream_dossiers[key]):
            cmp.wrong["dossiers"] += 1
            fields = differing(expected_dossiers[key], stream_dossiers[key])
            fields = [f for f in fields if f not in DOSSIER_VOLATILE]
            _note(cmp, f"dossier wrong: {key} ({', '.join(fields)})")

    # -- alerts and signals: latest version per fingerprint
    topic_of = {"ALERT": "contact-routing", "SIGNAL": "signals"}
    latest = latest_by_fingerprint(alerts)
    expected = {
        fp: codec.decode(codec.encode("Alert", rec))[1]
        for fp, rec in oracle.firing_records().items()
    }
    ever = {t.fingerprint for t in oracle.transitions}
    firing = {fp: rec for fp, rec in latest.items() if rec["status"] == "FIRING"}
    for fp in expected.keys() - firing.keys():
        topic = topic_of[expected[fp]["category"]]
        cmp.missing[topic] += 1
        shown = latest.get(fp)
        _note(
            cmp,
            f"{topic} missing FIRING {expected[fp]['kind']} {fp}"
            + (
                f" (stream: {shown['status']} v{shown['version']})" if shown else " (never emitted)"
            ),
        )
    transient = 0
    for fp, rec in latest.items():
        topic = topic_of[rec["category"]]
        if fp in firing and fp not in expected:
            cmp.extra[topic] += 1
            _note(cmp, f"{topic} extra FIRING {rec['kind']} {fp} v{rec['version']}")
        elif fp not in ever:
            transient += 1
    # Resolved fingerprints the oracle never emitted: inbound partitions interleave the cases of
    # one address differently from publish order, so the stream may see (and resolve) a
    # condition the oracle never saw. Legitimate; counted for information only.
    cmp.counts["resolved, stream only"] = transient
    for fp in expected.keys() & firing.keys():
        if alert_state(expected[fp]) != alert_state(firing[fp]):
            topic = topic_of[expected[fp]["category"]]
            cmp.wrong[topic] += 1
            fields = differing(alert_fields(expected[fp]), alert_fields(firing[fp]))
            _note(
                cmp,
                f"{topic} stale {expected[fp]['kind']} {fp} v{firing[fp]['version']}"
                f" ({', '.join(fields)})",
            )

    # -- emission history
    cmp.dup_exact, cmp.dup_nonexact, dup_examples = duplicates(alerts)
    for text in dup_examples:
        _note(cmp, f"non-exact duplicate {text}")
    gaps = version_gaps(alerts)
    cmp.gaps = len(gaps)
    for fp, versions in list(gaps.items())[:5]:
        _note(cmp, f"version gap {fp}: {versions}")
    return cmp
