"""The table writers' producer on a real broker: librdkafka's partitions, offsets in order,
one produce request per broker for a whole step, failures reported per record."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from hub.pipeline.aio_producer import AioStepProducer
from hub.pipeline.clients import producer_config
from tests.integration.pipeline_harness import hub_under_test

pytestmark = pytest.mark.slow  # and broker: every test in tests/integration

Report = tuple[Any, str, int, int]  # error, topic, partition, offset


def _collect(reports: list[Report]) -> Any:
    def on_delivery(err: Any, msg: Any) -> None:
        reports.append((err, msg.topic(), msg.partition(), msg.offset()))

    return on_delivery


def _librdkafka_partitions(settings: Any, topic: str, keys: list[bytes]) -> dict[bytes, int]:
    producer = Producer(producer_config(settings))
    chosen: dict[bytes, int] = {}

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        chosen[msg.key()] = msg.partition()

    for key in keys:
        producer.produce(topic, key=key, value=b"x", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return chosen


def test_records_land_where_librdkafka_puts_them_in_produce_order_one_report_per_batch(
    broker: str, tmp_path: Path
) -> None:
    with hub_under_test(broker, tmp_path, partitions=8) as hub:
        keys = [f"address-{i}".encode() for i in range(300)]
        expected = _librdkafka_partitions(hub.settings, hub.topics.signals, keys)
        _librdkafka_partitions(hub.settings, hub.topics.contact_routing, [b"warm-up"])
        reports: list[Report] = []

        async def run() -> int:
            step = AioStepProducer(hub.settings)
            try:
                for key in keys:
                    step.produce(hub.topics.dossiers, key, b"v", on_delivery=_collect(reports))
                step.produce(hub.topics.contact_routing, None, b"unkeyed")
                return await step.flush_async(30)
            finally:
                await step.stop()

        assert asyncio.run(run()) == 0
        written = hub.read(hub.topics.dossiers)
        assert {m.key(): m.partition() for m in written} == expected
        for partition in set(expected.values()):  # a fresh topic: in produce order from 0
            in_partition = [m for m in written if m.partition() == partition]
            assert [m.offset() for m in in_partition] == list(range(len(in_partition)))
            assert [m.key() for m in in_partition] == [k for k in keys if expected[k] == partition]
        # acknowledged: one report per partition, the last record's offset
        assert sorted((p, o) for err, _t, p, o in reports if err is None) == sorted(
            (p, sum(1 for k in keys if expected[k] == p) - 1) for p in set(expected.values())
        )
        assert len(reports) == len(set(expected.values()))


def test_a_step_to_every_partition_of_four_topics_is_one_produce_request(
    broker: str, tmp_path: Path
) -> None:
    with hub_under_test(broker, tmp_path, partitions=8) as hub:
        topics = [
            hub.topics.dossiers,
            hub.topics.contact_routing,
            hub.topics.signals,
            hub.topics.area_updates,
        ]
        for topic in topics:  # leaders elected: the first produce request is not refused
            _librdkafka_partitions(hub.settings, topic, [b"warm-up"])
        requests: list[str] = []

        async def run() -> int:
            step = AioStepProducer(hub.settings)
            try:
                step.produce(topics[0], b"warm-up", b"v")
                assert await step.flush_async(30) == 0  # started, metadata known
                client: Any = step._producer.client  # type: ignore[union-attr]
                send = client.send

                async def counting(node_id: int, request: Any, **kwargs: Any) -> Any:
                    requests.append(type(request).__name__)
                    return await send(node_id, request, **kwargs)

                client.send = counting
                for topic in topics:
                    for partition in range(8):
                        for i in range(3):
                            step.produce(topic, f"{i}".encode(), b"v", partition=partition)
                return await step.flush_async(30)
            finally:
                await step.stop()

        assert asyncio.run(run()) == 0
        assert [r for r in requests if r.startswith("ProduceRequest")] == [
            next(r for r in requests if r.startswith("ProduceRequest"))
        ], requests


def test_a_record_the_broker_refuses_fails_alone_and_a_missing_topic_fails_its_records(
    broker: str, tmp_path: Path
) -> None:
    with hub_under_test(broker, tmp_path, partitions=2) as hub:
        _librdkafka_partitions(hub.settings, hub.topics.dossiers, [b"warm-up"])
        reports: list[Report] = []

        async def run() -> int:
            step = AioStepProducer(hub.settings, request_timeout_ms=3000)
            try:
                step.produce(hub.topics.dossiers, b"a", b"small", on_delivery=_collect(reports))
                step.produce(
                    hub.topics.signals, b"b", os.urandom(12_000_000), on_delivery=_collect(reports)
                )
                step.produce(
                    f"{hub.settings.topic_prefix}missing", b"c", b"v", on_delivery=_collect(reports)
                )
                return await step.flush_async(30)
            finally:
                await step.stop()

        assert asyncio.run(run()) == 0
        by_topic = {topic: err for err, topic, _p, _o in reports}
        assert by_topic[hub.topics.dossiers] is None
        assert by_topic[hub.topics.signals] is not None
        missing = by_topic[f"{hub.settings.topic_prefix}missing"]
        assert missing is not None and missing.name() == "UnknownTopicOrPartitionError", missing
        assert len(hub.read(hub.topics.dossiers)) == 2  # the warm-up and "a"


def test_purge_fails_every_record_not_yet_acknowledged(broker: str, tmp_path: Path) -> None:
    with hub_under_test(broker, tmp_path, partitions=2) as hub:
        reports: list[Report] = []

        async def run() -> int:
            step = AioStepProducer(hub.settings)
            for i in range(5):
                step.produce(
                    hub.topics.dossiers, b"k", f"{i}".encode(), on_delivery=_collect(reports)
                )
            step.purge(in_queue=True, in_flight=True, blocking=False)
            remaining = len(step)
            await step.stop()
            return remaining

        assert asyncio.run(run()) == 0
        assert len(reports) == 5 and all(err is not None for err, *_ in reports)
        assert {err.name() for err, *_ in reports} == {"_PURGE"}
