"""The fault suite (``make test-faults``): marker, its own broker, and the closing table.

Tests here are marked ``faults`` and only run when the marker expression names it
(``pytest -m faults``); a plain ``pytest`` or ``make test`` deselects them (they take minutes).
They never use the shared broker at HUB_BROKER: the session starts its own (``broker.py``).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.settings import PROJECT_ROOT
from tests.faults.broker import FaultBroker
from tests.faults.scenario import ScenarioReport

FAULTS_DIR = Path(__file__).parent
REPORT_FILE = PROJECT_ROOT / ".local" / "faults-report.md"
REPORTS: list[ScenarioReport] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [i for i in items if FAULTS_DIR in Path(str(i.fspath)).parents]
    for item in ours:
        item.add_marker(pytest.mark.faults)
    if "faults" not in (config.getoption("markexpr", "") or ""):
        selected = set(map(id, ours))
        config.hook.pytest_deselected(items=ours)
        items[:] = [i for i in items if id(i) not in selected]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


@pytest.fixture(scope="session")
def fault_broker() -> Iterator[FaultBroker]:
    # SIGTERM (e.g. `timeout`) ends the session like Ctrl-C: cleanups run, the broker this
    # session started is stopped. Workers die with the test process anyway (PDEATHSIG).
    signal.signal(signal.SIGTERM, _interrupt)
    broker = FaultBroker()
    broker.open()
    print(f"\nfault broker: {broker.kafka.status().describe()} (home {broker.home})")
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def record_report() -> Iterator[list[ScenarioReport]]:
    """Scenarios append their report here; it reaches the table even when the test fails."""
    mine: list[ScenarioReport] = []
    yield mine
    REPORTS.extend(mine)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def render_table(reports: list[ScenarioReport]) -> str:
    head = (
        "| scenario | size | result | missing | extra | wrong | non-exact dup | exact dup "
        "| version gaps | to lag 0 (s) | worker exits | total (s) | reason |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    rows = []
    for r in reports:
        lag = f"{r.lag0_s:.1f}" if r.lag0_s is not None else "not reached"
        reason = "; ".join(r.reasons) if r.reasons else ""
        if r.notes:
            reason += (" — " if reason else "") + "notes: " + "; ".join(r.notes)
        rows.append(
            f"| {r.name} | {r.size} | {'PASS' if r.passed else 'FAIL'} "
            f"| {_cell(r.figure('missing'))} | {_cell(r.figure('extra'))} "
            f"| {_cell(r.figure('wrong'))} | {_cell(r.figure('dup_nonexact'))} "
            f"| {_cell(r.figure('dup_exact'))} | {_cell(r.figure('gaps'))} | {lag} "
            f"| {len(r.exits)}{' ' + str(r.exits) if r.exits else ''} | {r.total_s:.0f} "
            f"| {reason.replace('|', '/')} |"
        )
    return head + "\n".join(rows) + "\n"


def render_details(reports: list[ScenarioReport]) -> str:
    out = []
    for r in reports:
        c = r.comparison
        out.append(f"### {r.name}\n")
        if r.timeline:
            out.append("timeline: " + ", ".join(t.strip() for t in r.timeline) + "\n")
        if c is not None:
            out.append(f"records read: {c.counts}\n")
            out.extend(f"- {e}" for e in c.examples)
        out.append("")
    return "\n".join(out)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    passed = sum(r.passed for r in REPORTS)
    total = sum(r.total_s for r in REPORTS)
    title = f"fault suite: {passed}/{len(REPORTS)} scenarios pass, {total:.0f} s in scenarios"
    table = render_table(REPORTS)
    details = render_details(REPORTS)
    terminalreporter.write_sep("=", title)
    terminalreporter.write_line(table)
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(
        f"# Fault suite report\n\n{title}\n\n"
        "Pass = 0 missing, 0 extra, 0 wrong (stale), 0 non-exact duplicates, 0 version gaps, "
        "lag 0 reached, and the scenario's own checks. Columns: see tests/faults/compare.py.\n\n"
        f"{table}\n## Per scenario: timeline, records read, examples\n\n{details}\n"
    )
    terminalreporter.write_line(f"(also written to {REPORT_FILE})")
