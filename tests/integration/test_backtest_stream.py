"""The backtest's FIRING set under a changed rules config is the stream's under that config.

The same events go through real ``hub worker`` processes started with ``HUB_RULES_CONFIG`` pointing
at the new config, and through ``hub backtest`` (in process and as the real command reading the
topic); the FIRING sets must be equal, and must differ from the current config's (so the test
would notice a worker that ignored the file).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.backtest import compare
from hub.engine.config import default_config, load_config
from tests.integration.pipeline_harness import firing_set, hub_under_test
from tests.unit.test_backtest import GAP_17

NEW_RULES = 'min_gap_days = 21\nmandate_eur = "40000.00"\n'


@pytest.mark.slow
def test_stream_under_the_new_config_fires_exactly_what_the_backtest_says(
    broker: str, tmp_path: Path
) -> None:
    events = [*simulate(addresses=300, events=3000, seed=7), *GAP_17]
    rules = tmp_path / "new-rules.toml"
    rules.write_text(NEW_RULES, encoding="utf-8")
    new = load_config(rules)
    report = compare(events, new, default_config())
    assert report.changes, "the new config must change something, or the test proves nothing"
    assert set(report.new) != set(report.current)

    with hub_under_test(broker, tmp_path) as hub:
        publish(events, hub.settings)
        hub.start_worker(extra_env={"HUB_RULES_CONFIG": str(rules)})
        hub.wait_caught_up()
        records = hub.alert_records()
        stream_firing = firing_set(records)
        assert stream_firing == set(report.new)
        assert {r["config_version"] for r in records} == {new.config_version}

        # the real command, reading the same events back from the inbound topic
        cli = subprocess.run(
            [sys.executable, "-m", "hubctl", "backtest", "--rules", str(rules), "--json",
             "--topic", hub.topics.case_events],
            env=hub.env(0), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        answer = json.loads(cli.stdout)
        assert answer["new_config_version"] == new.config_version
        assert answer["firing"] == {"current": len(report.current), "new": len(stream_firing)}
        assert answer["totals"] == report.totals()
        assert answer["events"] == len(events)

        # a range before every record: nothing to replay, nothing changes
        empty = subprocess.run(
            [sys.executable, "-m", "hubctl", "backtest", "--rules", str(rules), "--json",
             "--topic", hub.topics.case_events, "--to", "2000-01-01"],
            env=hub.env(0), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert empty.returncode == 0, empty.stderr
        assert json.loads(empty.stdout)["events"] == 0
        assert json.loads(empty.stdout)["totals"] == {"start": 0, "stop": 0, "lead": 0}
