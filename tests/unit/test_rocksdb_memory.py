"""The worker's RocksDB databases share one cache and memtable budget (issue 17, memory)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import rocksdict

from hub.pipeline.rocksdb_memory import CACHE_BYTES, SharedMemoryOptions
from hub.pipeline.topics import Topics
from hub.pipeline.topology import ROCKSDB_OPTIONS, build_topology
from hub.settings import Settings


async def _step(_batch: list[tuple[int, int, bytes]]) -> None:
    return None


def test_every_table_partition_opens_with_the_one_shared_cache(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, app_id="rocksdb-memory-test")
    topology = build_topology(settings, Topics.from_settings(settings), _step, _step)
    options = [t.data.rocksdb_options for t in (topology.dossiers, topology.areas)]
    assert all(isinstance(o, SharedMemoryOptions) for o in options)
    assert options[0].shared_cache is options[1].shared_cache
    assert options[0].write_buffer_manager is options[1].write_buffer_manager
    # the table's own options are kept (write buffers per database, as configured)
    assert options[0].write_buffer_size == ROCKSDB_OPTIONS["write_buffer_size"]
    assert options[0].shared_cache.get_usage() <= CACHE_BYTES


def test_databases_opened_with_shared_options_store_and_read_back(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, app_id="rocksdb-memory-test2")
    topology = build_topology(settings, Topics.from_settings(settings), _step, _step)
    options = topology.dossiers.data.rocksdb_options
    dbs = [options.open(tmp_path / f"p{n}.db") for n in range(3)]
    try:
        for n, db in enumerate(dbs):
            for i in range(2000):
                db[f"key-{i}".encode()] = f"value-{n}-{i}".encode() * 20
        for n, db in enumerate(dbs):
            assert db[b"key-1999"] == f"value-{n}-1999".encode() * 20
        # the memtables of all three are charged to the one cache
        assert options.shared_cache.get_usage() > 0
        assert options.write_buffer_manager.get_usage() > 0
    finally:
        for db in dbs:
            db.close()


def _wal_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.log"))


def test_table_databases_are_written_without_the_write_ahead_log(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, app_id="rocksdb-memory-test3")
    topology = build_topology(settings, Topics.from_settings(settings), _step, _step)
    db = topology.dossiers.data.rocksdb_options.open(tmp_path / "p0.db")
    try:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for i in range(100):
            batch.put(f"key-{i}".encode(), b"v" * 500)
        db.write(batch)  # as BatchedTableWriter writes a step
        db[b"offset"] = b"41"  # as Faust's recovery writes
        assert db[b"key-99"] == b"v" * 500
        assert _wal_bytes(tmp_path / "p0.db") == 0
    finally:
        db.close()
    reopened = topology.dossiers.data.rocksdb_options.open(tmp_path / "p0.db")
    try:  # a clean close flushed the memtable
        assert reopened[b"offset"] == b"41" and reopened[b"key-99"] == b"v" * 500
    finally:
        reopened.close()


_KILLED_WRITER = """
import os, sys
import rocksdict
from hub.pipeline.rocksdb_memory import unlogged_writes
options = rocksdict.Options(raw_mode=True)
options.create_if_missing(True)
db = rocksdict.Rdict(sys.argv[1], options)
db.set_write_options(unlogged_writes())
for step in range(1, 4):
    batch = rocksdict.WriteBatch(raw_mode=True)
    for i in range(50):
        batch.put(f"key-{i}".encode(), f"step-{step}".encode())
    batch.put(b"offset", str(step).encode())
    db.write(batch)
    if step == 2:
        db.flush()
os.kill(os.getpid(), 9)
"""


def test_a_kill_loses_the_unflushed_values_and_their_offset_together(tmp_path: Path) -> None:
    """Step 3's values and offset were only in the memtable: both are gone, step 2's remain,
    so Faust's recovery replays the changelog from offset 2 onto step 2's values."""
    path = tmp_path / "killed.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path)], env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    options = rocksdict.Options(raw_mode=True)
    db = rocksdict.Rdict(str(path), options)
    try:
        assert db[b"offset"] == b"2"
        assert {db[f"key-{i}".encode()] for i in range(50)} == {b"step-2"}
    finally:
        db.close()
