"""One memory budget for all of a worker's RocksDB databases instead of one per partition.

Faust opens one RocksDB per table partition (2 tables x 8 partitions = 16 databases) and gives
each its own block cache and its own memtables, so the worker's RocksDB memory grew with the
partitions and the data: up to 16 x 32 MiB of cache plus 16 x 2 x 8 MiB of memtables with the
options in :mod:`hub.pipeline.topology` (issue 17: 1.19 GiB at 250k addresses, 1 GiB wanted
at 1M). Here every database of the worker shares one LRU block cache, and their memtables are
charged to that same cache through one write buffer manager, so RocksDB's memory is bounded by
:data:`CACHE_BYTES` (plus the small table readers) whatever the partitions and the addresses.
What is stored and read is unchanged: only caching and flush timing differ.

The databases are also written without a write-ahead log, as Kafka Streams writes its state
stores: the changelog topic is the durable copy, and a partition's changelog offset is stored in
the same write batches as its values. A kill -9 loses what was still in the memtables, values
and offset together, so the database falls back to an older but consistent state and Faust's
recovery replays the changelog from that offset (:mod:`hub.pipeline.state`: RocksDB never holds
state the changelog lacks). Every write of a database goes without the log, Faust's own
(recovery, standbys) too: mixing would let a logged write survive a crash that lost an earlier
unlogged one. A clean close flushes the memtables. Measured (issue 17): a step's write batch
costs about 40 % less CPU without the log (15 → 7 µs for 8 keys, 785 → 468 µs for 600); the
worker's writes were 5-8 % of its event loop.
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

# 64 MiB (was 128): the Faust process at 1M addresses peaked at 407 MiB instead of 484 in the
# bench's memory row, at the same throughput (issue 17; misses are read from the page cache)
CACHE_BYTES = 64 * 1024 * 1024  # block cache of all databases, memtables included
MEMTABLE_BYTES = 32 * 1024 * 1024  # memtables of all databases (charged to the cache)


class SharedMemoryOptions(RocksDBOptions):
    """Faust's RocksDB options (rocksdict driver) with a cache and memtable budget shared by
    every database opened with an instance of this class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_cache = _shared()[0]
        self.write_buffer_manager = _shared()[1]

    def open(self, path: Any, *, read_only: bool = False) -> Any:
        """Faust's open, then every write of the database without the write-ahead log."""
        db = super().open(path, read_only=read_only)
        if self.use_rocksdict:
            db.set_write_options(unlogged_writes())
        return db

    def as_options(self) -> Any:
        if not self.use_rocksdict:  # python-rocksdb: Faust's own per-database options
            return super().as_options()
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_max_open_files(-1 if self.max_open_files is None else self.max_open_files)
        opts.set_write_buffer_size(self.write_buffer_size)
        opts.set_target_file_size_base(self.target_file_size_base)
        opts.set_max_write_buffer_number(self.max_write_buffer_number)
        opts.set_write_buffer_manager(self.write_buffer_manager)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(self.shared_cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        opts.set_block_based_table_factory(table)
        return opts


_SHARED: tuple[Any, Any] | None = None


def unlogged_writes() -> Any:
    """Write options without the write-ahead log (see the module doc)."""
    options = rocksdict.WriteOptions()
    # a property at runtime (rocksdict 0.3); its type stub declares a method
    options.disable_wal = True  # type: ignore[method-assign,assignment]
    return options


def _shared() -> tuple[Any, Any]:
    """The process's one cache and write buffer manager (created on first use)."""
    global _SHARED
    if _SHARED is None:
        cache = rocksdict.Cache(CACHE_BYTES)
        manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            MEMTABLE_BYTES, False, cache
        )
        _SHARED = (cache, manager)
    return _SHARED


def share_memory(table: Any) -> None:
    """Make a Faust table's RocksDB store open its databases with the shared budget.

    Must run before the table's partitions are opened (right after ``app.Table``).
    """
    store: Any = table.data
    options = getattr(store, "rocksdb_options", None)
    if options is None or isinstance(options, SharedMemoryOptions):
        return  # not a RocksDB store (memory:// in some tests), or done already
    shared = SharedMemoryOptions.__new__(SharedMemoryOptions)
    shared.__dict__.update(vars(options))
    shared.shared_cache, shared.write_buffer_manager = _shared()
    store.rocksdb_options = shared
