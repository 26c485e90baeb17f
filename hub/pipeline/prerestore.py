"""Bulk restore of the Faust tables from their changelogs, before Faust starts (issue 17).

Faust restores a wiped (or behind) table partition by replaying its changelog message by message
through aiokafka and its stream machinery: about 3k records/s on this machine, 11-25 s for the
quick bench's 113k records and minutes at full size. This reads the same changelog partitions
with a confluent-kafka consumer (C fetches, large batches) and writes them into the very
RocksDB databases Faust opens (same paths, same options: the table's own store opens them), in
WriteBatches of which each also sets Faust's changelog offset key
(``Store.offset_key``) to the last changelog offset it holds. Faust's own recovery then
starts from that offset (``Recovery._add`` reads ``persisted_offset``) and replays only what was
written after it: nothing, when no other worker wrote meanwhile.

Exactness: a changelog is applied exactly as ``Store.apply_changelog_batch`` does, in offset
order per partition, a value a put and a tombstone (``None``) a delete, so the database holds
the latest value per key (the hub's next-input key, :data:`hub.pipeline.gaps.NEXT_INPUT_KEY`,
included: it is an ordinary key). Every WriteBatch is atomic with its offset, so stopping at any
point (deadline, error) leaves a consistent partition that Faust continues from. The stored
offset follows Faust's convention: the offset of the last record applied (Faust seeks to it and
re-reads that one record).

Every partition of each table is restored, not only the ones this worker will own (the group's
assignment is unknown before Faust joins it): a partition assigned later resumes from its stored
offset, as a standby would. In a group of n workers each restores everything (C speed: seconds).
Anything unexpected (broker away, a database locked by another process) skips the partition or
the whole step with a warning: Faust's own recovery remains the fallback, never a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from rocksdict import WriteBatch

from hub.pipeline.clients import consumer_config
from hub.settings import Settings

log = logging.getLogger(__name__)

#: messages per consume call; their values are the most a partition chunk holds in memory
BATCH = 5_000
#: librdkafka prefetch of the restore consumer (closed before Faust starts): 16 MiB restored
#: the quick bench's changelogs as fast as 64 MiB did, with a 15 MiB lower peak RSS
BUFFERS = {
    "enable.partition.eof": True,
    "queued.max.messages.kbytes": 16_384,
    "fetch.max.bytes": 16_777_216,
    "max.partition.fetch.bytes": 8_388_608,
}


class PartitionWriter:
    """Applies one changelog partition to one RocksDB, a chunk (one WriteBatch) at a time."""

    def __init__(self, db: Any, offset_key: bytes) -> None:
        self.db = db
        self.offset_key = offset_key
        self._chunk: dict[bytes, bytes | None] = {}
        self._last: int | None = None  # offset of the last record added
        self.stored: int | None = None  # offset key value last written
        self.records = 0

    def persisted(self) -> int | None:
        raw = self.db.get(self.offset_key)
        return int(raw) if raw is not None else None

    def add(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        """One changelog record, in offset order (a ``None`` value deletes the key)."""
        if key is not None:  # Faust cannot apply a keyless record either; it has none
            self._chunk[key] = value
        self._last = offset
        self.records += 1

    def flush(self, through: int | None = None) -> None:
        """The chunk and the offset (``through``, else the last record's) in one WriteBatch."""
        offset = self._last if through is None else max(through, self._last or -1)
        if offset is None or (not self._chunk and offset == self.stored):
            return
        batch = WriteBatch(raw_mode=True)
        for key, value in self._chunk.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self.offset_key, str(offset).encode())
        self.db.write(batch)
        self._chunk.clear()
        self.stored = offset


@dataclass
class Target:
    """One changelog partition to restore and its database."""

    table: str
    tp: TopicPartition  # offset: where reading starts
    end: int  # high watermark when the restore began: done once read up to here
    writer: PartitionWriter


@dataclass
class Report:
    partitions: int = 0  # partitions that had something to restore
    records: int = 0
    skipped: list[str] = field(default_factory=list)
    complete: bool = True
    seconds: float = 0.0


def apply_changelogs(
    consumer: Any, targets: list[Target], deadline: float, batch: int = BATCH
) -> bool:
    """Read every target from its start offset to its end into its database; True when all
    got there before ``deadline`` (monotonic). What was read is written either way."""
    pending = {(t.tp.topic, t.tp.partition): t for t in targets}
    if not pending:
        return True
    consumer.assign([t.tp for t in targets])
    while pending and time.monotonic() < deadline:
        touched: set[tuple[str, int]] = set()
        finished: list[tuple[tuple[str, int], int | None]] = []
        for msg in consumer.consume(num_messages=batch, timeout=0.5):
            at = (msg.topic() or "", msg.partition() or 0)
            target = pending.get(at)
            if target is None:
                continue  # done already (prefetched beyond the end)
            offset = msg.offset()
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF and offset is not None:
                    if offset >= target.end:  # read through the end (trailing ones compacted)
                        finished.append((at, offset - 1))
                    continue
                if err.fatal():
                    raise RuntimeError(f"changelog read failed: {err.str()}")
                continue  # transient (librdkafka retries); the deadline bounds the wait
            if offset is None:
                continue
            target.writer.add(msg.key(), msg.value(), offset)
            touched.add(at)
            if offset + 1 >= target.end:
                finished.append((at, None))
        for at in touched:
            if at in pending:
                pending[at].writer.flush()
        for at, through in finished:
            target = pending.pop(at, None)
            if target is not None:
                target.writer.flush(through)
                consumer.pause([target.tp])
    return not pending


def pre_restore(settings: Settings, tables: Iterable[Any], timeout_s: float = 600.0) -> Report:
    """Bring every partition database of ``tables`` (Faust tables with a RocksDB store) up to
    its changelog's end; a best effort before Faust starts (see the module docstring)."""
    began = time.monotonic()
    report = Report()
    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-pre-restore", **BUFFERS))
    dbs: list[Any] = []
    try:
        targets: list[Target] = []
        for table in tables:
            store: Any = table.data
            if not hasattr(store, "rocksdb_options"):
                continue  # not a RocksDB store (memory:// in some tests)
            topic = table.changelog_topic.get_topic_name()
            for partition in range(table.partitions or settings.partitions):
                tp = TopicPartition(topic, partition)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                if high <= low:
                    continue  # empty changelog: nothing to restore
                try:
                    db = _open(store, partition)
                except Exception as exc:  # e.g. locked by another process on this data dir
                    report.skipped.append(f"{table.name}[{partition}]: {type(exc).__name__}")
                    continue
                dbs.append(db)
                writer = PartitionWriter(db, store.offset_key)
                persisted = writer.persisted()
                if persisted is not None and persisted + 1 >= high:
                    continue  # up to date (or ahead: Faust's consistency check decides)
                start = OFFSET_BEGINNING if persisted is None else persisted + 1
                tp.offset = start
                targets.append(Target(table.name, tp, high, writer))
        report.partitions = len(targets)
        report.complete = apply_changelogs(consumer, targets, began + timeout_s)
        report.records = sum(t.writer.records for t in targets)
    except Exception as exc:  # an optimisation: Faust's own recovery takes over
        report.complete = False
        log.warning(
            "changelog pre-restore stopped (%s: %s); Faust restores the rest",
            type(exc).__name__,
            exc,
        )
    finally:
        consumer.close()
        for db in dbs:
            _close(db)
    report.seconds = time.monotonic() - began
    return report


def _open(store: Any, partition: int) -> Any:
    """The partition's database exactly as Faust opens it (path and options of its store)."""
    path: Path = store.partition_path(partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    return store.rocksdb_options.open(path)


def _close(db: Any) -> None:
    try:
        db.flush()  # to SST files: Faust's open does not replay a large WAL
    finally:
        db.close()
