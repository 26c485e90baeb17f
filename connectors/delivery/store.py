"""Subscriptions, the delivery log and dead letters on their topics: what ``hub subscriptions``
writes and reads. Reads go through :func:`hub.answers.reading.read_to_end` (no consumer group)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Producer

from connectors.delivery.topics import DeliveryTopics, ensure_delivery_topics, group_id
from hub.answers.reading import AnswerError, TopicMissing, read_to_end
from hub.delivery.config import DeliverySettings
from hub.delivery.policy import LogEntry
from hub.delivery.secrets import SecretError, unseal
from hub.delivery.subscription import Subscription, fold
from hub.pipeline.clients import producer_config
from hub.pipeline.lag import group_lag
from hub.pipeline.topics import Topics
from hub.settings import Settings


class StoreError(Exception):
    """A write was not acknowledged by the broker."""


def _produce(settings: Settings, topic: str, key: bytes, value: bytes | None) -> None:
    errors: list[str] = []

    def done(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err.name()))

    producer = Producer(producer_config(settings, log_level=0))
    producer.produce(topic, key=key, value=value, on_delivery=done)
    if producer.flush(30) > 0:
        raise StoreError(f"{topic}: not acknowledged within 30 s")
    if errors:
        raise StoreError(f"{topic}: {errors[0]}")


def publish_subscription(settings: Settings, sub: Subscription) -> None:
    """Store ``sub`` (and create its dead-letter topic); every ``hub deliver`` picks it up."""
    ensure_delivery_topics(settings, (sub.id,))
    topics = DeliveryTopics.from_settings(settings)
    _produce(settings, topics.subscriptions, sub.id.encode(), orjson.dumps(sub.to_record()))


def remove_subscription(settings: Settings, subscription_id: str) -> None:
    """Write the tombstone; its dead-letter topic and consumer group are kept for inspection."""
    topics = DeliveryTopics.from_settings(settings)
    _produce(settings, topics.subscriptions, subscription_id.encode(), None)


def read_subscriptions(settings: Settings, timeout_s: float = 60.0) -> dict[str, Subscription]:
    topics = DeliveryTopics.from_settings(settings)
    book: dict[str, Subscription] = {}
    try:
        for msg in read_to_end(settings, [topics.subscriptions], timeout_s=timeout_s):
            fold(book, msg.key, msg.value)
    except TopicMissing:
        return {}
    return book


def read_log(settings: Settings, timeout_s: float = 60.0) -> dict[str, LogEntry]:
    topics = DeliveryTopics.from_settings(settings)
    entries: dict[str, LogEntry] = {}
    try:
        for msg in read_to_end(settings, [topics.log], timeout_s=timeout_s):
            if msg.key is None:
                continue
            if msg.value is None:
                entries.pop(msg.key.decode(), None)
                continue
            try:
                entries[msg.key.decode()] = LogEntry.from_record(orjson.loads(msg.value))
            except (orjson.JSONDecodeError, TypeError):
                continue
    except TopicMissing:
        return {}
    return entries


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    offset: int
    timestamp_ms: int
    headers: dict[str, str]
    message: dict[str, Any]


def read_dead_letters(
    settings: Settings, subscription_id: str, timeout_s: float = 60.0
) -> list[DeadLetterView]:
    topic = DeliveryTopics.from_settings(settings).dead_letter(subscription_id)
    out = []
    try:
        for msg in read_to_end(settings, [topic], timeout_s=timeout_s):
            headers = {k: v.decode(errors="replace") for k, v in msg.headers}
            message = orjson.loads(msg.value) if msg.value else {}
            out.append(DeadLetterView(msg.offset, msg.timestamp_ms, headers, message))
    except TopicMissing:
        return []
    return out


def status(settings: Settings, delivery: DeliverySettings) -> list[dict[str, Any]]:
    """One row per subscription: the subscription (auth masked), its delivery log, the lag of
    its consumer group and how many notifications it dead-lettered."""
    subs = read_subscriptions(settings)
    log = read_log(settings)
    hub_topics = Topics.from_settings(settings)
    key = delivery.secret_key.get_secret_value() if delivery.secret_key else None
    rows = []
    for sub_id, sub in sorted(subs.items()):
        source = hub_topics.signals if sub.category == "SIGNAL" else hub_topics.contact_routing
        try:
            lag: int | None = sum(
                group_lag(settings, group_id(settings, sub_id), [source]).values()
            )
        except Exception:  # broker hiccup: report unknown rather than fail the whole answer
            lag = None
        dead = read_dead_letters(settings, sub_id)
        entry = log.get(sub_id)
        rows.append(
            {
                **public_view(sub, key),
                "lag": lag,
                "dead_letters": len(dead),
                "last_error": dead[-1].headers.get("__connect.errors.exception.message")
                if dead
                else None,
                "log": entry.to_record() if entry else None,
            }
        )
    return rows


def public_view(sub: Subscription, key: str | None) -> dict[str, Any]:
    """The subscription for display: Authorization masked to its scheme word."""
    shown: str | None = None
    if sub.auth is not None:
        try:
            shown = unseal(sub.auth.get_secret_value(), key)
        except SecretError:
            shown = None
    view = sub.public(shown)
    view["sealed"] = bool(
        sub.auth is not None and sub.auth.get_secret_value().startswith("fernet:")
    )
    return view


__all__ = [
    "AnswerError",
    "DeadLetterView",
    "StoreError",
    "public_view",
    "publish_subscription",
    "read_dead_letters",
    "read_log",
    "read_subscriptions",
    "remove_subscription",
    "status",
]
