"""The worker as the StatefulSet runs it: its command, its ConfigMap, its probes, its SIGTERM.

Starts the real ``hub`` process with the container command and the HUB_* settings of the rendered
production overlay (only what must differ on this machine is overridden: the broker and its
plaintext listener instead of the pod's SASL_SSL with mounted CA and password, which
tests/integration/test_security.py covers; an isolated topic prefix/app id, the data dir, a free
port, replication 1 on the single local broker), waits
for the liveness and readiness paths the probes use, sends SIGTERM while it is processing, and
checks it stops cleanly within the pod's ``terminationGracePeriodSeconds``: the kubelet's SIGKILL
would otherwise cut the final commit and flush.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hub.pipeline.lag import pipeline_lag
from tests.integration.pipeline_harness import hub_under_test
from tests.unit.test_kubernetes_manifests import config, one, rendered
from tests.unit.test_promtool import _free_port

pytestmark = pytest.mark.slow  # and broker: every test in tests/integration
HUB = Path(sys.executable).parent / "hub"


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait_for(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _status(port, path) != 200:
        assert proc.poll() is None, f"worker exited {proc.returncode} before {path} said 200"
        assert time.monotonic() < deadline, f"{path} not 200 within {timeout} s"
        time.sleep(0.5)


def test_worker_pod_settings_start_serve_probes_and_stop_within_the_grace_period(
    broker: str, tmp_path: Path
) -> None:
    objects = rendered("production")
    pod = one(objects, "StatefulSet", "hub-worker")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    grace = pod["terminationGracePeriodSeconds"]
    port = _free_port()
    with hub_under_test(broker, tmp_path, partitions=8, create_topics=False) as hub:
        pod_config = {
            k: v
            for k, v in config(objects).items()
            if k not in ("HUB_SECURITY_PROTOCOL", "HUB_SASL_MECHANISM", "HUB_SSL_CA_FILE")
        }
        env = {
            **os.environ,
            **pod_config,
            "HUB_BROKER": broker,
            "HUB_SECURITY_PROTOCOL": "PLAINTEXT",  # the test broker's listener
            "HUB_TOPIC_PREFIX": hub.settings.topic_prefix,
            "HUB_APP_ID": hub.settings.app_id,
            "HUB_DATA_DIR": str(tmp_path / "data"),
            "HUB_METRICS_PORT": str(port),
            "HUB_REPLICATION_FACTOR": "1",  # one broker here: RF and min ISR follow it
            "HUB_MIN_INSYNC_REPLICAS": "1",
        }
        assert env["HUB_PARTITIONS"] == "8"  # the manifest's, as the StatefulSet runs it
        log = (tmp_path / "worker0.log").open("ab")
        command = [str(HUB), *container["command"][1:]]
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        hub.processes.append(proc)

        _wait_for(port, container["livenessProbe"]["httpGet"]["path"], proc, timeout=60)
        _wait_for(port, container["readinessProbe"]["httpGet"]["path"], proc, timeout=180)

        # load in flight when SIGTERM comes: the final flush has work to do
        subprocess.run(
            [str(HUB), "simulate", "--addresses", "2000", "--events", "20000", "--publish"],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        time.sleep(2)
        assert proc.poll() is None, hub.logs()
        lag = pipeline_lag(hub.settings)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(grace)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running {grace} s after SIGTERM:\n{hub.logs()}")
        stopped_s = time.monotonic() - sent
        print(
            f"\nworker stopped {stopped_s:.1f} s after SIGTERM with lag {lag} "
            f"(grace period {grace} s)"
        )
        assert code in (0, -signal.SIGTERM), f"exit {code}:\n{hub.logs()}"
        assert stopped_s < grace
