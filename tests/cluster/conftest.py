"""The cluster fault suite (``make test-cluster``): marker, its own three-node cluster, the table.

Tests here are marked ``cluster`` and only run when the marker expression names it
(``pytest -m cluster``); a plain ``pytest`` or ``make test`` deselects them (minutes each, and
three extra JVMs). The hub under test creates its topics with RF 3 and min ISR 2
(``HUB_REPLICATION_FACTOR``/``HUB_MIN_INSYNC_REPLICAS``, set for the session so both the
workers and the suite's own clients see them). The table reuses the fault suite's rendering.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.settings import PROJECT_ROOT
from tests.cluster.broker import ClusterBroker
from tests.faults.conftest import render_details, render_table
from tests.faults.scenario import ScenarioReport

CLUSTER_DIR = Path(__file__).parent
REPORT_FILE = PROJECT_ROOT / ".local" / "cluster-report.md"
REPORTS: list[ScenarioReport] = []
REPLICATION_ENV = {"HUB_REPLICATION_FACTOR": "3", "HUB_MIN_INSYNC_REPLICAS": "2"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [i for i in items if CLUSTER_DIR in Path(str(i.fspath)).parents]
    for item in ours:
        item.add_marker(pytest.mark.cluster)
    if "cluster" not in (config.getoption("markexpr", "") or ""):
        selected = set(map(id, ours))
        config.hook.pytest_deselected(items=ours)
        items[:] = [i for i in items if id(i) not in selected]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


@pytest.fixture(scope="session")
def cluster_broker() -> Iterator[ClusterBroker]:
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout` ends the session with clean-ups
    saved = {k: os.environ.get(k) for k in REPLICATION_ENV}
    os.environ.update(REPLICATION_ENV)
    broker = ClusterBroker()
    try:
        broker.open()
        print(f"\ncluster under test:\n{broker.cluster.status().describe()}")
        yield broker
    finally:
        broker.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def record_report() -> Iterator[list[ScenarioReport]]:
    """Scenarios append their report here; it reaches the table even when the test fails."""
    mine: list[ScenarioReport] = []
    yield mine
    REPORTS.extend(mine)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    passed = sum(r.passed for r in REPORTS)
    total = sum(r.total_s for r in REPORTS)
    title = (
        f"cluster fault suite: {passed}/{len(REPORTS)} scenarios pass, {total:.0f} s in "
        "scenarios (3 brokers, RF 3, min ISR 2)"
    )
    table = render_table(REPORTS)
    terminalreporter.write_sep("=", title)
    terminalreporter.write_line(table)
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(
        f"# Cluster fault suite report\n\n{title}\n\n"
        "Pass = 0 missing (lost), 0 extra, 0 wrong (stale), 0 non-exact duplicates, 0 version "
        "gaps, lag 0 reached, and the scenario's own checks. Columns: see "
        "tests/faults/compare.py; 'to lag 0' counts from the end of the fault.\n\n"
        f"{table}\n## Per scenario: timeline, records read, examples\n\n"
        f"{render_details(REPORTS)}\n"
    )
    terminalreporter.write_line(f"(also written to {REPORT_FILE})")
