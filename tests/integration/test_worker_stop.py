"""A worker stopped gracefully (SIGTERM) under load leaves its tables settled.

A rolling restart stops each worker with SIGTERM while agencies keep publishing. Whatever the
worker took and committed must then be in its RocksDB and in the changelog, identical in both:
the next owner (the same worker restarted, a standby or another worker) starts from state that
matches the input offsets Faust committed, with nothing to re-derive. Faust's own stop waits for
the agents' current steps but tells the app nothing before the tables close, so the hub settles
its writers then (``HubApp``, :mod:`hub.pipeline.topology`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.engine.dossier import Dossier
from hub.pipeline.gaps import NEXT_INPUT_KEY
from hub.pipeline.lag import committed_offsets, pipeline_lag
from hub.pipeline.topics import DOSSIER_TABLE
from tests.integration.pipeline_harness import hub_under_test
from tests.integration.test_prerestore import OFFSET_KEY, fold_changelogs, read_state
from tests.integration.test_worker_metrics import _status
from tests.unit.test_promtool import _free_port

pytestmark = pytest.mark.slow  # and broker: every test in tests/integration


def test_a_worker_stopped_under_load_leaves_rocksdb_equal_to_its_changelog_and_committed_input(
    broker: str, tmp_path: Path
) -> None:
    with hub_under_test(broker, tmp_path, partitions=4, create_topics=False) as hub:
        port = _free_port()
        worker = hub.start_worker(0, metrics_port=port)
        deadline = time.monotonic() + 180
        while _status(port, "/readyz") != 200:
            assert worker.poll() is None, hub.logs()
            assert time.monotonic() < deadline, f"worker never ready:\n{hub.logs()}"
            time.sleep(0.25)

        # a steady flow, as agencies publish: the worker is mid-step when SIGTERM comes
        events = list(simulate(addresses=500, events=30_000, seed=7))
        stop_load = threading.Event()

        def load() -> None:
            for start in range(0, len(events), 150):
                if stop_load.is_set():
                    return
                publish(events[start : start + 150], hub.settings)
                time.sleep(0.05)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(6)
        assert worker.poll() is None, hub.logs()
        assert loader.is_alive(), "the load ended before the stop: nothing in flight"
        hub.stop_worker(worker)  # SIGTERM, as the kubelet sends it
        stop_load.set()
        loader.join(30)
        print(f"\nlag left at the stop: {pipeline_lag(hub.settings)}")

        stored = read_state(hub.settings)
        changelogs, ends, _ = fold_changelogs(hub.settings)
        for (table, partition), state in stored.items():
            end = ends[(table, partition)]
            offset = state.pop(OFFSET_KEY, None)
            assert offset == (str(end - 1).encode() if end else None), (
                f"{table}[{partition}]: RocksDB holds the changelog up to {offset!r}, "
                f"the changelog ends at {end - 1}"
            )
            assert state == changelogs[(table, partition)], f"{table}[{partition}] differs"

        normalised = [TopicPartition(hub.topics.normalised, p) for p in range(4)]
        committed = committed_offsets(hub.settings, hub.settings.app_id, normalised)
        processed = 0
        for (_topic, partition), offset in committed.items():
            raw = stored[(DOSSIER_TABLE, partition)].get(NEXT_INPUT_KEY)
            expected = int(raw) if raw is not None else 0
            assert offset <= expected, (
                f"normalised[{partition}]: committed up to {offset}, state only up to {expected}"
            )
            processed += expected
        assert processed > 0, "the worker processed nothing before the stop"

        # every dossier version the worker published is the one it stored (none to re-derive)
        published: dict[bytes, int] = {}
        for msg in hub.read(hub.topics.dossiers):
            key, version = msg.key(), hub.codec.decode(msg.value())[1]["version"]
            published[key] = max(published.get(key, 0), version)
        dossiers = {
            key: Dossier.from_bytes(value).version
            for (table, _partition), state in stored.items()
            if table == DOSSIER_TABLE
            for key, value in state.items()
            if key != NEXT_INPUT_KEY
        }
        behind = sorted(k for k, v in published.items() if dossiers.get(k, 0) < v)
        assert published and not behind, (
            f"{len(behind)} of {len(published)} dossiers published in a version RocksDB lacks"
        )
