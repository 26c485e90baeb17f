"""Agencies on Kafka (issue 15), against the local SASL_SSL broker with ACLs enforced.

The secure broker (``tools.local_kafka_secure``: its own home under ``.local/kafka-secure`` and
port 19392, never the shared plaintext broker) is started once per session and stopped at the
end only if this session started it. Each test applies ``deploy/kafka/acl.toml`` for its own
topic prefix with ``hub acl apply`` and works as the principals the file describes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.contracts.deadletter import parse_dead_letter
from hub.oracle import run_oracle
from hub.pipeline.clients import admin_config, consumer_config, producer_config
from hub.security import confluent_security
from hub.settings import Settings
from tests.integration.pipeline_harness import (
    HubUnderTest,
    firing_set,
    hub_under_test,
    latest_by_fingerprint,
    version_gaps,
)
from tools.local_kafka import KafkaError as LocalKafkaError
from tools.local_kafka import probe
from tools.local_kafka_secure import ACL_FILE, SecureLocalKafka, secure_settings

pytestmark = pytest.mark.slow

AGENCY_OF = {"NCG": "ncg", "IMG": "img", "MUNICIPALITY": "municipality"}
AGENCY_OF["HOUSING_CORPORATION"] = "housing"


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureLocalKafka]:
    kafka = SecureLocalKafka(secure_settings())
    already = kafka.status(timeout=3.0).reachable
    try:
        kafka.start(wait_s=240.0)
    except LocalKafkaError as exc:
        pytest.fail(f"secure broker did not start: {exc}")
    yield kafka
    if not already:
        kafka.stop()


def _security(kafka: SecureLocalKafka, user: str) -> dict[str, Any]:
    """Settings fields for ``user`` on the secure broker."""
    s = kafka.client_settings(user)
    return {
        "security_protocol": s.security_protocol,
        "sasl_mechanism": s.sasl_mechanism,
        "sasl_username": s.sasl_username,
        "sasl_password_file": s.sasl_password_file,
        "ssl_ca_file": s.ssl_ca_file,
    }


def _assert_no_secret(text: str, kafka: SecureLocalKafka) -> None:
    leaked = [u for u in kafka.users if kafka.password_file(u).read_text().strip() in text]
    assert not leaked, f"password of {leaked} in output"


@pytest.fixture
def world(secure_kafka: SecureLocalKafka, tmp_path: Path) -> Iterator[HubUnderTest]:
    """An isolated hub on the secure broker: topics created and ACLs applied by the admin."""
    with hub_under_test(
        secure_kafka.settings.broker,
        tmp_path,
        partitions=2,
        security=_security(secure_kafka, "hub-worker"),
        admin_security=_security(secure_kafka, "admin"),
    ) as hub:
        out = _hub_cli(hub, "admin", secure_kafka, "acl", "apply", "--file", str(ACL_FILE))
        assert "added" in out, out
        yield hub


def _hub_cli(
    hub: HubUnderTest,
    user: str,
    kafka: SecureLocalKafka,
    *args: str,
    extra_env: dict[str, str] | None = None,
) -> str:
    """Run ``hub <args>`` as ``user`` for this hub's prefix; its whole output (must succeed)."""
    env = {**hub.env(0), **kafka.client_env(user), **(extra_env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "hubctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _as(hub: HubUnderTest, kafka: SecureLocalKafka, user: str) -> Settings:
    return hub.settings.model_copy(update=_security(kafka, user))


def _produce_one(settings: Settings, topic: str, idempotent: bool = True) -> KafkaError | None:
    """Produce one record; the delivery error (None when acknowledged).

    A principal with no WRITE anywhere cannot even get an idempotent producer id (a fatal
    CLUSTER_AUTHORIZATION_FAILED): ``idempotent=False`` shows the topic-level refusal.
    """
    errors: list[KafkaError | None] = []
    overrides = {"message.timeout.ms": 20000, "enable.idempotence": idempotent}
    producer = Producer(producer_config(settings, **overrides))
    producer.produce(topic, key=b"k", value=b"{}", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(60)
    assert errors, "no delivery report within 60 s"
    return errors[0]


REFUSED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)


def _read_error(settings: Settings, topic: str, group_prefix: str = "hub-reader-") -> int | None:
    """Fetch from ``topic`` partition 0; the error code the broker answered (None = allowed).

    A principal without any group right is refused at the group already
    (GROUP_AUTHORIZATION_FAILED); one with group rights at the topic.
    """
    group = f"{group_prefix}{uuid.uuid4().hex[:6]}"
    consumer = Consumer(consumer_config(settings, group, **{"enable.partition.eof": True}))
    try:
        consumer.subscribe([topic])  # (assign() waits silently on an unauthorized topic)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is None or err.code() == KafkaError._PARTITION_EOF:
                return None
            if err.code() in REFUSED:
                return int(err.code())
        raise AssertionError(f"no answer reading {topic} within 60 s")
    finally:
        consumer.close()


def test_an_agency_writes_its_own_topic_and_is_refused_on_another_agencys(
    world: HubUnderTest, secure_kafka: SecureLocalKafka
) -> None:
    inbound = dict(world.topics.agency_inbound)
    ncg = _as(world, secure_kafka, "ncg")
    assert _produce_one(ncg, inbound["NCG"]) is None
    refused = _produce_one(ncg, inbound["IMG"])
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    shared = _produce_one(ncg, world.topics.case_events)
    assert shared is not None and shared.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    dossiers = _produce_one(ncg, world.topics.dossiers)
    assert dossiers is not None and dossiers.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_an_agency_cannot_read_inbound_topics_or_dossiers_and_the_reader_reads_only_outputs(
    world: HubUnderTest, secure_kafka: SecureLocalKafka
) -> None:
    inbound = dict(world.topics.agency_inbound)
    refused = KafkaError.TOPIC_AUTHORIZATION_FAILED
    ncg = _as(world, secure_kafka, "ncg")
    assert _read_error(ncg, inbound["IMG"]) in REFUSED
    assert _read_error(ncg, inbound["NCG"]) in REFUSED  # write-only, even its own
    assert _read_error(ncg, world.topics.dossiers) in REFUSED
    reader = _as(world, secure_kafka, "hub-reader")
    assert _read_error(reader, world.topics.dossiers) is None
    assert _read_error(reader, world.topics.contact_routing) is None
    assert _read_error(reader, inbound["NCG"]) == refused
    assert _read_error(reader, world.topics.dead_letter) == refused
    wrote = _produce_one(reader, world.topics.dossiers, idempotent=False)
    assert wrote is not None and wrote.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def _connect_errors(config: dict[str, Any]) -> tuple[bool, list[str]]:
    """(metadata answered?, client errors reported) for one admin client."""
    seen: list[str] = []
    admin = AdminClient({**config, "error_cb": lambda e: seen.append(f"{e.name()}: {e.str()}")})
    try:
        admin.list_topics(timeout=10)
        return True, seen
    except Exception as exc:  # KafkaException on timeout: refused
        seen.append(str(exc))
        admin.poll(1.0)  # serves the error callbacks (the authentication failure)
        return False, seen


@pytest.mark.parametrize("who", ["unknown-user", "wrong-password", "plaintext"])
def test_unknown_users_wrong_passwords_and_plaintext_clients_cannot_connect(
    secure_kafka: SecureLocalKafka, who: str
) -> None:
    broker = secure_kafka.settings.broker
    good = confluent_security(secure_kafka.client_settings("ncg"))
    config: dict[str, Any] = {"bootstrap.servers": broker, "socket.timeout.ms": 5000}
    if who == "unknown-user":
        config.update(good, **{"sasl.username": "mallory"})
    elif who == "wrong-password":
        config.update(good, **{"sasl.password": "not-" + good["sasl.password"]})
    answered, errors = _connect_errors(config)
    assert not answered
    assert probe(broker, 5.0, None if who == "plaintext" else config) is None
    text = "\n".join(errors)
    if who != "plaintext":
        assert "_AUTHENTICATION" in text or "Authentication failed" in text, text
    _assert_no_secret(text, secure_kafka)
    answered_ok, _ = _connect_errors({"bootstrap.servers": broker, **good})
    assert answered_ok, "the right credentials must connect (control)"


def _publish_as_agencies(
    items: list[dict[str, Any] | str], hub: HubUnderTest, kafka: SecureLocalKafka
) -> None:
    """Each valid event by its agency's principal on its own topic; the rest (invalid items)
    by the trusted internal producer on the shared topic."""
    inbound = dict(hub.topics.agency_inbound)
    by_user: dict[str, list[dict[str, Any] | str]] = {}
    for item in items:
        source = item.get("source") if isinstance(item, dict) else None
        user = AGENCY_OF.get(source) if isinstance(source, str) else None
        by_user.setdefault(user or "hub-ingress", []).append(item)
    for user, batch in by_user.items():
        source = next((s for s, u in AGENCY_OF.items() if u == user), None)
        topic = inbound[source] if source else hub.topics.case_events
        report = publish(batch, _as(hub, kafka, user), topic=topic)
        assert report.failed == 0, f"{user}: {report.failed} of {report.total} not delivered"


SPOOF: dict[str, Any] = {
    "event_id": "spoof-1",
    "source": "NCG",
    "case_id": "SPOOF-1",
    "case_type": "STRENGTHENING",
    "status": "OPENED",
    "occurred_at": "2024-01-01T10:00:00+01:00",
    "address": {"postcode": "9901 ab", "huisnummer": "12a", "gemeentecode": "GM1979"},
}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_pipeline_on_the_secure_broker_matches_the_oracle_and_drops_a_spoofed_source(
    world: HubUnderTest, secure_kafka: SecureLocalKafka
) -> None:
    sim = list(simulate(addresses=200, events=2000, seed=7))
    oracle = run_oracle(sim)
    assert oracle.firing(), "the simulation should plant firing alerts"
    _publish_as_agencies(sim, world, secure_kafka)
    # IMG's principal claims to be NCG on IMG's own topic
    inbound = dict(world.topics.agency_inbound)
    assert publish([SPOOF], _as(world, secure_kafka, "img"), topic=inbound["IMG"]).failed == 0
    port = _free_port()
    world.start_worker(metrics_port=port)
    world.wait_caught_up(timeout=600)

    records = world.alert_records()
    assert firing_set(records) == oracle.firing()
    assert not version_gaps(records)
    letters = [
        parse_dead_letter(m.headers(), m.value(), m.key())
        for m in world.read(world.topics.dead_letter)
    ]
    spoofed = [d for d in letters if d.reason == "SOURCE_MISMATCH"]
    assert len(spoofed) == 1 and spoofed[0].field == "source"
    assert spoofed[0].topic == inbound["IMG"]
    dossier_cases = {
        c["case_id"]
        for m in world.read(world.topics.dossiers)
        for c in world.codec.decode(m.value())[1]["cases"]
    }
    assert "SPOOF-1" not in dossier_cases

    # the reader's answers work over SASL_SSL; no password in any output, log or metric
    alerts_out = _hub_cli(world, "hub-reader", secure_kafka, "alerts", "--firing", "--json")
    assert alerts_out.count('"fingerprint"') == len(oracle.firing())
    status_out = _hub_cli(world, "hub-worker", secure_kafka, "status")
    metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    for text in (alerts_out, status_out, metrics_text.decode(), world.logs()):
        _assert_no_secret(text, secure_kafka)


def test_the_privacy_option_keeps_contact_details_out_of_published_records(
    world: HubUnderTest, secure_kafka: SecureLocalKafka
) -> None:
    story: list[dict[str, Any] | str] = [
        {
            **SPOOF,
            "event_id": "p1",
            "case_id": "V-1",
            "contact": {
                "name": "Bewonersbegeleider 1",
                "role": "RESIDENT_COUNSELLOR",
                "phone": "+31 50 123 4567",
            },
        },
        {**SPOOF, "event_id": "p2", "source": "IMG", "case_id": "S-1", "case_type": "DAMAGE"},
    ]
    _publish_as_agencies(story, world, secure_kafka)
    world.start_worker(extra_env={"HUB_PUBLISH_CONTACT_DETAILS": "false"})
    world.wait_caught_up()
    routing = [
        r
        for r in latest_by_fingerprint(world.alert_records()).values()
        if r["kind"] == "CONTACT_ROUTING"
    ]
    assert routing and routing[0]["lead"]["contact_role"] == "RESIDENT_COUNSELLOR"
    assert routing[0]["lead"]["source"] == "NCG"
    raw = b"".join(
        m.value()
        for t in (world.topics.dossiers, world.topics.contact_routing)
        for m in world.read(t)
    )
    assert b"Bewonersbegeleider" not in raw and b"123 4567" not in raw


def test_hub_status_with_a_wrong_password_says_authentication_failed_without_the_secret(
    secure_kafka: SecureLocalKafka, tmp_path: Path
) -> None:
    wrong = "not-the-" + secure_kafka.password_file("hub-worker").read_text().strip()
    env = {
        **os.environ,
        **secure_kafka.client_env("hub-worker"),
        "HUB_SASL_PASSWORD": wrong,
    }
    env.pop("HUB_SASL_PASSWORD_FILE")
    result = subprocess.run(
        [sys.executable, "-m", "hubctl", "status", "--timeout", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "authentication failed as 'hub-worker'" in output, output
    assert wrong not in output
    _assert_no_secret(output, secure_kafka)


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait(check: Any, timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"hub deliver exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_hub_deliver_runs_as_hub_delivery_which_may_do_nothing_else_that_matters(
    world: HubUnderTest, secure_kafka: SecureLocalKafka
) -> None:
    """``hub deliver`` as the ``hub-delivery`` principal (deploy/kafka/acl.toml, the KafkaUser of
    deploy/kubernetes/base/delivery.yaml): creates its topics on first start, becomes ready,
    delivers a signal, dead-letters what a receiver refuses, writes its log and stops on SIGTERM.
    The same principal may not write inbound, output or subscription topics, nor read dossiers,
    inbound or the hub's dead letters, nor create other topics."""
    from connectors.delivery.store import read_dead_letters, read_log, read_subscriptions
    from hub.contracts.codec import AvroCodec
    from hub.delivery.secrets import new_key
    from tests.integration.pipeline_harness import _with_pdeathsig
    from tests.integration.test_delivery import Receiver, signal_record

    key = new_key()
    delivery_env = {
        "HUB_DELIVERY_SECRET_KEY": key,
        "HUB_DELIVERY_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        "HUB_DELIVERY_MAX_ATTEMPTS": "2",
        "HUB_DELIVERY_BACKOFF_INITIAL_S": "0.1",
        "HUB_DELIVERY_BACKOFF_MAX_S": "0.2",
        "HUB_DELIVERY_BACKOFF_JITTER_S": "0",
        "SUB_AUTH": "Bearer secure-delivery-test",
    }
    port = _free_port()
    log = world.root / "deliver.log"
    with Receiver() as ok, Receiver(lambda n: 500) as bad:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                _with_pdeathsig([sys.executable, "-m", "hubctl", "deliver"], True),
                env={
                    **world.env(0),
                    **secure_kafka.client_env("hub-delivery"),
                    **delivery_env,
                    "HUB_METRICS_PORT": str(port),
                    "HUB_LOG_LEVEL": "INFO",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        world.processes.append(proc)
        # ready = it created the subscriptions and log topics and read them to their end
        _wait(lambda: _readyz(port) == 200, 180, "/readyz 200", proc, log)
        for sub_id, receiver in (("ok", ok), ("bad", bad)):
            _hub_cli(
                world,
                "admin",
                secure_kafka,
                *("subscriptions", "add", sub_id, "--callback", receiver.url),
                *("--channel", "hub-signalen", "--auth-env", "SUB_AUTH"),
                extra_env=delivery_env,
            )
        admin = _as(world, secure_kafka, "admin")
        assert set(read_subscriptions(admin)) == {"ok", "bad"}
        time.sleep(2)  # the supervisor starts both workers (their groups) before the records
        worker = Producer(producer_config(_as(world, secure_kafka, "hub-worker")))
        codec = AvroCodec()
        for version in (1, 2):
            record = signal_record("fp-secure", version)
            worker.produce(
                world.topics.signals, key=b"GRONINGEN", value=codec.encode("Alert", record)
            )
        assert worker.flush(30) == 0

        _wait(lambda: len(ok.delivered()) == 2, 180, "two deliveries", proc, log)
        _wait(
            lambda: len(read_dead_letters(admin, "bad", timeout_s=10)) == 2,
            180,
            "two dead letters",
            proc,
            log,
        )
        assert [m["kenmerken"]["version"] for m in ok.delivered()] == ["1", "2"]
        assert len(bad.requests) == 4  # two attempts per notification
        rss = _rss_mib(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        stopped_s = time.monotonic() - started
    entries = read_log(admin)
    assert entries["ok"].to_record()["delivered_total"] == 2, entries["ok"].to_record()
    print(f"\nhub deliver (2 subscriptions): RSS {rss:.0f} MiB, SIGTERM to exit {stopped_s:.1f} s")
    text = log.read_text()
    assert "Bearer secure-delivery-test" not in text
    _assert_no_secret(text, secure_kafka)

    # ... and nothing else that matters
    d = _as(world, secure_kafka, "hub-delivery")
    refused = KafkaError.TOPIC_AUTHORIZATION_FAILED
    inbound = dict(world.topics.agency_inbound)
    own_groups = f"{world.settings.app_id}-delivery-"
    for topic in (
        world.topics.case_events,
        inbound["NCG"],
        world.topics.signals,  # no forged alerts
        world.topics.dossiers,
        f"{world.settings.topic_prefix}delivery-subscriptions",  # no subscriptions of its own
    ):
        wrote = _produce_one(d, topic)
        assert wrote is not None and wrote.code() == refused, topic
    assert _read_error(d, world.topics.signals, own_groups) is None  # control: its own channel
    for topic in (world.topics.dossiers, inbound["NCG"], world.topics.dead_letter):
        assert _read_error(d, topic, own_groups) == refused, topic
    assert _read_error(d, world.topics.signals) == KafkaError.GROUP_AUTHORIZATION_FAILED
    admin_client = AdminClient(admin_config(d))  # kept: its futures fail once it is collected
    creating = admin_client.create_topics(
        [NewTopic(f"{world.settings.topic_prefix}not-delivery", 1, 1)]
    )
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        next(iter(creating.values())).result(30)
