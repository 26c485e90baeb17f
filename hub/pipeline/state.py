"""Bulk writes to a Faust RocksDB table with a correct changelog, and the agent's output records.

Faust's ``table[key] = value`` sends one changelog message through aiokafka per key, which is the
hot path's ceiling. :class:`BatchedTableWriter` does the same thing in bulk: the batch's changelog
records are produced (:mod:`hub.pipeline.aio_producer`) to the table's own changelog topic and
partition, and once they are acknowledged the values and the changelog offset go to the
partition's RocksDB in one WriteBatch.

Order matters across a crash: a step's output records are acknowledged *before* its changelog
records are produced. Were the changelog ahead of the outputs, a crash between the two would let
recovery restore the new state while the outputs were never written; the replayed batch would
then find nothing changed and emit nothing (lost transitions, version gaps).

One broker round trip per step, and not in the step's way (issue 17): a step produces its
outputs and returns; its flush runs in the background while the next step takes and processes
its batch. That flush acknowledges the step's outputs together with the previous step's
changelog; then the previous step's state goes to RocksDB and this step's changelog is produced
(acknowledged by the next flush). The next step waits for it (:meth:`ready`) only before
producing its own outputs, so outputs reach every partition in step order, as before. Until
RocksDB has it a step's state is *staged* (outputs produced) and then *pending* (changelog
produced): reads (:meth:`get_many`) see it first. An idle stage settles it on a timer, a
rebalance before its partitions move. Across a crash at any point:
- old state, outputs maybe on the broker: the batch is read again (Faust had not committed it,
  or it had and the input gap check finds the offsets past the stored next input offset,
  :mod:`hub.pipeline.gaps`), re-derived and re-emitted: exact (fingerprint, version) repeats;
- new state in the changelog but not in RocksDB: Faust's recovery replays the changelog from the
  offset RocksDB stores.
A failed flush fails the next step (it is retried): the staged state whose outputs failed is
dropped, so the retry's gap check re-derives that batch from the stored state; the pending state
stays and its changelog is produced again. A step's metrics count once its outputs are
acknowledged, so a re-derived batch is not counted twice.
One writer per agent: producers and offsets are not shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import faust
from rocksdict import WriteBatch

from hub import metrics
from hub.pipeline import trace
from hub.pipeline.stuck import StuckProducerGuard


class StepProducer(Protocol):
    """What a writer needs of its producer (:class:`hub.pipeline.aio_producer.AioStepProducer`)."""

    def produce(
        self,
        topic: str,
        key: bytes | None = ...,
        value: bytes | None = ...,
        partition: int | None = ...,
        headers: list[tuple[str, bytes]] | None = ...,
        on_delivery: Callable[[Any, Any], None] | None = ...,
    ) -> None: ...

    async def flush_async(self, timeout: float) -> int: ...

    def purge(self, **kwargs: Any) -> None: ...

    async def stop(self) -> None: ...


class DeliveryFailed(RuntimeError):
    """The broker refused a record; the batch is not committed and will be replayed."""


class BatchedTableWriter:
    def __init__(
        self,
        table: faust.Table,
        producer: StepProducer,
        on_stall: Callable[[str | None], None] | None = None,
        stall_after_s: float = 5.0,
        guard: StuckProducerGuard | None = None,
        new_producer: Callable[[], StepProducer] | None = None,
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
        # the last step's state: changelog produced, not yet known acknowledged; not in RocksDB
        self._pending: dict[int, dict[bytes, bytes]] = {}
        # this step's state: outputs produced, not yet acknowledged; changelog not produced
        self._staged: dict[int, dict[bytes, bytes]] = {}
        self._completion: asyncio.Future[None] | None = None  # the last step's, in the background
        self._resend = False

    def db(self, partition: int) -> Any:
        """The RocksDB of one partition (opened by Faust on assignment and recovery)."""
        data: Any = self.table.data  # faust's RocksDB store (its type stubs say StoreT)
        return data._db_for_partition(partition)

    def get_many(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        """Values as of the last step: its staged, then its pending state, RocksDB for the rest.

        RocksDB is asked only for the keys neither layer holds. At 1,000 events/s most reads
        are of keys the last steps wrote (the next-input offset of every partition, read twice
        a step by the gap check, and the busy addresses): reading them all from RocksDB made
        ~1,200 calls a second there, ~24 µs of CPU and ~80 µs of wall time each (waiting for
        the GIL or a core meanwhile), about a tenth of the event loop's time (issue 17,
        measured in the bench's latency phase).
        """
        if not keys:
            return []
        staged = self._staged.get(partition)
        pending = self._pending.get(partition)
        if not staged and not pending:
            stored: list[bytes | None] = self.db(partition)[keys]
            return stored
        values: list[bytes | None] = [None] * len(keys)
        unknown: list[int] = []
        for i, key in enumerate(keys):
            if staged and key in staged:
                values[i] = staged[key]
            elif pending and key in pending:
                values[i] = pending[key]
            else:
                unknown.append(i)
        if unknown:
            read = self.db(partition)[[keys[i] for i in unknown]]
            for i, value in zip(unknown, read, strict=True):
                values[i] = value
        return values

    def produce(self, topic: str, key: bytes | None, value: bytes | None, **kwargs: Any) -> None:
        self.producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery, **kwargs)

    async def ready(self) -> None:
        """Wait until the last step completed: its outputs acknowledged, its changelog produced.

        A step calls this before producing its own outputs, so they follow the last step's on
        every partition. If the last step's outputs failed, its staged state is dropped (the
        input gap check re-derives it from the stored state: :mod:`hub.pipeline.gaps`) and
        :class:`DeliveryFailed` is raised: the caller's step is retried.
        """
        completion, self._completion = self._completion, None
        if completion is None:
            return
        try:
            await completion
        except BaseException:
            self._staged.clear()
            raise

    async def persist(
        self,
        writes: dict[int, dict[bytes, bytes]],
        on_acknowledged: Callable[[], None] | None = None,
    ) -> None:
        """Stage this step's state (its outputs are produced) and complete it in the background.

        The completion: one flush acknowledges this step's outputs and the previous step's
        changelog; then the previous step's state goes to RocksDB and this step's changelog is
        produced (acknowledged by the next flush). ``on_acknowledged`` runs once this step's
        outputs are acknowledged (its metrics). The next step's :meth:`ready` waits for it.
        """
        await self.ready()
        for partition, items in writes.items():
            if items:
                self._staged.setdefault(partition, {}).update(items)
        self._completion = asyncio.ensure_future(self._complete(on_acknowledged))

    async def _complete(self, on_acknowledged: Callable[[], None] | None) -> None:
        if self._resend:  # the last flush failed: its changelog records may be among the failed
            self._produce_changelog(self._pending)
            self._resend = False
        try:
            await self.flush()
        except DeliveryFailed:
            self._resend = True
            raise
        if on_acknowledged is not None:
            on_acknowledged()
        self._write_pending()
        staged, self._staged = self._staged, {}
        self._produce_changelog(staged)
        for partition, items in staged.items():
            self._pending.setdefault(partition, {}).update(items)

    async def settle(self) -> None:
        """Acknowledge the pending changelog and write its state to RocksDB (idle, rebalance)."""
        await self.ready()
        if not self._pending and not self._resend:
            return
        await self.persist({})
        await self.ready()

    def forget_pending(self) -> None:
        """Drop state whose changelog was never acknowledged (it could not be settled).

        Safe: its input offsets are past the next input offset RocksDB stores, so the next batch
        of the partition finds them as a gap and processes them again from the stored state
        (:mod:`hub.pipeline.gaps`); the outputs they re-emit are exact repeats.
        """
        if self._completion is not None:
            self._completion.cancel()
            self._completion = None
        self._pending.clear()
        self._staged.clear()
        self._resend = False

    @property
    def pending(self) -> bool:
        return bool(self._pending or self._staged or self._completion is not None)

    def _produce_changelog(self, writes: dict[int, dict[bytes, bytes]]) -> None:
        changelog = self.table.changelog_topic.get_topic_name()
        for partition, items in writes.items():
            for key, value in items.items():
                self.producer.produce(
                    changelog,
                    key=key,
                    value=value,
                    partition=partition,
                    on_delivery=self._on_changelog,
                )

    def _write_pending(self) -> None:
        """The pending state (its changelog acknowledged) and its changelog offsets to RocksDB."""
        for partition, items in self._pending.items():
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
        self._pending.clear()
        self._offsets.clear()

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged or failed, however long that takes.

        While the broker is away the producer keeps retrying (a batch for up to its request
        timeout); giving up earlier would leave records queued that a retry of the batch
        produces a second time.
        A record that failed raises :class:`DeliveryFailed` once the queue is empty.
        """
        stalled = False
        while True:
            remaining = await self.producer.flush_async(self.stall_after_s)
            if not remaining:
                break
            if not stalled and self.on_stall is not None:
                self.on_stall(f"{remaining} record(s) waiting for the broker")
            stalled = True
            guarded = self.guard is not None and self.new_producer is not None
            if guarded and await asyncio.to_thread(self._stuck):
                self._replace_producer(remaining)
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
        self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        self._errors.append(f"{remaining} record(s) purged from a stuck producer")
        self.producer = self.new_producer()

    def _on_changelog(self, err: Any, msg: Any) -> None:
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

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            metrics.record_producer_error(msg.topic() or "unknown", err.name())
            self._errors.append(f"{msg.topic()}: {err.str()}")
