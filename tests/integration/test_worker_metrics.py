"""Operations view of a real worker: metrics move, health answers, labels stay impersonal."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from tests.integration.pipeline_harness import hub_under_test
from tests.unit.test_promtool import RULES, _free_port, _query

POSTCODE = re.compile(r"[1-9][0-9]{3} ?[A-Za-z]{2}")
CASE_ID = re.compile(r"(NCG|IMG|GM[0-9]{4}|WC)-")


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lbls), v in samples.items()
        if n == name and all(dict(lbls).get(k) == want for k, want in labels.items())
    )


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # not listening yet
        return 0


def test_worker_metrics_move_and_carry_no_personal_labels(broker: str, tmp_path: Path) -> None:
    sim = simulate(addresses=400, events=4000, seed=3)
    personal = {str(ref.postcode) for ref in sim.manifest.addresses.values()}
    port = _free_port()
    with hub_under_test(broker, tmp_path) as hub:
        hub.start_worker(metrics_port=port)
        deadline = time.monotonic() + 60
        while _status(port, "/healthz") != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _status(port, "/healthz") == 200
        publish(sim, hub.settings)
        during = _scrape(port)  # a scrape while the simulator's events flow
        hub.wait_caught_up()
        after = _scrape(port)
        assert _status(port, "/readyz") == 200

        assert _total(after, "hub_events_received_total") > 0
        assert _total(after, "hub_events_received_total", source="IMG", case_type="DAMAGE") > 0
        assert _total(after, "hub_events_rejected_total") == sum(sim.manifest.malformed.values())
        assert _total(after, "hub_events_duplicates_total") > 0
        assert _total(after, "hub_signals_emitted_total", kind="SAMENLOOP", status="FIRING") > 0
        assert _total(after, "hub_signals_firing", kind="CONTACT_ROUTING") > 0
        assert _total(after, "hub_dossiers") > 0
        assert _total(after, "hub_batch_size_events_count", stage="ingest") > 0
        assert _total(after, "hub_processing_latency_seconds_count") > 0
        assert _total(after, "hub_table_recovered", table="dossiers") == 1
        assert any(n == "hub_consumer_lag_messages" for n, _ in after)
        # the producer-error panel has its series from the start, at 0 (issue 13.4)
        for topic in (hub.topics.dead_letter, hub.topics.normalised, hub.topics.case_events):
            for error in ("_MSG_TIMED_OUT", "MSG_SIZE_TOO_LARGE", "OTHER"):
                key = ("hub_producer_errors_total", (("error", error), ("topic", topic)))
                assert after.get(key) == 0, key

        for samples in (during, after):
            for (name, labels), _value in samples.items():
                for label, value in labels:
                    assert value not in personal, (name, label)
                    assert not POSTCODE.search(value), (name, label, value)
                    assert not CASE_ID.search(value), (name, label, value)
                    assert "@" not in value and "Bewonersbegeleider" not in value


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed")
def test_real_prometheus_scrapes_a_running_worker(broker: str, tmp_path: Path) -> None:
    port, prom_port = _free_port(), _free_port()
    with hub_under_test(broker, tmp_path) as hub:
        hub.start_worker(metrics_port=port)
        publish(simulate(addresses=100, events=500, seed=4), hub.settings)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            "scrape_configs:\n  - job_name: hub\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{port}']\n"
        )
        prom = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            hub.wait_caught_up()
            deadline = time.monotonic() + 60
            result: list[dict[str, object]] = []
            while time.monotonic() < deadline and not result:
                try:
                    result = _query(
                        f"http://127.0.0.1:{prom_port}", "sum(hub_events_received_total) > 0"
                    )
                except OSError:
                    result = []
                time.sleep(1)
            assert result, "Prometheus never saw the worker's events"
        finally:
            prom.terminate()
            prom.wait(15)
