"""``hub deliver``: every matching alert transition POSTed to every subscriber, at least once.

One :class:`SubscriptionWorker` per subscription, each with **its own consumer group**
(``<app_id>-delivery-<id>``) on the topic of its channel (``signals`` or ``contact-routing``)
and its own asyncio task: a subscriber that is down holds back only its own queue, never the
correlation (another group) nor the other subscribers. Within a subscription the records are
delivered one at a time in partition order, so the notifications of one alert fingerprint (one
key, one partition) arrive in version order.

A record's offset is committed only after its notification was delivered (2xx), dead-lettered
(acknowledged by the broker on ``delivery-dead-letter.<id>``), or skipped (no match, older than
the subscription, not an Alert). A restart therefore resends at most what was in flight, and a
receiver deduplicates on the message's identity (``kenmerken.fingerprint`` + ``version``).

A supervisor follows the compacted subscriptions topic and starts, restarts (changed) or stops
workers; Authorization values are unsealed only in memory and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from connectors.delivery.sender import Sender
from connectors.delivery.store import read_log
from connectors.delivery.topics import DeliveryTopics, ensure_delivery_topics, group_id
from hub import metrics
from hub.contracts.codec import AvroCodec, DecodeError, get_codec
from hub.contracts.deadletter import build_headers
from hub.delivery import notificatie
from hub.delivery.config import DeliverySettings
from hub.delivery.policy import Attempt, LogEntry, stop_strategy, wait_strategy
from hub.delivery.secrets import SecretError, unseal
from hub.delivery.subscription import Subscription, fold
from hub.pipeline.clients import consumer_config, producer_config
from hub.pipeline.topics import Topics, wait_for_topics
from hub.settings import Settings

log = logging.getLogger(__name__)

QUIET = {"log_level": 3}  # librdkafka errors only
H_SUBSCRIPTION = "hub.delivery.subscription"
H_ATTEMPTS = "hub.delivery.attempts"
H_STATUS = "hub.delivery.status_code"
H_OUTCOME = "hub.delivery.outcome"
H_FIRST_ATTEMPT = "hub.delivery.first_attempt_at"
H_NOTIFICATION_ID = "hub.delivery.notification_id"
DEAD_LETTER_REASON = "DELIVERY_FAILED"
#: Longest wait for the broker to acknowledge a dead letter, and for the final flush on SIGTERM
#: (deploy/kubernetes/base/delivery.yaml's terminationGracePeriodSeconds covers both).
FLUSH_TIMEOUT_S = 30.0


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Shared:
    """What every worker of one ``hub deliver`` process shares."""

    settings: Settings
    delivery: DeliverySettings
    sender: Sender
    producer: Producer
    codec: AvroCodec
    topics: DeliveryTopics
    hub_topics: Topics
    log_entries: dict[str, LogEntry] = field(default_factory=dict)

    def write_log(self, entry: LogEntry) -> None:
        """Best effort: the log is for operators; a lost entry is replaced by the next one."""
        with contextlib.suppress(BufferError):
            self.producer.produce(
                self.topics.log,
                key=entry.subscription.encode(),
                value=orjson.dumps(entry.to_record()),
            )


class SubscriptionWorker:
    """One subscription's queue: consume, match, POST with retries, dead-letter, commit."""

    def __init__(self, sub: Subscription, auth: str | None, shared: Shared) -> None:
        self.sub = sub
        self._auth = auth  # unsealed; only ever put into the Authorization header
        self.shared = shared
        self.source = (
            shared.hub_topics.signals
            if sub.category == "SIGNAL"
            else shared.hub_topics.contact_routing
        )
        self.entry = shared.log_entries.setdefault(sub.id, LogEntry(subscription=sub.id))
        self._stopping = False
        self._handling: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dead_lettered = 0

    def start(self) -> None:
        metrics.init_delivery(self.sub.id)
        self.task = asyncio.create_task(self._run(), name=f"deliver-{self.sub.id}")

    async def stop(self) -> None:
        """Stop after the current consume; an in-flight notification is abandoned uncommitted
        (it is sent again by whoever takes over: at least once)."""
        self._stopping = True
        if self._handling is not None:
            self._handling.cancel()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        s = self.shared.settings
        session_ms = int(self.shared.delivery.session_timeout_s * 1000)
        consumer = Consumer(
            consumer_config(
                s,
                group_id(s, self.sub.id),
                **{
                    "session.timeout.ms": session_ms,
                    "heartbeat.interval.ms": max(1000, session_ms // 4),
                    **QUIET,
                },
            )
        )
        consumer.subscribe([self.source])
        last_lag = 0.0
        try:
            while not self._stopping:
                batch = await asyncio.to_thread(consumer.consume, 100, 0.5)
                for msg in batch:
                    if self._stopping:
                        break
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning(
                                "subscription %s: consume error %s", self.sub.id, err.name()
                            )
                        continue
                    self._handling = asyncio.create_task(self._handle(msg))
                    try:
                        await self._handling
                    except asyncio.CancelledError:
                        if self._stopping:
                            break
                        raise
                    finally:
                        self._handling = None
                    await self._commit(consumer, msg)
                if time.monotonic() - last_lag > 2.0:
                    last_lag = time.monotonic()
                    self._export_lag(consumer)
        finally:
            await asyncio.to_thread(consumer.close)

    async def _commit(self, consumer: Consumer, msg: Message) -> None:
        """Commit past ``msg`` and wait for the broker's answer, so a kill -9 right after
        resends nothing that was finished. A failed commit (partition revoked in a rebalance)
        only means the new owner sends it again."""
        offset: int = msg.offset()  # type: ignore[assignment]
        tp = TopicPartition(str(msg.topic()), int(msg.partition() or 0), offset + 1)
        try:
            await asyncio.to_thread(consumer.commit, offsets=[tp], asynchronous=False)
        except KafkaException as exc:
            name = getattr(exc.args[0], "name", lambda: "KafkaException")() if exc.args else "?"
            log.warning("subscription %s: commit failed (%s)", self.sub.id, name)

    def _export_lag(self, consumer: Consumer) -> None:
        try:
            lag = 0
            for tp in consumer.assignment():
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                pos = consumer.position([tp])[0].offset
                if high >= 0 and pos >= 0:
                    lag += max(0, high - pos)
            metrics.set_delivery_lag(self.sub.id, lag)
        except Exception:  # metrics must never stop delivery
            pass

    async def _handle(self, msg: Message) -> None:
        value = msg.value()
        if value is None:
            return
        _kind, ts = msg.timestamp()
        if 0 < ts < self.sub.deliver_from_ms:
            return
        try:
            _name, record = self.shared.codec.decode(value, "Alert")
        except DecodeError as exc:
            log.warning(
                "subscription %s: skipped an undecodable record (%s)", self.sub.id, exc.reason
            )
            return
        if record.get("category") != self.sub.category:
            return
        try:
            message = notificatie.build(record, self.shared.delivery.public_url)
        except notificatie.NotDeliverable as exc:
            log.warning("subscription %s: skipped a record: %s", self.sub.id, exc)
            return
        if not self.sub.matches(message["kenmerken"]):
            return
        await self._deliver(message, msg)

    async def _deliver(self, message: dict[str, Any], msg: Message) -> None:
        body = notificatie.body(message)
        ident = notificatie.identity(message)
        fp = message["kenmerken"]["fingerprint"]
        version = int(message["kenmerken"]["version"])
        number = 0
        first_ms = _now_ms()

        async def attempt() -> Attempt:
            nonlocal number
            number += 1
            result = await self.shared.sender.post(self.sub.callback_url, self._auth, body, ident)
            metrics.record_delivery_attempt(self.sub.id, result.outcome, result.latency_s)
            self.entry.record_attempt(_now_ms(), fp, version, number, result)
            self.shared.write_log(self.entry)
            if not result.ok:
                log.info(
                    "subscription %s: attempt %d failed: %s",
                    self.sub.id,
                    number,
                    result.error or result.outcome,
                )
            return result

        def give_up(state: RetryCallState) -> Attempt:
            assert state.outcome is not None
            result: Attempt = state.outcome.result()
            return result

        retrying = AsyncRetrying(
            stop=stop_strategy(self.shared.delivery),
            wait=wait_strategy(self.shared.delivery),
            retry=retry_if_result(lambda a: not a.ok),
            retry_error_callback=give_up,
        )
        last: Attempt = await retrying(attempt)
        if last.ok:
            self.delivered += 1
            return
        await self._dead_letter(message, body, msg, last, number, first_ms, ident)

    async def _dead_letter(
        self,
        message: dict[str, Any],
        body: bytes,
        msg: Message,
        last: Attempt,
        attempts: int,
        first_ms: int,
        ident: str,
    ) -> None:
        """Park the notification with its last error; retried until the broker acknowledges
        (the offset is not committed before that)."""
        headers: list[tuple[str, str | bytes | None]] = [
            *build_headers(
                reason=DEAD_LETTER_REASON,
                message=last.error or last.outcome,
                stage="deliver",
                exception_class=f"hub.delivery.{last.outcome}",
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                origin="delivery",
            ),
            (H_SUBSCRIPTION, self.sub.id.encode()),
            (H_ATTEMPTS, str(attempts).encode()),
            (H_OUTCOME, last.outcome.encode()),
            (H_FIRST_ATTEMPT, str(first_ms).encode()),
            (H_NOTIFICATION_ID, ident.encode()),
        ]
        if last.status is not None:
            headers.append((H_STATUS, str(last.status).encode()))
        topic = self.shared.topics.dead_letter(self.sub.id)
        wait = 0.5
        while True:
            errors: list[str] = []

            def done(err: Any, _msg: Any, errors: list[str] = errors) -> None:
                if err is not None:
                    errors.append(str(err.name()))

            self.shared.producer.produce(
                topic,
                key=message["kenmerken"]["fingerprint"].encode(),
                value=body,
                headers=headers,
                on_delivery=done,
            )
            remaining = await asyncio.to_thread(self.shared.producer.flush, FLUSH_TIMEOUT_S)
            if remaining == 0 and not errors:
                break
            log.warning(
                "subscription %s: dead letter not acknowledged (%s); retrying",
                self.sub.id,
                errors[0] if errors else "time-out",
            )
            await asyncio.sleep(wait)
            with contextlib.suppress(Exception):  # its topic deleted meanwhile: create it again
                await asyncio.to_thread(
                    ensure_delivery_topics, self.shared.settings, (self.sub.id,)
                )
            wait = min(wait * 2, 30.0)
        metrics.record_delivery_dead_letter(self.sub.id)
        self.dead_lettered += 1
        self.entry.record_dead_letter(_now_ms())
        self.shared.write_log(self.entry)
        log.warning(
            "subscription %s: notification dead-lettered after %d attempts (%s)",
            self.sub.id,
            attempts,
            last.outcome,
        )


class Deliverer:
    """The supervisor: follows the subscriptions topic and runs one worker per subscription."""

    def __init__(self, settings: Settings, delivery: DeliverySettings) -> None:
        self.settings = settings
        self.delivery = delivery
        self.workers: dict[str, SubscriptionWorker] = {}
        self.problems: dict[str, str] = {}
        self.caught_up = False

    def readiness(self) -> tuple[bool, str]:
        if not self.caught_up:
            return False, "reading subscriptions"
        return True, f"delivering to {len(self.workers)} subscription(s)"

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        halt = threading.Event()  # a SIGTERM while waiting for the hub's topics ends the wait
        relay = asyncio.ensure_future(_relay(stop, halt))
        try:
            if not await asyncio.to_thread(wait_for_topics, s, halt=halt):
                return
        finally:
            relay.cancel()
        book_topics = DeliveryTopics.from_settings(s)
        await asyncio.to_thread(ensure_delivery_topics, s)
        entries = await asyncio.to_thread(read_log, s)
        producer = Producer(producer_config(s, **QUIET))
        async with Sender(self.delivery) as sender:
            shared = Shared(
                settings=s,
                delivery=self.delivery,
                sender=sender,
                producer=producer,
                codec=get_codec(),
                topics=book_topics,
                hub_topics=Topics.from_settings(s),
                log_entries=entries,
            )
            poller = asyncio.create_task(self._poll_producer(producer, stop))
            try:
                await self._follow(shared, stop)
            finally:
                for worker in list(self.workers.values()):
                    await worker.stop()
                self.workers.clear()
                poller.cancel()
                await asyncio.to_thread(producer.flush, FLUSH_TIMEOUT_S)

    async def _poll_producer(self, producer: Producer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            producer.poll(0)
            await asyncio.sleep(0.2)

    async def _follow(self, shared: Shared, stop: asyncio.Event) -> None:
        """Read the subscriptions topic from the start, reconcile at its end, keep following."""
        s = self.settings
        consumer = Consumer(
            consumer_config(
                s, f"{s.app_id}-delivery-supervisor", **{"enable.partition.eof": True, **QUIET}
            )
        )
        consumer.assign([TopicPartition(shared.topics.subscriptions, 0, -2)])  # OFFSET_BEGINNING
        book: dict[str, Subscription] = {}
        dirty = True
        try:
            while not stop.is_set():
                batch = await asyncio.to_thread(consumer.consume, 500, 0.5)
                at_end = False
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        at_end = at_end or err.code() == KafkaError._PARTITION_EOF
                        continue
                    fold(book, msg.key(), msg.value())
                    dirty = True
                await self._restart_crashed(book, shared)
                if at_end or (self.caught_up and batch):
                    self.caught_up = True
                    if dirty:
                        await self._reconcile(book, shared)
                        dirty = False
        finally:
            await asyncio.to_thread(consumer.close)

    async def _restart_crashed(self, book: dict[str, Subscription], shared: Shared) -> None:
        """A worker whose task ended with an error (broker trouble, a bug) is started again:
        its uncommitted record is read again, nothing is skipped."""
        crashed = False
        for sub_id, worker in list(self.workers.items()):
            task = worker.task
            if task is None or not task.done() or task.cancelled():
                continue
            exc = task.exception()
            log.error("subscription %s: worker ended (%s); restarting", sub_id, type(exc).__name__)
            del self.workers[sub_id]
            crashed = True
        if crashed:
            await asyncio.sleep(1.0)
            await self._reconcile(book, shared)

    async def _reconcile(self, book: dict[str, Subscription], shared: Shared) -> None:
        for sub_id in list(self.workers):
            if sub_id not in book or book[sub_id] != self.workers[sub_id].sub:
                await self.workers.pop(sub_id).stop()
                metrics.clear_delivery(sub_id)
                log.info("subscription %s stopped", sub_id)
        key = self.delivery.secret_key.get_secret_value() if self.delivery.secret_key else None
        new = [sub for sub_id, sub in sorted(book.items()) if sub_id not in self.workers]
        if new:
            await asyncio.to_thread(ensure_delivery_topics, self.settings, tuple(s.id for s in new))
        for sub in new:
            try:
                auth = unseal(sub.auth.get_secret_value(), key) if sub.auth is not None else None
            except SecretError as exc:
                self.problems[sub.id] = str(exc)
                log.error("subscription %s not started: %s", sub.id, exc)
                continue
            self.problems.pop(sub.id, None)
            worker = SubscriptionWorker(sub, auth, shared)
            self.workers[sub.id] = worker
            worker.start()
            log.info("subscription %s started (%s)", sub.id, sub.channel)


async def _relay(stop: asyncio.Event, halt: threading.Event) -> None:
    """Set the thread-side ``halt`` when the asyncio ``stop`` is set."""
    await stop.wait()
    halt.set()


def run_deliver(settings: Settings, delivery: DeliverySettings) -> None:
    """Run until SIGTERM/SIGINT; serves /metrics, /healthz and /readyz on HUB_METRICS_PORT."""
    import signal

    from hub.logs import setup_logging

    setup_logging(level=settings.log_level, json=settings.log_json)
    metrics.set_worker_info(role="delivery")
    deliverer = Deliverer(settings, delivery)
    server = (
        metrics.start_metrics_server(settings.metrics_port, readiness=deliverer.readiness)
        if settings.metrics_port
        else None
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = asyncio.create_task(deliverer.run(stop))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            stopper.cancel()
            runner.result()  # an error in the runner ends the process with it
            return
        await runner

    try:
        asyncio.run(main())
    finally:
        if server is not None:
            server.close()
