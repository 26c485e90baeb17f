"""Consumer-group lag from the broker: what ``hub status``, the demo and tests wait on."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from hub.pipeline.clients import consumer_config
from hub.settings import Settings


def group_lag(settings: Settings, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) → messages not yet committed by ``group`` (uncommitted = all)."""
    from confluent_kafka import Consumer

    admin = AdminClient({"bootstrap.servers": settings.broker})
    metadata = admin.list_topics(timeout=10)
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        if topic in metadata.topics
        for p in metadata.topics[topic].partitions
    ]
    if not partitions:
        return {}
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, partitions)])
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in future[group].result(timeout=10).topic_partitions
    }
    reader = Consumer(consumer_config(settings, f"{group}-lag-probe"))
    try:
        lag = {}
        for tp in partitions:
            low, high = reader.get_watermark_offsets(tp, timeout=10)
            done = committed.get((tp.topic, tp.partition), -1)
            lag[(tp.topic, tp.partition)] = high - (done if done >= 0 else low)
        return lag
    finally:
        reader.close()


def pipeline_lag(settings: Settings) -> int:
    """Total lag of the ingest stage and the Faust agents: 0 means caught up."""
    from hub.pipeline.topics import Topics

    topics = Topics.from_settings(settings)
    ingest = group_lag(settings, f"{settings.app_id}-ingest", [topics.case_events])
    agents = group_lag(settings, settings.app_id, [topics.normalised, topics.area_updates])
    return sum(ingest.values()) + sum(agents.values())
