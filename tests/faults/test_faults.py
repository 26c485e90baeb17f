"""Fault scenarios (issue 12): each publishes a simulated region at a steady rate into a fresh hub
on the suite's own broker, injects its fault under load, waits for lag 0 and judges every output
topic against the oracle. A scenario passes only with 0 missing, 0 extra, 0 wrong, 0 non-exact
duplicates, 0 version gaps, lag 0 reached, and its own checks. ``make test-faults`` runs them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from connectors.simulator import simulate
from hub.oracle import run_oracle
from hub.pipeline.topics import ensure_topics
from tests.faults.broker import FaultBroker
from tests.faults.scenario import FaultRun, Item, ScenarioReport, ScenarioTimeout, wait_for

# Size of the simulated region and the publishing rate. 2,000 addresses / 20,000 events at
# 2,500 events/s: 8 s of load, long enough to inject a fault in the middle of it.
ADDRESSES = 2000
EVENTS = 20_000
SEED = 12
RATE = 2500.0
LAG_TIMEOUT = 240.0
# For running the suite against a worker that cannot create its own topics (older revisions):
# create them before the worker starts. Off by default: the worker must create them.
PRECREATE_ENV = "HUB_FAULTS_PRECREATE_TOPICS"
PRECREATE = os.environ.get(PRECREATE_ENV) == "1"

# Every scenario is bounded: its waits have deadlines; this is the backstop.
pytestmark = pytest.mark.timeout(900)

Fault = Callable[[FaultRun], None]


@lru_cache(maxsize=1)
def region() -> tuple[Item, ...]:
    return tuple(simulate(addresses=ADDRESSES, events=EVENTS, seed=SEED))


def at(fraction: float) -> int:
    """Index in the region at ``fraction`` of the way."""
    return int(EVENTS * fraction)


def run_scenario(
    name: str,
    broker: FaultBroker,
    root: Path,
    reports: list[ScenarioReport],
    fault: Fault,
    *,
    worker_env: dict[str, str] | None = None,
    inserts: dict[int, list[Item]] | None = None,
    checks: Callable[[FaultRun], None] | None = None,
    lag_timeout: float = LAG_TIMEOUT,
) -> ScenarioReport:
    """Start (the worker creates the topics), load, fault, lag 0, judge, clean up."""
    report = ScenarioReport(name, size=f"{ADDRESSES}/{EVENTS}")
    reports.append(report)
    run = FaultRun(broker, root, report, worker_env)
    try:
        try:
            if PRECREATE:
                report.notes.append(f"topics pre-created ({PRECREATE_ENV}=1)")
            run.start(create_topics=PRECREATE)
            run.phase("worker up, topics exist")
            run.publish(region(), RATE, inserts)
            fault(run)
            if run.fault_over_at is None:
                run.fault_over()
        except ScenarioTimeout as exc:
            report.reasons.append(f"fault injection: {exc}")
        run.wait_lag0(lag_timeout)
        run.phase("lag 0" if report.lag0_s is not None else "gave up waiting for lag 0")
        cmp = run.judge()
        if not cmp.clean:
            run.judge_again_later()
        if checks is not None:
            checks(run)
        run.phase("judged")
    except Exception as exc:  # into the table; the test then fails with it as the reason
        report.reasons.append(f"{type(exc).__name__}: {exc}")
    finally:
        run.close()
    run.finish()
    return report


def assert_passed(report: ScenarioReport) -> None:
    assert report.passed, f"{report.name}: " + "; ".join(report.reasons or ["see the table"])


# ------------------------------------------------------------------------------- scenarios


def no_fault(run: FaultRun) -> None:
    run.wait_consumed(0.5)


def test_baseline_no_fault(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """Control: the same load without a fault must match the oracle exactly."""
    assert_passed(
        run_scenario("baseline (no fault)", fault_broker, tmp_path, record_report, no_fault)
    )


@pytest.mark.parametrize("fraction", [0.25, 0.40, 0.70], ids=["25pct", "40pct", "70pct"])
def test_kill_worker(
    fault_broker: FaultBroker,
    tmp_path: Path,
    record_report: list[ScenarioReport],
    fraction: float,
) -> None:
    def fault(run: FaultRun) -> None:
        run.wait_consumed(fraction)
        run.kill_worker()
        run.start_worker()
        run.fault_over()

    report = run_scenario(
        f"kill -9 worker at {fraction:.0%}", fault_broker, tmp_path, record_report, fault
    )
    assert_passed(report)


def test_kill_ingest_child(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    killed: list[int] = []

    def fault(run: FaultRun) -> None:
        run.wait_consumed(0.40)
        child = run.ingest_child()
        if child is None:
            run.checks.append(("ingest child found under the worker", False))
            return
        run.kill_pid(child)
        killed.append(child)
        run.fault_over()

    report = run_scenario(
        "kill -9 ingest child at 40%", fault_broker, tmp_path, record_report, fault
    )
    if killed:
        report.notes.append("ingest child killed")
    assert_passed(report)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("down_s", [30, 120], ids=["30s", "120s"])
def test_broker_stopped(
    fault_broker: FaultBroker,
    tmp_path: Path,
    record_report: list[ScenarioReport],
    down_s: int,
) -> None:
    """Broker stopped (LocalKafka.stop: SIGTERM) at 30 % consumed, started again after down_s.

    The publisher pauses meanwhile (an agency would queue); the worker must ride it out.
    """

    def fault(run: FaultRun) -> None:
        run.wait_consumed(0.30)
        assert run.publisher is not None
        run.publisher.pause()
        run.broker.stop()
        stopped = time.monotonic()
        while time.monotonic() - stopped < down_s:  # the fault itself: a fixed outage
            run.supervise()
            time.sleep(0.5)
        run.broker.start()
        run.publisher.resume()
        run.fault_over()

    def checks(run: FaultRun) -> None:
        run.checks.append(("worker rides out the outage without exiting", not run.report.exits))

    report = run_scenario(
        f"broker stopped {down_s} s",
        fault_broker,
        tmp_path,
        record_report,
        fault,
        checks=checks,
        lag_timeout=LAG_TIMEOUT + down_s,
    )
    assert_passed(report)


#: The worker's Kubernetes grace period (deploy/kubernetes/base/worker.yaml) less a margin.
STOP_WITHOUT_BROKER_S = 110.0


@pytest.mark.timeout(1200)
def test_worker_stopped_while_the_broker_is_away(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """SIGTERM to the worker 5 s into a broker outage; broker and worker started again later.

    The worker used to wait for the outage to end (Faust's consumer stops only once every taken
    message is acked, and a retrying step never acked; the ingest child's flush and its
    consumer's close waited for the broker too). It must exit within its grace period, and the
    batches it left unprocessed are processed by the next worker: nothing lost.
    """
    took: list[float | None] = []

    def fault(run: FaultRun) -> None:
        run.wait_consumed(0.30)
        assert run.publisher is not None
        run.publisher.pause()
        run.broker.stop()
        time.sleep(5)
        took.append(run.stop_worker(STOP_WITHOUT_BROKER_S))
        run.broker.start()
        run.start_worker()
        run.publisher.resume()
        run.fault_over()

    def checks(run: FaultRun) -> None:
        run.checks.append(
            (
                f"SIGTERMed worker exits within {STOP_WITHOUT_BROKER_S:.0f} s without a broker",
                bool(took) and took[0] is not None,
            )
        )

    report = run_scenario(
        "worker SIGTERM while broker away",
        fault_broker,
        tmp_path,
        record_report,
        fault,
        checks=checks,
        lag_timeout=LAG_TIMEOUT + 60,
    )
    assert_passed(report)


def test_output_topic_deleted_and_recreated(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """contact-routing deleted under the running worker at 30 %, recreated ~20 s later.

    What was on the topic before the deletion is gone by the operator's hand: it is read just
    before deleting (the worker paused with SIGSTOP for that moment, so nothing is appended
    between the read and the deletion) and counted as emitted. Everything else must be exact:
    dossiers and signals (untouched topics) and what the worker emits from then on.
    """
    before: list[dict[str, Any]] = []

    def fault(run: FaultRun) -> None:
        run.wait_consumed(0.30)
        topic = run.topics.contact_routing
        assert run.worker is not None
        run.worker.send_signal(signal.SIGSTOP)
        try:
            run.wait_ends_settled(topic)  # requests already on the wire have landed
            before.extend(run.read_records(topic))
            run.extra_routing = before  # removed by the operator: counts as emitted
            for future in run.admin.delete_topics([topic], operation_timeout=30).values():
                future.result(30)
            wait_for("topic deleted", lambda: not run.topics_exist([topic]), 30)
        finally:
            run.worker.send_signal(signal.SIGCONT)
        gone = time.monotonic()
        while time.monotonic() - gone < 20:  # the fault itself: ~20 s without the topic
            run.supervise()
            time.sleep(0.5)
        ensure_topics(run.hub.settings)  # recreates what is missing, same spec
        wait_for("topic recreated", lambda: run.topics_exist([topic]), 30)
        run.fault_over()

    def checks(run: FaultRun) -> None:
        run.report.notes.append(f"{len(before)} records on contact-routing before the deletion")

    report = run_scenario(
        "contact-routing deleted ~20 s",
        fault_broker,
        tmp_path,
        record_report,
        fault,
        checks=checks,
    )
    assert_passed(report)


def test_oversized_inbound_message(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """A 1,048,500-byte invalid event on case-events at 30 %: dead-lettered, never a crash loop."""
    poison = poison_event(1_048_500)

    def checks(run: FaultRun) -> None:
        letters = run.read_messages(run.topics.dead_letter)
        ok = any(key == b"POISON-1" for key, _value, _headers in letters)
        run.checks.append(("the oversized message is dead-lettered", ok))

    report = run_scenario(
        "oversized message (1,048,500 B) on inbound",
        fault_broker,
        tmp_path,
        record_report,
        no_fault,
        inserts={at(0.30): [poison]},
        checks=checks,
    )
    assert_passed(report)


def test_oversized_batch_via_http(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """18 events of ~1 MB ``attributes`` each for one case, POSTed at 30 % of the load.

    Refusing them at the edge (413/422) is fine; what is accepted must be reflected, and the
    worker must keep processing the rest of the load.
    """
    statuses: list[int] = []

    def fault(run: FaultRun) -> None:
        port = serve_http(run)
        run.wait_consumed(0.30)
        for i in range(18):
            event = http_big_event(i)
            response = requests.post(
                f"http://127.0.0.1:{port}/v1/events",
                data=orjson.dumps(event),
                headers={
                    "Authorization": f"Bearer {HTTP_TOKEN}",
                    "Content-Type": "application/json",
                },
                timeout=60,
            )
            statuses.append(response.status_code)
            if response.status_code == 202:
                run.extra_oracle_items.append(event)
        run.fault_over()

    def checks(run: FaultRun) -> None:
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        run.report.notes.append(f"HTTP answers {counts}")
        run.checks.append(("every answer is 202, 413 or 422", set(statuses) <= {202, 413, 422}))

    report = run_scenario(
        "oversized batch via HTTP (18 x ~1 MB)",
        fault_broker,
        tmp_path,
        record_report,
        fault,
        checks=checks,
    )
    assert_passed(report)


def test_correlate_exception(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """The correlate step raises on its first 5 calls (test-only HUB_FAULT_CORRELATE_ERRORS)."""

    def checks(run: FaultRun) -> None:
        fired = "injected" in run.worker_log().lower()
        run.checks.append(("the fault hook fired (worker log mentions 'injected')", fired))

    report = run_scenario(
        "exception in correlate (first 5 calls)",
        fault_broker,
        tmp_path,
        record_report,
        no_fault,
        worker_env={"HUB_FAULT_CORRELATE_ERRORS": "5"},
        checks=checks,
    )
    assert_passed(report)


def test_colliding_event_ids_across_agencies(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """IMG and NCG both send evt-1001 for their own cases at one address: both count."""
    img, ncg = colliding_story()
    key = "9901AB-9001"

    def checks(run: FaultRun) -> None:
        oracle = run_oracle([img, ncg])
        cases = oracle.engine.dossiers.get(key)
        both = cases is not None and {c[0] for c in cases.cases} >= {"IMG", "NCG"}
        run.checks.append(("the oracle reflects both agencies' evt-1001", both))
        kinds = {r["kind"] for r in oracle.firing_records().values()}
        run.checks.append(
            (
                "the oracle fires SAMENLOOP and CONTACT_ROUTING there",
                kinds >= {"SAMENLOOP", "CONTACT_ROUTING"},
            )
        )

    report = run_scenario(
        "colliding event ids (IMG/NCG evt-1001)",
        fault_broker,
        tmp_path,
        record_report,
        no_fault,
        inserts={at(0.30): [img], at(0.50): [ncg]},
        checks=checks,
    )
    assert_passed(report)


def test_far_future_event_then_correction(
    fault_broker: FaultBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """occurred_at in 2204 (a typo) is dead-lettered at the edge; its correction applies."""
    claim, typo, correction = far_future_story()

    def checks(run: FaultRun) -> None:
        oracle = run_oracle([typo])
        run.checks.append(("the oracle refuses the year-2204 event", oracle.accepted == 0))
        letters = run.read_messages(run.topics.dead_letter)
        dead = any(b"evt-ff-2" in (value or b"") for _key, value, _headers in letters)
        run.checks.append(("the year-2204 event is dead-lettered", dead))

    report = run_scenario(
        "far-future event (2204) + correction",
        fault_broker,
        tmp_path,
        record_report,
        no_fault,
        inserts={at(0.20): [claim], at(0.30): [typo], at(0.60): [correction]},
        checks=checks,
    )
    assert_passed(report)


# ------------------------------------------------------------------------------- material

HTTP_TOKEN = "faults-img-token"  # a test token for a throw-away ingress


def _address(huisnummer: int) -> dict[str, Any]:
    return {"postcode": "9901AB", "huisnummer": huisnummer, "gemeentecode": "GM1979"}


def poison_event(size: int) -> dict[str, Any]:
    """Invalid (postcode) event whose JSON is exactly ``size`` bytes."""
    event: dict[str, Any] = {
        "event_id": "poison-1",
        "source": "IMG",
        "case_id": "POISON-1",
        "case_type": "DAMAGE",
        "status": "OPENED",
        "occurred_at": "2024-03-01T10:00:00+01:00",
        "address": {"postcode": "0123AB", "huisnummer": 1, "gemeentecode": "GM1979"},
        "attributes": {"note": ""},
    }
    event["attributes"]["note"] = "x" * (size - len(orjson.dumps(event)))
    assert len(orjson.dumps(event)) == size
    return event


def http_big_event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"http-big-{i}",
        "source": "IMG",
        "case_id": "S-BIG-1",
        "case_type": "DAMAGE",
        "status": "OPENED",
        "occurred_at": f"2024-04-01T10:{i:02d}:00+02:00",
        "address": _address(9003),
        "attributes": {"note": "x" * 1_000_000},
    }


def colliding_story() -> tuple[dict[str, Any], dict[str, Any]]:
    img = {
        "event_id": "evt-1001",
        "source": "IMG",
        "case_id": "S-COLLIDE-1",
        "case_type": "DAMAGE",
        "status": "OPENED",
        "occurred_at": "2024-03-01T10:00:00+01:00",
        "address": _address(9001),
    }
    ncg = {
        "event_id": "evt-1001",
        "source": "NCG",
        "case_id": "V-COLLIDE-1",
        "case_type": "STRENGTHENING",
        "status": "OPENED",
        "occurred_at": "2024-03-02T10:00:00+01:00",
        "address": _address(9001),
        "contact": {"name": "Bewonersbegeleider 9", "role": "RESIDENT_COUNSELLOR"},
    }
    return img, ncg


def far_future_story() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    claim = {
        "event_id": "evt-ff-1",
        "source": "IMG",
        "case_id": "S-FF-1",
        "case_type": "DAMAGE",
        "status": "OPENED",
        "occurred_at": "2024-03-01T10:00:00+01:00",
        "address": _address(9002),
    }
    typo = {
        "event_id": "evt-ff-2",
        "source": "NCG",
        "case_id": "V-FF-1",
        "case_type": "STRENGTHENING",
        "status": "OPENED",
        "occurred_at": "2204-03-02T10:00:00+01:00",
        "address": _address(9002),
    }
    correction = {
        **typo,
        "event_id": "evt-ff-3",
        "status": "CANCELLED",
        "occurred_at": "2024-03-05T10:00:00+01:00",
    }
    return claim, typo, correction


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_http(run: FaultRun) -> int:
    """``hub serve-http`` for this hub (a child of the test; stopped with the run)."""
    port = _free_port()
    log = (run.hub.root / "http.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubctl", "serve-http", "--host", "127.0.0.1", "--port", str(port)],
        env={**run.hub.env(0), "HUB_INGRESS_TOKENS": f"{HTTP_TOKEN}=IMG"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    run.hub.processes.append(proc)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"serve-http exited {proc.returncode}")
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for("serve-http answering", up, 60, 0.3, run.supervise)
    return port
