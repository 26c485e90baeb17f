"""View models of the pages, on the oracle's state of a small two-group history."""

from __future__ import annotations

from datetime import date

from hub.address.municipalities import default_municipalities
from hub.web.access import Account
from hub.web.views import address_page, area_page, group_list, overview
from tests.unit.test_web_fixtures import HH_KEY, LEAD_NAME, LEAD_PHONE, MG_KEY, oracle_state

MG = Account("mg", frozenset({"MIDDEN_GRONINGEN"}), contacts=True)
MG_NO_CONTACTS = Account("mg-read", frozenset({"MIDDEN_GRONINGEN"}), contacts=False)
REGIO = Account("regio", frozenset({"*"}), contacts=False)
GROUPS = dict(default_municipalities().config.steering_groups)
NAME = default_municipalities().name


def test_overview_counts_firing_per_visible_group_and_kind() -> None:
    state = oracle_state()
    model = overview(list(state.alerts.values()), MG, GROUPS)
    assert [g["code"] for g in model["groups"]] == ["MIDDEN_GRONINGEN"]
    row = model["groups"][0]
    counts = dict(zip([k["code"] for k in model["kinds"]], row["counts"], strict=True))
    expected = {a["kind"] for a in state.firing() if a["address_key"] == MG_KEY}
    assert {k for k, n in counts.items() if n} == expected
    assert row["total"] == sum(
        1 for a in state.firing() if a["steering_group"] == "MIDDEN_GRONINGEN"
    )
    assert counts["SAMENLOOP"] == 1 and counts["PLAN_OVERLAP"] == 1
    # the regional coordinator sees every configured group, with zero rows for quiet ones
    everyone = overview(list(state.alerts.values()), REGIO, GROUPS)
    assert {g["code"] for g in everyone["groups"]} == set(GROUPS)
    assert everyone["total"] == len(state.firing())


def test_overview_trend_counts_new_findings_per_week_up_to_the_reference_day() -> None:
    state = oracle_state()
    model = overview(list(state.alerts.values()), REGIO, GROUPS, today=date(2024, 3, 10))
    assert len(model["weeks"]) == 8 and model["weeks"][-1] == "2024-03-04"  # a Monday
    hh = next(g for g in model["groups"] if g["code"] == "HET_HOGELAND")
    assert sum(hh["trend"]) == sum(
        1 for a in state.firing() if a["steering_group"] == "HET_HOGELAND"
    )
    later = overview(list(state.alerts.values()), REGIO, GROUPS, today=date(2024, 6, 1))
    assert all(sum(g["trend"]) == 0 for g in later["groups"])  # all started > 8 weeks before


def test_group_list_filters_sorts_and_links_to_addresses() -> None:
    state = oracle_state()
    model = group_list(state.firing(), "MIDDEN_GRONINGEN", NAME)
    assert {r["url"] for r in model["rows"]} == {f"/adres/{MG_KEY}"}
    assert all(r["gemeente"] == "Midden-Groningen" for r in model["rows"])
    sinces = [r["since"] for r in model["rows"]]
    assert sinces == sorted(sinces)
    newest = group_list(state.firing(), "MIDDEN_GRONINGEN", NAME, sort="nieuwste")
    assert [r["since"] for r in newest["rows"]] == sorted(sinces, reverse=True)
    only = group_list(state.firing(), "MIDDEN_GRONINGEN", NAME, kind="PLAN_OVERLAP")
    assert [r["kind"] for r in only["rows"]] == ["PLAN_OVERLAP"]
    assert group_list(state.firing(), "MIDDEN_GRONINGEN", NAME, area="9951")["rows"] == []
    assert group_list(state.firing(), "MIDDEN_GRONINGEN", NAME, municipality="GM1966")["rows"] == []
    assert group_list(state.firing(), "MIDDEN_GRONINGEN", NAME, area="9601")["rows"]


def test_address_page_has_every_case_on_the_timeline_and_the_lead_highlighted() -> None:
    state = oracle_state()
    model = address_page(MG_KEY, state.dossiers[MG_KEY], state.address_alerts(MG_KEY), MG, NAME)
    dossier_cases = {(c["source"], c["case_id"]) for c in state.dossiers[MG_KEY]["cases"]}
    assert {(c["source"], c["case_id"]) for c in model["cases"]} == dossier_cases
    for c in model["cases"]:
        label = f'data-label="{c["source"]} · {c["case_type"]} · {c["case_id"]}"'
        assert label in model["timeline_svg"]
    assert model["lead"]["case_id"] == "V-1" and model["lead"]["contact"]["name"] == LEAD_NAME
    assert model["lead"]["contact"]["phone"] == LEAD_PHONE
    assert 'class="case lead" data-label="NCG · STRENGTHENING · V-1"' in model["timeline_svg"]
    kinds = {f["kind"] for f in model["findings"]}
    assert {"SAMENLOOP", "PLAN_OVERLAP"} <= kinds
    overlap = next(f for f in model["findings"] if f["kind"] == "PLAN_OVERLAP")
    assert any("R-1" in c for c in overlap["cases"]) and overlap["event_ids"]
    assert model["steering_group"] == "MIDDEN_GRONINGEN"


def test_contact_details_are_blanked_for_roles_without_the_right() -> None:
    state = oracle_state()
    model = address_page(
        MG_KEY, state.dossiers[MG_KEY], state.address_alerts(MG_KEY), MG_NO_CONTACTS, NAME
    )
    for c in model["cases"]:
        assert c["contact"]["name"] is None and c["contact"]["phone"] is None
        assert c["contact"]["email"] is None
    assert model["lead"]["contact"]["role"] == "Bewonersbegeleider"
    assert model["lead"]["contact"]["hidden"] is True


def test_area_page_lists_the_visible_addresses_of_the_area() -> None:
    state = oracle_state()
    model = area_page("9601", list(state.alerts.values()), MG)
    assert [a["key"] for a in model["addresses"]] == [MG_KEY]
    assert "Samenloop" in model["addresses"][0]["kinds"]
    assert area_page("9951", list(state.alerts.values()), MG)["addresses"] == []
    assert [
        a["key"] for a in area_page("9951", list(state.alerts.values()), REGIO)["addresses"]
    ] == [HH_KEY]


def test_area_page_shows_the_area_cluster_of_a_visible_group_only() -> None:
    cluster = {
        "fingerprint": "AREA_CLUSTER:9601",
        "kind": "AREA_CLUSTER",
        "status": "FIRING",
        "version": 1,
        "area": "9601",
        "address_key": None,
        "steering_group": "MIDDEN_GRONINGEN",
        "starts_at": 1_709_460_000_000,
        "detail": {"addresses": "5", "threshold": "5"},
        "cases": [],
    }
    alerts = [*oracle_state().alerts.values(), cluster]
    model = area_page("9601", alerts, MG)
    assert model["clusters"] == [
        {
            "steering_group": "MIDDEN_GRONINGEN",
            "since": "2024-03-03",
            "detail": [("addresses", "5"), ("threshold", "5")],
        }
    ]
    hh = Account("hh", frozenset({"HET_HOGELAND"}), contacts=False)
    assert area_page("9601", alerts, hh)["clusters"] == []
    rows = group_list(alerts, "MIDDEN_GRONINGEN", NAME, kind="AREA_CLUSTER")["rows"]
    assert [(r["subject"], r["url"]) for r in rows] == [("gebied 9601", "/gebied/9601")]
