"""The generated manifests (``hub manifests ...``) match their sources and the committed files.

deploy/kubernetes/base/topics.yaml, prometheus-rule.yaml and kafka-users.yaml are generated from
hub/pipeline/topics.py, deploy/prometheus/rules and deploy/kafka/acl.toml; if a source changes
without its file being regenerated, these tests fail and say how to regenerate.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hub.deploy_manifests import (
    ACL_FILE,
    RULES_DIR,
    TopicManifestOptions,
    UserManifestOptions,
    kafka_topics,
    kafka_topics_yaml,
    kafka_users,
    kafka_users_yaml,
    prometheus_rule_yaml,
    resource_name,
    strimzi_operation,
)
from hub.pipeline.topics import Topics, faust_specs
from hub.settings import Settings
from hubctl.acl import load_plan, plan_from_dict
from hubctl.main import app

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
HUB = Path(sys.executable).parent / "hub"


def test_committed_topics_equal_the_generated_ones() -> None:
    committed = (BASE / "topics.yaml").read_text()
    assert committed == kafka_topics_yaml(TopicManifestOptions()), (
        "deploy/kubernetes/base/topics.yaml is stale: "
        "run .venv/bin/hub manifests topics > deploy/kubernetes/base/topics.yaml"
    )


def test_committed_prometheus_rule_equals_the_generated_one() -> None:
    committed = (BASE / "prometheus-rule.yaml").read_text()
    assert committed == prometheus_rule_yaml(), (
        "deploy/kubernetes/base/prometheus-rule.yaml is stale: "
        "run .venv/bin/hub manifests prometheus-rule > deploy/kubernetes/base/prometheus-rule.yaml"
    )


def test_committed_kafka_users_equal_the_generated_ones() -> None:
    committed = (BASE / "kafka-users.yaml").read_text()
    plan = load_plan(ACL_FILE, Settings(topic_prefix="hub.", app_id="hub"))
    assert committed == kafka_users_yaml(plan, UserManifestOptions()), (
        "deploy/kubernetes/base/kafka-users.yaml is stale: "
        "run .venv/bin/hub manifests users > deploy/kubernetes/base/kafka-users.yaml"
    )


def test_hub_manifests_commands_print_the_committed_files() -> None:
    # the real console script, in a fresh process, with a HUB_* environment that must not leak in
    env = {"PATH": "/usr/bin:/bin", "HUB_PARTITIONS": "3", "HUB_TOPIC_PREFIX": "other."}
    for command, committed in (
        ("topics", "topics.yaml"),
        ("prometheus-rule", "prometheus-rule.yaml"),
        ("users", "kafka-users.yaml"),
    ):
        result = subprocess.run(
            [str(HUB), "manifests", command],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == (BASE / committed).read_text()


def test_one_kafka_topic_per_hub_topic_with_the_hubs_partitions_and_configs() -> None:
    options = TopicManifestOptions(partitions=12, replicas=3, min_insync_replicas=2)
    settings = Settings(partitions=12, topic_prefix="hub.", app_id="hub")
    wanted = {**Topics.from_settings(settings).specs(12), **faust_specs(settings)}
    objects = {o["spec"]["topicName"]: o for o in kafka_topics(options)}  # type: ignore[index]
    assert set(objects) == set(wanted)
    assert "hub-__assignor-__leader" in objects  # Faust's own topics are there too
    for name, (partitions, config) in wanted.items():
        spec = objects[name]["spec"]
        assert spec["partitions"] == partitions
        assert spec["replicas"] == 3
        assert spec["config"] == {**config, "min.insync.replicas": "2"}
    assert objects["hub.parked"]["spec"]["partitions"] == 1
    assert objects["hub.dossiers"]["spec"]["config"]["cleanup.policy"] == "compact"


def test_topic_options_follow_the_command_line() -> None:
    result = CliRunner().invoke(
        app,
        ["manifests", "topics", "--partitions", "16", "--replicas", "1", "--min-insync-replicas",
         "1", "--topic-prefix", "acc.", "--cluster", "acc-kafka"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    events = next(d for d in docs if d["spec"]["topicName"] == "acc.case-events")
    assert events["spec"]["partitions"] == 16
    assert events["spec"]["replicas"] == 1
    assert events["metadata"]["labels"]["strimzi.io/cluster"] == "acc-kafka"


def test_min_insync_above_replicas_is_refused_naming_the_field() -> None:
    result = CliRunner().invoke(
        app, ["manifests", "topics", "--replicas", "1", "--min-insync-replicas", "2"]
    )
    assert result.exit_code == 2
    assert "min_insync_replicas" in result.output


def test_kubernetes_names_are_valid_and_collisions_are_refused() -> None:
    assert resource_name("hub-__assignor-__leader") == "hub-assignor-leader"
    assert resource_name("Hub.Case_Events") == "hub.case-events"
    with pytest.raises(ValueError, match="no valid Kubernetes name"):
        resource_name("___")


def test_prometheus_rule_carries_the_rules_and_their_comments() -> None:
    text = prometheus_rule_yaml()
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    source = (RULES_DIR / "hub-alerts.yml").read_text()
    assert doc["spec"] == yaml.safe_load(source)
    assert "# Thresholds are configurable in one place each:" in text


def test_prometheus_rule_follows_a_changed_rule_file(tmp_path: Path) -> None:
    source = (RULES_DIR / "hub-alerts.yml").read_text()
    (tmp_path / "hub-alerts.yml").write_text(source.replace("vector(6 * 3600)", "vector(7 * 3600)"))
    (tmp_path / "extra.yml").write_text("groups:\n  - name: extra\n    rules: []\n")
    result = CliRunner().invoke(app, ["manifests", "prometheus-rule", "--rules-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert [d["metadata"]["name"] for d in docs] == ["hub-alerts-extra", "hub-alerts"]
    assert "vector(7 * 3600)" in result.output


def test_a_rule_file_that_is_not_a_rule_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("groups: []\nscrape_configs: []\n")
    result = CliRunner().invoke(app, ["manifests", "prometheus-rule", "--rules-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "bad.yml" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["manifests", "prometheus-rule", "--rules-dir", str(empty)])
    assert result.exit_code == 2
    assert "no rule files" in result.output


def test_one_kafka_user_per_principal_with_its_grants_in_strimzis_terms() -> None:
    data = {
        "principals": {
            "ops": {
                "grants": [
                    {"resource": "cluster", "operations": ["DESCRIBE_CONFIGS", "DESCRIBE"]},
                    {"resource": "topic", "name": "{prefix}x", "operations": ["READ"]},
                    {"resource": "topic", "name": "{prefix}x", "operations": ["DESCRIBE"]},
                    {
                        "resource": "transactional_id",
                        "name": "{app_id}-",
                        "pattern": "prefixed",
                        "operations": ["IDEMPOTENT_WRITE", "ALL"],
                    },
                ]
            },
            "agency": {"source": "NCG", "grants": []},
        }
    }
    plan = plan_from_dict(data, Settings(topic_prefix="acc.", app_id="acc"))
    ops, agency = kafka_users(plan, UserManifestOptions(cluster="acc-kafka"))
    assert ops["metadata"] == {  # type: ignore[comparison-overlap]
        "name": "ops",
        "labels": {"strimzi.io/cluster": "acc-kafka", "app.kubernetes.io/part-of": "hub"},
    }
    assert ops["spec"]["authentication"] == {"type": "scram-sha-512"}  # type: ignore[index]
    assert ops["spec"]["authorization"] == {  # type: ignore[index]
        "type": "simple",
        "acls": [
            # one rule per resource pattern, operations merged, in a stable order
            {
                "resource": {"type": "topic", "name": "acc.x", "patternType": "literal"},
                "operations": ["Read", "Describe"],
            },
            {
                "resource": {"type": "transactionalId", "name": "acc-", "patternType": "prefix"},
                "operations": ["IdempotentWrite", "All"],
            },
            {"resource": {"type": "cluster"}, "operations": ["Describe", "DescribeConfigs"]},
        ],
    }
    assert agency["metadata"]["annotations"] == {"hub/case-event-source": "NCG"}  # type: ignore[index]
    assert agency["spec"]["authorization"]["acls"] == []  # type: ignore[index]


def test_every_kafka_acl_operation_has_a_strimzi_name() -> None:
    from hubctl.acl import OPERATIONS

    assert {strimzi_operation(op) for op in OPERATIONS} == {
        "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
        "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All",
    }  # fmt: skip


def test_user_options_follow_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["manifests", "users", "--topic-prefix", "acc.", "--app-id", "acc", "--cluster",
         "acc-kafka"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.output) if d}
    rules = docs["ncg"]["spec"]["authorization"]["acls"]
    assert rules[0]["resource"]["name"] == "acc.case-events.ncg"
    assert docs["hub-worker"]["metadata"]["labels"]["strimzi.io/cluster"] == "acc-kafka"
    assert "# Options: cluster=acc-kafka, topic_prefix=acc., app_id=acc" in result.output


def test_a_bad_acl_file_or_principal_name_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "acl.toml"
    bad.write_text(
        '[principals.ncg]\ngrants = [{ resource = "topic", name = "x", operations = ["REED"] }]\n'
    )
    result = CliRunner().invoke(app, ["manifests", "users", "--file", str(bad)])
    assert result.exit_code == 2
    assert "principals.ncg.grants[0].operations" in result.output
    bad.write_text("[principals.Hub_Worker]\ngrants = []\n")
    result = CliRunner().invoke(app, ["manifests", "users", "--file", str(bad)])
    assert result.exit_code == 2
    assert "not a valid Kubernetes object name" in result.output
