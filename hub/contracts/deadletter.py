"""Dead letters: Kafka Connect-style error headers, their parser, and the DeadLetter record.

On Kafka, a rejected message goes to ``hub.dead-letter`` with its ORIGINAL key and value bytes,
untouched, and these headers (values UTF-8 text, as Kafka Connect writes them):

==================================== =============================================================
``__connect.errors.topic``           original topic
``__connect.errors.partition``       original partition (decimal)
``__connect.errors.offset``          original offset (decimal)
``__connect.errors.exception.class.name`` class of the underlying error
``__connect.errors.exception.message``    "field: value rule" (no contact data)
``hub.errors.reason``                reason code (``UNDECODABLE``, ``INVALID_FIELD``, ...)
``hub.errors.field``                 dotted path of the failing field (absent if none)
``hub.errors.stage``                 ``decode``, ``validate``, ``address``, ...
``hub.errors.origin``                ``kafka``, ``file``, ``http``, ``notificaties``
``hub.errors.location``              file path / request id for non-Kafka origins (optional)
``hub.errors.timestamp``             rejection time, epoch milliseconds (decimal)
==================================== =============================================================

Non-Kafka rejects (file import, HTTP ingress) use the same headers without the
``__connect.errors.topic/partition/offset`` triple when they are published to the dead-letter
topic, and the :class:`DeadLetter` record (``DeadLetter.v1.avsc``) when they are stored elsewhere
(reject files, HTTP answers, ``hub dlq export``): it is exactly "headers + key + value".
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.contracts.codec import to_epoch_ms
from hub.contracts.decode import Rejection

H_TOPIC = "__connect.errors.topic"
H_PARTITION = "__connect.errors.partition"
H_OFFSET = "__connect.errors.offset"
H_EXCEPTION_CLASS = "__connect.errors.exception.class.name"
H_EXCEPTION_MESSAGE = "__connect.errors.exception.message"
H_REASON = "hub.errors.reason"
H_FIELD = "hub.errors.field"
H_STAGE = "hub.errors.stage"
H_ORIGIN = "hub.errors.origin"
H_LOCATION = "hub.errors.location"
H_TIMESTAMP = "hub.errors.timestamp"

Headers = list[tuple[str, bytes]]
_MAX_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: why it was rejected, where it came from, and the original bytes."""

    reason: str
    message: str
    stage: str
    exception_class: str
    origin: str = "kafka"
    field: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    location: str | None = None
    rejected_at_ms: int = 0
    key: bytes | None = None
    payload: bytes | None = None

    @classmethod
    def from_rejection(
        cls,
        rejection: Rejection,
        *,
        payload: bytes | None,
        key: bytes | None = None,
        origin: str = "kafka",
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        location: str | None = None,
        rejected_at_ms: int | None = None,
    ) -> DeadLetter:
        return cls(
            reason=str(rejection.reason_code),
            message=rejection.message,
            stage=str(rejection.stage),
            exception_class=rejection.exception_class,
            origin=origin,
            field=rejection.field,
            topic=topic,
            partition=partition,
            offset=offset,
            location=location,
            rejected_at_ms=_now_ms() if rejected_at_ms is None else rejected_at_ms,
            key=key,
            payload=payload,
        )

    def headers(self) -> Headers:
        """Kafka headers for the dead-letter topic (confluent-kafka's list-of-tuples form)."""
        return build_headers(
            reason=self.reason,
            message=self.message,
            stage=self.stage,
            exception_class=self.exception_class,
            field=self.field,
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            origin=self.origin,
            location=self.location,
            rejected_at_ms=self.rejected_at_ms,
        )

    def to_avro_dict(self) -> dict[str, Any]:
        """The DeadLetter.v1 record (for the codec: ``codec.encode("DeadLetter", ...)``)."""
        return {
            "reason": self.reason,
            "field": self.field,
            "message": self.message,
            "stage": self.stage,
            "exception_class": self.exception_class,
            "origin": self.origin,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "location": self.location,
            "rejected_at": self.rejected_at_ms,
            "key": self.key,
            "payload": self.payload,
        }

    @classmethod
    def from_avro_dict(cls, record: dict[str, Any]) -> DeadLetter:
        return cls(
            reason=record["reason"],
            message=record["message"],
            stage=record["stage"],
            exception_class=record["exception_class"],
            origin=record["origin"],
            field=record.get("field"),
            topic=record.get("topic"),
            partition=record.get("partition"),
            offset=record.get("offset"),
            location=record.get("location"),
            rejected_at_ms=to_epoch_ms(record["rejected_at"]),  # decode gives a datetime
            key=record.get("key"),
            payload=record.get("payload"),
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _b(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def build_headers(
    *,
    reason: str,
    message: str,
    stage: str,
    exception_class: str,
    field: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    origin: str = "kafka",
    location: str | None = None,
    rejected_at_ms: int | None = None,
) -> Headers:
    """Build the dead-letter headers. ``message`` must already be free of personal data
    (``Rejection.message`` is); it is cut at 1000 characters."""
    headers: Headers = []
    if topic is not None:
        headers.append((H_TOPIC, _b(topic)))
    if partition is not None:
        headers.append((H_PARTITION, _b(str(partition))))
    if offset is not None:
        headers.append((H_OFFSET, _b(str(offset))))
    headers.append((H_EXCEPTION_CLASS, _b(exception_class)))
    headers.append((H_EXCEPTION_MESSAGE, _b(message[:_MAX_MESSAGE])))
    headers.append((H_REASON, _b(reason)))
    if field:
        headers.append((H_FIELD, _b(field)))
    headers.append((H_STAGE, _b(stage)))
    headers.append((H_ORIGIN, _b(origin)))
    if location:
        headers.append((H_LOCATION, _b(location)))
    headers.append((H_TIMESTAMP, _b(str(_now_ms() if rejected_at_ms is None else rejected_at_ms))))
    return headers


def dead_letter_headers(
    rejection: Rejection,
    *,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    stage: str | None = None,
    origin: str = "kafka",
    location: str | None = None,
    rejected_at_ms: int | None = None,
) -> Headers:
    """Headers for a Rejection of a consumed message: what the ingest stage calls.

    ``stage`` overrides ``rejection.stage`` (decode/validate/...); leave it out to keep the
    finer-grained stage of the rejection.
    """
    return build_headers(
        reason=str(rejection.reason_code),
        message=rejection.message,
        stage=str(stage or rejection.stage),
        exception_class=rejection.exception_class,
        field=rejection.field,
        topic=topic,
        partition=partition,
        offset=offset,
        origin=origin,
        location=location,
        rejected_at_ms=rejected_at_ms,
    )


#: Alias: the name used in the issue's wording.
rejection_headers = dead_letter_headers


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_dead_letter(
    headers: Iterable[tuple[str, bytes | str | None]] | None,
    value: bytes | None,
    key: bytes | None = None,
) -> DeadLetter:
    """Read a dead-letter message back (``hub dlq list``). Tolerates missing or odd headers:
    a message written by another tool still lists, with ``UNKNOWN`` for what is missing."""
    found: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is None:
            continue
        found[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return DeadLetter(
        reason=found.get(H_REASON, "UNKNOWN"),
        message=found.get(H_EXCEPTION_MESSAGE, ""),
        stage=found.get(H_STAGE, "UNKNOWN"),
        exception_class=found.get(H_EXCEPTION_CLASS, "UNKNOWN"),
        origin=found.get(H_ORIGIN, "kafka"),
        field=found.get(H_FIELD),
        topic=found.get(H_TOPIC),
        partition=_int(found.get(H_PARTITION)),
        offset=_int(found.get(H_OFFSET)),
        location=found.get(H_LOCATION),
        rejected_at_ms=_int(found.get(H_TIMESTAMP)) or 0,
        key=key,
        payload=value,
    )
