"""``hub backtest``: what a rules change would do, judged on recorded events before it goes live.

Both configs run over the same history through :func:`hub.oracle.run_oracle` (the in-memory hub
the pipeline tests already hold the stream to), so the FIRING set under a config is the one the
stream gives under that config. The difference is reported per rule kind and steering group:
signals that would start firing, stop firing, or keep firing with another lead case.

Events come from JSON Lines files (the simulator's and the file connector's format) or from a
range of the inbound topic (Avro or JSON values, as the ingest stage reads them). Nothing here
logs; the report may name address keys and goes to the operator's terminal only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.contracts.decode import Rejection, decode_case_event
from hub.contracts.events import CaseEvent
from hub.engine.config import RulesConfig
from hub.oracle import run_oracle

START = "start"  # firing under the new config only
STOP = "stop"  # firing under the current config only
LEAD = "lead"  # firing under both, another lead case
CHANGES = (START, STOP, LEAD)
LABELS = {START: "would start firing", STOP: "would stop firing", LEAD: "would change lead"}


@dataclass(frozen=True, slots=True)
class Change:
    """One fingerprint whose FIRING state or lead differs between the two configs."""

    change: str
    kind: str
    steering_group: str
    fingerprint: str
    subject: str  # address key, or the 4-digit area for AREA_CLUSTER
    lead_before: str | None = None
    lead_after: str | None = None


@dataclass(slots=True)
class BacktestReport:
    """The two FIRING sets and their difference."""

    current_version: str
    new_version: str
    events: int
    accepted: int
    rejected: Counter[str]
    current: dict[str, dict[str, Any]]  # fingerprint -> FIRING record under the current config
    new: dict[str, dict[str, Any]]  # ... under the new config
    changes: list[Change] = field(default_factory=list)

    def grouped(self) -> dict[tuple[str, str], dict[str, list[Change]]]:
        """(kind, steering group) -> change -> changes, sorted by kind, group, subject."""
        out: dict[tuple[str, str], dict[str, list[Change]]] = {}
        for c in sorted(self.changes, key=lambda c: (c.kind, c.steering_group, c.subject)):
            out.setdefault((c.kind, c.steering_group), {k: [] for k in CHANGES})[c.change].append(c)
        return out

    def totals(self) -> dict[str, int]:
        counts = Counter(c.change for c in self.changes)
        return {k: counts[k] for k in CHANGES}

    def to_json(self, sample: int = 5) -> dict[str, Any]:
        """``hub backtest --json``: versions, totals, and per (kind, group) counts and samples."""
        return {
            "current_config_version": self.current_version,
            "new_config_version": self.new_version,
            "events": self.events,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "firing": {"current": len(self.current), "new": len(self.new)},
            "totals": self.totals(),
            "groups": [
                {
                    "kind": kind,
                    "steering_group": group,
                    **{
                        change: {
                            "count": len(items),
                            "sample": [_sample(c) for c in items[:sample]],
                        }
                        for change, items in by_change.items()
                    },
                }
                for (kind, group), by_change in self.grouped().items()
            ],
        }


def _sample(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": c.subject, "fingerprint": c.fingerprint}
    if c.change == LEAD:
        out["lead_before"] = c.lead_before
        out["lead_after"] = c.lead_after
    return out


def _lead(record: dict[str, Any]) -> str | None:
    lead = record.get("lead")
    return f"{lead['source']}/{lead['case_id']}" if lead else None


def _subject(record: dict[str, Any]) -> str:
    return str(record.get("address_key") or record.get("area") or "-")


def diff_firing(current: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[Change]:
    """Fingerprints that start firing, stop firing or change lead from ``current`` to ``new``."""
    changes: list[Change] = []
    for fp in sorted(current.keys() | new.keys()):
        before, after = current.get(fp), new.get(fp)
        record = after if after is not None else before
        assert record is not None
        base = {
            "kind": record["kind"],
            "steering_group": record["steering_group"],
            "fingerprint": fp,
            "subject": _subject(record),
        }
        if before is None:
            changes.append(Change(START, **base, lead_after=_lead(record)))
        elif after is None:
            changes.append(Change(STOP, **base, lead_before=_lead(record)))
        elif _lead(before) != _lead(after):
            changes.append(Change(LEAD, **base, lead_before=_lead(before), lead_after=_lead(after)))
    return changes


def compare(
    events: Sequence[CaseEvent | dict[str, Any] | bytes | str],
    new: RulesConfig,
    current: RulesConfig,
    extra_rejected: Counter[str] | None = None,
) -> BacktestReport:
    """Run both configs over ``events`` (from a clean state each) and diff the FIRING sets."""
    before = run_oracle(events, current)
    after = run_oracle(events, new)
    rejected = Counter(before.rejected)
    rejected.update(extra_rejected or Counter())
    current_firing = before.firing_records()
    new_firing = after.firing_records()
    return BacktestReport(
        current_version=current.config_version,
        new_version=new.config_version,
        events=len(events) + sum((extra_rejected or Counter()).values()),
        accepted=before.accepted,
        rejected=rejected,
        current=current_firing,
        new=new_firing,
        changes=diff_firing(current_firing, new_firing),
    )


# ----------------------------------------------------------------------------- event sources


def read_jsonl(paths: Iterable[Path]) -> Iterator[str]:
    """Non-blank lines of JSON Lines files, in file order (each line is validated later)."""
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield line


def decode_value(raw: bytes) -> CaseEvent | bytes | Rejection:
    """An inbound topic value as the ingest stage reads it: JSON stays bytes (validated by the
    oracle like the ingress does), anything else is Avro in either framing."""
    if raw[:1] == b"{":
        return raw
    return decode_case_event(raw)


def read_topic_range(
    settings: Any,
    topic: str,
    from_ms: int | None = None,
    to_ms: int | None = None,
    timeout_s: float = 300.0,
) -> tuple[list[CaseEvent | bytes], Counter[str]]:
    """Values of ``topic`` with from_ms <= timestamp < to_ms, in timestamp order (ties by
    partition and offset), and the rejections counted by reason (undecodable Avro)."""
    from hub.answers.reading import read_to_end  # Kafka wiring only when a topic is read

    picked: list[tuple[int, int, int, bytes]] = []
    for msg in read_to_end(settings, [topic], timeout_s=timeout_s):
        if msg.value is None:
            continue
        if from_ms is not None and msg.timestamp_ms < from_ms:
            continue
        if to_ms is not None and msg.timestamp_ms >= to_ms:
            continue
        picked.append((msg.timestamp_ms, msg.partition, msg.offset, msg.value))
    picked.sort(key=lambda t: t[:3])
    events: list[CaseEvent | bytes] = []
    rejected: Counter[str] = Counter()
    for *_, value in picked:
        decoded = decode_value(value)
        if isinstance(decoded, Rejection):
            rejected[decoded.reason_code] += 1
        else:
            events.append(decoded)
    return events, rejected


def render_text(report: BacktestReport, sample: int = 3) -> list[str]:
    """The human report: one block per (kind, steering group) with counts and sample subjects."""
    lines = [
        f"current config {report.current_version} vs new config {report.new_version}: "
        f"{report.events} events, {report.accepted} accepted, "
        f"{sum(report.rejected.values())} rejected",
        f"FIRING: {len(report.current)} now, {len(report.new)} with the new config",
    ]
    totals = report.totals()
    lines.append(", ".join(f"{totals[k]} {LABELS[k]}" for k in CHANGES))
    for (kind, group), by_change in report.grouped().items():
        lines.append("")
        lines.append(f"{kind} / {group}")
        for change in CHANGES:
            items = by_change[change]
            if not items:
                continue
            shown = ", ".join(
                c.subject if change != LEAD else f"{c.subject} ({c.lead_before} -> {c.lead_after})"
                for c in items[:sample]
            )
            more = f", ... +{len(items) - sample}" if len(items) > sample else ""
            lines.append(f"  {LABELS[change]}: {len(items)}  e.g. {shown}{more}")
    if not report.changes:
        lines.append("no difference")
    return lines
