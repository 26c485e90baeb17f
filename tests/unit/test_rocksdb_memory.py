"""The worker's RocksDB databases share one cache and memtable budget (issue 17, memory)."""

from __future__ import annotations

from pathlib import Path

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
