"""``python -m bench.secure``: hub throughput, plaintext broker vs the SASL_SSL one (issue 15).

Same run, same machine, same simulated events: for each listener the events are pre-produced
(on the secure broker by each agency's principal to its own topic), then one ``hub worker``
(``hub-worker`` principal on the secure broker) processes them; throughput = events / seconds
from its first ingested batch to pipeline lag 0, observed from outside (``/metrics``, broker lag).
The plaintext side uses the broker at ``HUB_BROKER``; the secure side the local secure broker
(``hub kafka start --secure``, started here if needed and then stopped again). Topics of the run
are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import POLLED_SERIES, free_port, scrape
from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.pipeline.lag import pipeline_lag
from hub.pipeline.topics import Topics, delete_topics, ensure_topics
from hub.settings import Settings
from hubctl.acl import apply_file
from tools.local_kafka_secure import ACL_FILE, SecureLocalKafka, secure_settings

INGESTED = 'hub_batch_size_events_sum{stage="ingest"}'
AGENCY_OF = {"NCG": "ncg", "IMG": "img", "MUNICIPALITY": "municipality"}
AGENCY_OF["HOUSING_CORPORATION"] = "housing"


def _security(kafka: SecureLocalKafka, user: str) -> dict[str, Any]:
    s = kafka.client_settings(user)
    return {
        "security_protocol": s.security_protocol,
        "sasl_mechanism": s.sasl_mechanism,
        "sasl_username": s.sasl_username,
        "sasl_password_file": s.sasl_password_file,
        "ssl_ca_file": s.ssl_ca_file,
    }


def _produce(items: list[Any], settings: Settings, kafka: SecureLocalKafka | None) -> float:
    """Pre-produce ``items`` the same way on both brokers (each source on its own topic, as
    its own principal on the secure one), so only the listener differs; seconds taken."""
    began = time.monotonic()
    topics = Topics.from_settings(settings)
    inbound = dict(topics.agency_inbound)
    groups: dict[str, list[Any]] = {}
    for item in items:
        source = item.get("source") if isinstance(item, dict) else None
        groups.setdefault(source if source in AGENCY_OF else "", []).append(item)
    for source, batch in groups.items():
        user = AGENCY_OF.get(source, "hub-ingress")
        topic = inbound[source] if source else topics.case_events
        as_user = settings if kafka is None else settings.model_copy(update=_security(kafka, user))
        publish(batch, as_user, topic=topic)
    return time.monotonic() - began


def measure(
    mode: str, items: list[Any], base: Settings, kafka: SecureLocalKafka | None, timeout: float
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    hub = base.model_copy(
        update={"topic_prefix": f"bench.{run}.", "app_id": f"bench-{run}", "partitions": 4}
    )
    admin = hub if kafka is None else hub.model_copy(update=_security(kafka, "admin"))
    worker_settings = (
        hub if kafka is None else hub.model_copy(update=_security(kafka, "hub-worker"))
    )
    ensure_topics(admin)
    if kafka is not None:
        apply_file(ACL_FILE, admin)
        time.sleep(3.0)  # the broker's authorizer applies new ACLs from the metadata log
    root = Path(tempfile.mkdtemp(prefix=f"bench-secure-{mode}-"))
    proc = None
    try:
        produce_s = _produce(items, hub, kafka)
        port = free_port()
        env = {
            **os.environ,
            "HUB_BROKER": hub.broker,
            "HUB_TOPIC_PREFIX": hub.topic_prefix,
            "HUB_APP_ID": hub.app_id,
            "HUB_PARTITIONS": str(hub.partitions),
            "HUB_DATA_DIR": str(root / "data"),
            "HUB_METRICS_PORT": str(port),
            "HUB_LOG_LEVEL": "WARNING",
        }
        if kafka is not None:
            env.update(kafka.client_env("hub-worker"))
        log = (root / "worker.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubctl", "worker"], env=env, stdout=log, stderr=log
        )
        first: float | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{mode} worker exited {proc.returncode}; see {root}")
            if first is None and scrape(port, names=POLLED_SERIES).get(INGESTED, 0.0) > 0:
                first = time.monotonic()
            if first is not None and pipeline_lag(worker_settings) == 0:
                elapsed = time.monotonic() - first
                return {
                    "mode": mode,
                    "events": len(items),
                    "produce_events_per_s": round(len(items) / produce_s),
                    "hub_seconds": round(elapsed, 2),
                    "hub_events_per_s": round(len(items) / elapsed),
                }
            time.sleep(0.25)
        raise RuntimeError(f"{mode}: not caught up within {timeout}s; see {root}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        delete_topics(admin, prefixes=(hub.topic_prefix, hub.app_id))
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.secure", description=__doc__)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--addresses", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    items = list(simulate(args.addresses, args.events, args.seed))
    kafka = SecureLocalKafka(secure_settings())
    started = not kafka.status(timeout=3.0).reachable
    kafka.start(wait_s=240.0)
    try:
        results = [
            measure("plaintext", items, Settings(), None, args.timeout),
            measure("sasl_ssl", items, kafka.settings.model_copy(update={}), kafka, args.timeout),
        ]
    finally:
        if started:
            kafka.stop()
    plain, secure = results
    report = {
        "results": results,
        "secure_over_plaintext": round(secure["hub_events_per_s"] / plain["hub_events_per_s"], 3),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
