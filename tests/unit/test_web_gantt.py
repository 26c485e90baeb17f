"""The SVG timeline: one row per case, the window where the dates say, lead outlined."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date

from hub.web.gantt import LABEL_W, Bar, axis_range, bar_from_case, render_svg

NS = {"s": "http://www.w3.org/2000/svg"}


def _cases(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall("s:g", NS)


def _x(rect: ET.Element) -> tuple[float, float]:
    x = float(rect.attrib["x"])
    return x, x + float(rect.attrib["width"])


BARS = [
    Bar("NCG · STRENGTHENING · V-1", date(2024, 6, 1), date(2024, 11, 30), "PLANNED", lead=True),
    Bar("HOUSING_CORPORATION · RENOVATION · R-1", date(2024, 11, 1), date(2025, 2, 28), "PLANNED"),
    Bar("IMG · DAMAGE · S-1", None, None, "OPENED"),
    Bar("MUNICIPALITY · PERMIT · P-1", date(2024, 8, 1), None, "IN_PROGRESS"),
]


def test_every_case_gets_a_row_with_its_window_in_data_attributes() -> None:
    groups = _cases(render_svg(BARS))
    assert [g.attrib["data-label"] for g in groups] == [b.label for b in BARS]
    assert [(g.attrib["data-start"], g.attrib["data-end"]) for g in groups] == [
        ("2024-06-01", "2024-11-30"),
        ("2024-11-01", "2025-02-28"),
        ("", ""),
        ("2024-08-01", ""),
    ]


def test_bars_sit_on_one_axis_in_date_order_and_overlap_where_the_windows_do() -> None:
    groups = _cases(render_svg(BARS, width=900))
    ncg, corp = (g.find("s:rect", NS) for g in groups[:2])
    assert ncg is not None and corp is not None
    n0, n1 = _x(ncg)
    c0, c1 = _x(corp)
    assert LABEL_W <= n0 < c0 < n1 < c1 <= 900  # November: both windows
    # 183 days vs 120 days of window: widths in proportion
    assert abs((n1 - n0) / (c1 - c0) - 183 / 120) < 0.05


def test_lead_is_outlined_and_marked_and_others_are_not() -> None:
    groups = _cases(render_svg(BARS))
    assert groups[0].attrib["class"] == "case lead"
    lead_rect = groups[0].find("s:rect", NS)
    assert lead_rect is not None and lead_rect.attrib.get("stroke") == "#f59e0b"
    other = groups[1].find("s:rect", NS)
    assert other is not None and "stroke" not in other.attrib
    assert "★" in "".join(groups[0].itertext()) and "★" not in "".join(groups[1].itertext())


def test_case_without_window_says_so_and_open_end_is_hatched_to_the_edge() -> None:
    svg = render_svg(BARS, width=900)
    groups = _cases(svg)
    assert groups[2].find("s:rect", NS) is None and "geen planning" in "".join(groups[2].itertext())
    open_rect = groups[3].find("s:rect", NS)
    assert open_rect is not None and open_rect.attrib["fill"] == "url(#open-end)"
    assert abs(_x(open_rect)[1] - (900 - 10)) < 1


def test_labels_are_escaped() -> None:
    svg = render_svg([Bar("<script>x</script>", date(2024, 1, 1), date(2024, 2, 1), "PLANNED")])
    assert "<script>" not in svg
    ET.fromstring(svg)  # still well-formed


def test_no_dates_at_all_still_draws_the_rows() -> None:
    svg = render_svg([Bar("IMG · DAMAGE · S-1", None, None, "OPENED")])
    assert axis_range([Bar("x", None, None, "OPENED")]) is None
    assert len(_cases(svg)) == 1 and "geen planning" in svg


def test_month_ticks_are_dutch_and_a_case_dict_becomes_a_bar() -> None:
    svg = render_svg(BARS)
    assert re.search(r">(jun|jul|aug|sep|okt|nov|dec) 2024<", svg)
    bar = bar_from_case(
        {"source": "NCG", "case_type": "STRENGTHENING", "case_id": "V-9", "status": "CLOSED",
         "active": False, "planned_start": "2023-01-02", "planned_end": None},
        lead=False,
    )  # fmt: skip
    assert bar == Bar("NCG · STRENGTHENING · V-9", date(2023, 1, 2), None, "CLOSED", False, False)
