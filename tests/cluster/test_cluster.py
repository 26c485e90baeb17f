"""Fault scenarios on a three-node cluster (issue 16): each publishes the fault suite's simulated
region into a fresh hub (8 partitions, RF 3, min ISR 2), injects its fault under load, waits for
lag 0 and judges every output topic against the oracle (tests/faults/compare.py). A scenario
passes only with 0 missing, 0 extra, 0 wrong, 0 non-exact duplicates, 0 version gaps, lag 0,
no publisher record dropped, and its own checks. ``make test-cluster`` runs them.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.broker import ClusterBroker
from tests.cluster.scenario import ClusterRun
from tests.faults.scenario import ScenarioReport, ScenarioTimeout, wait_for
from tests.faults.test_faults import ADDRESSES, EVENTS, region

RATE = 2000.0
PARTITIONS = 8
LAG_TIMEOUT = 300.0
#: standby replicas of the workers (the deployed 0); HUB_TEST_STANDBY_REPLICAS=1 reproduces stop
#: 38's holes in standby copies (the rolling restart's table check finds one in ~1 run of 3)
STANDBY_REPLICAS = os.environ.get("HUB_TEST_STANDBY_REPLICAS", "0")
pytestmark = pytest.mark.timeout(1200)  # backstop; every wait has its own deadline

Fault = Callable[[ClusterRun], None]


def run_cluster_scenario(
    name: str,
    broker: ClusterBroker,
    root: Path,
    reports: list[ScenarioReport],
    fault: Fault,
    *,
    workers: int = 1,
    rate: float = RATE,
    worker_env: dict[str, str] | None = None,
    checks: Callable[[ClusterRun], None] | None = None,
) -> ScenarioReport:
    """Start ``workers`` (the first creates the topics), load, fault, lag 0, judge, clean up."""
    report = ScenarioReport(name, size=f"{ADDRESSES}/{EVENTS}, {workers}w/{PARTITIONS}p")
    reports.append(report)
    run = ClusterRun(broker, root, report, worker_env, PARTITIONS)
    try:
        try:
            run.start()
            run.check_replication()
            for index in range(1, workers):
                run.start_worker(index)
            # the load starts once every worker consumes: the fault then hits a hub under load
            # (a worker's first join waits for the offsets topic of a fresh cluster)
            wait_members(run, workers)
            run.phase(f"{workers} worker(s) up; leaders per node {run.leader_counts()}")
            run.publish(region(), rate)
            fault(run)
            if run.fault_over_at is None:
                run.fault_over()
        except ScenarioTimeout as exc:
            report.reasons.append(f"fault injection: {exc}")
        run.wait_lag0(LAG_TIMEOUT)
        run.phase("lag 0" if report.lag0_s is not None else "gave up waiting for lag 0")
        run.judge()
        pub = run.publisher
        run.checks.append(
            (
                "publisher: every record acknowledged (retried, none dropped)",
                pub is not None and not pub.failed and pub.error is None,
            )
        )
        if checks is not None:
            checks(run)
        run.phase("judged")
    except Exception as exc:  # into the table; the test then fails with it as the reason
        report.reasons.append(f"{type(exc).__name__}: {exc}")
    finally:
        run.close()
    run.finish()
    return report


def wait_members(run: ClusterRun, count: int, timeout: float = 180.0) -> None:
    """Until the agents' and the ingest stage's consumer groups are stable with ``count``
    members each, or note it."""
    app = run.hub.settings.app_id
    groups = [app, f"{app}-ingest"]

    def stable() -> bool:
        try:
            futures = run.admin.describe_consumer_groups(groups)
            described = [f.result(timeout=10) for f in futures.values()]
        except Exception:
            return False
        return all(str(d.state).endswith("STABLE") and len(d.members) == count for d in described)

    try:
        took = wait_for(f"{count} members in {groups}", stable, timeout, 1.0, run.supervise)
        run.phase(f"groups stable with {count} member(s) after {took:.0f}s")
    except ScenarioTimeout as exc:
        run.report.notes.append(str(exc))


def idle(run: ClusterRun, seconds: float) -> None:
    """A fixed fault duration, supervising the workers meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run.supervise()
        time.sleep(0.5)


def assert_passed(report: ScenarioReport) -> None:
    assert report.passed, f"{report.name}: " + "; ".join(report.reasons or ["see the table"])


def no_worker_exit(run: ClusterRun) -> None:
    run.checks.append(("no worker exited by itself", not run.report.exits))


def tables_match_changelogs(run: ClusterRun) -> None:
    """After the workers stopped: every table partition that is at its changelog's end, active
    or standby, in every data dir, holds what the changelog holds."""
    no_worker_exit(run)
    compared, problems = run.tables_against_changelogs()
    run.phase(f"{compared} table partition(s) at their changelog's end compared with it")
    run.report.notes.extend(problems[:5])
    run.checks.append(
        (
            "every local table partition at its changelog's end equals it",
            compared > 0 and not problems,
        )
    )


# ------------------------------------------------------------------------------- scenarios


def test_status_shows_every_node_and_the_controller_quorum(cluster_broker: ClusterBroker) -> None:
    """`hub kafka status --brokers 3`: three nodes up with their pids, a quorum leader among
    three voters, exit code 0."""
    result = cluster_broker.hub_kafka("status")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for node_id, pid in cluster_broker.started.items():
        assert (
            f"node {node_id} localhost:{cluster_broker.port + node_id - 1}: up, local pid {pid}"
            in out
        )
    assert "3/3 broker(s) registered" in out
    assert re.search(r"controller quorum: leader [123] .*voters \[1, 2, 3\]", out), out
    assert out.count("Follower") == 2 and out.count(" Leader") == 1, out


def test_kill_leader_broker(
    cluster_broker: ClusterBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """kill -9 of the node leading most of the hub's partitions at 40 %, back after 15 s."""

    def fault(run: ClusterRun) -> None:
        run.wait_consumed(0.40)
        counts = run.leader_counts()
        node = max(counts, key=lambda n: counts[n])
        pid = run.cluster.kill(node)
        run.phase(f"kill -9 node {node} (pid {pid}), leaders per node were {counts}")
        idle(run, 15)
        run.phase(f"leaders per node after failover {run.leader_counts()}")
        took = run.cluster.start_nodes([node])
        run.phase(f"node {node} restarted, registered after {took:.0f}s")
        run.fault_over()

    report = run_cluster_scenario(
        "kill -9 leader broker",
        cluster_broker,
        tmp_path,
        record_report,
        fault,
        checks=no_worker_exit,
    )
    assert_passed(report)


def test_two_brokers_stopped(
    cluster_broker: ClusterBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """Two of three nodes stopped at once for 30 s at 30 %, load going on: below min ISR (and
    without a controller quorum) the cluster acknowledges nothing; producers keep retrying."""
    outage: dict[str, int] = {}

    def fault(run: ClusterRun) -> None:
        run.wait_consumed(0.30)
        counts = run.leader_counts()
        victims = sorted(sorted(counts, key=lambda n: -counts[n])[:2])
        pub = run.publisher
        assert pub is not None
        took = run.cluster.stop_nodes(victims)
        outage["acked_at_stop"] = run.acked()
        outage["publishing"] = int(pub.is_alive())
        outage["unacked"] = pub.sent - len(pub.acked) - len(pub.failed)
        run.phase(
            f"nodes {victims} stopped (SIGTERM, gone after {took:.0f}s); publisher "
            f"{'still publishing' if pub.is_alive() else 'DONE'}, {outage['unacked']} sent and "
            "not yet acknowledged"
        )
        idle(run, 30)
        outage["acked_at_restart"] = run.acked()
        took = run.cluster.start_nodes(victims)
        run.phase(
            f"nodes {victims} restarted, registered after {took:.0f}s; acks during the outage: "
            f"{outage['acked_at_restart'] - outage['acked_at_stop']}"
        )
        run.fault_over()

    def checks(run: ClusterRun) -> None:
        no_worker_exit(run)
        if outage:
            grew = outage["acked_at_restart"] - outage["acked_at_stop"]
            run.checks.append((f"no write acknowledged below min ISR ({grew} were)", grew == 0))
            run.checks.append(
                (
                    "the outage hit the publisher mid-load (records in flight, retried)",
                    bool(outage["publishing"]) and outage["unacked"] > 0,
                )
            )

    report = run_cluster_scenario(
        "two brokers stopped 30 s",
        cluster_broker,
        tmp_path,
        record_report,
        fault,
        checks=checks,
    )
    assert_passed(report)


def test_kill_ingest_child(
    cluster_broker: ClusterBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """kill -9 of the worker's ingest child process alone at 40 %."""

    def fault(run: ClusterRun) -> None:
        run.wait_consumed(0.40)
        child = run.ingest_child()
        if child is None:
            run.checks.append(("ingest child found under the worker", False))
            return
        run.kill_pid(child)
        run.phase(f"kill -9 ingest child {child}")
        run.fault_over()

    report = run_cluster_scenario(
        "kill -9 ingest child", cluster_broker, tmp_path, record_report, fault
    )
    assert_passed(report)


def test_kill_one_of_three_workers_wiped_then_replaced(
    cluster_broker: ClusterBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """Three workers, standby replicas on; worker 1 killed -9 at 30 % and its RocksDB dir
    wiped; a replacement started on the empty dir at 60 % (two rebalances)."""

    def fault(run: ClusterRun) -> None:
        run.wait_consumed(0.30)
        run.kill_worker(1)
        run.hub.wipe_data(1)
        run.phase("kill -9 worker 1, its data dir wiped")
        run.wait_consumed(0.60, timeout=240)
        run.start_worker(1)
        run.phase("replacement worker 1 started on an empty data dir")
        run.fault_over()

    report = run_cluster_scenario(
        "3 workers: kill -9 one, wipe, replace",
        cluster_broker,
        tmp_path,
        record_report,
        fault,
        workers=3,
        rate=800.0,
        # INFO: Faust's assignment and recovery tables, for a failure's post-mortem
        worker_env={
            "HUB_STANDBY_REPLICAS": STANDBY_REPLICAS,
            "HUB_LOG_LEVEL": "INFO",
            "HUB_TRACE_BATCHES": "1",
        },
    )
    assert_passed(report)


def test_rolling_restart_of_workers(
    cluster_broker: ClusterBroker, tmp_path: Path, record_report: list[ScenarioReport]
) -> None:
    """Two workers restarted one by one (SIGTERM, start again) under load."""

    def fault(run: ClusterRun) -> None:
        for index, at in ((0, 0.15), (1, 0.50)):
            run.wait_consumed(at, timeout=240)
            took = run.stop_worker(index)
            run.start_worker(index)
            run.phase(f"worker {index} restarted (stopped in {took:.0f}s)")
        run.fault_over()

    report = run_cluster_scenario(
        "rolling restart of 2 workers",
        cluster_broker,
        tmp_path,
        record_report,
        fault,
        workers=2,
        rate=600.0,
        # the deployed configuration: no standby replicas. With HUB_STANDBY_REPLICAS=1 Faust's
        # standby copies get holes (stop 38, docs/architecture.md), which this check finds
        # in about 1 run of 3
        worker_env={"HUB_STANDBY_REPLICAS": STANDBY_REPLICAS},
        checks=tables_match_changelogs,
    )
    assert_passed(report)
