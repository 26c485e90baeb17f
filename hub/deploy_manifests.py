"""Kubernetes manifests generated from the hub's own definitions, so they cannot drift.

- :func:`kafka_topics_yaml`: one Strimzi ``KafkaTopic`` per topic of
  :meth:`hub.pipeline.topics.Topics.specs` and :func:`hub.pipeline.topics.faust_specs`, with the
  same partitions and configs the hub itself would create, plus the replication the cluster needs.
- :func:`prometheus_rule_yaml`: the alert rules of ``deploy/prometheus/rules`` (the files promtool
  checks and unit-tests) wrapped in a prometheus-operator ``PrometheusRule``, comments kept.
- :func:`kafka_users_yaml`: one Strimzi ``KafkaUser`` (SCRAM-SHA-512, simple authorization) per
  principal of ``deploy/kafka/acl.toml``, with exactly the ACLs ``hub acl apply`` would set. The
  file is parsed by ``hubctl.acl.load_plan`` (the one parser; ``hub`` may not import ``hubctl``,
  so the caller passes the parsed plan in, typed by :class:`AclPlanLike`).

``hub manifests topics|prometheus-rule|users`` (hubctl/manifests.py) print them; the committed
files in ``deploy/kubernetes/base`` are checked against this output
(tests/unit/test_kubernetes_*.py). Pure: no Kafka client is imported (only the topic tables of
hub.pipeline.topics).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from hub.pipeline.topics import Topics, faust_specs
from hub.settings import PROJECT_ROOT, Settings

STRIMZI_API = "kafka.strimzi.io/v1"
PROM_OPERATOR_API = "monitoring.coreos.com/v1"
RULES_DIR = PROJECT_ROOT / "deploy" / "prometheus" / "rules"
ACL_FILE = PROJECT_ROOT / "deploy" / "kafka" / "acl.toml"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _default(field: str) -> Any:
    """A Settings field's declared default (never the environment: output must be reproducible)."""
    return Settings.model_fields[field].default


@dataclass(frozen=True)
class TopicManifestOptions:
    """What the generated ``KafkaTopic`` objects depend on (defaults: the hub's own defaults)."""

    cluster: str = "hub-kafka"
    topic_prefix: str = _default("topic_prefix")
    app_id: str = _default("app_id")
    partitions: int = _default("partitions")
    replicas: int = 3
    min_insync_replicas: int = 2

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas: must be >= 1, got {self.replicas}")
        if not 1 <= self.min_insync_replicas <= self.replicas:
            raise ValueError(
                f"min_insync_replicas: must be between 1 and replicas ({self.replicas}), "
                f"got {self.min_insync_replicas}"
            )
        if self.partitions < 1:
            raise ValueError(f"partitions: must be >= 1, got {self.partitions}")


def resource_name(topic: str) -> str:
    """A Kubernetes object name (DNS-1123 subdomain) for a Kafka topic name.

    Kafka allows ``_`` and upper case, Kubernetes names do not; the real name goes to
    ``spec.topicName`` anyway, so this only has to be valid and unique per topic set.
    """
    name = re.sub(r"[^a-z0-9.-]+", "-", topic.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-.")
    if not _DNS1123.match(name) or len(name) > 253:
        raise ValueError(f"topic {topic!r}: no valid Kubernetes name can be derived from it")
    return name


def topic_specs(options: TopicManifestOptions) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name → (partitions, config): the hub's topics and Faust's, as the hub creates them."""
    settings = Settings(
        topic_prefix=options.topic_prefix, app_id=options.app_id, partitions=options.partitions
    )
    return {
        **Topics.from_settings(settings).specs(options.partitions),
        **faust_specs(settings),
    }


def kafka_topics(options: TopicManifestOptions) -> list[dict[str, object]]:
    """One ``KafkaTopic`` per hub topic, in the order of :func:`topic_specs`."""
    objects: list[dict[str, object]] = []
    seen: dict[str, str] = {}
    for topic, (partitions, config) in topic_specs(options).items():
        name = resource_name(topic)
        if name in seen:
            raise ValueError(f"topics {seen[name]!r} and {topic!r} map to one object name {name!r}")
        seen[name] = topic
        objects.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaTopic",
                "metadata": {
                    "name": name,
                    "labels": {
                        "strimzi.io/cluster": options.cluster,
                        "app.kubernetes.io/part-of": "hub",
                    },
                },
                "spec": {
                    "topicName": topic,
                    "partitions": partitions,
                    "replicas": options.replicas,
                    "config": {
                        **config,
                        "min.insync.replicas": str(options.min_insync_replicas),
                    },
                },
            }
        )
    return objects


def kafka_topics_yaml(options: TopicManifestOptions) -> str:
    """:func:`kafka_topics` as a multi-document YAML file with a "generated" header."""
    header = (
        "# GENERATED by `hub manifests topics` from hub/pipeline/topics.py: do not edit.\n"
        f"# Options: {_describe(options)}\n"
        "# Regenerate: .venv/bin/hub manifests topics > deploy/kubernetes/base/topics.yaml\n"
    )
    body = yaml.safe_dump_all(kafka_topics(options), sort_keys=False, default_flow_style=False)
    return header + "---\n" + body


def _describe(options: TopicManifestOptions | UserManifestOptions) -> str:
    return ", ".join(f"{k}={v}" for k, v in vars(options).items())


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    """The rule files Prometheus loads (``rules/*.yml``, as in deploy/prometheus/prometheus.yml)."""
    files = sorted(rules_dir.glob("*.yml"))
    if not files:
        raise FileNotFoundError(f"no rule files (*.yml) in {rules_dir}")
    return files


def prometheus_rule_yaml(rules_dir: Path = RULES_DIR, name: str = "hub-alerts") -> str:
    """One ``PrometheusRule`` per rule file, the file's ``groups`` under ``spec`` verbatim.

    The rule text is indented, not re-serialised, so the comments explaining every threshold stay
    with the rules; the result is parsed back and compared with the source to prove it is equal.
    """
    docs = [
        "# GENERATED by `hub manifests prometheus-rule` from deploy/prometheus/rules: "
        "do not edit.\n"
        "# Regenerate: .venv/bin/hub manifests prometheus-rule > "
        "deploy/kubernetes/base/prometheus-rule.yaml\n"
    ]
    for path in rule_files(rules_dir):
        source = path.read_text(encoding="utf-8")
        parsed = yaml.safe_load(source)
        if not isinstance(parsed, dict) or set(parsed) != {"groups"}:
            raise ValueError(f"{path.name}: a rule file must have exactly one key, 'groups'")
        object_name = name if path.stem == name else f"{name}-{resource_name(path.stem)}"
        head = (
            f"apiVersion: {PROM_OPERATOR_API}\n"
            "kind: PrometheusRule\n"
            "metadata:\n"
            f"  name: {object_name}\n"
            "  labels:\n"
            "    app.kubernetes.io/part-of: hub\n"
            f"  annotations:\n    hub/source: deploy/prometheus/rules/{path.name}\n"
            "spec:\n"
        )
        body = "".join(
            f"  {line}" if line.strip() else line for line in source.splitlines(keepends=True)
        )
        doc = head + body
        rendered = yaml.safe_load(doc)
        if rendered["spec"] != parsed:
            raise AssertionError(f"{path.name}: the wrapped rules differ from the source")
        docs.append("---\n" + doc)
    return "".join(docs)


# -- KafkaUsers from the ACL file -----------------------------------------------------------

#: hubctl.acl's resource types and pattern types (Kafka's names) → Strimzi's ACLRule spelling
STRIMZI_RESOURCES = {
    "TOPIC": "topic",
    "GROUP": "group",
    "TRANSACTIONAL_ID": "transactionalId",
    "BROKER": "cluster",
}
STRIMZI_PATTERNS = {"LITERAL": "literal", "PREFIXED": "prefix"}
#: the order of Strimzi's ACLRule ``operations`` enum, used to order each rule's operations
STRIMZI_OPERATIONS = (
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "AlterConfigs",
    "DescribeConfigs",
    "IdempotentWrite",
    "All",
)
#: annotation naming the CaseEvent source an agency principal is bound to (acl.toml ``source``)
SOURCE_ANNOTATION = "hub/case-event-source"


class AclLike(Protocol):
    """One ALLOW binding (``hubctl.acl.Acl``)."""

    @property
    def principal(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def pattern(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def host(self) -> str: ...


class AclPlanLike(Protocol):
    """A parsed ACL file (``hubctl.acl.AclPlan``): principals in file order, their ACLs."""

    @property
    def principals(self) -> tuple[str, ...]: ...
    @property
    def acls(self) -> Collection[AclLike]: ...
    @property
    def sources(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class UserManifestOptions:
    """What the generated ``KafkaUser`` objects depend on (defaults: the hub's own defaults).

    ``topic_prefix``/``app_id`` fill the file's ``{prefix}``/``{app_id}``; the caller parses the
    file with them (``hubctl.acl.load_plan``), they are kept here for the generated header.
    """

    cluster: str = "hub-kafka"
    topic_prefix: str = _default("topic_prefix")
    app_id: str = _default("app_id")


def strimzi_operation(operation: str) -> str:
    """Kafka's ``DESCRIBE_CONFIGS`` → Strimzi's ``DescribeConfigs``."""
    name = "".join(part.capitalize() for part in operation.split("_"))
    if name not in STRIMZI_OPERATIONS:
        raise ValueError(f"operation {operation!r}: Strimzi has no such ACL operation")
    return name


def _acl_rules(acls: list[AclLike]) -> list[dict[str, object]]:
    """The ACLs of one principal as Strimzi ACL rules: one rule per resource pattern (and host),
    its operations merged, in a stable order (resource type, name, pattern)."""
    grouped: dict[tuple[str, str, str, str], set[str]] = {}
    for acl in acls:
        if acl.resource not in STRIMZI_RESOURCES:
            raise ValueError(f"{acl.principal}: resource type {acl.resource!r} has no Strimzi form")
        if acl.pattern not in STRIMZI_PATTERNS:
            raise ValueError(f"{acl.principal}: pattern {acl.pattern!r} has no Strimzi form")
        key = (acl.resource, acl.name, acl.pattern, acl.host)
        grouped.setdefault(key, set()).add(strimzi_operation(acl.operation))
    order = list(STRIMZI_RESOURCES)
    rules: list[dict[str, object]] = []
    for (resource, name, pattern, host), operations in sorted(
        grouped.items(), key=lambda item: (order.index(item[0][0]), *item[0][1:])
    ):
        target: dict[str, object] = {"type": STRIMZI_RESOURCES[resource]}
        if resource != "BROKER":  # the cluster resource has no name
            target["name"] = name
            target["patternType"] = STRIMZI_PATTERNS[pattern]
        rule: dict[str, object] = {"resource": target}
        if host != "*":
            rule["host"] = host
        rule["operations"] = sorted(operations, key=STRIMZI_OPERATIONS.index)
        rules.append(rule)
    return rules


def kafka_users(plan: AclPlanLike, options: UserManifestOptions) -> list[dict[str, object]]:
    """One ``KafkaUser`` per principal of ``plan``, in the file's order.

    SCRAM-SHA-512 authentication (Strimzi's User Operator generates the password into a Secret)
    and ``simple`` authorization with the principal's ACLs. The super users (``broker``,
    ``admin``) are not principals of the file and get no KafkaUser.
    """
    objects: list[dict[str, object]] = []
    for principal in plan.principals:
        kind, _, user = principal.partition(":")
        if kind != "User" or not user:
            raise ValueError(f"principal {principal!r}: only User:<name> principals are supported")
        if not _DNS1123.match(user) or len(user) > 253:
            raise ValueError(f"principal {user!r}: not a valid Kubernetes object name")
        metadata: dict[str, object] = {
            "name": user,
            "labels": {
                "strimzi.io/cluster": options.cluster,
                "app.kubernetes.io/part-of": "hub",
            },
        }
        if principal in plan.sources:
            metadata["annotations"] = {SOURCE_ANNOTATION: plan.sources[principal]}
        objects.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaUser",
                "metadata": metadata,
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {
                        "type": "simple",
                        "acls": _acl_rules([a for a in plan.acls if a.principal == principal]),
                    },
                },
            }
        )
    return objects


def kafka_users_yaml(
    plan: AclPlanLike, options: UserManifestOptions, source: str = "deploy/kafka/acl.toml"
) -> str:
    """:func:`kafka_users` as a multi-document YAML file with a "generated" header."""
    header = (
        f"# GENERATED by `hub manifests users` from {source}: do not edit.\n"
        f"# Options: {_describe(options)}\n"
        "# Regenerate: .venv/bin/hub manifests users > deploy/kubernetes/base/kafka-users.yaml\n"
        "# Strimzi's User Operator keeps each user's SCRAM-SHA-512 password in the Secret\n"
        "# <secretPrefix><name> (key `password`; secretPrefix in kafka.yaml) and makes the user's\n"
        "# ACLs on the cluster equal to the list below.\n"
    )
    body = yaml.safe_dump_all(kafka_users(plan, options), sort_keys=False, default_flow_style=False)
    return header + "---\n" + body
