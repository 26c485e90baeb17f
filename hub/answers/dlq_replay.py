"""The write path: re-submit dead letters (``hub dlq replay``), remembered on ``dlq-replayed``."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import (
    KafkaError,
    KafkaException,
    Producer,
)

from hub.answers.dead_letters import DeadLetterEntry, read_dead_letters
from hub.answers.reading import QUIET, AnswerError, existing_topics, read_to_end
from hub.contracts.deadletter import DeadLetter
from hub.pipeline.clients import admin_config, producer_config
from hub.pipeline.topics import COMPACTED, Topics, with_min_isr
from hub.settings import Settings

#: Suffix of the compacted topic that records replayed dead letters (key ``partition:offset``).
REPLAYED_SUFFIX = "dlq-replayed"
#: Header put on a replayed message: where it came from (``topic:partition:offset``).
H_REPLAYED_FROM = "hub.replay.from"


@dataclass(slots=True)
class ReplayReport:
    """What ``hub dlq replay`` did (or would do with ``--dry-run``)."""

    matched: int = 0
    replayed: int = 0
    already_replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why → count
    by_topic: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False


def replayed_topic(settings: Settings) -> str:
    """The compacted topic of replay markers: key ``partition:offset`` of the dead letter."""
    return f"{settings.topic_prefix}{REPLAYED_SUFFIX}"


def _ensure_replayed_topic(settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = replayed_topic(settings)
    if name in existing_topics(settings):
        return
    admin = AdminClient(admin_config(settings, **QUIET))
    new = NewTopic(
        name,
        num_partitions=1,
        replication_factor=settings.replication_factor,
        config=with_min_isr(settings, COMPACTED),
    )
    try:
        admin.create_topics([new], operation_timeout=30)[name].result(timeout=30)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise AnswerError(f"cannot create {name}: {exc.args[0]}") from exc


def read_replayed(settings: Settings) -> set[str]:
    """Markers of dead letters already replayed (latest per key; a tombstone re-arms one)."""
    name = replayed_topic(settings)
    if name not in existing_topics(settings):
        return set()
    done: set[str] = set()
    for msg in read_to_end(settings, [name]):
        if msg.key is None:
            continue
        marker = msg.key.decode("utf-8", "replace")
        if msg.value is None:
            done.discard(marker)
        else:
            done.add(marker)
    return done


def replay_target(letter: DeadLetter, topics: Topics) -> str | None:
    """Where a dead letter goes back to, or None when it must not be replayed.

    The original topic from ``__connect.errors.topic``; without it (file/HTTP rejects) the
    inbound ``case-events``. Only the hub's own inbound topics are targets: a replay never
    writes into a foreign topic, and an internal batch (stage ``correlate``) is not input.
    """
    inbound = {*topics.inbound(), topics.notifications}
    if letter.topic is None:
        return topics.case_events if letter.stage != "correlate" else None
    return letter.topic if letter.topic in inbound else None


def replay(
    settings: Settings, reason: str | None = None, dry_run: bool = False, timeout_s: float = 120.0
) -> ReplayReport:
    """Re-submit dead letters (original key and bytes) to their original topic, once each.

    Bookkeeping: after the replayed messages are acknowledged (idempotent producer, acks=all),
    one marker per dead letter is written to the compacted ``<prefix>dlq-replayed`` topic, key
    ``partition:offset``; a later replay skips marked ones. A marker per letter (not a consumer
    group offset) because ``--reason`` replays a subset: offsets are not replayed in order.
    A crash between the two flushes can resend a letter on the next replay (at least once);
    the hub deduplicates events by ``event_id``.
    """
    topics = Topics.from_settings(settings)
    report = ReplayReport(dry_run=dry_run)
    entries = read_dead_letters(settings, reason, timeout_s)
    report.matched = len(entries)
    done = read_replayed(settings)
    todo: list[tuple[DeadLetterEntry, str]] = []
    skipped: Counter[str] = Counter()
    for entry in entries:
        if entry.marker in done:
            report.already_replayed += 1
            continue
        if entry.letter.payload is None:
            skipped["no payload"] += 1
            continue
        if entry.letter.payload_truncated:  # only the first bytes: the original is at its offset
            skipped["payload truncated"] += 1
            continue
        target = replay_target(entry.letter, topics)
        if target is None:
            skipped["not an inbound topic"] += 1
            continue
        todo.append((entry, target))
    report.skipped = dict(skipped)
    report.by_topic = dict(Counter(t for _, t in todo))
    if dry_run or not todo:
        report.replayed = len(todo)  # with --dry-run: would be replayed
        return report

    _ensure_replayed_topic(settings)
    producer = Producer(producer_config(settings, **QUIET))
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(err.str())

    for entry, target in todo:
        origin = f"{topics.dead_letter}:{entry.partition}:{entry.offset}"
        producer.produce(
            target,
            key=entry.letter.key,
            value=entry.letter.payload,
            headers=[(H_REPLAYED_FROM, origin.encode())],
            on_delivery=on_delivery,
        )
        producer.poll(0)
    if producer.flush(timeout_s) > 0 or errors:
        raise AnswerError(f"replay not acknowledged: {errors[:3] or 'flush timed out'}")
    marker_topic = replayed_topic(settings)
    now = time.time_ns() // 1_000_000
    for entry, target in todo:
        producer.produce(
            marker_topic,
            key=entry.marker.encode(),
            value=orjson.dumps({"topic": target, "replayed_at_ms": now}),
            on_delivery=on_delivery,
        )
    if producer.flush(timeout_s) > 0 or errors:
        raise AnswerError(
            f"replayed {len(todo)} but could not record it: {errors[:3] or 'flush timed out'}"
        )
    report.replayed = len(todo)
    return report
