"""A new operator's first start: `hub worker` on an empty cluster, then agencies publish.

Nothing here prepares what a user would not: no topics are created by the test, events go in
through the `hub ingest` command once the worker says it is ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.integration.pipeline_harness import hub_under_test, latest_by_fingerprint
from tests.integration.test_pipeline import SAMENLOOP_STORY
from tests.integration.test_worker_metrics import _scrape, _status
from tests.unit.test_promtool import _free_port


def test_worker_on_an_empty_cluster_creates_its_topics_and_correlates_within_seconds(
    broker: str, tmp_path: Path
) -> None:
    port = _free_port()
    with hub_under_test(broker, tmp_path, create_topics=False) as hub:
        before = set(AdminClient({"bootstrap.servers": broker}).list_topics(timeout=10).topics)
        assert not any(t.startswith(hub.settings.topic_prefix) for t in before)
        hub.start_worker(metrics_port=port)
        deadline = time.monotonic() + 90
        while _status(port, "/readyz") != 200:
            assert time.monotonic() < deadline, f"worker never ready:\n{hub.logs()}"
            time.sleep(0.25)

        # lag of both source topics is exported from the start (0 when empty)
        samples = _scrape(port)
        lag_topics = {
            dict(labels)["topic"]
            for (name, labels), _ in samples.items()
            if name == "hub_consumer_lag_messages"
        }
        assert {hub.topics.normalised, hub.topics.area_updates} <= lag_topics

        events = tmp_path / "events.jsonl"
        events.write_text("".join(json.dumps(e) + "\n" for e in SAMENLOOP_STORY))
        published = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "hubctl", "ingest", str(events)],
            env=hub.env(0),
            check=True,
            capture_output=True,
            timeout=60,
        )
        kinds: set[str] = set()
        while kinds != {"CONTACT_ROUTING", "SAMENLOOP"}:
            assert time.monotonic() - published < 30, f"no alerts within 30 s:\n{hub.logs()}"
            time.sleep(0.5)
            latest = latest_by_fingerprint(hub.alert_records())
            kinds = {r["kind"] for r in latest.values() if r["status"] == "FIRING"}
        assert "Ignoring missing topic" not in hub.logs()


def test_lag_is_exported_for_every_source_partition_once_ready(broker: str, tmp_path: Path) -> None:
    """Partitions this worker owns and any nobody owns: every one has a lag series."""
    port = _free_port()
    with hub_under_test(broker, tmp_path, create_topics=False) as hub:
        hub.start_worker(metrics_port=port)
        deadline = time.monotonic() + 90
        while _status(port, "/readyz") != 200:
            assert time.monotonic() < deadline, f"worker never ready:\n{hub.logs()}"
            time.sleep(0.25)
        samples = _scrape(port)
        partitions = {
            (dict(labels)["topic"], dict(labels)["partition"])
            for (name, labels), _ in samples.items()
            if name == "hub_consumer_lag_messages"
        }
        expected = {
            (t, str(p))
            for t in (hub.topics.normalised, hub.topics.area_updates)
            for p in range(hub.partitions)
        }
        assert expected <= partitions
