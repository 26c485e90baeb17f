"""The table writers' producer: one produce request per broker for a whole step.

librdkafka sends one ProduceRequest per partition (confluentinc/librdkafka#1700, open), and the
broker's cost is mostly per request. A correlate step writes to the partitions its input touched
in four output topics and the changelog: at 1,000 events/s ~20 requests a step, ~1,000 a second,
the largest share of the broker's work (issue 17; ``python -m bench.produce_requests``: a step of
40 partitions x 2 records costs the broker 8.1 ms of CPU through librdkafka, 1.0 ms through
aiokafka). aiokafka, which Faust already runs on, puts every partition bound for one broker in
one request.

:class:`AioStepProducer` keeps the surface the writers use (``produce`` with a delivery
callback, a flush that says how many records are still unacknowledged, ``purge``): ``produce``
only queues; :meth:`flush_async` sends the queue as one batch per partition and waits. A batch
that failed reports every record through its callback; one that was acknowledged reports once,
through its last record's callback with that record's offset (the writers need only the highest
changelog offset per partition, and per-record reports cost the worker's one Python thread).
Records keep librdkafka's partitioning (murmur2 of the key,
:func:`hub.pipeline.clients.murmur2_partition`) and acks=all; they are neither compressed nor
idempotent (see :meth:`AioStepProducer._started`). A batch the broker does not acknowledge
within ``request_timeout_ms`` fails (its records' callbacks get the error): the writer's step is
then retried, as for a failed librdkafka delivery.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from hub.pipeline.clients import murmur2_partition
from hub.security import aiokafka_security
from hub.settings import Settings

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[Any, Any], None]

#: A partition's records go out in batches of at most this many bytes (several per request).
MAX_BATCH_BYTES = 1_048_576
#: A batch not acknowledged within this fails (the writer retries its step); librdkafka's
#: ``message.timeout.ms`` is 300 s, but a shorter attempt lets the retry recreate a deleted topic.
REQUEST_TIMEOUT_MS = 15_000


@dataclass(frozen=True, slots=True)
class Delivered:
    """A delivery report's record, with confluent-kafka's ``Message`` accessors the writers use."""

    _topic: str
    _partition: int
    _offset: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


@dataclass(frozen=True, slots=True)
class DeliveryError:
    """A failed delivery, with confluent-kafka's ``KafkaError`` accessors the writers use."""

    _name: str
    _text: str

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._text

    @classmethod
    def of(cls, exc: BaseException) -> DeliveryError:
        return cls(type(exc).__name__, str(exc) or type(exc).__name__)


_Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]], DeliveryCallback | None]


class AioStepProducer:
    """Queues a step's records and sends them per broker in one request (see module doc)."""

    def __init__(self, settings: Settings, request_timeout_ms: int = REQUEST_TIMEOUT_MS) -> None:
        self.settings = settings
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._queue: list[tuple[str, int | None, _Record]] = []
        # sent, not yet acknowledged: (delivery future, topic, partition, records)
        self._in_flight: list[tuple[asyncio.Future[Any], str, int, list[_Record]]] = []
        self._partitions: dict[str, int] = {}
        self._stopping: asyncio.Future[None] | None = None  # a purged producer, stopping

    def __len__(self) -> int:
        """Records queued or in flight (confluent-kafka's ``len(producer)``)."""
        return len(self._queue) + sum(len(records) for *_, records in self._in_flight)

    def produce(
        self,
        topic: str,
        key: bytes | None = None,
        value: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        self._queue.append((topic, partition, (key, value, headers or [], on_delivery)))

    async def flush_async(self, timeout: float) -> int:
        """Send what is queued and wait up to ``timeout`` s; the records still unacknowledged."""
        if self._queue:
            try:
                await self._send_queue()
            except Exception as exc:  # could not start or find a topic: the queue failed
                error = DeliveryError.of(exc)
                for topic, partition, record in self._queue:
                    _report(record, error, topic, partition if partition is not None else -1, -1)
                self._queue.clear()
        if self._in_flight:
            futures = [future for future, *_ in self._in_flight]
            await asyncio.wait(futures, timeout=timeout)
            self._report_done()
        return len(self)

    def purge(self, **_kwargs: Any) -> None:
        """Fail every record not yet acknowledged (a stuck producer: :mod:`hub.pipeline.stuck`).

        Their callbacks get the error now; the aiokafka producer is stopped in the background.
        """
        error = DeliveryError("_PURGE", "purged from a stuck producer")
        for topic, partition, record in self._queue:
            _report(record, error, topic, partition if partition is not None else -1, -1)
        self._queue.clear()
        for future, topic, partition, records in self._in_flight:
            future.cancel()
            for record in records:
                _report(record, error, topic, partition, -1)
        self._in_flight.clear()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self._stopping = asyncio.ensure_future(_stop_quietly(producer))

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _stop_quietly(producer)

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.broker,
                acks="all",
                # not idempotent: aiokafka 0.14 keeps a failed batch's sequence numbers (no epoch
                # bump as in the Java client), so after a long broker outage every later batch
                # of that partition was refused as OutOfOrderSequenceNumber or, worse, taken
                # for a DuplicateSequenceNumber and reported delivered while it was not (fault
                # suite, "broker stopped 120 s": 2,171 records missing). Without it a batch
                # retried inside the client may land twice: an exact repeat, which the hub's
                # outputs allow; one request in flight per broker keeps each partition's order.
                enable_idempotence=False,
                # uncompressed: aiokafka compresses a batch in the event loop, the worker's one
                # Python thread, where librdkafka did it in its own threads. With lz4 the full
                # bench's backfill fell from 16.2k to 14.2k events/s and 5,000 events/s fell
                # behind (p99 1.4-6.1 s against 0.8 s); without, 15.4k and 0.6 s.
                compression_type=None,
                max_batch_size=MAX_BATCH_BYTES,
                max_request_size=8_388_608,
                linger_ms=0,  # a step's batches are closed and sent together by flush_async
                request_timeout_ms=self.request_timeout_ms,
                **aiokafka_security(self.settings),
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def _partition_count(self, producer: AIOKafkaProducer, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = len(await producer.partitions_for(topic))
            self._partitions[topic] = count
        return count

    async def _send_queue(self) -> None:
        producer = await self._started()
        # every topic's metadata first: send_batch then hands over without waiting, so the
        # sender finds all batches at once and puts them in one request per broker
        unknown: dict[str, DeliveryError] = {}
        for topic in {topic for topic, _partition, _record in self._queue}:
            try:
                await self._partition_count(producer, topic)
            except Exception as exc:  # missing (deleted?) or not allowed: its records fail
                unknown[topic] = DeliveryError.of(exc)
        grouped: dict[tuple[str, int], list[_Record]] = {}
        for topic, partition, record in self._queue:
            if topic in unknown:
                _report(record, unknown[topic], topic, -1 if partition is None else partition, -1)
                continue
            if partition is None:
                count = self._partitions[topic]
                key = record[0]
                partition = _partition_of(key, count) if key else random.randrange(count)
            grouped.setdefault((topic, partition), []).append(record)
        self._queue.clear()
        batches: list[tuple[Any, str, int, list[_Record]]] = []
        for (topic, partition), records in grouped.items():
            batch = producer.create_batch()
            taken: list[_Record] = []
            for record in records:
                key, value, headers, _callback = record
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    if not taken:  # a single record larger than a batch
                        _report(record, _too_large(value), topic, partition, -1)
                        continue
                    batch.close()
                    batches.append((batch, topic, partition, taken))
                    batch, taken = producer.create_batch(), []
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        _report(record, _too_large(value), topic, partition, -1)
                        continue
                taken.append(record)
            if taken:
                batch.close()
                batches.append((batch, topic, partition, taken))
        for batch, topic, partition, taken in batches:
            try:
                future = await producer.send_batch(batch, topic, partition=partition)
            except Exception as exc:  # closed, metadata timeout: these records failed
                error = DeliveryError.of(exc)
                for record in taken:
                    _report(record, error, topic, partition, -1)
                continue
            self._in_flight.append((future, topic, partition, taken))

    def _report_done(self) -> None:
        still: list[tuple[asyncio.Future[Any], str, int, list[_Record]]] = []
        for future, topic, partition, records in self._in_flight:
            if not future.done():
                still.append((future, topic, partition, records))
                continue
            if future.cancelled():
                error: DeliveryError | None = DeliveryError("_CANCELLED", "batch cancelled")
                base = -1
            elif (exc := future.exception()) is not None:
                error, base = DeliveryError.of(exc), -1
            else:
                error, base = None, future.result().offset
            if error is None:  # one report, the last record's: offsets only grow
                _report(records[-1], None, topic, partition, base + len(records) - 1)
                continue
            for record in records:
                _report(record, error, topic, partition, -1)
        self._in_flight = still


@functools.lru_cache(maxsize=1 << 17)
def _partition_of(key: bytes, count: int) -> int:
    """librdkafka's murmur2 partition, remembered: aiokafka's murmur2 is pure Python (~4 µs a
    key, a tenth of the worker's time per event in a backfill) and the same addresses recur."""
    return murmur2_partition(key, count)


def _report(
    record: _Record, error: DeliveryError | None, topic: str, partition: int, offset: int
) -> None:
    callback = record[3]
    if callback is not None:
        callback(error, Delivered(topic, partition, offset))


def _too_large(value: bytes | None) -> DeliveryError:
    size = len(value) if value is not None else 0
    return DeliveryError("MSG_SIZE_TOO_LARGE", f"record of {size} bytes exceeds a batch")


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 10.0)
    except Exception as exc:  # a stuck or unreachable producer: let it go
        log.warning("could not stop a writer producer cleanly: %s", type(exc).__name__)
