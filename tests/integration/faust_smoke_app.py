"""A minimal Faust app for the foundation smoke test: one agent, one RocksDB table.

Counts words per key in a RocksDB-backed table (with changelog) and forwards the running count to
an output topic. Topic names, app id and data dir come from the environment so each test run is
isolated.
"""

import os

import faust

app = faust.App(
    os.environ["SMOKE_APP_ID"],
    broker=f"kafka://{os.environ['HUB_BROKER']}",
    store="rocksdb://",
    datadir=os.environ["SMOKE_DATA_DIR"],
    topic_partitions=int(os.environ.get("SMOKE_PARTITIONS", "1")),
    topic_replication_factor=1,
    web_enabled=False,
    producer_acks=-1,
    processing_guarantee=os.environ.get("SMOKE_GUARANTEE", "at_least_once"),
)
source = app.topic(
    os.environ["SMOKE_IN"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
sink = app.topic(
    os.environ["SMOKE_OUT"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
counts = app.Table("counts", default=int, partitions=int(os.environ.get("SMOKE_PARTITIONS", "1")))


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    async for key, value in stream.items():
        word = key.decode()
        counts[word] += 1
        await sink.send(key=key, value=f"{value.decode()}:{counts[word]}".encode())


if __name__ == "__main__":
    app.main()
