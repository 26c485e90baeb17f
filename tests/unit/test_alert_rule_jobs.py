"""The alert rules select the `job` the scrape targets really get: locally and on Kubernetes.

The rules (deploy/prometheus/rules, PrometheusRule ``hub-alerts``) select the workers with
``up{job="hub"}``. Locally the job is the scrape config's ``job_name`` (deploy/prometheus/
prometheus.yml). On Kubernetes the prometheus-operator sets it from the PodMonitor;
:func:`pod_monitor_job` computes it the way the operator's generated scrape config does
(prometheus-operator v0.93.0, the release the PodMonitor schema is vendored from,
``pkg/prometheus/promcfg.go`` ``generatePodMonitorConfig``):

1. ``job`` is ``<namespace>/<PodMonitor name>`` (the CRD's ``jobLabel`` description says the same);
2. if ``spec.jobLabel`` is set and the pod has that label with a non-empty value, that value;
3. then the endpoint's own ``relabelings``, in order: the operator appends them after its own
   relabelings (then only the scrape class's and the enforced-namespace label), so they win.

Only relabel actions that write one label from source labels are emulated (replace, lowercase,
uppercase); labelmap/labeldrop/labelkeep fail the test instead of being guessed. A slow test
checks the emulation against a real Prometheus relabeling the operator-shaped scrape config.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub import metrics
from tests.unit.test_kubernetes_manifests import OVERLAYS, Obj, one, rendered
from tests.unit.test_promtool import _free_port, _query

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
#: alerts about the worker targets (the StatefulSet hub-worker)
WORKER_ALERTS = ("HubWorkerDown", "HubWorkersAbsent")
_MATCHER = re.compile(r'\bjob\s*(=~|!=|!~|=)\s*"([^"]*)"')


# --- the operator's job label ---------------------------------------------------------------


def _sanitize(name: str) -> str:
    """A pod label's name as in ``__meta_kubernetes_pod_label_<name>`` (sanitizeLabelName)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _expand(replacement: str, match: re.Match[str]) -> str:
    """Go regexp's Expand for ``$1`` / ``${1}`` / ``$name`` (what Prometheus' replace uses)."""

    def group(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        try:
            return match.group(int(key) if key.isdigit() else key) or ""
        except IndexError:
            return ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, replacement)


def relabel(labels: dict[str, str], rule: dict[str, Any]) -> None:
    """Apply one PodMonitor ``relabelings`` entry (CRD field names and defaults) to ``labels``."""
    action = rule.get("action", "replace").lower()
    if action in {"labelmap", "labeldrop", "labelkeep"}:
        pytest.fail(f"relabel action {action!r} is not emulated here: extend relabel()")
    if action not in {"replace", "lowercase", "uppercase"}:
        return  # keep/drop/keepequal/dropequal/hashmod: no effect on `job`'s value
    names = rule.get("sourceLabels", [])
    source = rule.get("separator", ";").join(labels.get(n, "") for n in names)
    target = rule["targetLabel"]
    if action == "lowercase":
        value = source.lower()
    elif action == "uppercase":
        value = source.upper()
    else:
        match = re.fullmatch(rule.get("regex", "(.*)"), source)
        if match is None:
            return
        value = _expand(rule.get("replacement", "$1"), match)
    if value:
        labels[target] = value
    else:
        labels.pop(target, None)  # Prometheus deletes a label replaced by ""


def pod_monitor_job(monitor: Obj, pod_labels: dict[str, str], endpoint: int = 0) -> str:
    """The ``job`` label prometheus-operator gives a pod's target of this PodMonitor endpoint."""
    meta = monitor["metadata"]
    labels = {f"__meta_kubernetes_pod_label_{_sanitize(k)}": v for k, v in pod_labels.items()}
    labels["__meta_kubernetes_namespace"] = meta.get("namespace", "default")
    labels["job"] = f"{labels['__meta_kubernetes_namespace']}/{meta['name']}"
    if job_label := monitor["spec"].get("jobLabel"):
        relabel(
            labels,
            {
                "sourceLabels": [f"__meta_kubernetes_pod_label_{_sanitize(job_label)}"],
                "targetLabel": "job",
                "regex": "(.+)",
                "replacement": "${1}",
            },
        )
    for rule in monitor["spec"]["podMetricsEndpoints"][endpoint].get("relabelings", []):
        relabel(labels, rule)
    return labels.get("job", "")


# --- what the rules select ------------------------------------------------------------------


def selected_jobs(groups: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Rule name (alert or record) → the jobs its expression selects with ``job="..."``."""
    out: dict[str, set[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            for op, value in _MATCHER.findall(str(rule["expr"])):
                assert op == "=", f"{rule}: job{op} is not handled by this test; extend it"
                out.setdefault(rule.get("alert") or rule["record"], set()).add(value)
    return out


def local_rule_groups() -> list[dict[str, Any]]:
    return [
        group
        for path in sorted((PROM_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]


def pods_of(objects: list[Obj], monitor: Obj) -> list[tuple[str, dict[str, str]]]:
    """(workload name, pod labels) of every workload whose pods the PodMonitor selects."""
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    return [
        (o["metadata"]["name"], o["spec"]["template"]["metadata"]["labels"])
        for o in objects
        if o["kind"] in {"StatefulSet", "Deployment"}
        and wanted <= o["spec"]["template"]["metadata"]["labels"].items()
    ]


def jobs_on_kubernetes(objects: list[Obj]) -> dict[str, str]:
    """Workload name → the job its pods' targets get from the PodMonitor selecting them."""
    out: dict[str, str] = {}
    for monitor in (o for o in objects if o["kind"] == "PodMonitor"):
        for workload, labels in pods_of(objects, monitor):
            assert workload not in out, f"{workload}: selected by two PodMonitors"
            out[workload] = pod_monitor_job(monitor, labels)
    return out


# --- the tests ------------------------------------------------------------------------------


def test_the_rules_select_workers_by_job() -> None:
    """Guard: the tests below are about something (a rule does select a job)."""
    selected = selected_jobs(local_rule_groups())
    assert set(WORKER_ALERTS) <= selected.keys()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_job_a_rule_selects_is_the_job_of_kubernetes_targets(overlay: str) -> None:
    objects = rendered(overlay)
    rule = one(objects, "PrometheusRule", "hub-alerts")
    selected = selected_jobs(rule["spec"]["groups"])
    jobs = jobs_on_kubernetes(objects)
    assert selected, "the PrometheusRule selects no job"
    for name, wanted in selected.items():
        assert wanted <= set(jobs.values()), (
            f"{name} selects job {sorted(wanted)}, but the PodMonitors label targets {jobs}"
        )
    for alert in WORKER_ALERTS:
        assert selected[alert] == {jobs["hub-worker"]}, alert


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_delivery_targets_are_a_job_of_their_own(overlay: str) -> None:
    """hub deliver's pods must not count as workers (HubWorkerDown/Absent) nor mix with them on
    the dashboard."""
    objects = rendered(overlay)
    jobs = jobs_on_kubernetes(objects)
    assert jobs["hub-delivery"] == "hub-delivery"
    assert jobs["hub-delivery"] != jobs["hub-worker"]
    selected = selected_jobs(one(objects, "PrometheusRule", "hub-alerts")["spec"]["groups"])
    assert all(jobs["hub-delivery"] not in selected[alert] for alert in WORKER_ALERTS)


def test_every_job_a_rule_selects_is_scraped_by_the_local_prometheus() -> None:
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    job_names = {c["job_name"] for c in config["scrape_configs"]}
    for name, wanted in selected_jobs(local_rule_groups()).items():
        assert wanted <= job_names, f"{name} selects {sorted(wanted)}; scrape jobs: {job_names}"


# --- the emulation follows the operator's documented semantics --------------------------------

POD = {"app.kubernetes.io/name": "hub-worker", "team": "hub-team"}


def _monitor(**spec: Any) -> Obj:
    endpoint = {"port": "metrics", **spec.pop("endpoint", {})}
    return {
        "metadata": {"name": "hub-worker", "namespace": "prod"},
        "spec": {"selector": {"matchLabels": {}}, "podMetricsEndpoints": [endpoint], **spec},
    }


def test_without_job_label_or_relabelings_the_job_is_namespace_slash_name() -> None:
    assert pod_monitor_job(_monitor(), POD) == "prod/hub-worker"


def test_job_label_takes_the_pod_labels_value_and_falls_back_when_it_is_missing() -> None:
    assert pod_monitor_job(_monitor(jobLabel="team"), POD) == "hub-team"
    assert pod_monitor_job(_monitor(jobLabel="absent"), POD) == "prod/hub-worker"


def test_endpoint_relabelings_run_after_the_operators_job_and_win() -> None:
    replace = {"relabelings": [{"targetLabel": "job", "replacement": "hub"}]}
    assert pod_monitor_job(_monitor(endpoint=replace), POD) == "hub"
    assert pod_monitor_job(_monitor(jobLabel="team", endpoint=replace), POD) == "hub"
    from_job = {
        "relabelings": [
            {
                "sourceLabels": ["job"],
                "regex": "prod/(.*)",
                "targetLabel": "job",
                "replacement": "$1",
            }
        ]
    }
    assert pod_monitor_job(_monitor(endpoint=from_job), POD) == "hub-worker"


def test_an_unemulated_relabel_action_on_the_job_fails_loudly() -> None:
    monitor = _monitor(endpoint={"relabelings": [{"action": "labelmap", "regex": "x"}]})
    with pytest.raises(pytest.fail.Exception, match="not emulated"):
        pod_monitor_job(monitor, POD)


# --- a real Prometheus applies the same relabelings -------------------------------------------


def _snake(rule: dict[str, Any]) -> dict[str, Any]:
    """A PodMonitor relabeling as Prometheus' relabel_config (what the operator writes)."""
    return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in rule.items()}


def operator_relabel_configs(monitor: Obj) -> list[dict[str, Any]]:
    """The ``job``-related part of the relabel_configs the operator generates, in its order."""
    meta = monitor["metadata"]
    out: list[dict[str, Any]] = [
        {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"}
    ]
    if job_label := monitor["spec"].get("jobLabel"):
        out.append(
            {
                "source_labels": [f"__meta_kubernetes_pod_label_{_sanitize(job_label)}"],
                "target_label": "job",
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    out += [_snake(r) for r in monitor["spec"]["podMetricsEndpoints"][0].get("relabelings", [])]
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus binary not installed")
def test_real_prometheus_gives_the_targets_the_emulated_job_and_the_rules_see_workers(
    tmp_path: Path,
) -> None:
    """Prometheus' own relabeling of the operator-shaped config yields what pod_monitor_job says,
    and with the production PrometheusRule loaded, ``absent(up{job="hub"})`` is empty."""
    objects = rendered("production")
    server = metrics.start_metrics_server(0, host="127.0.0.1")
    scrape_configs, expected = [], {}
    for monitor in (o for o in objects if o["kind"] == "PodMonitor"):
        [(workload, pod_labels)] = pods_of(objects, monitor)
        meta = {f"__meta_kubernetes_pod_label_{_sanitize(k)}": v for k, v in pod_labels.items()}
        meta["__meta_kubernetes_namespace"] = monitor["metadata"]["namespace"]
        meta["workload"] = workload
        scrape_configs.append(
            {
                "job_name": f"podMonitor/{monitor['metadata']['name']}",
                "static_configs": [{"targets": [f"127.0.0.1:{server.port}"], "labels": meta}],
                "relabel_configs": operator_relabel_configs(monitor),
            }
        )
        expected[workload] = pod_monitor_job(monitor, pod_labels)
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": one(objects, "PrometheusRule")["spec"]["groups"]}))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": scrape_configs,
            }
        )
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, str] = {}
        while time.monotonic() < deadline and len(seen) < len(expected):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            with contextlib.suppress(OSError):
                seen = {r["metric"]["workload"]: r["metric"]["job"] for r in _query(base, "up")}
            time.sleep(0.5)
        assert seen == expected == {"hub-worker": "hub", "hub-delivery": "hub-delivery"}
        assert _query(base, 'absent(up{job="hub"})') == []
        assert len(_query(base, 'up{job="hub"} == 1')) == 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        server.close()
