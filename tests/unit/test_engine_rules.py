"""Rules 1-5 per address, with their boundaries (through the in-memory Engine)."""

from __future__ import annotations

import pytest

from hub.engine import Engine, default_config
from tests.engine_events import event


def run(*events, config=None) -> Engine:
    engine = Engine(config or default_config(), clock=lambda: 42)
    for ev in events:
        engine.process(ev)
    return engine


def firing_kinds(engine: Engine) -> list[str]:
    return sorted(r["kind"] for r in engine.firing_records().values())


def firing_of(engine: Engine, kind: str) -> list[dict]:
    return [r for r in engine.firing_records().values() if r["kind"] == kind]


STRENGTHENING = dict(source="NCG", case_id="v1", case_type="STRENGTHENING", status="PLANNED")
DAMAGE = dict(source="IMG", case_id="s1", case_type="DAMAGE")


# -- rule 1 CONTACT_ROUTING -----------------------------------------------------------------------


def test_contact_routing_needs_two_distinct_sources():
    engine = run(
        event("MUNICIPALITY", "p1", "PERMIT", at=1),
        event("MUNICIPALITY", "w1", "PUBLIC_WORKS", at=2),
    )
    assert firing_kinds(engine) == []
    engine.process(event("IMG", "s1", "DAMAGE", at=3))
    assert firing_kinds(engine) == ["CONTACT_ROUTING"]


def test_contact_routing_lead_is_highest_ranked_type_and_lists_every_case():
    engine = run(
        event("IMG", "s1", "DAMAGE", at=1, contact_name="Ans", contact_phone="050-1"),
        event("NCG", "v1", "STRENGTHENING", at=2),
        event("MUNICIPALITY", "p1", "PERMIT", at=3),
    )
    (rec,) = firing_of(engine, "CONTACT_ROUTING")
    assert rec["category"] == "ALERT"
    assert rec["lead"]["source"] == "NCG" and rec["lead"]["case_id"] == "v1"
    assert rec["detail"]["lead_contact"] == "NONE_KNOWN"  # operations can find these
    assert [(c["source"], c["case_id"]) for c in rec["cases"]] == [
        ("NCG", "v1"),
        ("IMG", "s1"),
        ("MUNICIPALITY", "p1"),
    ]
    assert rec["steering_group"] == "Groningen"


def test_contact_routing_lead_tie_goes_to_case_first_seen_earliest():
    engine = run(
        event("HOUSING_CORPORATION", "h1", "DAMAGE", at=5, contact_name="Late"),
        event("IMG", "s1", "DAMAGE", at=9, contact_name="Early"),
    )
    (rec,) = firing_of(engine, "CONTACT_ROUTING")
    assert rec["lead"]["case_id"] == "h1"
    # An older event of s1 arrives late: s1 was first seen earlier, so it becomes the lead.
    engine.process(event("IMG", "s1", "DAMAGE", at=1, event_id="old"))
    (rec,) = firing_of(engine, "CONTACT_ROUTING")
    assert rec["lead"]["case_id"] == "s1"
    assert rec["lead"]["contact_name"] == "Early"  # the late event did not overwrite the state


def test_contact_routing_lead_full_tie_goes_to_source_then_case_id():
    engine = run(
        event("NCG", "b", "DAMAGE", at=1),
        event("IMG", "z", "DAMAGE", at=1),
        event("IMG", "a", "DAMAGE", at=1),
    )
    (rec,) = firing_of(engine, "CONTACT_ROUTING")
    assert (rec["lead"]["source"], rec["lead"]["case_id"]) == ("IMG", "a")


def test_contact_routing_new_version_on_lead_change_not_on_status_progress():
    engine = run(event("IMG", "s1", "DAMAGE", at=1), event("MUNICIPALITY", "p1", "PERMIT", at=2))
    assert engine.process(event("IMG", "s1", "DAMAGE", "ON_HOLD", at=3)) == []
    ts = engine.process(event("NCG", "v1", "STRENGTHENING", at=4))
    (t,) = [t for t in ts if t.kind == "CONTACT_ROUTING"]
    assert (t.status, t.version, t.lead["case_id"]) == ("FIRING", 2, "v1")


def test_contact_routing_resolves_when_only_one_source_stays_active():
    engine = run(event("IMG", "s1", "DAMAGE", at=1), event("NCG", "v1", "STRENGTHENING", at=2))
    ts = engine.process(event("IMG", "s1", "DAMAGE", "CLOSED", at=3))
    (t,) = [t for t in ts if t.kind == "CONTACT_ROUTING"]
    assert (t.status, t.version, t.ends_at) == ("RESOLVED", 2, event(at=3).occurred_at_ms)
    assert t.lead is not None and t.lead["case_id"] == "v1"  # the lead it had, for the record


# -- rule 2 SAMENLOOP ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["OPENED", "ON_HOLD"])
def test_samenloop_fires_for_undecided_claim(status):
    engine = run(event(**STRENGTHENING, at=1), event(**DAMAGE, status=status, at=2))
    (rec,) = firing_of(engine, "SAMENLOOP")
    assert rec["category"] == "SIGNAL" and rec["gemeentecode"] == "GM0014"
    assert sorted(rec["event_ids"]) == sorted(c["last_event_id"] for c in _dossier_cases(engine))


@pytest.mark.parametrize("status", ["DECIDED", "PLANNED", "IN_PROGRESS", "CLOSED"])
def test_samenloop_does_not_fire_for_decided_claim(status):
    engine = run(event(**STRENGTHENING, at=1), event(**DAMAGE, status=status, at=2))
    assert firing_of(engine, "SAMENLOOP") == []


def test_samenloop_resolves_when_the_claim_is_decided():
    engine = run(event(**STRENGTHENING, at=1), event(**DAMAGE, status="OPENED", at=2))
    ts = engine.process(event(**DAMAGE, status="DECIDED", at=3))
    assert [(t.kind, t.status) for t in ts if t.kind == "SAMENLOOP"] == [("SAMENLOOP", "RESOLVED")]


def test_samenloop_only_in_configured_municipalities():
    veendam = dict(gemeentecode="GM0047", steering_group="REGIONAL")
    engine = run(event(**STRENGTHENING, at=1, **veendam), event(**DAMAGE, at=2, **veendam))
    assert firing_of(engine, "SAMENLOOP") == []
    config = default_config().replace(samenloop_municipalities=["GM0047"])
    engine = run(
        event(**STRENGTHENING, at=1, **veendam), event(**DAMAGE, at=2, **veendam), config=config
    )
    assert len(firing_of(engine, "SAMENLOOP")) == 1


def test_samenloop_needs_an_active_strengthening():
    engine = run(event(**{**STRENGTHENING, "status": "CANCELLED"}, at=1), event(**DAMAGE, at=2))
    assert firing_of(engine, "SAMENLOOP") == []


# -- rule 3 REPAIR/INSULATION_BEFORE_STRENGTHENING ------------------------------------------------


def _strengthening(start="2025-03-01", end="2025-09-01", at=1):
    return event(**STRENGTHENING, at=at, start=start, end=end)


def test_repair_before_strengthening_fires_within_horizon_and_not_overlap():
    engine = run(
        _strengthening(),
        event(**DAMAGE, status="PLANNED", at=2, start="2025-01-01", end="2025-02-28"),
    )
    (rec,) = firing_of(engine, "REPAIR_BEFORE_STRENGTHENING")
    assert rec["detail"]["gap_days"] == "1"
    assert firing_of(engine, "PLAN_OVERLAP") == []  # the pair matches rule 3


@pytest.mark.parametrize(("repair_end", "fires"), [("2024-03-01", True), ("2024-02-29", False)])
def test_repair_before_strengthening_horizon_boundary(repair_end, fires):
    # 2024-03-01 -> 2025-03-01 is 365 days (the horizon); one day earlier is 366.
    engine = run(
        _strengthening(),
        event(**DAMAGE, status="PLANNED", at=2, start="2024-01-01", end=repair_end),
    )
    assert bool(firing_of(engine, "REPAIR_BEFORE_STRENGTHENING")) is fires


def test_repair_after_strengthening_start_is_not_wasted_work():
    engine = run(
        _strengthening(),
        event(**DAMAGE, status="PLANNED", at=2, start="2025-10-01", end="2025-12-01"),
    )
    assert firing_kinds(engine) == ["CONTACT_ROUTING"]


def test_insulation_before_strengthening():
    engine = run(
        _strengthening(),
        event(
            "MUNICIPALITY", "i1", "INSULATION", "PLANNED", 2, start="2024-11-01", end="2024-12-01"
        ),
    )
    (rec,) = firing_of(engine, "INSULATION_BEFORE_STRENGTHENING")
    assert rec["detail"]["gap_days"] == "90"


def test_windows_touching_are_an_overlap_not_repair_before():
    engine = run(
        _strengthening(),
        event(**DAMAGE, status="PLANNED", at=2, start="2025-01-01", end="2025-03-01"),
    )
    assert firing_of(engine, "REPAIR_BEFORE_STRENGTHENING") == []
    (rec,) = firing_of(engine, "PLAN_OVERLAP")
    assert rec["detail"]["gap_days"] == "0" and rec["detail"]["overlap"] == "true"


def test_collision_rules_need_both_windows():
    engine = run(
        _strengthening(),
        event(**DAMAGE, status="PLANNED", at=2, start="2025-01-01", end=None),
    )
    assert firing_kinds(engine) == ["CONTACT_ROUTING"]


# -- rule 4 PLAN_OVERLAP ---------------------------------------------------------------------------


def _works(start, end, source="MUNICIPALITY", case_id="w1"):
    return event(source, case_id, "PUBLIC_WORKS", "PLANNED", 2, start=start, end=end)


@pytest.mark.parametrize(
    ("works_start", "fires"),
    [("2025-09-14", True), ("2025-09-15", False)],  # gap 13 days fires, 14 does not
)
def test_plan_overlap_gap_boundary(works_start, fires):
    engine = run(_strengthening(), _works(works_start, "2025-10-31"))
    found = firing_of(engine, "PLAN_OVERLAP")
    assert bool(found) is fires
    if fires:
        assert found[0]["detail"]["gap_days"] == "13"
        assert found[0]["detail"]["overlap"] == "false"


def test_plan_overlap_gap_counts_from_the_earlier_window_either_way_round():
    engine = run(_strengthening(), _works("2024-12-01", "2025-02-20"))  # ends 9 days before
    (rec,) = firing_of(engine, "PLAN_OVERLAP")
    assert rec["detail"]["gap_days"] == "9"


def test_plan_overlap_overlapping_windows():
    engine = run(_strengthening(), _works("2025-05-01", "2025-06-01"))
    (rec,) = firing_of(engine, "PLAN_OVERLAP")
    assert rec["detail"]["overlap"] == "true"
    assert {c["case_id"] for c in rec["cases"]} == {"v1", "w1"}


def test_plan_overlap_needs_different_sources():
    engine = run(
        _strengthening(),
        event("NCG", "v2", "BOTTLENECK", "PLANNED", 2, start="2025-05-01", end="2025-06-01"),
    )
    assert firing_of(engine, "PLAN_OVERLAP") == []


def test_plan_overlap_resolves_when_a_window_moves_away():
    engine = run(_strengthening(), _works("2025-05-01", "2025-06-01"))
    moved = dict(start="2026-01-01", end="2026-02-01")
    ts = engine.process(event("MUNICIPALITY", "w1", "PUBLIC_WORKS", "PLANNED", 3, **moved))
    assert [(t.kind, t.status) for t in ts] == [("PLAN_OVERLAP", "RESOLVED")]


# -- rule 5 MANDATE_EXCEEDED -----------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "fires"), [("50000.00", False), ("50000.01", True)])
def test_mandate_boundary_is_strictly_above(amount, fires):
    engine = run(event("NCG", "k1", "BOTTLENECK", "OPENED", 1, amount=amount))
    found = firing_of(engine, "MANDATE_EXCEEDED")
    assert bool(found) is fires
    if fires:
        assert found[0]["detail"]["amount"] == "50000.01"
        assert found[0]["cases"][0]["amount_eur"] == "50000.01"


def test_mandate_only_for_active_bottlenecks():
    engine = run(
        event("NCG", "k1", "BOTTLENECK", "CLOSED", 1, amount="90000"),
        event("NCG", "d1", "DAMAGE", "OPENED", 2, amount="90000"),
    )
    assert firing_of(engine, "MANDATE_EXCEEDED") == []


def test_mandate_is_per_case():
    engine = run(
        event("NCG", "k1", "BOTTLENECK", "OPENED", 1, amount="60000"),
        event("MUNICIPALITY", "k2", "BOTTLENECK", "OPENED", 2, amount="70000"),
    )
    assert len(firing_of(engine, "MANDATE_EXCEEDED")) == 2


def _dossier_cases(engine: Engine) -> list[dict]:
    (d,) = engine.dossiers.values()
    return d.to_record()["cases"]
