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
``hub.errors.stage``                 ``decode``, ``validate``, ``resolve``, ``batch``, ``correlate``
``hub.errors.origin``                ``kafka``, ``file``, ``http``, ``notificaties``
``hub.errors.location``              file path / request id for non-Kafka origins (optional)
``hub.errors.timestamp``             rejection time, epoch milliseconds (decimal)
``hub.errors.payload.truncated``     ``true`` when the value is only the first bytes of the original
``hub.errors.payload.size``          the original value's size in bytes (with ``truncated``)
==================================== =============================================================

A value larger than :data:`MAX_DEAD_LETTER_PAYLOAD` is cut to that size (see
:func:`dead_letter_payload`): the dead letter must always fit its topic, so that one poison
message can never fail the stage; the topic/partition/offset headers point at the original.

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
from hub.contracts.events import MAX_RECORD_BYTES

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
H_PAYLOAD_TRUNCATED = "hub.errors.payload.truncated"
H_PAYLOAD_SIZE = "hub.errors.payload.size"

Headers = list[tuple[str, bytes]]
_MAX_MESSAGE = 1000
_MAX_FIELD = 200
#: Largest value a dead letter carries whole: the contract's bound on one encoded CaseEvent, so
#: every record that failed for another reason than its size is kept byte for byte. With the
#: headers (a few KB) and a key it stays far below the dead-letter topic's max.message.bytes.
MAX_DEAD_LETTER_PAYLOAD = MAX_RECORD_BYTES


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
    payload_truncated: bool = False  # payload is only the first bytes of the original
    payload_size: int | None = None  # the original's size, when truncated

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
        ) + truncation_headers(self.payload_size if self.payload_truncated else None)

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


def truncation_headers(original_size: int | None) -> Headers:
    """The headers that mark a truncated payload (none when ``original_size`` is None)."""
    if original_size is None:
        return []
    return [(H_PAYLOAD_TRUNCATED, b"true"), (H_PAYLOAD_SIZE, _b(str(original_size)))]


def dead_letter_payload(
    value: bytes | None, limit: int = MAX_DEAD_LETTER_PAYLOAD
) -> tuple[bytes | None, Headers]:
    """The value a dead letter carries, and the headers saying whether it was cut.

    A value over ``limit`` bytes keeps its first ``limit`` bytes (enough to see what it was)
    and gets ``hub.errors.payload.truncated=true`` and ``hub.errors.payload.size``.
    """
    if value is None or len(value) <= limit:
        return value, []
    return value[:limit], truncation_headers(len(value))


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
        headers.append((H_FIELD, _b(field[:_MAX_FIELD])))
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

    ``stage`` overrides ``rejection.stage`` (decode/validate/resolve/...); leave it out (the
    ingest stage does) so the header says where the input failed, as docs/contracts.md promises.
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
        payload_truncated=found.get(H_PAYLOAD_TRUNCATED) == "true",
        payload_size=_int(found.get(H_PAYLOAD_SIZE)),
    )
