"""The answer commands on the real broker: hand-made records on a uniquely prefixed topic set.

One module-scoped topic set (``test.<uuid>.``, 3 partitions) is filled once with alerts, signals,
dossiers, register facts and dead letters; each test runs a command through ``CliRunner`` with
``HUB_TOPIC_PREFIX`` / ``HUB_BROKER`` / ``HUB_APP_ID`` in its environment and checks the output.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import typer
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from typer.testing import CliRunner

from hub.address.register import fact_key, nummeraanduiding_fact, pand_fact
from hub.answers import H_REPLAYED_FROM, parse_address_query, replayed_topic
from hub.contracts.codec import get_codec
from hub.contracts.deadletter import build_headers
from hub.pipeline.clients import producer_config
from hub.pipeline.topics import Topics, ensure_topics
from hub.settings import Settings
from hubctl.answers import register, timeline_bar

PARTITIONS = 3
T0 = 1_717_200_000_000  # 2024-06-01 in epoch ms
K1 = "9711AB-12A"  # the dossier under test: cases of IMG and NCG, firing alerts
K2 = "9711AB-12-2"  # same postcode and number, another toevoeging: a "did you mean"
K3 = "9901AA-1"
NID = "0014200000000012"
SG = "SG-Groningen"
SG2 = "SG-Eemsdelta"
ALERT_KEYS = [
    "kind",
    "fingerprint",
    "status",
    "version",
    "address_key",
    "area",
    "steering_group",
    "lead",
    "cases",
]


def _case(source: str, case_id: str, status: str = "IN_PROGRESS") -> dict[str, Any]:
    return {
        "source": source,
        "case_id": case_id,
        "case_type": "DAMAGE_REPAIR" if source == "IMG" else "STRENGTHENING",
        "status": status,
        "planned_start": "2024-07-01",
        "planned_end": "2024-09-30",
        "amount_eur": None,
    }


def alert(
    fp: str,
    kind: str,
    version: int,
    status: str = "FIRING",
    *,
    address_key: str | None = K1,
    area: str | None = None,
    steering_group: str = SG,
    lead: bool = True,
    detail: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An Alert.v1 record as the engine emits it."""
    return {
        "fingerprint": fp,
        "kind": kind,
        "category": "ALERT" if kind == "CONTACT_ROUTING" else "SIGNAL",
        "status": status,
        "version": version,
        "address_key": address_key,
        "area": area,
        "gemeentecode": "GM0014",
        "steering_group": steering_group,
        "lead": (
            {
                "source": "IMG",
                "case_id": "IMG-1",
                "case_type": "DAMAGE_REPAIR",
                "contact_role": "casemanager",
                "contact_name": "A. de Vries",
                "contact_phone": "0501234567",
                "contact_email": "a@example.org",
            }
            if lead
            else None
        ),
        "cases": [_case("IMG", "IMG-1"), _case("NCG", "NCG-7")],
        "event_ids": [f"ev-{fp}-{version}", "ev-shared"],
        "detail": detail or {},
        "config_version": "test-1",
        "starts_at": T0,
        "ends_at": T0 + 1000 if status == "RESOLVED" else None,
        "emitted_at": T0 + version,
        "trigger_event_id": f"ev-{fp}-{version}",
        "trigger_ingested_at": T0,
    }


def dossier(key: str, version: int, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """An AddressDossier.v1 record."""
    return {
        "address_key": key,
        "nummeraanduiding_ids": [NID] if key == K1 else [],
        "pand_ids": ["0014100000000099"],
        "gemeentecode": "GM0014",
        "steering_group": SG,
        "cases": cases,
        "lead": {"source": "IMG", "case_id": "IMG-1"} if cases else None,
        "version": version,
        "updated_at": T0 + version,
    }


def dcase(source: str, case_id: str, start: str | None, end: str | None) -> dict[str, Any]:
    return {
        "source": source,
        "case_id": case_id,
        "case_type": "DAMAGE_REPAIR" if source == "IMG" else "STRENGTHENING",
        "status": "IN_PROGRESS",
        "active": True,
        "occurred_at": T0,
        "planned_start": start,
        "planned_end": end,
        "contact_role": "casemanager",
        "contact_name": "A. de Vries" if case_id == "IMG-1" else None,
        "contact_phone": "0501234567" if case_id == "IMG-1" else None,
        "contact_email": None,
        "amount_eur": None,
        "last_event_id": f"ev-{case_id}",
    }


@dataclass
class World:
    settings: Settings
    topics: Topics
    env: dict[str, str]
    runner: CliRunner
    app: typer.Typer

    def run(self, *args: str, env: dict[str, str] | None = None) -> Any:
        result = self.runner.invoke(self.app, list(args), env={**self.env, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result


def _delete(broker: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    existing = set(admin.list_topics(timeout=10).topics)
    names = [n for n in names if n in existing]
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # best effort
            future.result(timeout=30)


@pytest.fixture(scope="module")
def world(broker: str) -> Iterator[World]:
    token = uuid.uuid4().hex[:10]
    settings = Settings(
        broker=broker, topic_prefix=f"test.{token}.", partitions=PARTITIONS, app_id=f"test-{token}"
    )
    topics = Topics.from_settings(settings)
    ensure_topics(settings)
    codec = get_codec()
    producer = Producer(producer_config(settings))

    def alert_out(record: dict[str, Any]) -> None:
        if record["category"] == "ALERT":
            topic, key = topics.contact_routing, record["address_key"]
        else:
            topic, key = topics.signals, record["steering_group"]
        producer.produce(topic, key=key.encode(), value=codec.encode("Alert", record))

    # K1 contact routing: v1, v3, v2 arrive in that order; v3 must win.
    for v in (1, 3, 2):
        alert_out(alert("fp-cr-k1", "CONTACT_ROUTING", v, detail={"v": str(v)}))
    # K2 contact routing: resolved at v2, then a stale v1 FIRING is redelivered.
    alert_out(alert("fp-cr-k2", "CONTACT_ROUTING", 1, address_key=K2))
    alert_out(alert("fp-cr-k2", "CONTACT_ROUTING", 2, "RESOLVED", address_key=K2))
    alert_out(alert("fp-cr-k2", "CONTACT_ROUTING", 1, address_key=K2))
    # K1 samenloop signal, firing at v2; a resolved plan overlap on K1; an area cluster.
    alert_out(alert("fp-sam-k1", "SAMENLOOP", 1, lead=False))
    alert_out(alert("fp-sam-k1", "SAMENLOOP", 2, lead=False, detail={"overlap_days": "61"}))
    alert_out(alert("fp-po-k1", "PLAN_OVERLAP", 1, lead=False))
    alert_out(alert("fp-po-k1", "PLAN_OVERLAP", 2, "RESOLVED", lead=False))
    alert_out(alert("fp-area", "AREA_CLUSTER", 1, address_key=None, area="9711", lead=False))
    # Another steering group.
    alert_out(alert("fp-sam-k3", "SAMENLOOP", 1, address_key=K3, steering_group=SG2, lead=False))

    cases_v1 = [dcase("IMG", "IMG-1", "2024-07-01", "2024-09-30")]
    cases_v2 = [*cases_v1, dcase("NCG", "NCG-7", "2024-08-15", None)]
    for key, version, cases in ((K1, 1, cases_v1), (K1, 2, cases_v2), (K2, 1, cases_v1)):
        producer.produce(
            topics.dossiers,
            key=key.encode(),
            value=codec.encode("AddressDossier", dossier(key, version, cases)),
        )

    # Register: the id first pointed elsewhere (BAG renumbering), the latest fact says K1.
    for fact in (
        nummeraanduiding_fact(NID, K3),
        pand_fact("0014100000000099", K1),
        nummeraanduiding_fact(NID, K1),
    ):
        producer.produce(
            topics.address_register, key=fact_key(fact).encode(), value=orjson.dumps(fact)
        )

    # Dead letters: two inbound rejects from case-events and one internal batch.
    letters = [
        (
            b"evt-1",
            b"\xc3\x01fixable-bytes",
            build_headers(
                reason="INVALID_FIELD",
                message="address.postcode: 'SS12' is not a Dutch postcode",
                stage="validate",
                exception_class="hub.contracts.decode.Rejection",
                field="address.postcode",
                topic=topics.case_events,
                partition=0,
                offset=5,
                rejected_at_ms=T0,
            ),
        ),
        (
            b"evt-2",
            b"not avro at all",
            build_headers(
                reason="UNDECODABLE",
                message="unknown framing",
                stage="decode",
                exception_class="hub.contracts.codec.DecodeError",
                topic=topics.case_events,
                partition=1,
                offset=6,
                rejected_at_ms=T0 + 1,
            ),
        ),
        (
            b"batch",
            b"[garbled",
            [("hub.errors.reason", b"BAD_INTERNAL_BATCH"), ("hub.errors.stage", b"correlate")],
        ),
    ]
    for key, value, headers in letters:
        producer.produce(topics.dead_letter, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(30) == 0

    app = typer.Typer()
    register(app)
    env = {
        "HUB_BROKER": broker,
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_PARTITIONS": str(PARTITIONS),
        "HUB_APP_ID": settings.app_id,
    }
    yield World(settings, topics, env, CliRunner(), app)
    specs = topics.specs(PARTITIONS)
    _delete(broker, [*specs, replayed_topic(settings)])


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- alerts


def test_alerts_json_latest_version_wins(world: World) -> None:
    result = world.run("alerts", "--json")
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    by_fp = {line["fingerprint"]: line for line in lines}
    assert set(by_fp) == {"fp-cr-k1", "fp-cr-k2", "fp-sam-k1", "fp-po-k1", "fp-area", "fp-sam-k3"}
    assert all(list(line) == ALERT_KEYS for line in lines)
    assert by_fp["fp-cr-k1"]["version"] == 3  # v3 wins though v2 arrived after it
    assert (by_fp["fp-cr-k2"]["status"], by_fp["fp-cr-k2"]["version"]) == ("RESOLVED", 2)
    assert by_fp["fp-cr-k1"] == {
        "kind": "CONTACT_ROUTING",
        "fingerprint": "fp-cr-k1",
        "status": "FIRING",
        "version": 3,
        "address_key": K1,
        "area": None,
        "steering_group": SG,
        "lead": {"source": "IMG", "case_id": "IMG-1", "contact_role": "casemanager"},
        "cases": [{"source": "IMG", "case_id": "IMG-1"}, {"source": "NCG", "case_id": "NCG-7"}],
    }
    assert by_fp["fp-area"]["area"] == "9711" and by_fp["fp-area"]["lead"] is None


def test_alerts_filters(world: World) -> None:
    firing = _lines(world.run("alerts", "--firing", "--json").stdout)
    assert {a["fingerprint"] for a in firing} == {"fp-cr-k1", "fp-sam-k1", "fp-area", "fp-sam-k3"}
    samenloop = _lines(world.run("alerts", "--kind", "samenloop", "--json").stdout)
    assert {a["fingerprint"] for a in samenloop} == {"fp-sam-k1", "fp-sam-k3"}
    group = _lines(world.run("alerts", "--steering-group", SG2, "--json").stdout)
    assert [a["fingerprint"] for a in group] == ["fp-sam-k3"]


def test_alerts_table(world: World) -> None:
    result = world.run("alerts", "--firing", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "CONTACT_ROUTING" in result.stdout and "AREA_CLUSTER" in result.stdout
    assert "4 shown, 4 firing" in result.stdout


# ----------------------------------------------------------------------------- dossier


@pytest.mark.parametrize("spelling", ["9711 ab 12a", "Vismarkt 12A, 9711AB Groningen", K1, NID])
def test_dossier_by_any_spelling_and_by_id(world: World, spelling: str) -> None:
    result = world.run("dossier", spelling, "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["address_key"] == K1
    assert view["version"] == 2  # the latest dossier record
    assert [(c["source"], c["case_id"]) for c in view["cases"]] == [
        ("IMG", "IMG-1"),
        ("NCG", "NCG-7"),
    ]
    assert view["lead"]["case_id"] == "IMG-1" and view["lead"]["contact_name"] == "A. de Vries"
    # Only FIRING findings of this address: not the resolved overlap, not K2/K3, not the area.
    assert {a["fingerprint"] for a in view["alerts"]} == {"fp-cr-k1", "fp-sam-k1"}
    samenloop = next(a for a in view["alerts"] if a["kind"] == "SAMENLOOP")
    assert samenloop["detail"] == {"overlap_days": "61"}
    assert samenloop["event_ids"] == ["ev-fp-sam-k1-2", "ev-shared"]
    assert samenloop["cases"][1]["case_id"] == "NCG-7"


def test_dossier_readable(world: World) -> None:
    result = world.run("dossier", "9711AB 12a", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("Dossier 9711AB-12A", "Lead contact", "A. de Vries", "IMG-1 ★", "NCG-7"):
        assert text in out
    assert "2024-07-01 → 2024-09-30" in out and "2024-08-15 → …" in out
    assert "SAMENLOOP" in out and "overlap_days=61" in out and "PLAN_OVERLAP" not in out


def test_dossier_not_found_and_unreadable(world: World) -> None:
    result = world.run("dossier", "9711 ab 12-a")  # toevoeging A: another address
    assert result.exit_code == 1
    assert "no dossier for 9711AB-12-A" in result.stderr
    assert "9711AB-12A" in result.stderr and "9711AB-12-2" in result.stderr  # did you mean
    unknown_id = world.run("dossier", "0014200000099999")
    assert unknown_id.exit_code == 1 and "not in the address register" in unknown_id.stderr
    garbage = world.run("dossier", "somewhere")
    assert garbage.exit_code == 1 and "cannot read the address" in garbage.stderr


# ----------------------------------------------------------------------------- dead letters


def test_dlq_list(world: World) -> None:
    rows = _lines(world.run("dlq", "list", "--json").stdout)
    assert [r["reason"] for r in rows] == ["INVALID_FIELD", "UNDECODABLE", "BAD_INTERNAL_BATCH"]
    first = rows[0]
    assert first["field"] == "address.postcode" and first["topic"] == world.topics.case_events
    assert (first["original_partition"], first["original_offset"]) == (0, 5)
    assert (first["partition"], first["offset"]) == (0, 0)
    assert "payload" not in first and "key" not in first  # no raw bytes by default
    only = _lines(world.run("dlq", "list", "--reason", "undecodable", "--json").stdout)
    assert [r["reason"] for r in only] == ["UNDECODABLE"]
    with_payload = _lines(
        world.run("dlq", "list", "--show-payload", "--limit", "1", "--json").stdout
    )
    assert len(with_payload) == 1  # the newest
    assert with_payload[0]["payload"] == {"text": "[garbled"}
    table = world.run("dlq", "list", env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "3 dead letter(s), 3 shown" in table.stdout and "INVALID_FIELD 1" in table.stdout


def _read_all(world: World, topic: str) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": world.settings.broker,
            "group.id": f"{world.settings.app_id}-check",
            "enable.auto.commit": False,
        }
    )
    try:
        parts = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        out = []
        for p in range(parts):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            while True:
                msg = consumer.poll(5)
                assert msg is not None, "message expected"
                if msg.error():
                    continue
                out.append(msg)
                if msg.offset() + 1 >= high:
                    break
        return out
    finally:
        consumer.close()


def test_dlq_replay_once(world: World) -> None:
    case_events = world.topics.case_events
    dry = world.run("dlq", "replay", "--reason", "INVALID_FIELD", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would replay 1 dead letter(s)" in dry.stdout
    assert _read_all(world, case_events) == []

    first = world.run("dlq", "replay", "--reason", "INVALID_FIELD")
    assert first.exit_code == 0, first.output
    assert f"replayed 1 dead letter(s) ({case_events}: 1)" in first.stdout
    again = world.run("dlq", "replay", "--reason", "INVALID_FIELD")
    assert "replayed 0 dead letter(s)" in again.stdout and "already replayed 1" in again.stdout

    rest = world.run("dlq", "replay")
    assert "replayed 1 dead letter(s)" in rest.stdout  # the UNDECODABLE one
    assert "already replayed 1" in rest.stdout
    assert "skipped 1: not an inbound topic" in rest.stdout  # the internal batch
    final = world.run("dlq", "replay")
    assert "replayed 0 dead letter(s)" in final.stdout and "already replayed 2" in final.stdout

    landed = sorted(_read_all(world, case_events), key=lambda m: m.key())
    assert [(m.key(), m.value()) for m in landed] == [
        (b"evt-1", b"\xc3\x01fixable-bytes"),
        (b"evt-2", b"not avro at all"),
    ]
    origins = [dict(m.headers())[H_REPLAYED_FROM].decode() for m in landed]
    assert origins == [f"{world.topics.dead_letter}:0:0", f"{world.topics.dead_letter}:0:1"]


# ----------------------------------------------------------------------------- status


def test_status_present_topics_lag_and_workers(world: World) -> None:
    """Lag of the ingest group and one live member, against the fully created topic set."""
    s = world.settings
    group = f"{s.app_id}-ingest"
    producer = Producer(producer_config(s))
    for i in range(5):
        producer.produce(world.topics.normalised, key=b"batch", value=b"x%d" % i, partition=0)
    assert producer.flush(30) == 0
    member = Consumer(
        {"bootstrap.servers": s.broker, "group.id": group, "enable.auto.commit": False}
    )
    faust_group = Consumer(
        {"bootstrap.servers": s.broker, "group.id": s.app_id, "enable.auto.commit": False}
    )
    try:
        faust_group.commit(
            offsets=[TopicPartition(world.topics.normalised, 0, 2)], asynchronous=False
        )
        member.subscribe([world.topics.case_events])
        deadline = time.monotonic() + 30
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.2)
        report = json.loads(world.run("status", "--json").stdout)
    finally:
        member.close()
        faust_group.close()
    assert report["reachable"] is True
    assert all(t["present"] for t in report["topics"])
    assert len(report["topics"]) == len(world.topics.specs(PARTITIONS))
    lag = {(r["group"], r["topic"]): r for r in report["lag"]}
    normalised = lag[(s.app_id, world.topics.normalised)]
    assert (normalised["lag"], normalised["end_offsets"], normalised["committed"]) == (3, 5, True)
    # Replayed dead letters sit on case-events: never committed by the ingest group, all lag.
    assert lag[(group, world.topics.case_events)]["committed"] is False
    assert report["workers"] == 1


def test_status_shows_missing_topics(broker: str) -> None:
    token = uuid.uuid4().hex[:10]
    prefix = f"test.{token}."
    admin = AdminClient({"bootstrap.servers": broker})
    name = f"{prefix}case-events"
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])[
        name
    ].result(timeout=30)
    try:
        app = typer.Typer()
        register(app)
        env = {
            "HUB_BROKER": broker,
            "HUB_TOPIC_PREFIX": prefix,
            "HUB_PARTITIONS": str(PARTITIONS),
            "HUB_APP_ID": f"test-{token}",
        }
        runner = CliRunner()
        report = json.loads(runner.invoke(app, ["status", "--json"], env=env).stdout)
        present = {t["name"]: t["present"] for t in report["topics"]}
        assert present[name] is True
        assert present[f"{prefix}dossiers"] is False
        assert sum(present.values()) == 1
        text = runner.invoke(app, ["status"], env={**env, "COLUMNS": "200"})
        assert text.exit_code == 0
        assert "MISSING" in text.stdout and "topic missing" in text.stdout
        assert "workers: 0" in text.stdout
    finally:
        _delete(broker, [name])


def test_status_unreachable_broker() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app, ["status", "--json", "--timeout", "2"], env={"HUB_BROKER": "127.0.0.1:1"}
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["reachable"] is False


# ----------------------------------------------------------------------------- pure helpers


def test_parse_address_query_spellings() -> None:
    assert parse_address_query("9711 ab 12a").address_key == "9711AB-12A"
    assert parse_address_query("9711AB 12A-2").address_key == "9711AB-12A-2"
    assert parse_address_query("9711 ab 12-a").address_key == "9711AB-12-A"
    assert parse_address_query("Vismarkt 12 bis, 9711AB").address_key == "9711AB-12-BIS"
    assert parse_address_query(f" {NID} ").nummeraanduiding_id == NID


def test_timeline_bar() -> None:
    from datetime import date

    lo, hi = date(2024, 1, 1), date(2024, 12, 31)
    assert timeline_bar("2024-01-01", "2024-12-31", lo, hi, 10) == "█" * 10
    assert timeline_bar(None, None, lo, hi, 10) == " " * 10
    assert timeline_bar("2024-07-01", None, lo, hi, 10).endswith("▒▒▒▒▒")
