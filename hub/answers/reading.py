"""Reading topics to their end without a consumer group: the base of every answer."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from hub.pipeline.clients import admin_config, consumer_config
from hub.settings import Settings

QUIET = {"log_level": 0}  # the CLI reports broker errors itself; no librdkafka noise on stderr


class AnswerError(Exception):
    """An answer cannot be given (broker unreachable, topic missing, not found): the CLI exits 1."""


class TopicMissing(AnswerError):
    """A topic the answer needs does not exist (wrong ``HUB_TOPIC_PREFIX``, or never created)."""


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read; headers as (name, bytes) pairs like confluent-kafka gives them."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int


def _consumer(settings: Settings) -> Consumer:
    # confluent-kafka insists on a group.id, but with assign() and auto-commit off the group is
    # never joined and nothing is committed. EOF events end reads on compacted topics whose
    # last offsets were cleaned away (no message ever reaches high - 1 there).
    config = consumer_config(
        settings,
        f"{settings.app_id}-answers",
        **{"enable.partition.eof": True, "enable.auto.offset.store": False, **QUIET},
    )
    return Consumer(config)


def _partitions(consumer: Consumer, topics: Sequence[str], timeout_s: float) -> dict[str, int]:
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise AnswerError(f"broker not reachable: {exc.args[0]}") from exc
    out: dict[str, int] = {}
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TopicMissing(f"topic {topic} does not exist")
        out[topic] = len(meta.partitions)
    return out


def read_to_end(
    settings: Settings,
    topics: Sequence[str],
    partitions: Mapping[str, Iterable[int]] | None = None,
    timeout_s: float = 60.0,
) -> Iterator[RawMessage]:
    """Every message of ``topics`` (or of the given partitions) from the start up to the high
    watermarks taken now, then stop. Raises :class:`AnswerError` when the broker does not
    answer or the read does not finish within ``timeout_s``."""
    consumer = _consumer(settings)
    try:
        counts = _partitions(consumer, topics, min(timeout_s, 15.0))
        ends: dict[tuple[str, int], int] = {}
        assignment: list[TopicPartition] = []
        for topic in topics:
            wanted = (
                range(counts[topic])
                if partitions is None or topic not in partitions
                else partitions[topic]
            )
            for p in wanted:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=min(timeout_s, 15.0)
                )
                if high > low:
                    ends[(topic, p)] = high
                    assignment.append(TopicPartition(topic, p, low))
        if not assignment:
            return
        consumer.assign(assignment)
        pending = set(ends)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise AnswerError(
                    f"reading {', '.join(topics)} did not reach the end in {timeout_s:.0f} s"
                )
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                tp = (msg.topic(), msg.partition())
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(tp)
                    elif err.fatal():
                        raise AnswerError(f"read failed: {err.str()}")
                    continue
                if tp not in pending:
                    continue
                offset: int = msg.offset()  # type: ignore[assignment]  # set on a read message
                if offset >= ends[tp]:  # written after we started: not part of this answer
                    pending.discard(tp)
                    continue
                if offset + 1 >= ends[tp]:
                    pending.discard(tp)
                _, ts = msg.timestamp()
                yield RawMessage(
                    topic=tp[0],
                    partition=tp[1],
                    offset=offset,
                    key=msg.key(),
                    value=msg.value(),
                    headers=list(msg.headers() or ()),  # type: ignore[arg-type]
                    timestamp_ms=ts,
                )
    finally:
        consumer.close()


def existing_topics(settings: Settings, timeout_s: float = 10.0) -> dict[str, int]:
    """Topic name → partition count, or AnswerError when the broker does not answer."""
    from confluent_kafka.admin import AdminClient

    refused: list[KafkaError] = []  # SASL failures arrive as error events, not as the exception

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            refused.append(err)

    admin = AdminClient(admin_config(settings, error_cb=on_error, **QUIET))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # serve the error events
        if refused:  # the user name is not secret; the password never reaches this message
            raise AnswerError(
                f"broker {settings.broker}: authentication failed as "
                f"{settings.sasl_username!r} ({settings.sasl_mechanism})"
            ) from None
        raise AnswerError(f"broker {settings.broker} not reachable: {exc.args[0]}") from exc
    return {
        name: len(meta.partitions) for name, meta in metadata.topics.items() if meta.error is None
    }


# ----------------------------------------------------------------------------- JSON helpers


def jsonable(value: Any) -> Any:
    """Decoded Avro → JSON: datetimes as ISO 8601 UTC, dates as ISO dates, bytes as base64."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
