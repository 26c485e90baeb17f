"""Foundation smoke test: a real Faust worker with a RocksDB table against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_faust_agent_updates_rocksdb_table_and_emits_to_output_topic(
    guarantee: str,
    broker: str,
    topic_factory: Callable[..., str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    source = topic_factory("in")
    sink = topic_factory("out")
    producer = Producer(
        {
            "bootstrap.servers": broker,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
        }
    )
    words = ["a", "b", "a", "c", "a", "b"]
    for i, key in enumerate(words):
        producer.produce(source, key=key, value=f"w{i}")
    assert producer.flush(30) == 0

    env = {
        **os.environ,
        "HUB_BROKER": broker,
        "SMOKE_APP_ID": unique_name("app"),
        "SMOKE_DATA_DIR": str(tmp_path / "faust"),
        "SMOKE_GUARANTEE": guarantee,
        "SMOKE_IN": source,
        "SMOKE_OUT": sink,
    }
    app_file = Path(__file__).with_name("faust_smoke_app.py")
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, str(app_file), "worker", "-l", "warn", "--without-web"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": unique_name("reader"),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([sink])
    results: list[tuple[str, str]] = []
    try:
        deadline = time.monotonic() + 120
        while len(results) < len(words) and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            results.append((msg.key().decode().strip('"'), msg.value().decode().strip('"')))
    finally:
        consumer.close()
        worker.terminate()
        worker.wait(60)

    final = {}
    for key, value in results:
        final[key] = int(value.split(":")[1])
    assert final == {"a": 3, "b": 2, "c": 1}
    assert (tmp_path / "faust").exists(), "the RocksDB table wrote nothing to the data dir"
