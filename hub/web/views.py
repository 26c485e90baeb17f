"""View models of the steering-group pages: decoded records in, plain dicts for the templates out.

Pure (no Kafka, no aiohttp): the request handlers pass what the materialised view holds and the
viewer's :class:`~hub.web.access.Account`; everything a page shows is decided here, so it is unit
tested without a server. Access is decided here too: contact details are blanked unless the
account may see them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from hub.web.access import Account
from hub.web.gantt import bar_from_case, legend, render_svg

FIRING = "FIRING"
AREA_CLUSTER = "AREA_CLUSTER"

# Dutch labels for the users (the rule codes stay visible next to them for the operators).
KIND_LABELS = {
    "CONTACT_ROUTING": "Aanspreekpunt",
    "SAMENLOOP": "Samenloop",
    "REPAIR_BEFORE_STRENGTHENING": "Herstel vóór versterking",
    "INSULATION_BEFORE_STRENGTHENING": "Isolatie vóór versterking",
    "PLAN_OVERLAP": "Overlappende planning",
    "MANDATE_EXCEEDED": "Mandaat overschreden",
    AREA_CLUSTER: "Cluster in gebied",
}
STATUS_LABELS = {
    "OPENED": "Geopend",
    "ON_HOLD": "Aangehouden",
    "DECIDED": "Besloten",
    "PLANNED": "Gepland",
    "IN_PROGRESS": "In uitvoering",
    "CLOSED": "Afgesloten",
    "CANCELLED": "Geannuleerd",
}
ROLE_LABELS = {
    "RESIDENT_COUNSELLOR": "Bewonersbegeleider",
    "CASE_COUNSELLOR": "Zaakbegeleider",
}
CONTACT_FIELDS = ("contact_name", "contact_phone", "contact_email")
TREND_WEEKS = 8


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def address_url(key: str) -> str:
    return "/adres/" + quote(key, safe="")


def group_url(group: str) -> str:
    return "/stuurgroep/" + quote(group, safe="")


def area_url(area: str) -> str:
    return "/gebied/" + quote(area, safe="")


def _ms_date(ms: int | datetime | None) -> date | None:
    if ms is None:
        return None
    if isinstance(ms, datetime):
        return ms.astimezone(UTC).date()
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date()


def reference_day(records: Iterable[Mapping[str, Any]]) -> date | None:
    """The newest event-time day among the records: "now" for ages and trends, so that a replay
    of history reads as it did then (the hub works in event time)."""
    days = [d for r in records if (d := _ms_date(r.get("starts_at"))) is not None]
    return max(days) if days else None


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


# ----------------------------------------------------------------------------- overview


@dataclass(frozen=True, slots=True)
class GroupInfo:
    code: str
    name: str


def overview(
    alerts: Iterable[Mapping[str, Any]],
    account: Account,
    groups: Mapping[str, str],
    today: date | None = None,
) -> dict[str, Any]:
    """Firing counts per visible steering group and kind, and new findings per week.

    ``alerts``: latest record per fingerprint (FIRING and RESOLVED); ``groups``: code -> name of
    every configured group. Trend: findings that started firing in each of the last
    :data:`TREND_WEEKS` weeks up to ``today`` (default: the newest event day).
    """
    records = [a for a in alerts if account.sees(a["steering_group"])]
    firing = [a for a in records if a["status"] == FIRING]
    ref = today or reference_day(records)
    kinds = sorted({a["kind"] for a in firing}, key=lambda k: (k == "CONTACT_ROUTING", k))
    per = Counter((a["steering_group"], a["kind"]) for a in firing)
    weeks: list[date] = []
    if ref is not None:
        last = _week_start(ref)
        weeks = [last - timedelta(weeks=n) for n in range(TREND_WEEKS - 1, -1, -1)]
    started = Counter(
        (a["steering_group"], _week_start(d))
        for a in records
        if (d := _ms_date(a.get("starts_at"))) is not None
    )
    rows = []
    for code in account.visible(set(groups) | {a["steering_group"] for a in records}):
        counts = [per[(code, k)] for k in kinds]
        trend = [started[(code, w)] for w in weeks]
        rows.append(
            {
                "code": code,
                "name": groups.get(code, code),
                "url": group_url(code),
                "counts": counts,
                "total": sum(counts),
                "trend": trend,
                "trend_max": max(trend, default=0),
            }
        )
    return {
        "kinds": [{"code": k, "label": kind_label(k)} for k in kinds],
        "groups": rows,
        "weeks": [w.isoformat() for w in weeks],
        "reference_day": ref.isoformat() if ref else None,
        "total": sum(r["total"] for r in rows),
    }


# ----------------------------------------------------------------------------- group list


SORTS = ("oudste", "nieuwste", "adres", "soort")


def group_list(
    alerts: Iterable[Mapping[str, Any]],
    group: str,
    municipality_name: Callable[[str | None], str | None],
    kind: str | None = None,
    municipality: str | None = None,
    area: str | None = None,
    sort: str = "oudste",
    today: date | None = None,
) -> dict[str, Any]:
    """The FIRING findings of one steering group, filtered and sorted; each row links on."""
    firing = [a for a in alerts if a["status"] == FIRING and a["steering_group"] == group]
    ref = today or reference_day(firing)
    all_kinds = sorted({a["kind"] for a in firing})
    all_municipalities = sorted({a["gemeentecode"] for a in firing if a.get("gemeentecode")})
    rows = []
    for a in firing:
        if kind and a["kind"] != kind:
            continue
        if municipality and a.get("gemeentecode") != municipality:
            continue
        row_area = a.get("area") or (a.get("address_key") or "")[:4]
        if area and row_area != area:
            continue
        since = _ms_date(a.get("starts_at"))
        key = a.get("address_key")
        rows.append(
            {
                "kind": a["kind"],
                "kind_label": kind_label(a["kind"]),
                "subject": key or f"gebied {a.get('area')}",
                "url": address_url(key) if key else area_url(str(a.get("area"))),
                "area": row_area,
                "area_url": area_url(row_area) if row_area else None,
                "gemeente": municipality_name(a.get("gemeentecode")) or a.get("gemeentecode"),
                "since": since.isoformat() if since else "",
                "age_days": (ref - since).days if ref and since else None,
                "cases": len(a.get("cases") or ()),
            }
        )
    if sort not in SORTS:
        sort = "oudste"
    if sort in ("oudste", "nieuwste"):
        rows.sort(key=lambda r: (r["since"] or "9999", r["subject"]), reverse=sort == "nieuwste")
    elif sort == "adres":
        rows.sort(key=lambda r: (r["subject"], r["kind"]))
    else:
        rows.sort(key=lambda r: (r["kind"], r["since"], r["subject"]))
    return {
        "group": group,
        "rows": rows,
        "kinds": [{"code": k, "label": kind_label(k)} for k in all_kinds],
        "municipalities": [
            {"code": c, "name": municipality_name(c) or c} for c in all_municipalities
        ],
        "filters": {"kind": kind, "municipality": municipality, "area": area, "sort": sort},
        "sorts": SORTS,
        "reference_day": ref.isoformat() if ref else None,
    }


# ----------------------------------------------------------------------------- address page


def _contact(source: Mapping[str, Any], account: Account) -> dict[str, Any]:
    role = source.get("contact_role")
    out: dict[str, Any] = {"role": ROLE_LABELS.get(role or "", role) if role else None}
    for f in CONTACT_FIELDS:
        out[f.removeprefix("contact_")] = source.get(f) if account.contacts else None
    out["hidden"] = not account.contacts and any(source.get(f) for f in CONTACT_FIELDS)
    return out


def address_page(
    key: str,
    dossier: Mapping[str, Any],
    alerts: Iterable[Mapping[str, Any]],
    account: Account,
    municipality_name: Callable[[str | None], str | None],
    today: date | None = None,
) -> dict[str, Any]:
    """Dossier, lead contact (Aanspreekpunt), timeline SVG and FIRING findings with evidence."""
    lead_ref = dossier.get("lead") or {}
    lead_id = (lead_ref.get("source"), lead_ref.get("case_id"))
    cases = []
    bars = []
    for c in sorted(
        dossier.get("cases") or (),
        key=lambda c: (not c.get("active", True), c.get("planned_start") or "9999", c["source"]),
    ):
        is_lead = (c["source"], c["case_id"]) == lead_id
        bars.append(bar_from_case(c, is_lead))
        cases.append(
            {
                "source": c["source"],
                "case_id": c["case_id"],
                "case_type": c["case_type"],
                "status": c["status"],
                "status_label": STATUS_LABELS.get(c["status"], c["status"]),
                "active": c.get("active", True),
                "planned_start": c.get("planned_start") or "",
                "planned_end": c.get("planned_end") or "",
                "amount_eur": c.get("amount_eur"),
                "lead": is_lead,
                "contact": _contact(c, account),
            }
        )
    lead = next((c for c in cases if c["lead"]), None)
    findings = []
    for a in sorted(alerts, key=lambda a: (a["kind"] == "CONTACT_ROUTING", a["kind"])):
        if a["status"] != FIRING:
            continue
        since = _ms_date(a.get("starts_at"))
        findings.append(
            {
                "kind": a["kind"],
                "kind_label": kind_label(a["kind"]),
                "since": since.isoformat() if since else "",
                "cases": [f"{c['source']} · {c['case_type']} · {c['case_id']}" for c in a["cases"]],
                "event_ids": list(a.get("event_ids") or ()),
                "detail": sorted((a.get("detail") or {}).items()),
                "config_version": a.get("config_version"),
            }
        )
    code = dossier.get("gemeentecode")
    return {
        "key": key,
        "url": address_url(key),
        "area": key[:4],
        "area_url": area_url(key[:4]),
        "steering_group": dossier["steering_group"],
        "group_url": group_url(dossier["steering_group"]),
        "gemeente": municipality_name(code) or code,
        "nummeraanduiding_ids": list(dossier.get("nummeraanduiding_ids") or ()),
        "pand_ids": list(dossier.get("pand_ids") or ()),
        "version": dossier.get("version"),
        "updated": (d.isoformat() if (d := _ms_date(dossier.get("updated_at"))) else ""),
        "cases": cases,
        "lead": lead,
        "findings": findings,
        "timeline_svg": render_svg(bars, today=today),
        "legend": [
            {"status": STATUS_LABELS.get(s, s), "colour": colour} for s, colour in legend(bars)
        ],
    }


# ----------------------------------------------------------------------------- area page


def area_page(area: str, alerts: Iterable[Mapping[str, Any]], account: Account) -> dict[str, Any]:
    """An area (PC4): its AREA_CLUSTER findings and the visible FIRING findings at addresses."""
    firing = [a for a in alerts if a["status"] == FIRING and account.sees(a["steering_group"])]
    clusters = []
    for a in firing:
        if a["kind"] != AREA_CLUSTER or a.get("area") != area:
            continue
        since = _ms_date(a.get("starts_at"))
        clusters.append(
            {
                "steering_group": a["steering_group"],
                "since": since.isoformat() if since else "",
                "detail": sorted((a.get("detail") or {}).items()),
            }
        )
    per_address: dict[str, list[str]] = {}
    for a in firing:
        key = a.get("address_key")
        if key and key.startswith(area) and a["kind"] != "CONTACT_ROUTING":
            per_address.setdefault(key, []).append(kind_label(a["kind"]))
    return {
        "area": area,
        "clusters": clusters,
        "addresses": [
            {"key": k, "url": address_url(k), "kinds": sorted(set(v))}
            for k, v in sorted(per_address.items())
        ],
    }
