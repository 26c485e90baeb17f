"""The delivery topics: names, configs and creation.

* ``delivery-subscriptions``: key subscription id, value Subscription JSON; compacted, a
  tombstone removes;
* ``delivery-log``: key subscription id, value LogEntry JSON (last attempt, totals); compacted;
* ``delivery-dead-letter.<id>``: key fingerprint, value the Notificatie JSON with error headers;
  one topic per subscription.

Names carry ``settings.topic_prefix``. Kept apart from :mod:`hub.pipeline.topics` because only
``hub deliver`` and ``hub subscriptions`` use them (a worker need not create them).
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic

from hub.pipeline.clients import admin_config
from hub.pipeline.topics import COMPACTED, with_min_isr
from hub.settings import Settings


@dataclass(frozen=True)
class DeliveryTopics:
    subscriptions: str
    log: str
    dead_letter_prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryTopics:
        p = settings.topic_prefix
        return cls(f"{p}delivery-subscriptions", f"{p}delivery-log", f"{p}delivery-dead-letter.")

    def dead_letter(self, subscription_id: str) -> str:
        return f"{self.dead_letter_prefix}{subscription_id}"

    def specs(
        self, subscription_ids: tuple[str, ...] = ()
    ) -> dict[str, tuple[int, dict[str, str]]]:
        specs: dict[str, tuple[int, dict[str, str]]] = {
            self.subscriptions: (1, COMPACTED),
            self.log: (1, COMPACTED),
        }
        for sub_id in subscription_ids:
            specs[self.dead_letter(sub_id)] = (1, {})
        return specs


def group_id(settings: Settings, subscription_id: str) -> str:
    """The consumer group of one subscription: its own offsets, its own lag."""
    return f"{settings.app_id}-delivery-{subscription_id}"


def ensure_delivery_topics(
    settings: Settings, subscription_ids: tuple[str, ...] = (), timeout: float = 30.0
) -> list[str]:
    """Create the missing delivery topics; return the names created."""
    topics = DeliveryTopics.from_settings(settings)
    # the client security settings too: on a SASL_SSL broker (Kubernetes) a bare client would
    # not get past the listener, and `hub deliver` would never start
    admin = AdminClient(admin_config(settings, log_level=0))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(
            name,
            num_partitions=parts,
            replication_factor=settings.replication_factor,
            # on a replicated cluster the same min ISR as every hub topic (HUB_MIN_INSYNC_REPLICAS)
            config=with_min_isr(settings, config),
        )
        for name, (parts, config) in topics.specs(subscription_ids).items()
        if name not in existing
    ]
    created: list[str] = []
    if not wanted:
        return created
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except Exception as exc:  # created concurrently by another process: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
