"""``hub backtest``: the diff of two configs' FIRING sets, and the command on a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from connectors.simulator import simulate
from hub.backtest import LEAD, START, STOP, compare, diff_firing, read_jsonl
from hub.engine.config import default_config
from hub.oracle import run_oracle
from hubctl.main import app


def _work(event_id: str, case_id: str, source: str, start: str, end: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": source,
        "case_id": case_id,
        "case_type": "STRENGTHENING" if source == "NCG" else "RENOVATION",
        "status": "PLANNED",
        "occurred_at": "2024-03-01T10:00:00+01:00",
        "address": {"postcode": "9711 AB", "huisnummer": 12, "gemeentecode": "GM0014"},
        "planned_start": start,
        "planned_end": end,
    }


# Two work windows 17 days apart: no overlap at a 14-day gap, an overlap at 21 days.
GAP_17 = [
    _work("a1", "V-1", "NCG", "2024-05-01", "2024-06-30"),
    _work("b1", "R-1", "HOUSING_CORPORATION", "2024-07-17", "2024-08-31"),
]


def _record(kind: str, lead: str | None, group: str = "GRONINGEN") -> dict[str, Any]:
    source, _, case = (lead or "").partition("/")
    return {
        "kind": kind,
        "steering_group": group,
        "address_key": "9711AB-12",
        "area": None,
        "lead": {"source": source, "case_id": case} if lead else None,
    }


def test_diff_names_start_stop_and_lead_changes_and_ignores_the_unchanged() -> None:
    current = {
        "same": _record("SAMENLOOP", "NCG/V-1"),
        "gone": _record("PLAN_OVERLAP", None),
        "moved": _record("CONTACT_ROUTING", "NCG/V-1"),
    }
    new = {
        "same": _record("SAMENLOOP", "NCG/V-1"),
        "moved": _record("CONTACT_ROUTING", "IMG/S-1"),
        "born": _record("MANDATE_EXCEEDED", None, group="OLDAMBT"),
    }
    changes = {c.fingerprint: c for c in diff_firing(current, new)}
    assert set(changes) == {"gone", "moved", "born"}
    assert changes["gone"].change == STOP
    assert changes["born"].change == START and changes["born"].steering_group == "OLDAMBT"
    assert changes["moved"].change == LEAD
    assert (changes["moved"].lead_before, changes["moved"].lead_after) == ("NCG/V-1", "IMG/S-1")


def test_raising_the_gap_to_21_days_makes_a_17_day_gap_an_overlap() -> None:
    report = compare(GAP_17, default_config().replace(min_gap_days=21), default_config())
    starts = [c for c in report.changes if c.change == START]
    assert [(c.kind, c.subject) for c in starts] == [("PLAN_OVERLAP", "9711AB-12")]
    assert starts[0].steering_group == "GRONINGEN"
    assert not [c for c in report.changes if c.change != START]
    # and back: lowering it again stops exactly that signal
    back = compare(GAP_17, default_config(), default_config().replace(min_gap_days=21))
    assert [(c.change, c.kind) for c in back.changes] == [(STOP, "PLAN_OVERLAP")]


def test_the_new_firing_set_is_the_oracles_under_the_new_config() -> None:
    events = [*simulate(addresses=200, events=2000, seed=3), *GAP_17]
    new = default_config().replace(min_gap_days=21, mandate_eur="40000.00")
    report = compare(events, new, default_config())
    assert set(report.new) == run_oracle(events, new).firing()
    assert set(report.current) == run_oracle(events, default_config()).firing()
    assert report.changes, "a 21-day gap and a lower mandate change something on 2,000 events"
    kinds = {c.kind for c in report.changes}
    assert {"PLAN_OVERLAP", "MANDATE_EXCEEDED"} <= kinds
    data = report.to_json(sample=2)
    assert data["firing"] == {"current": len(report.current), "new": len(report.new)}
    for group in data["groups"]:
        for change in (START, STOP, LEAD):
            assert len(group[change]["sample"]) == min(2, group[change]["count"])


def test_same_config_twice_gives_no_difference() -> None:
    events = list(simulate(addresses=100, events=800, seed=4))
    report = compare(events, default_config(), default_config())
    assert report.changes == [] and report.current == report.new and report.current


def test_jsonl_reader_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"b": 2}\n', encoding="utf-8")
    assert [json.loads(x) for x in read_jsonl([path])] == [{"a": 1}, {"b": 2}]


def test_backtest_command_prints_the_difference_and_json(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in GAP_17) + b"\nnot json\n")
    rules = tmp_path / "gap21.toml"
    rules.write_text("min_gap_days = 21\n", encoding="utf-8")
    runner = CliRunner()
    text = runner.invoke(app, ["backtest", "--rules", str(rules), str(events)])
    assert text.exit_code == 0, text.output
    assert "PLAN_OVERLAP / GRONINGEN" in text.output
    assert "would start firing: 1" in text.output and "9711AB-12" in text.output
    assert "3 events, 2 accepted, 1 rejected" in text.output
    as_json = runner.invoke(app, ["backtest", "--rules", str(rules), "--json", str(events)])
    data = json.loads(as_json.output)
    assert data["totals"] == {"start": 1, "stop": 0, "lead": 0}
    assert data["groups"][0]["start"]["sample"][0]["subject"] == "9711AB-12"


def test_backtest_command_refuses_an_invalid_rules_file(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(GAP_17[0]) + b"\n")
    rules = tmp_path / "bad.toml"
    rules.write_text("min_gap_dayz = 21\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["backtest", "--rules", str(rules), str(events)])
    assert result.exit_code == 1
    assert "min_gap_dayz" in result.output


def test_backtest_command_refuses_an_unreadable_range_and_mixed_sources(tmp_path: Path) -> None:
    rules = tmp_path / "gap21.toml"
    rules.write_text("min_gap_days = 21\n", encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(GAP_17[0]) + b"\n")
    runner = CliRunner()
    bad_date = runner.invoke(
        app, ["backtest", "--rules", str(rules), "--topic", "t", "--from", "last tuesday"]
    )
    assert bad_date.exit_code == 2 and "not an ISO date" in bad_date.output
    both = runner.invoke(app, ["backtest", "--rules", str(rules), "--topic", "t", str(events)])
    assert both.exit_code == 2 and "not both" in both.output
    range_without_topic = runner.invoke(
        app, ["backtest", "--rules", str(rules), "--from", "2024-01-01", str(events)]
    )
    assert range_without_topic.exit_code == 2 and "--topic" in range_without_topic.output
    nothing = runner.invoke(app, ["backtest", "--rules", str(rules)])
    assert nothing.exit_code == 2 and "no events" in nothing.output
