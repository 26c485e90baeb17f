"""Errors while correlating never skip events: compared with the oracle on the real broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.oracle import run_oracle
from tests.integration.pipeline_harness import firing_set, hub_under_test, version_gaps


@pytest.mark.slow
def test_exceptions_in_the_correlate_agent_lose_no_event(broker: str, tmp_path: Path) -> None:
    """Issue 12 D3: an exception used to make Faust commit the queued batches unprocessed."""
    sim = list(simulate(addresses=300, events=3000, seed=13))
    oracle = run_oracle(sim)
    with hub_under_test(broker, tmp_path, create_topics=False) as hub:
        hub.start_worker(extra_env={"HUB_FAULT_CORRELATE_ERRORS": "4"})
        _wait_until_the_worker_created(hub.topics.case_events, broker)
        publish(sim, hub.settings)
        hub.wait_caught_up()
        records = hub.alert_records()
        assert firing_set(records) == oracle.firing()
        assert not version_gaps(records)
        dossiers = {
            m.key().decode(): hub.codec.decode(m.value())[1] for m in hub.read(hub.topics.dossiers)
        }
        assert _cases(dossiers) == _cases(
            {k: d.to_record() for k, d in oracle.engine.dossiers.items()}
        )
        assert "InjectedFault" in hub.logs()  # the hook did fire


def _wait_until_the_worker_created(topic: str, broker: str, timeout: float = 60.0) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    deadline = time.monotonic() + timeout
    while topic not in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"the worker did not create {topic}"
        time.sleep(0.5)


def _cases(dossiers: dict[str, dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    return {
        key: {(c["source"], c["case_id"], c["status"]) for c in record["cases"]}
        for key, record in dossiers.items()
    }
