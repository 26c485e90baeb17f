"""The address timeline: every case's planned work window on one time axis, as an SVG string.

Drawn server-side (no JavaScript): one row per case, a bar from ``planned_start`` to
``planned_end`` coloured by status, the lead case outlined, month ticks on the axis. A window with
only a start runs hatched to the right edge ("open end"); a case without any window gets a row
with the text "geen planning" so the reader sees it exists. Each bar carries ``data-start`` and
``data-end`` (ISO dates) so tests, and screen readers through the ``<title>``, get the exact
window. Pure: no I/O, no Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

# status -> fill colour (contrast >= 4.5:1 against white text is not needed: labels sit outside)
STATUS_COLOURS = {
    "OPENED": "#6b7280",
    "PLANNED": "#1d4ed8",
    "IN_PROGRESS": "#b45309",
    "ON_HOLD": "#7c3aed",
    "DECIDED": "#047857",
    "CLOSED": "#374151",
    "CANCELLED": "#9ca3af",
}
DEFAULT_COLOUR = "#4b5563"
MONTHS_NL = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")

LABEL_W = 300  # px for the case labels left of the axis
ROW_H = 28
AXIS_H = 30
BAR_H = 16


@dataclass(frozen=True, slots=True)
class Bar:
    """One case on the timeline."""

    label: str  # e.g. "NCG · STRENGTHENING · V-1"
    start: date | None
    end: date | None
    status: str
    lead: bool = False
    active: bool = True


def _parse(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def bar_from_case(case: dict[str, object], lead: bool) -> Bar:
    """A dossier case (decoded DossierCase or CaseSummary) as a bar."""
    return Bar(
        label=f"{case['source']} · {case['case_type']} · {case['case_id']}",
        start=_parse(case.get("planned_start")),  # type: ignore[arg-type]
        end=_parse(case.get("planned_end")),  # type: ignore[arg-type]
        status=str(case.get("status") or ""),
        lead=lead,
        active=bool(case.get("active", True)),
    )


def axis_range(bars: Sequence[Bar], today: date | None = None) -> tuple[date, date] | None:
    """First and last day shown: every window plus half a month of margin; None without dates."""
    days = [d for b in bars for d in (b.start, b.end) if d is not None]
    if today is not None and days:
        days.append(today)
    if not days:
        return None
    lo, hi = min(days), max(days)
    if hi - lo < timedelta(days=60):
        hi = lo + timedelta(days=60)
    return lo - timedelta(days=15), hi + timedelta(days=15)


def _month_ticks(lo: date, hi: date) -> list[date]:
    ticks = []
    d = date(lo.year, lo.month, 1)
    while d <= hi:
        if d >= lo:
            ticks.append(d)
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    if len(ticks) > 12:  # a long axis: quarters only
        ticks = [t for t in ticks if t.month in (1, 4, 7, 10)]
    return ticks


def render_svg(bars: Sequence[Bar], width: int = 900, today: date | None = None) -> str:
    """The timeline as an inline SVG element (role="img", titled, one ``g.case`` per bar)."""
    height = AXIS_H + ROW_H * max(len(bars), 1) + 8
    span = axis_range(bars, today)
    plot_w = width - LABEL_W - 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="gantt-title">',
        '<title id="gantt-title">Tijdlijn: geplande werkvensters per zaak</title>',
        '<defs><pattern id="open-end" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" fill="#9ca3af"/>'
        "</pattern></defs>",
    ]

    def x(d: date) -> float:
        assert span is not None
        lo, hi = span
        return LABEL_W + (d - lo).days / max((hi - lo).days, 1) * plot_w

    if span is not None:
        for tick in _month_ticks(*span):
            tx = round(x(tick), 1)
            if tx + 50 > width:  # no room for the label
                continue
            label = f"{MONTHS_NL[tick.month - 1]} {tick.year}"
            out.append(
                f'<line x1="{tx}" y1="{AXIS_H - 6}" x2="{tx}" y2="{height}" stroke="#e5e7eb"/>'
                f'<text x="{tx + 2}" y="{AXIS_H - 10}" font-size="11" fill="#374151">{label}</text>'
            )
        if today is not None:
            tx = round(x(today), 1)
            out.append(
                f'<line class="today" x1="{tx}" y1="{AXIS_H - 6}" x2="{tx}" y2="{height}" '
                'stroke="#dc2626" stroke-dasharray="3 3"><title>vandaag</title></line>'
            )
    for i, bar in enumerate(bars):
        y = AXIS_H + i * ROW_H
        cls = "case lead" if bar.lead else "case"
        start_s = bar.start.isoformat() if bar.start else ""
        end_s = bar.end.isoformat() if bar.end else ""
        out.append(
            f'<g class="{cls}" data-label="{escape(bar.label)}" data-start="{start_s}" '
            f'data-end="{end_s}" data-status="{escape(bar.status)}">'
        )
        weight = ' font-weight="bold"' if bar.lead else ""
        lead_mark = " ★" if bar.lead else ""
        out.append(
            f'<text x="4" y="{y + BAR_H}" font-size="12" fill="#111827"{weight}>'
            f"{escape(bar.label)}{lead_mark}</text>"
        )
        colour = STATUS_COLOURS.get(bar.status, DEFAULT_COLOUR)
        window = f"{start_s or '?'} – {end_s or 'open'}"
        title = f"<title>{escape(bar.label)}: {escape(bar.status)}, {window}</title>"
        if span is None or (bar.start is None and bar.end is None):
            out.append(
                f'<text x="{LABEL_W + 4}" y="{y + BAR_H}" font-size="12" fill="#6b7280" '
                f'font-style="italic">geen planning{title}</text>'
            )
        else:
            x0 = x(bar.start) if bar.start is not None else LABEL_W
            x1 = x(bar.end + timedelta(days=1)) if bar.end is not None else LABEL_W + plot_w
            fill = colour if bar.start is not None and bar.end is not None else "url(#open-end)"
            stroke = ' stroke="#f59e0b" stroke-width="3"' if bar.lead else ""
            opacity = "" if bar.active else ' opacity="0.45"'
            out.append(
                f'<rect class="window" x="{round(x0, 1)}" y="{y + 4}" '
                f'width="{round(max(x1 - x0, 2), 1)}" height="{BAR_H}" rx="3" fill="{fill}"'
                f"{stroke}{opacity}>{title}</rect>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def legend(bars: Sequence[Bar]) -> list[tuple[str, str]]:
    """(status, colour) of the statuses on the timeline, for the legend under it."""
    seen = sorted({b.status for b in bars if b.start is not None and b.end is not None})
    return [(s, STATUS_COLOURS.get(s, DEFAULT_COLOUR)) for s in seen]
