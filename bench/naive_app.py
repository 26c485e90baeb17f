"""The naive Faust baseline: one event at a time, one table update per event, as the docs teach.

``async for value in stream`` → decode the Avro CaseEvent → ``counts[address] += 1`` in a
RocksDB-backed table with a changelog. Faust defaults everywhere (no batching, no tuning).

It is *generous* to Faust: it does less work per event than the hub (no validation, address
resolution or rules, no outputs) and skips the ``group_by`` repartition by address key that the
docs would add for a keyed table (the count of a key is right with one worker; repartitioning
would only make the baseline slower). So the hub/naive ratio is a lower bound.

Run as ``python -m bench.naive_app worker`` with ``NAIVE_*`` in the environment; when it has
processed ``NAIVE_EXPECT`` events it writes first/last timestamps to ``NAIVE_RESULT`` (JSON), so
the runner times exactly first event → last event without polling noise.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust

from hub.contracts.codec import AvroCodec, DecodeError

PARTITIONS = int(os.environ.get("NAIVE_PARTITIONS", "8"))
EXPECT = int(os.environ.get("NAIVE_EXPECT", "0"))
RESULT = Path(os.environ.get("NAIVE_RESULT", "naive-result.json"))

app = faust.App(
    os.environ.get("NAIVE_APP_ID", "bench-naive"),
    broker=f"kafka://{os.environ.get('HUB_BROKER', 'localhost:19092')}",
    store="rocksdb://",
    datadir=os.environ.get("NAIVE_DATA_DIR", "naive-data"),
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(
    os.environ.get("NAIVE_IN", "bench.naive-in"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
counts = app.Table("counts", default=int, partitions=PARTITIONS)
codec = AvroCodec()
progress: dict[str, Any] = {"n": 0, "first": None}


def address_key(record: dict[str, Any]) -> str:
    """A plain address key from the decoded record (postcode + number), not the hub's resolver."""
    a = record["address"]
    if a.get("postcode") and a.get("huisnummer") is not None:
        pc = a["postcode"].replace(" ", "").upper()
        suffix = f"{a.get('huisletter') or ''}{a.get('huisnummertoevoeging') or ''}"
        return f"{pc}-{a['huisnummer']}{suffix}"
    return str(a.get("nummeraanduiding_id") or a.get("pand_id") or "?")


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    async for value in stream:
        try:
            _, record = codec.decode(value, "CaseEvent")
        except DecodeError:
            record = None
        if record is not None:
            counts[address_key(record)] += 1
        progress["n"] += 1
        if progress["first"] is None:
            progress["first"] = time.time()
        if progress["n"] == EXPECT:
            RESULT.write_text(
                json.dumps({"first": progress["first"], "last": time.time(), "n": progress["n"]})
            )


if __name__ == "__main__":
    app.main()
