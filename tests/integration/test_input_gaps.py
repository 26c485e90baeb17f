"""A normalised message committed but never processed is still processed (hub.pipeline.gaps).

faust-streaming can commit input offsets past messages no agent saw (during a rebalance). The
test makes that state on purpose: while no worker runs, the ingest stage alone normalises more
events, and the hub's consumer group is committed past them, as such a commit leaves it. Nothing
arrives afterwards, so only the worker's tail-gap sweep can find them: the dossiers must still
end up as the oracle's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.oracle import run_oracle
from hub.pipeline.clients import consumer_config
from hub.pipeline.ingest_process import IngestProcess
from hub.pipeline.lag import group_lag
from tests.integration.pipeline_harness import hub_under_test


@pytest.mark.slow
def test_messages_committed_but_never_processed_are_processed_by_the_worker(
    broker: str, tmp_path: Path
) -> None:
    sim = list(simulate(addresses=200, events=2000, seed=29))
    first, second = sim[:1000], sim[1000:]
    with hub_under_test(broker, tmp_path, create_topics=False) as hub:
        worker = hub.start_first_worker()  # on an empty prefix: the worker creates its topics
        publish(first, hub.settings)
        hub.wait_caught_up()
        hub.stop_worker(worker)

        # the ingest stage alone: the second half reaches `normalised`, no agent reads it
        ingest = IngestProcess(hub.settings)
        ingest.start()
        try:
            publish(second, hub.settings)
            _until(lambda: _lag(hub, f"{hub.settings.app_id}-ingest", hub.topics.case_events) == 0)
        finally:
            ingest.stop()
        skipped = _lag(hub, hub.settings.app_id, hub.topics.normalised)
        assert skipped > 0, "the second half should wait on normalised"
        _commit_to_end(hub)  # what Faust's skip-and-ack leaves behind
        assert _lag(hub, hub.settings.app_id, hub.topics.normalised) == 0

        hub.start_worker()
        want = _cases({k: d.to_record() for k, d in run_oracle(sim).engine.dossiers.items()})
        _until(lambda: _cases(_dossiers(hub)) == want, timeout=120)
        assert "committed but never processed" in hub.logs()


def _lag(hub: Any, group: str, topic: str) -> int:
    return sum(group_lag(hub.settings, group, [topic]).values())


def _commit_to_end(hub: Any) -> None:
    topic = hub.topics.normalised
    consumer = Consumer(consumer_config(hub.settings, hub.settings.app_id))
    try:
        ends = [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in range(hub.partitions)
        ]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def _dossiers(hub: Any) -> dict[str, dict[str, Any]]:
    return {m.key().decode(): hub.codec.decode(m.value())[1] for m in hub.read(hub.topics.dossiers)}


def _cases(dossiers: dict[str, dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    return {
        key: {(c["source"], c["case_id"], c["status"]) for c in record["cases"]}
        for key, record in dossiers.items()
    }


def _until(condition: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time limit"
        time.sleep(1.0)
