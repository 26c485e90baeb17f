"""A correlate step's records as produce requests: librdkafka against aiokafka's send_batch.

``python -m bench.produce_requests [--steps 300]`` on the local broker (``hub kafka start``).

librdkafka sends one ProduceRequest per partition (confluentinc/librdkafka#1700, open), and the
broker's cost is mostly per request: on the 2-core bench machine ~0.15 ms of its CPU per
partition-request, whatever the records. A correlate step writes to the partitions its input
touched in four output topics and the changelog, so a step of a few dozen events costs the
broker as much as a large one; at 1,000 events/s the broker used ~0.7 of a core (issue 17,
``cores_by_process``). aiokafka puts every partition bound for one broker in one request.

Each shape (partitions touched, records per partition) is sent ``--steps`` times, one flush per
step, both clients with the hub's producer settings (acks=all, idempotence, lz4). Printed per
step: wall time of the flush, the broker's CPU (its /proc entry) and this process's CPU (the
client, its threads included). A measurement for deciding the correlate writer's client, not a
target: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.harness import local_broker_pid, process_cpu_seconds
from hub.pipeline.clients import admin_config, producer_config
from hub.security import aiokafka_security
from hub.settings import Settings

TOPICS = 5  # dossiers, contact-routing, signals, area-updates, changelog
PARTITIONS = 8  # the hub's default per topic
SHAPES = ((40, 2), (40, 20), (8, 10))  # (partitions touched, records per partition)
VALUE = b"x" * 300  # about a dossier record


def targets(names: list[str], touched: int) -> Iterator[tuple[str, int]]:
    """The first ``touched`` (topic, partition) pairs, topic by topic."""
    for i in range(touched):
        yield names[i // PARTITIONS], i % PARTITIONS


class Meter:
    """Wall, broker CPU and own CPU per step over a run of steps."""

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid

    def _broker(self) -> float:
        if self.broker_pid is None:
            return float("nan")
        return process_cpu_seconds(self.broker_pid) or float("nan")

    def start(self) -> None:
        self.t0, self.c0, self.b0 = time.perf_counter(), time.process_time(), self._broker()

    def per_step(self, steps: int) -> dict[str, float]:
        wall = (time.perf_counter() - self.t0) / steps * 1e3
        client = (time.process_time() - self.c0) / steps * 1e3
        broker = (self._broker() - self.b0) / steps * 1e3
        return {
            "flush_ms": round(wall, 2),
            "broker_cpu_ms": round(broker, 2),
            "client_cpu_ms": round(client, 2),
        }


def run_confluent(
    settings: Settings, names: list[str], steps: int, meter: Meter
) -> list[dict[str, Any]]:
    producer = Producer(producer_config(settings, **{"linger.ms": 2}))
    delivered: Callable[[Any, Any], None] = lambda err, msg: None  # noqa: E731  # as the writer
    out = []
    for touched, per in SHAPES:
        for _ in range(3):  # connections and metadata before timing
            for topic, partition in targets(names, touched):
                producer.produce(topic, VALUE, partition=partition, on_delivery=delivered)
            producer.flush()
        meter.start()
        for _ in range(steps):
            for topic, partition in targets(names, touched):
                for _ in range(per):
                    producer.produce(topic, VALUE, partition=partition, on_delivery=delivered)
            producer.flush()
        out.append(
            {
                "client": "confluent-kafka",
                "partitions": touched,
                "records_per_partition": per,
                **meter.per_step(steps),
            }
        )
    return out


async def run_aiokafka(
    settings: Settings, names: list[str], steps: int, meter: Meter
) -> list[dict[str, Any]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker,
        acks="all",
        enable_idempotence=True,
        compression_type="lz4",
        max_batch_size=1_000_000,
        **aiokafka_security(settings),
    )
    await producer.start()
    out = []
    try:

        async def step(touched: int, per: int) -> None:
            sent = []
            for topic, partition in targets(names, touched):
                batch = producer.create_batch()
                for _ in range(per):
                    batch.append(key=None, value=VALUE, timestamp=None)
                batch.close()
                sent.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*sent)

        for touched, per in SHAPES:
            for _ in range(3):
                await step(touched, 1)
            meter.start()
            for _ in range(steps):
                await step(touched, per)
            out.append(
                {
                    "client": "aiokafka send_batch",
                    "partitions": touched,
                    "records_per_partition": per,
                    **meter.per_step(steps),
                }
            )
    finally:
        await producer.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.produce_requests", description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    settings = Settings()
    admin = AdminClient(admin_config(settings))
    run = uuid.uuid4().hex[:8]
    names = [f"bench.requests-{run}.t{i}" for i in range(TOPICS)]
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result()
    meter = Meter(local_broker_pid())
    try:
        rows = run_confluent(settings, names, args.steps, meter)
        rows += asyncio.run(run_aiokafka(settings, names, args.steps, meter))
    finally:
        for future in admin.delete_topics(names).values():
            future.result()
    for row in rows:
        print(
            f"{row['client']:22s} {row['partitions']:3d} partitions x "
            f"{row['records_per_partition']:2d} records: "
            f"flush {row['flush_ms']:6.2f} ms, broker CPU {row['broker_cpu_ms']:5.2f} ms, "
            f"client CPU {row['client_cpu_ms']:5.2f} ms per step"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
