"""Input delivered again below a stage's stored input offset is skipped (hub.pipeline.gaps).

After a kill -9 or a partition move, Faust's committed offset can lag the state the worker
persisted, so the new owner is handed messages its state holds already. The test makes that
state on purpose: the worker processes everything and stops, then the hub's consumer group is
rewound to the start of ``normalised`` and ``area-updates``. The restarted worker must emit
nothing: re-applying the area updates to the newer area state used to flap AREA_CLUSTER signals
with new versions (the fault suite's kill -9 at 70 % saw one as a non-exact duplicate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.pipeline.clients import consumer_config
from hub.pipeline.lag import group_lag
from tests.integration.pipeline_harness import hub_under_test
from tests.integration.test_worker_metrics import _scrape, _total
from tests.unit.test_promtool import _free_port


@pytest.mark.slow
def test_input_delivered_again_below_the_stored_offset_changes_no_output(
    broker: str, tmp_path: Path
) -> None:
    sim = list(simulate(addresses=60, events=3000, seed=11))
    with hub_under_test(broker, tmp_path, create_topics=False) as hub:
        worker = hub.start_first_worker()  # on an empty prefix: the worker creates its topics
        publish(sim, hub.settings)
        hub.wait_caught_up()
        hub.stop_worker(worker)
        outputs = [hub.topics.dossiers, hub.topics.contact_routing, hub.topics.signals]
        before = {t: len(hub.read(t)) for t in outputs}
        area_updates = len(hub.read(hub.topics.area_updates))
        assert before[hub.topics.signals] > 0 and area_updates > 0, "the workload has areas"

        inputs = [hub.topics.normalised, hub.topics.area_updates]
        _commit_to_start(hub, inputs)  # what a commit lagging the persisted state leaves
        assert _lag(hub, inputs) > area_updates

        port = _free_port()
        hub.start_worker(metrics_port=port)
        hub.wait_caught_up()
        after = {t: len(hub.read(t)) for t in outputs}
        assert after == before, f"replayed input emitted records: {before} -> {after}"
        samples = _scrape(port)
        for stage in ("correlate", "area"):
            assert _total(samples, "hub_input_replayed_messages_total", stage=stage) > 0, stage


def _lag(hub: Any, topics: list[str]) -> int:
    return sum(group_lag(hub.settings, hub.settings.app_id, topics).values())


def _commit_to_start(hub: Any, topics: list[str]) -> None:
    consumer = Consumer(consumer_config(hub.settings, hub.settings.app_id))
    try:
        starts = [
            TopicPartition(t, p, consumer.get_watermark_offsets(TopicPartition(t, p))[0])
            for t in topics
            for p in range(hub.partitions)
        ]
        consumer.commit(offsets=starts, asynchronous=False)
    finally:
        consumer.close()
