"""``hub manifests ...``: print the generated Kubernetes manifests (see hub/deploy_manifests.py).

The committed copies live in deploy/kubernetes/base; a test fails when they differ from this
output, so regenerate after changing topics, alert rules or deploy/kafka/acl.toml.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hub.deploy_manifests import (
    ACL_FILE,
    RULES_DIR,
    TopicManifestOptions,
    UserManifestOptions,
    kafka_topics_yaml,
    kafka_users_yaml,
    prometheus_rule_yaml,
)
from hub.settings import PROJECT_ROOT, Settings

_DEFAULTS = TopicManifestOptions()
_USER_DEFAULTS = UserManifestOptions()


def register(app: typer.Typer) -> None:
    """Add the ``manifests`` command group to ``app``."""
    manifests_app = typer.Typer(
        help="Generated Kubernetes manifests (deploy/kubernetes).", no_args_is_help=True
    )
    app.add_typer(manifests_app, name="manifests")

    @manifests_app.command("topics")
    def topics(
        cluster: str = typer.Option(_DEFAULTS.cluster, help="Strimzi Kafka cluster name"),
        topic_prefix: str = typer.Option(_DEFAULTS.topic_prefix, help="HUB_TOPIC_PREFIX"),
        app_id: str = typer.Option(_DEFAULTS.app_id, help="HUB_APP_ID (Faust's topics)"),
        partitions: int = typer.Option(_DEFAULTS.partitions, help="HUB_PARTITIONS"),
        replicas: int = typer.Option(_DEFAULTS.replicas, help="replication factor"),
        min_insync_replicas: int = typer.Option(
            _DEFAULTS.min_insync_replicas, help="min.insync.replicas of every topic"
        ),
    ) -> None:
        """Print a Strimzi KafkaTopic for every hub topic (and Faust's) as YAML."""
        try:
            options = TopicManifestOptions(
                cluster=cluster,
                topic_prefix=topic_prefix,
                app_id=app_id,
                partitions=partitions,
                replicas=replicas,
                min_insync_replicas=min_insync_replicas,
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(kafka_topics_yaml(options), nl=False)

    @manifests_app.command("prometheus-rule")
    def prometheus_rule(
        rules_dir: Path = typer.Option(RULES_DIR, help="directory of Prometheus rule files"),
    ) -> None:
        """Print the alert rules of deploy/prometheus/rules as PrometheusRule objects."""
        try:
            text = prometheus_rule_yaml(rules_dir)
        except (OSError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(text, nl=False)

    @manifests_app.command("users")
    def users(
        cluster: str = typer.Option(_USER_DEFAULTS.cluster, help="Strimzi Kafka cluster name"),
        topic_prefix: str = typer.Option(_USER_DEFAULTS.topic_prefix, help="fills {prefix}"),
        app_id: str = typer.Option(_USER_DEFAULTS.app_id, help="fills {app_id}"),
        file: Path = typer.Option(ACL_FILE, "--file", help="the ACL TOML (as `hub acl apply`)"),
    ) -> None:
        """Print a Strimzi KafkaUser (SCRAM-SHA-512 + ACLs) per principal of the ACL file."""
        from hubctl.acl import AclFileError, load_plan

        options = UserManifestOptions(cluster=cluster, topic_prefix=topic_prefix, app_id=app_id)
        try:
            plan = load_plan(file, Settings(topic_prefix=topic_prefix, app_id=app_id))
            text = kafka_users_yaml(plan, options, source=_shown(file))
        except (AclFileError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(text, nl=False)


def _shown(path: Path) -> str:
    """``path`` relative to the project when it lies inside it (a reproducible header)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
