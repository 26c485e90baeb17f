"""deploy/prometheus: promtool checks, rule tests, and a real Prometheus scraping the hub endpoint.

promtool and prometheus come from Debian's ``prometheus`` package (``make test`` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from hub import metrics

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
CHECK = PROM_DIR / "check.sh"
RULES = PROM_DIR / "rules" / "hub-alerts.yml"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (apt-get install -y --no-install-recommends prometheus)",
)


@needs_promtool
def test_check_sh_is_green() -> None:
    result = subprocess.run([str(CHECK)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prometheus checks passed" in result.stdout


@needs_promtool
def test_check_sh_fails_on_a_failing_rule_test(tmp_path: Path) -> None:
    copy = tmp_path / "prometheus"
    shutil.copytree(PROM_DIR, copy)
    test_file = copy / "tests" / "hub-alerts.test.yml"
    text = test_file.read_text()
    broken = text.replace('summary: "Hub worker w1:9464 is down"', 'summary: "wrong"', 1)
    assert broken != text
    test_file.write_text(broken)
    result = subprocess.run([str(copy / "check.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0


def test_rules_use_defined_metrics() -> None:
    """Every hub_ metric a rule reads is one hub.metrics defines (catches renames)."""
    known = metrics.metric_names()
    used = set(re.findall(r"\bhub_[a-z0-9_]+", RULES.read_text()))
    assert used and used <= known, used - known
    for alert in (
        "HubWorkerDown",
        "HubDeadLettersRising",
        "HubConsumerLagGrowing",
        "HubSourceSilent",
        "HubTableRecoveryStuck",
    ):
        assert f"alert: {alert}" in RULES.read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        payload = json.loads(response.read())
    assert payload["status"] == "success"
    return list(payload["data"]["result"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus binary not installed")
def test_real_prometheus_scrapes_the_metrics_endpoint(tmp_path: Path) -> None:
    """A real Prometheus scrapes start_metrics_server and loads the hub's rules."""
    server = metrics.start_metrics_server(0, host="127.0.0.1")
    metrics.record_received({("NCG", "STRENGTHENING"): 2})
    prom_port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n  - job_name: hub\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n"
    )
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 60
        received: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            try:
                received = _query(
                    base, 'hub_events_received_total{source="NCG", case_type="STRENGTHENING"}'
                )
            except OSError:
                received = []
            if received:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.5)
        assert received, "Prometheus never scraped the hub's metrics"
        assert float(received[0]["value"][1]) >= 2  # type: ignore[index]
        up = _query(base, 'up{job="hub"}')
        assert up and up[0]["value"][1] == "1"  # type: ignore[index]
        with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=5) as response:
            groups = json.loads(response.read())["data"]["groups"]
        alerts = {
            rule["name"]
            for group in groups
            for rule in group["rules"]
            if rule["type"] == "alerting"
        }
        assert {"HubWorkerDown", "HubSourceSilent", "HubTableRecoveryStuck"} <= alerts
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        server.close()
