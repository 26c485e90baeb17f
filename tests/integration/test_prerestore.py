"""The changelog pre-restore on real changelogs: the same state as Faust's own recovery, and
Faust's recovery after it replays only what came after the offset it stored.

One hub is filled once (the simulated pipeline through a real worker, plus tombstones appended
to the dossier changelog); each test then starts real ``hub worker`` processes on it with
their own data dirs. ``HUB_PRE_RESTORE=false`` makes a worker rely on Faust's recovery alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.pipeline.clients import consumer_config, producer_config
from hub.pipeline.gaps import NEXT_INPUT_KEY
from hub.pipeline.prerestore import pre_restore
from hub.pipeline.topics import DOSSIER_TABLE, Topics
from hub.pipeline.topology import build_topology
from hub.settings import Settings
from tests.integration.pipeline_harness import HubUnderTest, hub_under_test
from tests.integration.test_worker_metrics import _status
from tests.unit.test_promtool import _free_port

OFFSET_KEY = b"__faust\x00offset__"  # faust.stores.rocksdb.Store.offset_key
FAUST_ONLY = {"HUB_PRE_RESTORE": "false"}
State = dict[tuple[str, int], dict[bytes, bytes]]


async def _no_step(_messages: list[tuple[int, int, bytes]]) -> None:
    return None


def tables(settings: Settings) -> list[Any]:
    """The worker's Faust tables for ``settings`` (their stores know paths and options)."""
    topology = build_topology(settings, Topics.from_settings(settings), _no_step, _no_step)
    return [topology.dossiers, topology.areas]


def read_state(settings: Settings) -> State:
    """Every key of every table partition database under ``settings.data_dir``."""
    out: State = {}
    for table in tables(settings):
        store = table.data
        for partition in range(settings.partitions):
            path = store.partition_path(partition)
            if not path.exists():
                out[(table.name, partition)] = {}
                continue
            db = store.rocksdb_options.open(path)
            try:
                out[(table.name, partition)] = dict(db.items())
            finally:
                db.close()
    return out


def fold_changelogs(
    settings: Settings, since: dict[tuple[str, int], int] | None = None
) -> tuple[State, dict[tuple[str, int], int], set[tuple[str, int, bytes]]]:
    """The changelogs folded in plain Python (latest value per key, tombstones delete), each
    partition's end offset, and the keys written after ``since`` (offset per partition)."""
    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-test-fold"))
    state: State = {}
    ends: dict[tuple[str, int], int] = {}
    later: set[tuple[str, int, bytes]] = set()
    try:
        for table in (DOSSIER_TABLE, "areas"):
            topic = f"{settings.app_id}-{table}-changelog"
            for partition in range(settings.partitions):
                folded: dict[bytes, bytes] = {}
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                ends[(table, partition)] = high
                state[(table, partition)] = folded
                if high == 0:
                    continue
                consumer.assign([TopicPartition(topic, partition, 0)])
                last = -1
                deadline = time.monotonic() + 60
                while last + 1 < high:
                    assert time.monotonic() < deadline, f"could not read {topic}[{partition}]"
                    for msg in consumer.consume(1000, timeout=1.0):
                        key, value = msg.key(), msg.value()
                        if msg.error() is not None or key is None:
                            continue
                        last = msg.offset() or 0
                        if value is None:
                            folded.pop(key, None)
                        else:
                            folded[key] = value
                        if since is not None and last > since.get((table, partition), -1):
                            later.add((table, partition, key))
                consumer.unassign()
    finally:
        consumer.close()
    return state, ends, later


def data_settings(hub: HubUnderTest, name: str) -> Settings:
    return hub.settings.model_copy(update={"data_dir": hub.root / name})


def run_worker_until_idle(hub: HubUnderTest, index: int, env: dict[str, str]) -> None:
    """A worker on ``data{index}``: ready, caught up and idle, then stopped gracefully."""
    port = _free_port()
    worker = hub.start_worker(index, metrics_port=port, extra_env=env)
    deadline = time.monotonic() + 180
    while _status(port, "/readyz") != 200:
        assert worker.poll() is None, hub.logs()
        assert time.monotonic() < deadline, f"worker never ready:\n{hub.logs()}"
        time.sleep(0.25)
    hub.wait_caught_up(settle=3)
    hub.stop_worker(worker)


@pytest.fixture(scope="module")
def filled(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubUnderTest]:
    """A hub whose worker processed a simulated history; then tombstones for some dossiers
    (one put again afterwards) appended to the dossier changelog."""
    root = tmp_path_factory.mktemp("prerestore")
    with hub_under_test(broker, root) as hub:
        publish(simulate(addresses=300, events=3000, seed=13), hub.settings)
        run_worker_until_idle(hub, 0, {})
        state, _ends, _later = fold_changelogs(hub.settings)
        changelog = f"{hub.settings.app_id}-{DOSSIER_TABLE}-changelog"
        producer = Producer(producer_config(hub.settings))
        for partition in range(hub.settings.partitions):
            keys = sorted(k for k in state[(DOSSIER_TABLE, partition)] if k != NEXT_INPUT_KEY)
            assert len(keys) >= 3, "the simulation should fill every partition"
            for key in keys[:3]:
                producer.produce(changelog, key=key, value=None, partition=partition)
            again = state[(DOSSIER_TABLE, partition)][keys[0]]
            producer.produce(changelog, key=keys[0], value=again, partition=partition)
        assert producer.flush(30) == 0
        yield hub


def test_pre_restore_gives_the_state_faust_recovery_gives(filled: HubUnderTest) -> None:
    hub = filled
    # Faust's own recovery on a wiped data dir (it may write a little once ready: the
    # changelog is folded after it stopped, so that is included on every side)
    run_worker_until_idle(hub, 1, FAUST_ONLY)
    faust = read_state(data_settings(hub, "data1"))
    folded, ends, _later = fold_changelogs(hub.settings)

    ours_settings = data_settings(hub, "data2")
    report = pre_restore(ours_settings, tables(ours_settings))
    ours = read_state(ours_settings)

    assert report.complete and not report.skipped
    assert report.partitions == sum(1 for end in ends.values() if end > 0)
    assert sum(len(keys) for keys in folded.values()) > 300
    for tp, expected in folded.items():
        stored = ours[tp].pop(OFFSET_KEY, None)
        faust[tp].pop(OFFSET_KEY, None)
        assert stored == (str(ends[tp] - 1).encode() if ends[tp] else None), tp
        assert ours[tp] == expected, f"{tp}: pre-restore differs from the folded changelog"
        assert faust[tp] == expected, f"{tp}: Faust's recovery differs from the folded changelog"
    dossiers = [tp for tp in folded if tp[0] == DOSSIER_TABLE]
    assert all(NEXT_INPUT_KEY in ours[tp] for tp in dossiers)


def test_faust_recovery_after_the_pre_restore_replays_only_what_came_after(
    filled: HubUnderTest,
) -> None:
    """Keys of the test's own (no event reads them): one written before the pre-restore and
    then changed in the database only, one written after it. Faust's recovery must bring the
    second and leave the first: replaying from the start would put the changelog value back."""
    hub = filled
    settings = data_settings(hub, "data3")
    changelog = f"{settings.app_id}-{DOSSIER_TABLE}-changelog"
    partitions = range(settings.partitions)
    before = {p: b"test-before-%d" % p for p in partitions}
    after = {p: b"test-after-%d" % p for p in partitions}
    producer = Producer(producer_config(settings))
    for p in partitions:
        producer.produce(changelog, key=before[p], value=b"from the changelog", partition=p)
    assert producer.flush(30) == 0

    assert pre_restore(settings, tables(settings)).complete
    restored = read_state(settings)
    offsets = {tp: int(state[OFFSET_KEY]) for tp, state in restored.items() if state}
    store = tables(settings)[0].data  # dossiers
    for p in partitions:
        assert restored[(DOSSIER_TABLE, p)][before[p]] == b"from the changelog"
        db = store.rocksdb_options.open(store.partition_path(p))
        try:
            db[before[p]] = b"changed in the database"
        finally:
            db.close()
    for p in partitions:
        producer.produce(changelog, key=after[p], value=b"after the offset", partition=p)
    assert producer.flush(30) == 0

    run_worker_until_idle(hub, 3, FAUST_ONLY)  # Faust recovers from the stored offsets
    recovered = read_state(settings)
    _folded, _ends, later = fold_changelogs(hub.settings, since=offsets)

    assert {(DOSSIER_TABLE, p, after[p]) for p in partitions} <= later
    for p in partitions:
        state = recovered[(DOSSIER_TABLE, p)]
        assert state[after[p]] == b"after the offset", f"partition {p}: not replayed"
        assert state[before[p]] == b"changed in the database", f"partition {p}: replayed"
        assert int(state[OFFSET_KEY]) > offsets[(DOSSIER_TABLE, p)]
