"""Bulk writes to a Faust RocksDB table with a correct changelog, and the agent's output records.

Faust's ``table[key] = value`` sends one changelog message through aiokafka per key, which is the
hot path's ceiling. :class:`BatchedTableWriter` does the same thing in bulk: the batch's changelog
records are produced with confluent-kafka to the table's own changelog topic and partition
(together with the batch's output records), the producer is flushed so every record is
acknowledged, and only then are the values and the changelog offset written to the partition's
RocksDB in one WriteBatch.

Order matters across a crash: the batch's output records are flushed (acknowledged) *before* its
changelog records are produced. Were the changelog ahead of the outputs, a crash between the two
would let recovery restore the new state while the outputs were never written; the replayed batch
would then find nothing changed and emit nothing (lost transitions, version gaps). With outputs
first, a crash at any point leaves either the old state (the replay re-derives and re-emits the
same records: exact (fingerprint, version) repeats) or the new state with every output already on
the broker. A crash before the RocksDB write leaves the persisted offset behind, so
Faust's recovery replays the changelog into RocksDB; the input offset is committed by Faust only
after the agent's iteration returns, so at worst the batch is read again (and the engine ignores
what it already applied). One writer per agent: producers and offsets are not shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from confluent_kafka import KafkaError, Message, Producer
from rocksdict import WriteBatch

from hub import metrics
from hub.pipeline import trace
from hub.pipeline.stuck import StuckProducerGuard, purge_stuck


class DeliveryFailed(RuntimeError):
    """The broker refused a record; the batch is not committed and will be replayed."""


class BatchedTableWriter:
    def __init__(
        self,
        table: faust.Table,
        producer: Producer,
        on_stall: Callable[[str | None], None] | None = None,
        stall_after_s: float = 5.0,
        guard: StuckProducerGuard | None = None,
        new_producer: Callable[[], Producer] | None = None,
    ) -> None:
        self.table = table
        self.producer = producer
        # a producer stuck after the broker came back is replaced (hub.pipeline.stuck)
        self.guard = guard
        self.new_producer = new_producer
        self.on_stall = on_stall  # told while records wait for an unreachable broker
        self.stall_after_s = stall_after_s
        self._errors: list[str] = []
        self._offsets: dict[int, int] = {}

    def db(self, partition: int) -> Any:
        """The RocksDB of one partition (opened by Faust on assignment and recovery)."""
        data: Any = self.table.data  # faust's RocksDB store (its type stubs say StoreT)
        return data._db_for_partition(partition)

    def get_many(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        return self.db(partition)[keys] if keys else []

    def produce(self, topic: str, key: bytes | None, value: bytes | None, **kwargs: Any) -> None:
        self.producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery, **kwargs)

    async def persist(
        self, writes: dict[int, dict[bytes, bytes]], spans: trace.Spans | None = None
    ) -> None:
        """Outputs acknowledged, then the changelog acknowledged, then RocksDB in one batch.

        ``spans`` (diagnostics) gets the time of each of the three.
        """
        await self.flush()
        if spans is not None:
            spans.mark("flush_outputs")
        changelog = self.table.changelog_topic.get_topic_name()
        self._offsets.clear()
        for partition, items in writes.items():
            for key, value in items.items():
                self.producer.produce(
                    changelog,
                    key=key,
                    value=value,
                    partition=partition,
                    on_delivery=self._on_changelog,
                )
        await self.flush()
        if spans is not None:
            spans.mark("changelog")
        for partition, items in writes.items():
            if not items:
                continue
            batch = WriteBatch(raw_mode=True)
            for key, value in items.items():
                batch.put(key, value)
            offset = self._offsets.get(partition)
            if offset is not None:
                data: Any = self.table.data
                batch.put(data.offset_key, str(offset).encode())
            self.db(partition).write(batch)
            if trace.ENABLED:
                trace.log.warning(
                    "trace %s persisted p%d keys=%d changelog-offset=%s",
                    self.table.name,
                    partition,
                    len(items),
                    offset,
                )
        if spans is not None:
            spans.mark("rocksdb")

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged or failed, however long that takes.

        While the broker is away librdkafka keeps retrying (up to ``message.timeout.ms``); giving
        up earlier would leave records queued that a retry of the batch produces a second time.
        A record that failed raises :class:`DeliveryFailed` once the queue is empty.
        """
        stalled = False
        while True:
            remaining = await asyncio.to_thread(self.producer.flush, self.stall_after_s)
            if not remaining:
                break
            if not stalled and self.on_stall is not None:
                self.on_stall(f"{remaining} record(s) waiting for the broker")
            stalled = True
            guarded = self.guard is not None and self.new_producer is not None
            if guarded and await asyncio.to_thread(self._stuck):
                await asyncio.to_thread(self._replace_producer, remaining)
                break
        if self.guard is not None:
            self.guard.reset()
        if stalled and self.on_stall is not None:
            self.on_stall(None)
        if self._errors:
            errors, self._errors = self._errors[:5], []
            raise DeliveryFailed(f"records not delivered: {errors}")

    def _stuck(self) -> bool:
        return self.guard is not None and self.guard.stuck()

    def _replace_producer(self, remaining: int) -> None:
        """Purge the stuck producer (its records fail this attempt) and continue with a new one."""
        assert self.new_producer is not None
        self._errors.append(purge_stuck(self.producer, remaining))
        self.producer = self.new_producer()

    def _on_changelog(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._on_delivery(err, msg)
            return
        partition, offset = msg.partition(), msg.offset()
        if (
            partition is not None
            and offset is not None
            and offset > self._offsets.get(partition, -1)
        ):
            self._offsets[partition] = offset

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            metrics.record_producer_error(msg.topic() or "unknown", err.name())
            self._errors.append(f"{msg.topic()}: {err.str()}")
