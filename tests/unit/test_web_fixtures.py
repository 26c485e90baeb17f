"""A small two-group history for the web tests (also used by the broker and browser tests).

Midden-Groningen (GM1952), 9601 AA 1: NCG strengthening planned, an undecided IMG damage claim
(samenloop) and a corporation renovation whose window overlaps the strengthening (plan overlap);
the NCG counsellor is the lead with a name, phone and e-mail. Het Hogeland (GM1966), 9951 AA 2:
samenloop only. The pages are judged against these facts and against the oracle's state.
"""

from __future__ import annotations

from typing import Any

from hub.oracle import run_oracle
from hub.web.state import ViewState

MG_KEY = "9601AA-1"
HH_KEY = "9951AA-2"
LEAD_NAME = "A. Begeleider"
LEAD_PHONE = "+31 50 555 0101"


def _event(n: int, key_pc: str, nr: int, gm: str, source: str, case_id: str, case_type: str,
           status: str, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": f"w{n}",
        "source": source,
        "case_id": case_id,
        "case_type": case_type,
        "status": status,
        "occurred_at": f"2024-03-{n:02d}T10:00:00+01:00",
        "address": {"postcode": key_pc, "huisnummer": nr, "gemeentecode": gm},
        **extra,
    }


EVENTS: list[dict[str, Any]] = [
    _event(1, "9601 AA", 1, "GM1952", "NCG", "V-1", "STRENGTHENING", "PLANNED",
           planned_start="2024-06-01", planned_end="2024-11-30",
           contact={"name": LEAD_NAME, "role": "RESIDENT_COUNSELLOR", "phone": LEAD_PHONE,
                    "email": "a.begeleider@example.nl"}),
    _event(2, "9601 AA", 1, "GM1952", "IMG", "S-1", "DAMAGE", "OPENED",
           contact={"name": "B. Expert", "role": "CASE_COUNSELLOR"}),
    _event(3, "9601 AA", 1, "GM1952", "HOUSING_CORPORATION", "R-1", "RENOVATION", "PLANNED",
           planned_start="2024-11-01", planned_end="2025-02-28"),
    _event(4, "9951 AA", 2, "GM1966", "NCG", "V-2", "STRENGTHENING", "OPENED"),
    _event(5, "9951 AA", 2, "GM1966", "IMG", "S-2", "DAMAGE", "OPENED"),
]  # fmt: skip


def oracle_state() -> ViewState:
    """The view the web process would build from the topics after these events."""
    result = run_oracle(EVENTS)
    state = ViewState()
    for key, dossier in result.engine.dossiers.items():
        state.apply_dossier(key, dossier.to_record())
    for record in result.firing_records().values():
        state.apply_alert(record)
    state.caught_up = True
    return state


def test_the_fixture_has_both_groups_and_the_expected_findings() -> None:
    state = oracle_state()
    assert set(state.dossiers) == {MG_KEY, HH_KEY}
    kinds = {(a["address_key"], a["kind"]) for a in state.firing()}
    assert (MG_KEY, "SAMENLOOP") in kinds and (MG_KEY, "PLAN_OVERLAP") in kinds
    assert (HH_KEY, "SAMENLOOP") in kinds
    assert {state.dossiers[MG_KEY]["steering_group"], state.dossiers[HH_KEY]["steering_group"]} == {
        "MIDDEN_GRONINGEN",
        "HET_HOGELAND",
    }
