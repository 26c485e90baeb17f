"""hub.metrics and hub.health: each helper moves its metric; labels stay bounded; HTTP endpoints."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub import metrics
from hub.health import MetricsServer, Readiness, start_metrics_server
from hub.metrics import OTHER, REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hub-dashboard.json"
POSTCODE_RE = re.compile(r"[1-9][0-9]{3} ?[A-Za-z]{2}")


def value(name: str, **labels: str) -> float:
    """Current value of a sample (0 when the series does not exist yet)."""
    got = REGISTRY.get_sample_value(name, labels)
    return 0.0 if got is None else got


# --- safe_label and friends ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "unbounded",
    [
        "9711AB-12A-2",
        "9711 AB",
        "0014200000123456",
        "ZAAK-2024-000123",
        "Jan Jansen",
        "jan@example.nl",
        "",
        "ncg",
        None,
        42,
    ],
)
def test_safe_label_maps_unbounded_values_to_other(unbounded: object) -> None:
    for vocabulary in (
        metrics.SOURCES,
        metrics.CASE_TYPES,
        metrics.KINDS,
        metrics.STEERING_GROUPS,
        metrics.REJECT_REASONS,
    ):
        assert metrics.safe_label(unbounded, vocabulary) == OTHER


def test_safe_label_keeps_vocabulary_and_enum_values() -> None:
    from hub.contracts.enums import RuleName, Source

    assert metrics.safe_label("NCG", metrics.SOURCES) == "NCG"
    assert metrics.safe_label(Source.IMG, metrics.SOURCES) == "IMG"
    assert metrics.safe_label(RuleName.SAMENLOOP, metrics.KINDS) == "SAMENLOOP"
    assert metrics.safe_label("EEMSDELTA", metrics.STEERING_GROUPS) == "EEMSDELTA"


def test_pattern_guards() -> None:
    assert metrics.safe_identifier("hub.case-events") == "hub.case-events"
    assert metrics.safe_identifier("dossiers") == "dossiers"
    for bad in ("9711AB-12A-2", "zaak-2024-0001", "jan@example.nl", "Hub.Topic", "a b"):
        assert metrics.safe_identifier(bad) == OTHER
    assert metrics.safe_error_code("_MSG_TIMED_OUT") == "_MSG_TIMED_OUT"
    assert metrics.safe_error_code("9711AB") == OTHER
    assert metrics.safe_error_code("Jan Jansen") == OTHER
    assert metrics.safe_partition(7) == "7"
    assert metrics.safe_partition("x") == OTHER
    assert metrics.safe_partition(10**6) == OTHER


# --- each helper moves its metric --------------------------------------------------------------
def test_record_received_counts_per_source_and_case_type_and_stamps_source() -> None:
    before = value("hub_events_received_total", source="NCG", case_type="STRENGTHENING")
    other = value("hub_events_received_total", source=OTHER, case_type="DAMAGE")
    metrics.record_received(
        Counter({("NCG", "STRENGTHENING"): 3, ("9711AB-12A-2", "DAMAGE"): 2, ("IMG", "DAMAGE"): 0}),
        now=1234.0,
    )
    assert value("hub_events_received_total", source="NCG", case_type="STRENGTHENING") == before + 3
    assert value("hub_events_received_total", source=OTHER, case_type="DAMAGE") == other + 2
    assert value("hub_source_last_received_timestamp_seconds", source="NCG") == 1234.0


def test_watch_sources_starts_the_silence_clock_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # a fresh watch list: another test may have received a HOUSING_CORPORATION event already
    # (the registry is process-wide), which counts as watched and made this order-dependent
    monkeypatch.setattr(metrics, "_watched", set())
    metrics.watch_sources(["HOUSING_CORPORATION", "someone@else"], now=50.0)
    assert value("hub_source_last_received_timestamp_seconds", source="HOUSING_CORPORATION") == 50
    metrics.watch_sources(["HOUSING_CORPORATION"], now=99.0)  # already watched: unchanged
    assert value("hub_source_last_received_timestamp_seconds", source="HOUSING_CORPORATION") == 50
    assert (
        REGISTRY.get_sample_value("hub_source_last_received_timestamp_seconds", {"source": OTHER})
        is None
    )


def test_record_rejected_per_reason_code() -> None:
    before = value("hub_events_rejected_total", reason="UNDECODABLE")
    other = value("hub_events_rejected_total", reason=OTHER)
    metrics.record_rejected(Counter({"UNDECODABLE": 4, "postcode 9711AB missing": 1}))
    assert value("hub_events_rejected_total", reason="UNDECODABLE") == before + 4
    assert value("hub_events_rejected_total", reason=OTHER) == other + 1


@pytest.mark.parametrize(
    ("helper", "name"),
    [
        (metrics.record_duplicates, "hub_events_duplicates_total"),
        (metrics.record_parked, "hub_events_parked_total"),
        (metrics.record_released, "hub_events_released_total"),
    ],
)
def test_per_source_counters(helper: Callable[[Mapping[str, int] | int], None], name: str) -> None:
    before = value(name, source="IMG")
    before_other = value(name, source=OTHER)
    helper(Counter({"IMG": 2}))
    helper(5)
    assert value(name, source="IMG") == before + 2
    assert value(name, source=OTHER) == before_other + 5


def test_set_parked_and_dossiers() -> None:
    metrics.set_parked(17)
    assert value("hub_parked_events") == 17
    metrics.set_dossiers(100)
    metrics.adjust_dossiers(5)
    assert value("hub_dossiers") == 105
    metrics.set_dossiers(-3)
    assert value("hub_dossiers") == 0


def test_record_emitted_per_kind_status_group() -> None:
    labels = {"kind": "SAMENLOOP", "status": "FIRING", "steering_group": "EEMSDELTA"}
    before = value("hub_signals_emitted_total", **labels)
    other = value(
        "hub_signals_emitted_total", kind="SAMENLOOP", status="FIRING", steering_group=OTHER
    )
    metrics.record_emitted(
        Counter(
            {
                ("SAMENLOOP", "FIRING", "EEMSDELTA"): 2,
                ("SAMENLOOP", "FIRING", "GM1979"): 1,
            }
        )
    )
    assert value("hub_signals_emitted_total", **labels) == before + 2
    assert (
        value("hub_signals_emitted_total", kind="SAMENLOOP", status="FIRING", steering_group=OTHER)
        == other + 1
    )


def test_firing_gauge_adjust_and_replace() -> None:
    metrics.set_firing({("PLAN_OVERLAP", "OLDAMBT"): 3, ("SAMENLOOP", "GRONINGEN"): 1})
    assert value("hub_signals_firing", kind="PLAN_OVERLAP", steering_group="OLDAMBT") == 3
    metrics.adjust_firing({("PLAN_OVERLAP", "OLDAMBT"): -1, ("SAMENLOOP", "GRONINGEN"): 2})
    assert value("hub_signals_firing", kind="PLAN_OVERLAP", steering_group="OLDAMBT") == 2
    assert value("hub_signals_firing", kind="SAMENLOOP", steering_group="GRONINGEN") == 3
    metrics.set_firing({("PLAN_OVERLAP", "OLDAMBT"): 1})  # replaces: others back to 0
    assert value("hub_signals_firing", kind="PLAN_OVERLAP", steering_group="OLDAMBT") == 1
    assert value("hub_signals_firing", kind="SAMENLOOP", steering_group="GRONINGEN") == 0


def test_alert_latency_histograms() -> None:
    name_p, name_e = "hub_processing_latency_seconds", "hub_event_time_latency_seconds"
    count_p = value(f"{name_p}_count", kind="MANDATE_EXCEEDED")
    le_50ms = value(f"{name_p}_bucket", kind="MANDATE_EXCEEDED", le="0.05")
    day = value(f"{name_e}_bucket", kind="MANDATE_EXCEEDED", le="86400.0")
    now_ms = 10_000_000_000
    metrics.observe_alert_latency(
        "MANDATE_EXCEEDED",
        ingested_at_ms=now_ms - 40,
        occurred_at_ms=now_ms - 3_600_000 * 20,
        now_ms=now_ms,
    )
    assert value(f"{name_p}_count", kind="MANDATE_EXCEEDED") == count_p + 1
    assert value(f"{name_p}_bucket", kind="MANDATE_EXCEEDED", le="0.05") == le_50ms + 1
    assert value(f"{name_e}_bucket", kind="MANDATE_EXCEEDED", le="86400.0") == day + 1
    assert value(f"{name_e}_bucket", kind="MANDATE_EXCEEDED", le="43200.0") == 0
    # buckets are the hub's, not the client's defaults
    assert (
        REGISTRY.get_sample_value(f"{name_p}_bucket", {"kind": "MANDATE_EXCEEDED", "le": "60.0"})
        is not None
    )
    assert (
        REGISTRY.get_sample_value(
            f"{name_e}_bucket", {"kind": "MANDATE_EXCEEDED", "le": "604800.0"}
        )
        is not None
    )


def test_observe_batch() -> None:
    count = value("hub_batch_size_events_count", stage="ingest")
    total = value("hub_batch_size_events_sum", stage="ingest")
    le_500 = value("hub_batch_size_events_bucket", stage="ingest", le="500.0")
    metrics.observe_batch("ingest", 420)
    assert value("hub_batch_size_events_count", stage="ingest") == count + 1
    assert value("hub_batch_size_events_sum", stage="ingest") == total + 420
    assert value("hub_batch_size_events_bucket", stage="ingest", le="500.0") == le_500 + 1
    assert (
        REGISTRY.get_sample_value(
            "hub_batch_size_events_bucket", {"stage": "ingest", "le": "10000.0"}
        )
        is not None
    )


def test_consumer_lag_set_and_clear() -> None:
    metrics.set_consumer_lags({("hub.case-events", 0): 12, ("hub.case-events", 1): -5})
    assert value("hub_consumer_lag_messages", topic="hub.case-events", partition="0") == 12
    assert value("hub_consumer_lag_messages", topic="hub.case-events", partition="1") == 0
    metrics.clear_consumer_lag([("hub.case-events", 0), ("hub.never-assigned", 3)])
    assert (
        REGISTRY.get_sample_value(
            "hub_consumer_lag_messages", {"topic": "hub.case-events", "partition": "0"}
        )
        is None
    )


def test_table_recovery() -> None:
    metrics.set_table_recovery("dossiers", 0.25, recovered=False)
    assert value("hub_table_recovery_progress_ratio", table="dossiers") == 0.25
    assert value("hub_table_recovered", table="dossiers") == 0
    metrics.set_table_recovery("dossiers", 7.0, recovered=False)
    assert value("hub_table_recovery_progress_ratio", table="dossiers") == 1.0
    metrics.set_table_recovery("dossiers", 0.9, recovered=True)
    assert value("hub_table_recovered", table="dossiers") == 1
    assert value("hub_table_recovery_progress_ratio", table="dossiers") == 1.0


def test_producer_errors() -> None:
    before = value("hub_producer_errors_total", topic="hub.signals", error="_MSG_TIMED_OUT")
    metrics.record_producer_error("hub.signals", "_MSG_TIMED_OUT", n=2)
    assert (
        value("hub_producer_errors_total", topic="hub.signals", error="_MSG_TIMED_OUT")
        == before + 2
    )


def test_worker_info() -> None:
    metrics.set_worker_info(role="correlate", version="1.2.3")
    assert value("hub_worker_info", version="1.2.3", role="correlate") == 1
    metrics.set_worker_info(role="Jan Jansen", version="not a version")
    assert value("hub_worker_info", version=OTHER, role=OTHER) == 1
    metrics.set_worker_info()


def test_no_label_value_carries_personal_or_unbounded_data() -> None:
    """Feed every helper hostile label values; the exposition holds only bounded labels."""
    hostile = ["9711AB-12A-2", "0014200000123456", "Jan Jansen", "jan@example.nl", "9711 ab"]
    for bad in hostile:
        metrics.record_received({(bad, bad): 1})
        metrics.record_rejected({bad: 1})
        metrics.record_duplicates({bad: 1})
        metrics.record_emitted({(bad, bad, bad): 1})
        metrics.adjust_firing({(bad, bad): 1})
        metrics.observe_alert_latency(bad, 1, 1, now_ms=2)
        metrics.observe_batch(bad, 1)
        metrics.set_consumer_lag(bad, 0, 1)
        metrics.set_table_recovery(bad, 0.5, recovered=False)
        metrics.record_producer_error(bad, bad)
    allowed = {
        "source": metrics.SOURCES | {OTHER},
        "case_type": metrics.CASE_TYPES | {OTHER},
        "reason": metrics.REJECT_REASONS,
        "kind": metrics.KINDS | {OTHER},
        "status": metrics.ALERT_STATUSES | {OTHER},
        "steering_group": metrics.STEERING_GROUPS | {OTHER},
        "stage": metrics.STAGES | {OTHER},
    }
    exposition = _exposition()
    for family in text_string_to_metric_families(exposition):
        assert family.name.startswith("hub_"), family.name
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                assert label_value not in hostile, (sample.name, label)
                assert not POSTCODE_RE.search(label_value), (sample.name, label, label_value)
                assert "@" not in label_value and " " not in label_value
                if label in allowed:
                    assert label_value in allowed[label], (sample.name, label, label_value)


# --- HTTP: /metrics, /healthz, /readyz -----------------------------------------------------------
def _exposition() -> str:
    from prometheus_client import generate_latest

    return generate_latest(REGISTRY).decode()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class Flag:
    """A readiness callable the test flips."""

    def __init__(self) -> None:
        self.ready = False

    def __call__(self) -> tuple[bool, str]:
        return (True, "ready") if self.ready else (False, "recovering tables: dossiers")


@pytest.fixture
def server_and_flag() -> Iterator[tuple[MetricsServer, Flag]]:
    flag = Flag()
    server = start_metrics_server(0, readiness=flag, host="127.0.0.1")
    try:
        yield server, flag
    finally:
        server.close()


def test_health_endpoints(server_and_flag: tuple[MetricsServer, Flag]) -> None:
    server, flag = server_and_flag
    assert server.port > 0
    assert _get(f"{server.url}/healthz") == (200, "ok\n")
    status, body = _get(f"{server.url}/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "reason": "recovering tables: dossiers"}
    flag.ready = True
    status, body = _get(f"{server.url}/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    assert _get(f"{server.url}/nope")[0] == 404


def test_metrics_endpoint_exposes_hub_metrics(server_and_flag: tuple[MetricsServer, Flag]) -> None:
    server, _ = server_and_flag
    metrics.record_received({("MUNICIPALITY", "PERMIT"): 1})
    status, body = _get(f"{server.url}/metrics")
    assert status == 200
    names = {family.name for family in text_string_to_metric_families(body)}
    for expected in (
        "hub_events_received",
        "hub_events_rejected",
        "hub_signals_emitted",
        "hub_signals_firing",
        "hub_dossiers",
        "hub_processing_latency_seconds",
        "hub_consumer_lag_messages",
        "hub_worker_info",
    ):
        assert expected in names
    assert all(name.startswith("hub_") for name in names)
    assert 'hub_events_received_total{case_type="PERMIT",source="MUNICIPALITY"}' in body


def test_metrics_endpoint_renders_only_the_series_named(
    server_and_flag: tuple[MetricsServer, Flag],
) -> None:
    """``?name[]=`` as prometheus_client's own handler: a poller that reads two series does
    not make the worker render every series on each poll (the benchmark polls 4 times a
    second)."""
    server, _ = server_and_flag
    metrics.observe_batch("ingest", 7)
    metrics.record_received({("NCG", "STRENGTHENING"): 1})
    query = "name[]=hub_batch_size_events_sum&name[]=hub_table_recovered"
    status, body = _get(f"{server.url}/metrics?{query}")
    assert status == 200
    samples = {
        sample.name for family in text_string_to_metric_families(body) for sample in family.samples
    }
    assert "hub_batch_size_events_sum" in samples
    assert samples <= {"hub_batch_size_events_sum", "hub_table_recovered"}
    assert "hub_events_received" not in body
    _, everything = _get(f"{server.url}/metrics")
    assert "hub_events_received_total" in everything and len(everything) > 10 * len(body)


def test_broken_readiness_check_is_not_ready() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom with 9711AB")

    server = start_metrics_server(0, readiness=broken, host="127.0.0.1")
    try:
        status, body = _get(f"{server.url}/readyz")
    finally:
        server.close()
    assert status == 503
    assert json.loads(body)["reason"] == "readiness check failed: RuntimeError"


def test_readiness_state_machine() -> None:
    ready = Readiness(tables=["dossiers", "areas"], stall_after_s=60)
    assert ready() == (False, "not consuming yet")
    ready.set_consuming()
    ready.set_assigned([("hub.normalised", 0), ("hub.normalised", 3)])
    ok, reason = ready()
    assert not ok and reason == "recovering tables: areas, dossiers"
    assert value("hub_table_recovered", table="areas") == 0
    ready.set_table_recovery("dossiers", 1.0, recovered=True)
    ready.set_table_recovery("areas", 0.5, recovered=False)
    assert ready() == (False, "recovering tables: areas")
    assert value("hub_table_recovery_progress_ratio", table="areas") == 0.5
    ready.set_table_recovery("areas", 1.0, recovered=True)
    assert ready() == (True, "ready, 2 partitions assigned")
    ready._last_poll -= 120  # the consume loop stalled
    assert ready()[0] is False
    ready.heartbeat()
    assert ready()[0] is True
    ready.set_assigned([("hub.normalised", 1)])  # rebalance: recover again
    assert ready()[0] is False


# --- the dashboard only uses metrics that exist ------------------------------------------------
def test_metric_names_follow_conventions() -> None:
    names = metrics.metric_names()
    assert "hub_events_received_total" in names and "hub_worker_info" in names
    assert "hub_processing_latency_seconds_bucket" in names
    for name in names:
        assert re.fullmatch(r"hub_[a-z0-9_]+", name), name
        assert "_total" not in name or name.endswith("_total"), name


def test_dashboard_queries_use_defined_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "hub-overview"
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in (
        "per source",
        "reason",
        "lag",
        "latency",
        "steering group",
        "dossiers",
        "batch",
        "parked",
    ):
        assert topic in titles
    known = metrics.metric_names()
    used = {name for expr in exprs for name in re.findall(r"\bhub_[a-z0-9_]+", expr)}
    assert used and used <= known, used - known
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "hub-prometheus"
