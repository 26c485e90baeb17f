"""Alerts and signals: the latest version per fingerprint from ``contact-routing`` + ``signals``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.answers.reading import RawMessage, jsonable, read_to_end
from hub.contracts.codec import AvroCodec, DecodeError, get_codec
from hub.pipeline.topics import Topics
from hub.settings import Settings

FIRING = "FIRING"


@dataclass(slots=True)
class AlertsAnswer:
    """Current alerts/signals (latest version per fingerprint) and how much was unreadable."""

    alerts: list[dict[str, Any]]
    records_read: int = 0
    undecodable: int = 0


def latest_per_fingerprint(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep the highest ``version`` per fingerprint (later wins a tie): the current state.

    Version, not arrival order, decides: signals and alerts of one fingerprint may sit on
    different partitions after a re-key, and a redelivered old record must not win.
    """
    best: dict[str, dict[str, Any]] = {}
    for record in records:
        fp = record["fingerprint"]
        held = best.get(fp)
        if held is None or record["version"] >= held["version"]:
            best[fp] = dict(record)
    return sorted(
        best.values(),
        key=lambda r: (
            r["steering_group"],
            r["kind"],
            r.get("address_key") or "",
            r["fingerprint"],
        ),
    )


def filter_alerts(
    alerts: Iterable[dict[str, Any]],
    *,
    firing: bool = False,
    kind: str | None = None,
    steering_group: str | None = None,
    address_key: str | None = None,
) -> list[dict[str, Any]]:
    """Filters of ``hub alerts``; kind and steering group compare case-insensitively."""
    out = []
    for a in alerts:
        if firing and a["status"] != FIRING:
            continue
        if kind is not None and a["kind"].upper() != kind.upper():
            continue
        if (
            steering_group is not None
            and a["steering_group"].casefold() != steering_group.casefold()
        ):
            continue
        if address_key is not None and a.get("address_key") != address_key:
            continue
        out.append(a)
    return out


def decode_alerts(
    messages: Iterable[RawMessage], codec: AvroCodec, answer: AlertsAnswer
) -> list[dict[str, Any]]:
    records = []
    for msg in messages:
        answer.records_read += 1
        if msg.value is None:
            continue
        try:
            records.append(codec.decode(msg.value, "Alert")[1])
        except DecodeError:
            answer.undecodable += 1
    return records


def read_alerts(
    settings: Settings,
    *,
    firing: bool = False,
    kind: str | None = None,
    steering_group: str | None = None,
    timeout_s: float = 120.0,
) -> AlertsAnswer:
    """``hub alerts``: latest version per fingerprint from contact-routing and signals."""
    topics = Topics.from_settings(settings)
    answer = AlertsAnswer(alerts=[])
    messages = read_to_end(settings, [topics.contact_routing, topics.signals], timeout_s=timeout_s)
    records = decode_alerts(messages, get_codec(), answer)
    answer.alerts = filter_alerts(
        latest_per_fingerprint(records), firing=firing, kind=kind, steering_group=steering_group
    )
    return answer


def alert_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``hub alerts --json`` object: exactly the keys of the issue, in that order."""
    lead = record.get("lead")
    return {
        "kind": record["kind"],
        "fingerprint": record["fingerprint"],
        "status": record["status"],
        "version": record["version"],
        "address_key": record.get("address_key"),
        "area": record.get("area"),
        "steering_group": record["steering_group"],
        "lead": (
            {
                "source": lead["source"],
                "case_id": lead["case_id"],
                "contact_role": lead.get("contact_role"),
            }
            if lead
            else None
        ),
        "cases": [{"source": c["source"], "case_id": c["case_id"]} for c in record["cases"]],
    }


def alert_evidence(record: Mapping[str, Any]) -> dict[str, Any]:
    """An alert with its evidence for the dossier: rule, cases, event ids and detail."""
    return jsonable(
        {
            "kind": record["kind"],
            "category": record["category"],
            "fingerprint": record["fingerprint"],
            "status": record["status"],
            "version": record["version"],
            "steering_group": record["steering_group"],
            "starts_at": record["starts_at"],
            "lead": alert_line(record)["lead"],
            "cases": record["cases"],
            "event_ids": record["event_ids"],
            "detail": dict(sorted(record.get("detail", {}).items())),
            "config_version": record["config_version"],
        }
    )
