"""Publish CaseEvents (e.g. the simulator's) to the inbound topic, the way an agency would.

Valid events go out in the hub's Avro framing; items that do not pass the contract go out as
their JSON (or raw text) bytes, as a misbehaving producer would send them, so they travel the
real rejection path to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Producer

from hub.contracts.decode import Rejection, encode_case_event, parse_case_event_json
from hub.pipeline.clients import produce_waiting, producer_config
from hub.pipeline.topics import Topics
from hub.settings import Settings


@dataclass
class PublishReport:
    avro: int = 0
    invalid: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.avro + self.invalid


def to_wire(item: dict[str, Any] | str) -> tuple[bytes | None, bytes]:
    """(key, value) for one item: Avro for a valid event, its raw bytes otherwise."""
    if isinstance(item, str):
        return None, item.encode()
    event = parse_case_event_json(item)
    if isinstance(event, Rejection):
        key = item.get("case_id") if isinstance(item.get("case_id"), str) else None
        return (key.encode() if key else None), orjson.dumps(item)
    return event.case_id.encode(), encode_case_event(event)


def publish(
    items: Iterable[dict[str, Any] | str],
    settings: Settings,
    topic: str | None = None,
    producer: Producer | None = None,
) -> PublishReport:
    """Publish and wait until the broker acknowledged every record."""
    target = topic or Topics.from_settings(settings).case_events
    producer = producer or Producer(producer_config(settings))
    report = PublishReport()

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            report.failed += 1

    for n, item in enumerate(items, 1):
        key, value = to_wire(item)
        if value[:1] in (b"\xc3", b"\x00"):
            report.avro += 1
        else:
            report.invalid += 1
        produce_waiting(producer, target, key, value, on_delivery)
        if n % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return report
