"""Keeps :class:`~hub.web.state.ViewState` fresh: follows ``dossiers``, ``contact-routing`` and
``signals`` from their beginning, in a background thread, for as long as the web process runs.

No consumer group (``assign``, nothing committed): every web process builds its own view, and a
restart rebuilds it from the topics (dossiers is compacted, so that read stays bounded by the
number of addresses). ``caught_up`` turns true once the high watermarks taken at the first
assignment are reached; ``/readyz`` answers 503 until then. Topics that do not exist yet (web
started before the first worker) are waited for.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from hub.answers.reading import QUIET
from hub.contracts.codec import AvroCodec, DecodeError, get_codec
from hub.pipeline.clients import consumer_config
from hub.pipeline.topics import Topics
from hub.settings import Settings
from hub.web.state import ViewState

log = logging.getLogger(__name__)


class Follower(threading.Thread):
    """The consumer thread; :meth:`stop` ends it within about a second."""

    def __init__(self, settings: Settings, state: ViewState) -> None:
        super().__init__(name="hub-web-follow", daemon=True)
        self.settings = settings
        self.state = state
        topics = Topics.from_settings(settings)
        self.dossier_topic = topics.dossiers
        self.topics = [topics.dossiers, topics.contact_routing, topics.signals]
        self._stopping = threading.Event()
        self.undecodable = 0
        self.error: str | None = None

    def stop(self) -> None:
        self._stopping.set()

    def _assign(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """Assign every partition from the beginning once all topics exist; the ends now."""
        while not self._stopping.is_set():
            try:
                meta = consumer.list_topics(timeout=10)
            except KafkaException as exc:
                self.error = f"broker not reachable: {exc.args[0]}"
                time.sleep(2)
                continue
            found = {t: meta.topics.get(t) for t in self.topics}
            missing = [t for t, m in found.items() if m is None or m.error or not m.partitions]
            if missing:
                self.error = f"waiting for topic(s) {', '.join(missing)}"
                time.sleep(2)
                continue
            ends: dict[tuple[str, int], int] = {}
            parts = []
            for topic, m in found.items():
                assert m is not None
                for p in m.partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    if high > low:
                        ends[(topic, p)] = high
                    parts.append(TopicPartition(topic, p, OFFSET_BEGINNING))
            consumer.assign(parts)
            self.error = None
            return ends
        return {}

    def run(self) -> None:
        codec = get_codec()
        consumer = Consumer(consumer_config(self.settings, f"{self.settings.app_id}-web", **QUIET))
        try:
            pending = self._assign(consumer)
            if not pending:
                self.state.caught_up = True
            while not self._stopping.is_set():
                for msg in consumer.consume(num_messages=2000, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.error = err.str()
                        continue
                    self._apply(msg.topic(), msg.key(), msg.value(), codec)
                    tp = (msg.topic(), msg.partition())
                    if tp in pending and (msg.offset() or 0) + 1 >= pending[tp]:
                        del pending[tp]
                        if not pending:
                            self.state.caught_up = True
                            log.info(
                                "web view caught up", extra={"records": self.state.records_applied}
                            )
        finally:
            consumer.close()

    def _apply(
        self, topic: str | None, key: bytes | None, value: bytes | None, codec: AvroCodec
    ) -> None:
        if topic == self.dossier_topic:
            if key is None:
                return
            if value is None:
                self.state.apply_dossier(key.decode("utf-8", "replace"), None)
                return
            try:
                self.state.apply_dossier(
                    key.decode("utf-8", "replace"), codec.decode(value, "AddressDossier")[1]
                )
            except DecodeError:
                self.undecodable += 1
            return
        if value is None:
            return
        try:
            self.state.apply_alert(codec.decode(value, "Alert")[1])
        except DecodeError:
            self.undecodable += 1
