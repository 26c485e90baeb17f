"""The changelog pre-restore applies a changelog to RocksDB exactly as Faust's recovery does.

A scripted consumer stands in for the broker (the broker tests are in
tests/integration/test_prerestore.py); the databases are real RocksDB files (rocksdict).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import rocksdict
from confluent_kafka import KafkaError, TopicPartition

from hub.pipeline.gaps import NEXT_INPUT_KEY
from hub.pipeline.prerestore import PartitionWriter, Target, apply_changelogs

OFFSET_KEY = b"__faust\x00offset__"  # faust.stores.rocksdb.Store.offset_key
TOPIC = "app-dossiers-changelog"


class Eof:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return False

    def str(self) -> str:
        return "eof"


class Msg:
    def __init__(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None, error: Any = None
    ) -> None:
        self._p, self._o, self._k, self._v, self._e = partition, offset, key, value, error

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes | None:
        return self._v

    def error(self) -> Any:
        return self._e


class ScriptedConsumer:
    """Hands out the scripted messages in batches of ``per_call``, then nothing."""

    def __init__(self, messages: list[Msg], per_call: int = 7) -> None:
        self.messages = messages
        self.per_call = per_call
        self.assigned: list[TopicPartition] = []
        self.paused: list[TopicPartition] = []

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = tps

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused.extend(tps)

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        n = min(num_messages, self.per_call)
        out, self.messages = self.messages[:n], self.messages[n:]
        if not out:
            time.sleep(min(timeout, 0.01))
        return out


def open_db(path: Path) -> Any:
    return rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))


def contents(db: Any) -> dict[bytes, bytes]:
    return dict(db.items())


def changelog(seed: int, n: int) -> list[tuple[bytes, bytes | None]]:
    """Puts, overwrites, tombstones and re-puts after a tombstone over a small key pool."""
    rnd = random.Random(seed)
    keys = [f"addr-{i}".encode() for i in range(40)] + [NEXT_INPUT_KEY]
    records: list[tuple[bytes, bytes | None]] = []
    for i in range(n):
        key = rnd.choice(keys)
        value = None if rnd.random() < 0.15 else f"v{i}".encode()
        records.append((key, value))
    return records


def fold(records: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def test_changelog_applied_in_order_leaves_the_latest_value_per_key_and_the_last_offset(
    tmp_path: Path,
) -> None:
    records = changelog(seed=3, n=500)
    db = open_db(tmp_path / "p0.db")
    target = Target(
        "dossiers", TopicPartition(TOPIC, 0, 0), len(records), PartitionWriter(db, OFFSET_KEY)
    )
    consumer = ScriptedConsumer([Msg(0, o, k, v) for o, (k, v) in enumerate(records)])

    assert apply_changelogs(consumer, [target], time.monotonic() + 10, batch=50)

    state = contents(db)
    assert state.pop(OFFSET_KEY) == str(len(records) - 1).encode()
    expected = fold(records)
    assert state == expected
    assert NEXT_INPUT_KEY in expected  # the gap mechanism's key is restored like any other
    assert target.writer.records == len(records)
    assert consumer.paused == [target.tp]  # nothing more is fetched for a finished partition


def test_a_restore_on_top_of_earlier_state_continues_from_it(tmp_path: Path) -> None:
    """A behind database: state up to offset 199 present, the rest of the changelog applied."""
    records = changelog(seed=5, n=400)
    db = open_db(tmp_path / "p0.db")
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in fold(records[:200]).items():
        batch.put(key, value)
    batch.put(OFFSET_KEY, b"199")
    db.write(batch)
    writer = PartitionWriter(db, OFFSET_KEY)
    assert writer.persisted() == 199
    target = Target("dossiers", TopicPartition(TOPIC, 0, 200), len(records), writer)
    later = [Msg(0, o, k, v) for o, (k, v) in enumerate(records) if o >= 200]

    assert apply_changelogs(ScriptedConsumer(later), [target], time.monotonic() + 10)

    state = contents(db)
    assert state.pop(OFFSET_KEY) == b"399"
    assert state == fold(records)


def test_partitions_are_kept_apart_and_each_gets_its_own_offset(tmp_path: Path) -> None:
    logs = {p: changelog(seed=10 + p, n=120 + 30 * p) for p in range(3)}
    dbs = {p: open_db(tmp_path / f"p{p}.db") for p in logs}
    targets = [
        Target(
            "dossiers",
            TopicPartition(TOPIC, p, 0),
            len(logs[p]),
            PartitionWriter(dbs[p], OFFSET_KEY),
        )
        for p in logs
    ]
    interleaved = [
        Msg(p, o, k, v)
        for o in range(max(map(len, logs.values())))
        for p in logs
        if o < len(logs[p])
        for k, v in [logs[p][o]]
    ]

    assert apply_changelogs(
        ScriptedConsumer(interleaved, per_call=13), targets, time.monotonic() + 10
    )

    for p, records in logs.items():
        state = contents(dbs[p])
        assert state.pop(OFFSET_KEY) == str(len(records) - 1).encode()
        assert state == fold(records)


def test_end_of_partition_past_a_compacted_tail_stores_the_end(tmp_path: Path) -> None:
    """The last records (e.g. an old tombstone) were compacted away: EOF at the end still
    completes the partition and the stored offset is end - 1, so Faust has nothing to replay."""
    records = changelog(seed=7, n=100)
    db = open_db(tmp_path / "p0.db")
    target = Target("dossiers", TopicPartition(TOPIC, 0, 0), 104, PartitionWriter(db, OFFSET_KEY))
    messages = [Msg(0, o, k, v) for o, (k, v) in enumerate(records)]
    messages.append(Msg(0, 104, None, None, error=Eof(KafkaError._PARTITION_EOF)))

    assert apply_changelogs(ScriptedConsumer(messages), [target], time.monotonic() + 10)

    state = contents(db)
    assert state.pop(OFFSET_KEY) == b"103"
    assert state == fold(records)


def test_stopped_by_the_deadline_the_database_holds_a_consistent_prefix(tmp_path: Path) -> None:
    """Every WriteBatch carries its offset: what was written is exactly the changelog up to it,
    so Faust's recovery continues from there."""
    records = changelog(seed=9, n=300)
    db = open_db(tmp_path / "p0.db")
    target = Target(
        "dossiers", TopicPartition(TOPIC, 0, 0), len(records), PartitionWriter(db, OFFSET_KEY)
    )
    first = [Msg(0, o, k, v) for o, (k, v) in enumerate(records[:170])]  # the rest never comes

    assert not apply_changelogs(
        ScriptedConsumer(first, per_call=20), [target], time.monotonic() + 0.3
    )

    state = contents(db)
    assert state.pop(OFFSET_KEY) == b"169"
    assert state == fold(records[:170])


def test_nothing_to_restore_assigns_nothing(tmp_path: Path) -> None:
    consumer = ScriptedConsumer([])
    assert apply_changelogs(consumer, [], time.monotonic() + 1)
    assert consumer.assigned == []
