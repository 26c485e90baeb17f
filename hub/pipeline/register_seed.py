"""Seeding the workers' address register from a BAG extract, through the register topic.

Every worker follows the compacted ``address-register`` topic, so publishing the extract's facts
there teaches all running (and future) workers at once; parked events whose mapping arrives are
released by the workers that hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Producer

from hub.address.municipalities import default_municipalities
from hub.address.register import AddressRegister, LoadReport, fact_key
from hub.pipeline.clients import produce_waiting, producer_config
from hub.pipeline.topics import Topics, ensure_topics
from hub.settings import Settings


@dataclass
class SeedReport:
    load: LoadReport
    published: int
    failed: int


def seed_register(path: Path, settings: Settings, dry_run: bool = False) -> SeedReport:
    register = AddressRegister()
    report = register.load_csv(path, map_gemeentecode=default_municipalities().current_code)
    if dry_run:
        return SeedReport(report, 0, 0)
    ensure_topics(settings)
    topic = Topics.from_settings(settings).address_register
    producer = Producer(producer_config(settings))
    failed = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    published = 0
    for fact in register.iter_facts():
        produce_waiting(producer, topic, fact_key(fact).encode(), orjson.dumps(fact), on_delivery)
        published += 1
    producer.flush(120)
    return SeedReport(report, published, failed)
