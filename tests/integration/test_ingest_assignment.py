"""Two workers' ingest stages split every inbound topic between them, not just the total.

The ingest group reads the shared topic and each agency's own. An assignor that balances only
the partition count can give one member all partitions of the busy topic: the bench's scaling
row saw one of two ingest children ingest every event (cooperative-sticky did this in 2 of 3
tries on a real broker). Two consumers with the stage's own config join the group here, on the
hub's own topics, and each must own half of every inbound topic.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from hub.pipeline.clients import consumer_config
from tests.integration.pipeline_harness import hub_under_test

PARTITIONS = 8


@pytest.mark.parametrize("attempt", range(3))  # a lucky split passes once; three in a row not
def test_each_inbound_topic_is_split_evenly_over_two_ingest_members(
    broker: str, tmp_path: Path, attempt: int
) -> None:
    with hub_under_test(broker, tmp_path, partitions=PARTITIONS) as hub:
        settings = hub.settings
        inbound = hub.topics.inbound(settings.shared_inbound)
        group = f"{settings.app_id}-ingest"
        members = [Consumer(consumer_config(settings, group)) for _ in range(2)]
        try:
            for member in members:
                member.subscribe(inbound)
            deadline = time.monotonic() + 60
            owned: list[set[tuple[str, int]]] = [set(), set()]
            while time.monotonic() < deadline:
                for member in members:
                    member.poll(0.1)
                owned = [{(tp.topic, tp.partition) for tp in m.assignment()} for m in members]
                if sum(len(o) for o in owned) == PARTITIONS * len(inbound) and all(owned):
                    break
            assert sum(len(o) for o in owned) == PARTITIONS * len(inbound), "group not settled"
            for topic in inbound:
                shares = [sum(1 for t, _p in o if t == topic) for o in owned]
                assert shares == [PARTITIONS // 2, PARTITIONS // 2], (topic, shares)
        finally:
            for member in members:
                member.close()
