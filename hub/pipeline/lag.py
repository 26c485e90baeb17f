"""Consumer-group lag from the broker: what ``hub status``, the demo and tests wait on."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from hub.pipeline.clients import admin_config, consumer_config
from hub.settings import Settings


def committed_offsets(
    settings: Settings, group: str, partitions: list[TopicPartition], timeout_s: float = 10.0
) -> dict[tuple[str, int], int]:
    """(topic, partition) → the offset ``group`` committed (-1 or absent: never committed).

    Read with a consumer of that group id that never subscribes (see :func:`group_lag`).
    """
    from confluent_kafka import Consumer

    if not partitions:
        return {}
    reader = Consumer(consumer_config(settings, group))
    try:
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in reader.committed(partitions, timeout=timeout_s)
        }
    finally:
        reader.close()


#: errors of a partition whose leader is being elected (a topic just created, a broker restarting)
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, KafkaException) and bool(exc.args) and exc.args[0].code() in _TRANSIENT


@retry(
    retry=retry_if_exception(_transient),
    wait=wait_exponential(multiplier=0.2, max=2.0),
    stop=stop_after_delay(30),
    reraise=True,
)
def group_lag(settings: Settings, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) → messages not yet committed by ``group`` (uncommitted = all).

    Committed offsets are read with a consumer of that group id that never subscribes (so it
    never joins the group), not with ``AdminClient.list_consumer_group_offsets``: librdkafka
    crashed the process (SIGSEGV) in that call while a fresh broker was still starting. A
    partition without a leader for a moment (just created) is asked again, up to 30 s.
    """
    from confluent_kafka import Consumer

    reader = Consumer(consumer_config(settings, group))
    try:
        metadata = reader.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        ]
        if not partitions:
            return {}
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in reader.committed(partitions, timeout=10)
        }
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
    ingest = group_lag(
        settings, f"{settings.app_id}-ingest", topics.inbound(settings.shared_inbound)
    )
    agents = group_lag(settings, settings.app_id, [topics.normalised, topics.area_updates])
    return sum(ingest.values()) + sum(agents.values())


class GroupWatch:
    """Group-wide view of the agents' source topics, refreshed in a thread every few seconds.

    A worker knows only its own assignment. To be ready it must also know that *every* partition
    of every agent's source topic is owned by some member of the group (a topic missing at
    subscription time, for instance, is owned by nobody for minutes). And the lag of a partition
    nobody owns must still be exported, or the lag alert cannot fire: each worker exports the
    committed-offset lag of such orphan partitions (the same value from every worker, so
    dashboards and alerts take ``max``), and the precise lag of its own partitions elsewhere.
    """

    def __init__(self, settings: Settings, topics: list[str], every_s: float = 5.0) -> None:
        import threading

        self.settings = settings
        self.topics = topics
        self.every_s = every_s
        self.orphans: frozenset[tuple[str, int]] | None = None  # None: not known yet
        self.lags: dict[tuple[str, int], int] = {}  # committed-offset lag, every partition
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-group-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
                self.error = None
            except Exception as exc:  # broker away: keep the last view, say why
                self.error = type(exc).__name__
            if self._stop.wait(self.every_s):
                return

    def refresh(self) -> None:
        owned = group_assignment(self.settings, self.settings.app_id)
        lags = group_lag(self.settings, self.settings.app_id, self.topics)
        self.lags = lags
        self.orphans = frozenset(tp for tp in lags if tp not in owned)


def group_assignment(settings: Settings, group: str) -> set[tuple[str, int]]:
    """(topic, partition) pairs assigned to some member of ``group`` right now."""
    admin = AdminClient(admin_config(settings))
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    owned: set[tuple[str, int]] = set()
    for member in description.members:
        assignment = member.assignment
        if assignment is not None:
            owned.update((tp.topic, tp.partition) for tp in assignment.topic_partitions)
    return owned
