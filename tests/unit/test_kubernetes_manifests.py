"""deploy/kubernetes: both overlays render with kustomize and every object is valid offline.

- Core objects (Deployment, StatefulSet, Service, ...) against the Kubernetes OpenAPI schemas that
  ``kubernetes-validate`` ships, strict (unknown fields are errors).
- Strimzi, KEDA and prometheus-operator objects against the ``openAPIV3Schema`` of those projects'
  released CRDs, vendored in deploy/kubernetes/schemas (see SOURCES.md there), also strict.
- The rendered settings agree with the code: HUB_* names exist, partitions / replication / KEDA's
  cap agree, probes hit the paths hub/health.py serves, containers run real ``hub`` commands.
- Kafka security (docs/security.md): the listener requires SCRAM-SHA-512 over TLS, the KafkaUsers
  grant exactly what ``hub acl apply`` would (deploy/kafka/acl.toml), each agency may write only
  its own inbound topic, and the pods and KEDA log in as their users with the Secrets Strimzi makes.

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

from connectors.delivery.runtime import FLUSH_TIMEOUT_S
from connectors.delivery.topics import DeliveryTopics, group_id
from hub import metrics
from hub.answers.cluster_status import consumer_groups
from hub.delivery.config import DeliverySettings
from hub.pipeline.ingest_process import IngestProcess
from hub.pipeline.topics import Topics, faust_specs
from hub.settings import Settings
from hubctl.acl import Acl, load_plan
from hubctl.main import app

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
SCHEMAS = KUBE / "schemas"
ACL_FILE = ROOT / "deploy" / "kafka" / "acl.toml"
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
    """The object of ``kind`` named ``name`` (or, if none is, the one whose name starts with it:
    kustomize's hash suffixes)."""
    of_kind = [o for o in objects if o["kind"] == kind]
    found = [o for o in of_kind if name is None or o["metadata"]["name"] == name] or [
        o for o in of_kind if name is not None and o["metadata"]["name"].startswith(name)
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
        "KafkaUser",
        "TriggerAuthentication",
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
    ("Kafka", "hub-kafka", ["spec", "kafka", "listeners", 0, "authentication", "type"], "scram"),
    ("Kafka", "hub-kafka", ["spec", "kafka", "authorization", "superUser"], ["admin"]),
    ("KafkaUser", "hub-worker", ["spec", "authorization", "acls", 0, "operations"], ["READ"]),
    ("KafkaUser", "ncg", ["spec", "authorization", "acls", 0, "resource", "patternType"], "glob"),
    ("KafkaUser", "keda", ["spec", "authentication", "type"], "scram-sha-256"),
    ("TriggerAuthentication", "hub-kafka-keda", ["spec", "secretTargetRef", 0], {"key": "p"}),
    ("KafkaNodePool", "broker", ["spec", "roles"], ["worker"]),
    ("ScaledObject", "hub-worker", ["spec", "maxReplicaCount"], "8"),
    ("ScaledObject", "hub-worker", ["spec", "triggers", 0, "metadata"], "lag"),
    ("PodMonitor", "hub-worker", ["spec", "podMetricsEndpoints"], {"port": "metrics"}),
    ("Deployment", "hub-delivery", ["spec", "template", "spec", "containers", 0, "envFrm"], []),
    ("PodMonitor", "hub-delivery", ["spec", "selector", "matchLabel"], {}),
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


def env_of(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The variables a container gets with a literal value: its ConfigMaps', then its own."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_hub_variable_set_is_one_the_hub_reads(overlay: str) -> None:
    # Settings ignores unknown HUB_* variables, so a misspelt one would silently do nothing;
    # HUB_DELIVERY_* ones (hub/delivery/config.py) count only where `hub deliver` runs
    objects = rendered(overlay)
    known = {f"HUB_{f.upper()}" for f in Settings.model_fields} | EXTRA_ENV
    delivery = {f"HUB_DELIVERY_{f.upper()}" for f in DeliverySettings.model_fields}
    unknown = sorted(n for n in config(objects) if n.startswith("HUB_") and n not in known)
    deliverers = 0
    for obj in objects:
        for container in _containers(obj):
            is_deliver = container["command"][:2] == ["hub", "deliver"]
            deliverers += is_deliver
            names = set(env_of(objects, container)) | {e["name"] for e in container.get("env", [])}
            allowed_here = known | delivery if is_deliver else known
            unknown += [
                f"{container['name']}: {n}"
                for n in sorted(names - allowed_here)
                if n.startswith("HUB_")
            ]
            if is_deliver:  # and the values parse
                env = env_of(objects, container)
                DeliverySettings.model_validate(
                    {
                        n.removeprefix("HUB_DELIVERY_").lower(): v
                        for n, v in env.items()
                        if n in delivery
                    }
                )
    assert unknown == []
    assert deliverers == 1
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
    scaled = one(objects, "ScaledObject")
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["consumerGroup"] for t in triggers} == set(groups)
    host, port = settings.broker.rsplit(":", 1)
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["topic"] in groups[meta["consumerGroup"]]
        # KEDA's operator runs in its own namespace: the short service name would not resolve
        # there (nor match the broker certificate), so the address names the hub's namespace
        assert meta["bootstrapServers"] == f"{host}.{scaled['metadata']['namespace']}.svc:{port}"
    kafka = one(objects, "Kafka")
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


def test_delivery_grace_period_covers_a_dead_letter_and_the_final_flush() -> None:
    delivery = one(rendered("production"), "Deployment", "hub-delivery")
    grace = delivery["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # a dead letter's flush may still run when SIGTERM comes, then the final flush
    assert grace >= 2 * FLUSH_TIMEOUT_S


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


def pod_monitor_of(objects: list[Obj], pod: Obj) -> Obj:
    """The one PodMonitor whose selector picks the pods of ``pod`` (a workload)."""
    labels = pod["spec"]["template"]["metadata"]["labels"]
    found = [
        m
        for m in objects
        if m["kind"] == "PodMonitor"
        and m["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(found) == 1, f"{pod['metadata']['name']}: {len(found)} PodMonitors select it"
    return found[0]


@pytest.mark.parametrize(
    ("kind", "name"), [("StatefulSet", "hub-worker"), ("Deployment", "hub-delivery")]
)
def test_probes_and_scraping_hit_what_the_health_server_serves(
    metrics_server: tuple[int, Any], kind: str, name: str
) -> None:
    objects = rendered("production")
    workload = one(objects, kind, name)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port, _ = metrics_server
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert ports[liveness["port"]] == ports[readiness["port"]] == settings_of(objects).metrics_port
    assert _status(port, liveness["path"]) == 200
    assert _status(port, readiness["path"]) == 503  # not ready must mean 503, not 404
    monitor = pod_monitor_of(objects, workload)["spec"]["podMetricsEndpoints"][0]
    assert monitor["port"] in ports
    assert _status(port, monitor["path"]) == 200


def test_production_commits_no_secret_and_dev_tokens_load() -> None:
    from connectors.http_ingress.auth import load_tokens_file

    assert [o for o in rendered("production") if o["kind"] == "Secret"] == []
    dev_secret = one(rendered("dev"), "Secret", "hub-ingress")
    assert set(dev_secret["data"]) == {"tokens.toml", "notificaties-auth"}
    credentials = load_tokens_file(KUBE / "overlays" / "dev" / "tokens.toml")
    assert len(credentials) == 1


# --- Kafka security: listener, KafkaUsers, credentials of the pods and of KEDA ----------------

WRITES = {"Write", "All"}


def kafka_users(objects: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "KafkaUser"}


def user_secret(objects: list[Obj], user: str) -> str:
    """The Secret Strimzi's User Operator writes the user's password to."""
    prefix = one(objects, "Kafka")["spec"].get("entityOperator", {}).get("userOperator", {})
    return f"{prefix.get('secretPrefix', '')}{user}"


def cluster_ca_secret(objects: list[Obj]) -> str:
    return f"{one(objects, 'Kafka')['metadata']['name']}-cluster-ca-cert"


def allowed(user: Obj, resource: str, name: str, operations: set[str]) -> bool:
    """Whether a KafkaUser's ACLs allow one of ``operations`` on a resource (prefix rules too)."""
    for acl in user["spec"]["authorization"]["acls"]:
        target = acl["resource"]
        if target["type"] != resource or acl.get("type", "allow") != "allow":
            continue
        if target.get("patternType", "literal") == "prefix":
            matches = name.startswith(target["name"])
        else:
            matches = target["name"] in (name, "*")
        if matches and operations & set(acl["operations"]):
            return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_listener_requires_scram_over_tls_and_acls(overlay: str) -> None:
    objects = rendered(overlay)
    kafka = one(objects, "Kafka")["spec"]["kafka"]
    # every listener (not only the one the hub uses): no way in without a password, none in clear
    for listener in kafka["listeners"]:
        assert listener.get("authentication", {}).get("type") == "scram-sha-512", listener["name"]
        assert listener["tls"] is True, listener["name"]
    assert kafka["authorization"]["type"] == "simple"
    assert kafka["authorization"]["superUsers"] == ["admin"]  # docs/security.md
    assert "admin" not in kafka_users(objects)  # no standing super-user password in the cluster
    settings = settings_of(objects)
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert int(settings.broker.rsplit(":", 1)[1]) in {lst["port"] for lst in kafka["listeners"]}


def acls_of(users: dict[str, Obj]) -> set[Acl]:
    """The KafkaUsers' ACL rules back in ``hubctl.acl``'s form (one binding per operation)."""
    resources = {"topic": "TOPIC", "group": "GROUP", "transactionalId": "TRANSACTIONAL_ID"}
    resources["cluster"] = "BROKER"
    found = set()
    for name, user in users.items():
        for rule in user["spec"]["authorization"]["acls"]:
            target = rule["resource"]
            pattern = {"literal": "LITERAL", "prefix": "PREFIXED"}[
                target.get("patternType", "literal")
            ]
            for operation in rule["operations"]:
                kafka_op = "".join(f"_{c}" if c.isupper() else c.upper() for c in operation)
                found.add(
                    Acl(
                        f"User:{name}",
                        resources[target["type"]],
                        target.get("name", "kafka-cluster"),
                        pattern,
                        kafka_op.lstrip("_"),
                        rule.get("host", "*"),
                    )
                )
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_users_grant_exactly_what_hub_acl_apply_would(overlay: str) -> None:
    objects = rendered(overlay)
    users = kafka_users(objects)
    plan = load_plan(ACL_FILE, settings_of(objects))
    assert sorted(f"User:{u}" for u in users) == sorted(plan.principals)
    assert acls_of(users) == set(plan.acls)
    cluster = one(objects, "Kafka")["metadata"]["name"]
    for name, user in users.items():
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}, name
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == cluster, name


def agency_write_problems(objects: list[Obj]) -> list[str]:
    """Where an agency's KafkaUser may write more than its own inbound topic (or none exists)."""
    settings = settings_of(objects)
    inbound = dict(Topics.from_settings(settings).agency_inbound)  # source -> its topic
    topics = {t["spec"]["topicName"] for t in objects if t["kind"] == "KafkaTopic"}
    agencies = {
        source: user
        for user in kafka_users(objects).values()
        if (source := user["metadata"].get("annotations", {}).get("hub/case-event-source"))
    }
    problems = [f"{s}: no KafkaUser bound to it" for s in sorted(set(inbound) - set(agencies))]
    for source, user in sorted(agencies.items()):
        name = user["metadata"]["name"]
        writable = {t for t in topics if allowed(user, "topic", t, WRITES)}
        if writable != {inbound.get(source)}:
            problems.append(f"{name} ({source}) may write {sorted(writable)}")
        for rule in user["spec"]["authorization"]["acls"]:
            prefixed = rule["resource"].get("patternType") == "prefix"
            if (
                rule["resource"]["type"] == "topic"
                and prefixed
                and WRITES & set(rule["operations"])
            ):
                problems.append(f"{name}: writes topics by prefix {rule['resource']['name']!r}")
            if "Read" in rule["operations"] or "All" in rule["operations"]:
                problems.append(f"{name}: may read {rule['resource']}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_agency_user_may_write_only_its_own_inbound_topic(overlay: str) -> None:
    objects = rendered(overlay)
    assert agency_write_problems(objects) == []
    sources = {
        u["metadata"].get("annotations", {}).get("hub/case-event-source")
        for u in kafka_users(objects).values()
    }
    assert {"NCG", "IMG", "MUNICIPALITY", "HOUSING_CORPORATION"} <= sources


def _topic_rule(name: str, operations: list[str], pattern: str = "literal") -> Obj:
    return {
        "resource": {"type": "topic", "name": name, "patternType": pattern},
        "operations": operations,
    }


@pytest.mark.parametrize(
    ("user", "rule"),
    [
        ("ncg", _topic_rule("hub.case-events.img", ["Write"])),  # another agency's topic
        ("img", _topic_rule("hub.case-events", ["All"], "prefix")),  # every inbound, by prefix
        ("municipality", _topic_rule("hub.case-events", ["Write"])),  # the shared inbound topic
        ("housing", _topic_rule("hub.case-events.housing_corporation", ["Read"])),  # reading
    ],
)
def test_the_agency_check_catches_a_wider_grant(user: str, rule: Obj) -> None:
    objects = rendered("production")
    kafka_users(objects)[user]["spec"]["authorization"]["acls"].append(rule)
    problems = agency_write_problems(objects)
    assert problems and all(p.startswith(user) for p in problems), problems


def delivery_grant_problems(objects: list[Obj]) -> list[str]:
    """Where the hub-delivery KafkaUser may do less than ``hub deliver`` needs, or more than it
    needs on the hub's topics (names from connectors/delivery/topics.py and hub.pipeline)."""
    settings = settings_of(objects)
    user = kafka_users(objects)["hub-delivery"]
    hub_topics = Topics.from_settings(settings)
    own = DeliveryTopics.from_settings(settings)
    sources = {hub_topics.signals, hub_topics.contact_routing}  # the two channels' topics
    needs = [
        *[("topic", t, "Read") for t in sources],
        ("group", group_id(settings, "any-subscription"), "Read"),
        ("group", f"{settings.app_id}-delivery-supervisor", "Read"),
        ("topic", own.subscriptions, "Read"),
        ("topic", own.log, "Read"),
        ("topic", own.log, "Write"),
        ("topic", own.dead_letter("any-subscription"), "Write"),
        *[("topic", t, "Create") for t in own.specs(("any-subscription",))],
        # hub.pipeline.topics.wait_for_topics at start: metadata of every hub and Faust topic
        *[("topic", t, "Describe") for t in hub_topics.specs(settings.partitions)],
        *[("topic", t, "Describe") for t in faust_specs(settings)],
    ]
    problems = [f"may not {op} {kind} {name}" for kind, name, op in needs]
    problems = [
        p
        for p, (kind, name, op) in zip(problems, needs, strict=True)
        if not allowed(user, kind, name, {op})
    ]
    # no record of any other hub topic, no write to any of them, no other group
    for topic in {t["spec"]["topicName"] for t in objects if t["kind"] == "KafkaTopic"}:
        if topic not in sources and allowed(user, "topic", topic, {"Read", "All"}):
            problems.append(f"may read {topic}")
        if allowed(user, "topic", topic, WRITES | {"Create", "Delete", "Alter"}):
            problems.append(f"may write or change {topic}")
    if allowed(user, "topic", own.subscriptions, WRITES):
        problems.append(f"may write {own.subscriptions} (add subscriptions)")
    for group in (settings.app_id, f"{settings.app_id}-answers", f"{settings.app_id}-ingest"):
        if allowed(user, "group", group, {"Read", "All"}):
            problems.append(f"may join group {group}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_delivery_user_may_do_what_hub_deliver_needs_and_no_more(overlay: str) -> None:
    assert delivery_grant_problems(rendered(overlay)) == []


@pytest.mark.parametrize(
    "rule",
    [
        _topic_rule("hub.", ["Read"], "prefix"),  # every hub topic's records
        _topic_rule("hub.case-events", ["Write"]),  # the shared inbound topic
        _topic_rule("hub.delivery-subscriptions", ["Write"]),  # adding subscriptions
    ],
)
def test_the_delivery_check_catches_a_wider_grant(rule: Obj) -> None:
    objects = rendered("production")
    kafka_users(objects)["hub-delivery"]["spec"]["authorization"]["acls"].append(rule)
    assert delivery_grant_problems(objects) != []


def test_the_delivery_check_catches_a_missing_grant() -> None:
    objects = rendered("production")
    acls = kafka_users(objects)["hub-delivery"]["spec"]["authorization"]["acls"]
    acls[:] = [a for a in acls if a["resource"]["type"] != "group"]
    assert delivery_grant_problems(objects) == [
        "may not Read group hub-delivery-any-subscription",
        "may not Read group hub-delivery-supervisor",
    ]


def mounted_secret(pod: Obj, container: Obj, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file ``path`` in ``container`` (a secret volume mount)."""
    for mount in container.get("volumeMounts", []):
        root = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(root):
            continue
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert "secret" in volume, f"{path}: volume {volume['name']} is not a Secret"
        relative = path.removeprefix(root)
        items = volume["secret"].get("items")
        key = next(i["key"] for i in items if i["path"] == relative) if items else relative
        return volume["secret"]["secretName"], key
    raise AssertionError(f"{path}: not in any volume of {container['name']}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_ingress_and_delivery_log_in_as_their_kafka_users(overlay: str) -> None:
    objects = rendered(overlay)
    users = kafka_users(objects)
    config_env = config(objects)
    for kind, name, principal in (
        ("StatefulSet", "hub-worker", "hub-worker"),
        ("Deployment", "hub-http", "hub-ingress"),
        ("Deployment", "hub-delivery", "hub-delivery"),
    ):
        pod = one(objects, kind, name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {**config_env, **{e["name"]: e["value"] for e in container["env"] if "value" in e}}
        assert env["HUB_SASL_USERNAME"] == principal, name
        assert principal in users, name
        password = mounted_secret(pod, container, env["HUB_SASL_PASSWORD_FILE"])
        assert password == (user_secret(objects, principal), "password"), name
        ca = mounted_secret(pod, container, env["HUB_SSL_CA_FILE"])
        assert ca == (cluster_ca_secret(objects), "ca.crt"), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_logs_in_as_a_read_only_user_that_may_describe_its_groups(overlay: str) -> None:
    objects = rendered(overlay)
    users = kafka_users(objects)
    for trigger in one(objects, "ScaledObject")["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
        auth = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
        refs = {r["parameter"]: r for r in auth.get("configMapTargetRef", [])}
        username = one(objects, "ConfigMap", refs["username"]["name"])["data"][
            refs["username"]["key"]
        ]
        secrets = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
        assert secrets["password"] == (user_secret(objects, username), "password")
        assert secrets["ca"] == (cluster_ca_secret(objects), "ca.crt")
        user = users[username]
        assert allowed(user, "group", meta["consumerGroup"], {"Describe"}), meta["consumerGroup"]
        assert allowed(user, "topic", meta["topic"], {"Describe"}), meta["topic"]
        operations = {
            op for acl in user["spec"]["authorization"]["acls"] for op in acl["operations"]
        }
        assert operations == {"Describe"}


def secret_references(objects: list[Obj]) -> list[tuple[str, str | None, str]]:
    """(Secret name, key or None, where) of every Secret the rendered objects make or read."""
    refs: list[tuple[str, str | None, str]] = []
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Secret":
            refs.append((obj["metadata"]["name"], None, where))
        template = obj.get("spec", {}).get("template", {}).get("spec", {})
        for volume in template.get("volumes", []):
            if "secret" in volume:
                keys = [i["key"] for i in volume["secret"].get("items", [])] or [None]
                refs += [(volume["secret"]["secretName"], k, where) for k in keys]
        for container in template.get("containers", []):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    refs.append((source["secretRef"]["name"], None, where))
            for env in container.get("env", []):
                if ref := env.get("valueFrom", {}).get("secretKeyRef"):
                    refs.append((ref["name"], ref["key"], where))
        if obj["kind"] == "TriggerAuthentication":
            refs += [(r["name"], r["key"], where) for r in obj["spec"].get("secretTargetRef", [])]
    return refs


def secret_clashes(objects: list[Obj]) -> list[str]:
    """Secrets of the hub that Strimzi's User Operator would overwrite with a user's password."""
    owned = {user_secret(objects, user) for user in kafka_users(objects)}
    return [
        f"{where}: {name} ({key})"
        for name, key, where in secret_references(objects)
        if name in owned and key != "password"
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_of_the_hub_is_one_strimzi_writes_a_password_to(overlay: str) -> None:
    # the User Operator owns the Secret <secretPrefix><user>: a Secret of the hub with that name
    # (`hub-ingress`, the ingress's tokens, is also a principal's name) would be overwritten
    assert secret_clashes(rendered(overlay)) == []


def test_the_secret_check_catches_a_clash_without_the_prefix() -> None:
    objects = rendered("production")
    del one(objects, "Kafka")["spec"]["entityOperator"]["userOperator"]["secretPrefix"]
    assert sorted(secret_clashes(objects)) == [
        "Deployment/hub-delivery: hub-delivery (secret-key)",
        "Deployment/hub-http: hub-ingress (notificaties-auth)",
        "Deployment/hub-http: hub-ingress (tokens.toml)",
    ]
