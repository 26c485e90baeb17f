"""deploy/kubernetes: both overlays render with kustomize and every object is valid offline.

- Core objects (Deployment, StatefulSet, Service, ...) against the Kubernetes OpenAPI schemas that
  ``kubernetes-validate`` ships, strict (unknown fields are errors).
- Strimzi, KEDA and prometheus-operator objects against the ``openAPIV3Schema`` of those projects'
  released CRDs, vendored in deploy/kubernetes/schemas (see SOURCES.md there), also strict.
- The rendered settings agree with the code: HUB_* names exist, partitions / replication / KEDA's
  cap agree, probes hit the paths hub/health.py serves, containers run real ``hub`` commands.

kustomize comes from ``make kustomize`` (.local/bin/kustomize), else PATH, else ``kubectl
kustomize``. No cluster is needed.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from hub import metrics
from hub.answers.cluster_status import consumer_groups
from hub.pipeline.ingest_process import IngestProcess
from hub.pipeline.topics import Topics, faust_specs
from hub.settings import Settings
from hubctl.main import app

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
SCHEMAS = KUBE / "schemas"
OVERLAYS = ("dev", "production")
#: the Kubernetes version the core objects are validated against (kubernetes-validate's schemas)
K8S_VERSION = "1.32"
#: HUB_* variables read outside hub.settings.Settings (the HTTP ingress's own settings)
EXTRA_ENV = {
    "HUB_CONFIG",
    "HUB_INGRESS_TOKENS",
    "HUB_INGRESS_TOKENS_FILE",
    "HUB_NOTIFICATIES_AUTH",
    "HUB_INGRESS_RATE",
    "HUB_INGRESS_BURST",
    "HUB_INGRESS_AUTH_FAILURES_PER_MIN",
    "HUB_INGRESS_AUTH_FAILURES_BURST",
    "HUB_INGRESS_READ_TIMEOUT_S",
}
#: Settings fields that issue 16's cluster part (branch issue-16c) adds; the ConfigMap sets them
#: already. Once both branches are merged they are Settings fields and this set can go.
CUSTOM_GROUPS = ("kafka.strimzi.io", "keda.sh", "monitoring.coreos.com")

Obj = dict[str, Any]


# --- rendering ------------------------------------------------------------------------------


def kustomize_command() -> list[str]:
    """How to run kustomize here: $KUSTOMIZE, make's copy, PATH, or kubectl's built-in one."""
    candidates = [os.environ.get("KUSTOMIZE", ""), str(ROOT / ".local" / "bin" / "kustomize")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return [path]
    if found := shutil.which("kustomize"):
        return [found]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    pytest.fail("kustomize not found: run `make kustomize` (installs .local/bin/kustomize)")


def kustomize_build(directory: Path) -> list[Obj]:
    result = subprocess.run(
        [*kustomize_command(), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError(f"kustomize build {directory}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class RenderError(RuntimeError):
    """kustomize refused to render an overlay."""


@functools.cache
def _rendered(overlay: str) -> tuple[Obj, ...]:
    return tuple(kustomize_build(KUBE / "overlays" / overlay))


def rendered(overlay: str) -> list[Obj]:
    """The overlay's objects (a deep copy: tests may mutate them)."""
    return copy.deepcopy(list(_rendered(overlay)))


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# --- validation -----------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """A copy of a CRD schema that rejects unknown fields, as ``kubectl --validate=strict`` does.

    CRD schemas leave ``additionalProperties`` out (the API server prunes unknown fields
    silently); a typo in a manifest would then pass. Objects that preserve unknown fields or
    declare ``additionalProperties`` themselves keep their meaning.
    """
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    group, _, version = api_version.partition("/")
    path = SCHEMAS / group / f"{kind}_{version}.json"
    if not path.exists():
        raise LookupError(f"{api_version} {kind}: no vendored CRD schema ({path.name})")
    schema = _strict(json.loads(path.read_text()))
    # metadata is checked by the API server's ObjectMeta rules, which CRD schemas leave out
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)  # type: ignore[no-any-return]


def validation_errors(obj: Obj) -> list[str]:
    """Every schema violation of one rendered object (empty: valid)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = obj.get("metadata", {}).get("name", "?")
    where = f"{kind}/{name}"
    if api_version.split("/")[0] in CUSTOM_GROUPS:
        validator = crd_validator(api_version, kind)
        return [
            f"{where}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(map(str, exc.path)) or "(root)"
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: no schema for {api_version} {kind}: {exc}"]
    return []


# --- every object of both overlays is valid -------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_against_its_schema(overlay: str) -> None:
    objects = rendered(overlay)
    errors = [error for obj in objects for error in validation_errors(obj)]
    assert errors == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_part_the_operator_deploys(overlay: str) -> None:
    kinds = {o["kind"] for o in rendered(overlay)}
    assert {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "StatefulSet",
        "PodDisruptionBudget",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodMonitor",
        "PrometheusRule",
        "ScaledObject",
    } <= kinds
    namespaces = {o["metadata"].get("namespace") for o in rendered(overlay)}
    assert namespaces == {"hub-dev" if overlay == "dev" else "hub"}


# A broken manifest must fail: each mutation below breaks one object the way a careless edit
# would, and the validator has to say so (and the unmutated object passes, so it is the mutation).
MUTATIONS: list[tuple[str, str, list[str | int], Any]] = [
    ("StatefulSet", "hub-worker", ["spec", "replicas"], "two"),
    ("StatefulSet", "hub-worker", ["spec", "template", "spec", "terminationGracePeriod"], 120),
    ("Deployment", "hub-http", ["spec", "template", "spec", "containers", 0, "ports"], "8080"),
    ("PodDisruptionBudget", "hub-worker", ["spec", "maxUnavailabel"], 1),
    ("KafkaTopic", "hub.case-events", ["spec", "partitions"], "eight"),
    ("KafkaTopic", "hub.case-events", ["spec", "replica"], 3),
    ("Kafka", "hub-kafka", ["spec", "kafka", "listeners", 0, "type"], "public"),
    ("KafkaNodePool", "broker", ["spec", "roles"], ["worker"]),
    ("ScaledObject", "hub-worker", ["spec", "maxReplicaCount"], "8"),
    ("ScaledObject", "hub-worker", ["spec", "triggers", 0, "metadata"], "lag"),
    ("PodMonitor", "hub-worker", ["spec", "podMetricsEndpoints"], {"port": "metrics"}),
    ("PrometheusRule", "hub-alerts", ["spec", "groups", 0, "rules"], "none"),
]


def _set(obj: Any, path: list[str | int], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@pytest.mark.parametrize(
    ("kind", "name", "path", "value"),
    MUTATIONS,
    ids=[f"{k}-{'.'.join(map(str, p))}" for k, _, p, _ in MUTATIONS],
)
def test_validator_rejects_a_broken_object(
    kind: str, name: str | None, path: list[str | int], value: Any
) -> None:
    obj = one(rendered("production"), kind, name)
    assert validation_errors(obj) == []
    _set(obj, path, value)
    errors = validation_errors(obj)
    assert errors, f"{kind}: {path} = {value!r} was accepted"
    assert all(e.startswith(f"{kind}/") for e in errors)


def test_an_object_without_a_vendored_schema_is_an_error_not_a_pass() -> None:
    obj = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "x"}}
    with pytest.raises(LookupError, match="no vendored CRD schema"):
        validation_errors(obj)


def test_a_kustomization_with_a_broken_patch_fails_to_render(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(KUBE / "base", overlay)
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{base}]\n"
        "patches:\n"
        "  - target: {kind: StatefulSet, name: hub-worker}\n"
        "    patch: |-\n"
        "      - op: replace\n"
        "        path: /spec/no/such/field\n"
        "        value: 1\n"
    )
    with pytest.raises(RenderError, match="kustomize build"):
        kustomize_build(overlay)


# --- the rendered settings agree with the code ----------------------------------------------


def config(objects: list[Obj]) -> dict[str, str]:
    return dict(one(objects, "ConfigMap", "hub-config")["data"])


def settings_of(objects: list[Obj]) -> Settings:
    env = config(objects)
    fields = {
        name.removeprefix("HUB_").lower(): value
        for name, value in env.items()
        if name.removeprefix("HUB_").lower() in Settings.model_fields
    }
    return Settings.model_validate(fields)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_hub_variable_set_is_one_the_hub_reads(overlay: str) -> None:
    # Settings ignores unknown HUB_* variables, so a misspelt one would silently do nothing
    objects = rendered(overlay)
    names = set(config(objects))
    for obj in objects:
        for container in _containers(obj):
            names.update(e["name"] for e in container.get("env", []))
    known = {f"HUB_{f.upper()}" for f in Settings.model_fields} | EXTRA_ENV
    assert sorted(n for n in names if n.startswith("HUB_") and n not in known) == []
    settings_of(objects)  # and every value parses


def _containers(obj: Obj) -> list[Obj]:
    template = obj.get("spec", {}).get("template", {})
    return list(template.get("spec", {}).get("containers", []))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_partitions_replication_and_keda_cap_agree(overlay: str) -> None:
    objects = rendered(overlay)
    settings = settings_of(objects)
    kafka = one(objects, "Kafka")
    min_isr = config(objects)["HUB_MIN_INSYNC_REPLICAS"]  # for topics the hub creates itself
    assert min_isr == str(kafka["spec"]["kafka"]["config"]["min.insync.replicas"])
    topics = {t["spec"]["topicName"]: t for t in objects if t["kind"] == "KafkaTopic"}
    wanted = {**Topics.from_settings(settings).specs(settings.partitions), **faust_specs(settings)}
    assert set(topics) == set(wanted)
    for name, (partitions, topic_config) in wanted.items():
        spec = topics[name]["spec"]
        assert spec["partitions"] == partitions, name
        assert spec["replicas"] == settings.replication_factor, name
        assert {k: spec["config"][k] for k in topic_config} == topic_config, name
        assert spec["config"]["min.insync.replicas"] == min_isr, name
        assert topics[name]["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    brokers = sum(
        p["spec"]["replicas"]
        for p in objects
        if p["kind"] == "KafkaNodePool" and "broker" in p["spec"]["roles"]
    )
    assert settings.replication_factor <= brokers
    scaled = one(objects, "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == settings.partitions
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_watches_the_hubs_consumer_groups_on_the_cluster(overlay: str) -> None:
    objects = rendered(overlay)
    settings = settings_of(objects)
    groups = consumer_groups(settings)  # what `hub status` and the lag checks read
    triggers = one(objects, "ScaledObject")["spec"]["triggers"]
    assert {t["metadata"]["consumerGroup"] for t in triggers} == set(groups)
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["topic"] in groups[meta["consumerGroup"]]
        assert meta["bootstrapServers"] == settings.broker
    kafka = one(objects, "Kafka")
    host, port = settings.broker.rsplit(":", 1)
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap"
    assert int(port) in {listener["port"] for listener in kafka["spec"]["kafka"]["listeners"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_real_hub_commands(overlay: str) -> None:
    runner = CliRunner()
    for obj in rendered(overlay):
        for container in _containers(obj):
            command = container["command"]
            assert command[0] == "hub", container["name"]
            result = runner.invoke(app, [*command[1:], "--help"])
            assert result.exit_code == 0, f"{command}: {result.output}"


def test_worker_grace_period_covers_the_ingest_childs_stop_timeout() -> None:
    worker = one(rendered("production"), "StatefulSet", "hub-worker")
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    stop_timeout = inspect.signature(IngestProcess.stop).parameters["timeout"].default
    # stop(): join(timeout), then kill and join(5); Faust's commit and flush come on top
    assert grace >= stop_timeout + 5 + 30


@pytest.fixture
def metrics_server() -> Iterator[tuple[int, Any]]:
    def not_ready() -> tuple[bool, str]:
        return False, "recovering"

    server = metrics.start_metrics_server(0, readiness=not_ready)
    try:
        yield server.port, server
    finally:
        server.close()


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_worker_probes_hit_what_the_health_server_serves(
    metrics_server: tuple[int, Any],
) -> None:
    objects = rendered("production")
    worker = one(objects, "StatefulSet", "hub-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port, _ = metrics_server
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert ports[liveness["port"]] == ports[readiness["port"]] == settings_of(objects).metrics_port
    assert _status(port, liveness["path"]) == 200
    assert _status(port, readiness["path"]) == 503  # not ready must mean 503, not 404
    monitor = one(objects, "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    assert monitor["port"] in ports
    assert _status(port, monitor["path"]) == 200


def test_production_commits_no_secret_and_dev_tokens_load() -> None:
    from connectors.http_ingress.auth import load_tokens_file

    assert [o for o in rendered("production") if o["kind"] == "Secret"] == []
    dev_secret = one(rendered("dev"), "Secret", "hub-ingress")
    assert set(dev_secret["data"]) == {"tokens.toml", "notificaties-auth"}
    credentials = load_tokens_file(KUBE / "overlays" / "dev" / "tokens.toml")
    assert len(credentials) == 1
