"""The ``hub`` command line (typer): broker lifecycle, worker, ingest, answers, operations.

Console script ``hub`` = :data:`app`; ``python -m hubctl`` runs the same app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hub.settings import Settings, get_settings

app = typer.Typer(
    help="hub: correlates Groningen recovery case events per address.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
kafka_app = typer.Typer(
    help="The local Kafka (KRaft): one node, the --secure one, or a --brokers 3 cluster.",
    no_args_is_help=True,
)
app.add_typer(kafka_app, name="kafka")


SECURE = typer.Option(
    False, "--secure", help="the SASL_SSL broker (own home and port, HUB_SECURE_BROKER)"
)


def _local_kafka(secure: bool) -> Any:
    """The plaintext local broker, or the secure one (tools.local_kafka_secure)."""
    from tools.local_kafka import LocalKafka

    if not secure:
        return LocalKafka(get_settings())
    from tools.local_kafka_secure import SecureLocalKafka, secure_settings

    return SecureLocalKafka(secure_settings())


BROKERS_HELP = (
    "nodes: 1 = the single local broker (HUB_BROKER); more = the local KRaft cluster under "
    "HUB_KAFKA_CLUSTER_HOME, node i at HUB_KAFKA_CLUSTER_PORT + i - 1"
)


def _cluster_command(action: str, brokers: int, wait: float = 120.0) -> None:
    """start/stop/status/reset of the local multi-node cluster (``--brokers`` > 1)."""
    from tools.local_kafka import KafkaError, LocalKafkaCluster

    settings = get_settings()
    if action == "start":
        cluster = LocalKafkaCluster(settings, brokers)
    else:
        cluster = LocalKafkaCluster.existing(settings)
    try:
        if action == "start":
            status = cluster.start(wait_s=wait)
            typer.echo(status.describe())
            typer.echo(
                f"clients: export HUB_BROKER={cluster.bootstrap} HUB_REPLICATION_FACTOR="
                f"{min(3, brokers)} HUB_MIN_INSYNC_REPLICAS={2 if brokers >= 3 else 1}"
            )
        elif action == "stop":
            stopped = cluster.stop()
            typer.echo(
                f"stopped cluster node(s) {stopped}"
                if stopped
                else "no node of the local cluster was running"
            )
        elif action == "reset":
            cluster.reset()
            typer.echo("local cluster stopped and its data wiped")
        else:
            status = cluster.status()
            typer.echo(status.describe())
            if not status.healthy:
                raise typer.Exit(1)
    except KafkaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@kafka_app.command("start")
def kafka_start(
    wait: float = typer.Option(90.0, help="seconds to wait for the broker"),
    brokers: int = typer.Option(1, min=1, max=9, help=BROKERS_HELP),
    secure: bool = SECURE,
) -> None:
    """Start the local broker (or reuse one that already answers at HUB_BROKER)."""
    from tools.local_kafka import KafkaError

    if brokers > 1:
        _cluster_command("start", brokers, max(wait, 120.0))
        return
    try:
        status = _local_kafka(secure).start(wait_s=wait)
    except KafkaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(status.describe())


@kafka_app.command("stop")
def kafka_stop(
    brokers: int = typer.Option(1, min=1, max=9, help=BROKERS_HELP), secure: bool = SECURE
) -> None:
    """Stop the local broker this project started (never someone else's)."""
    if brokers > 1:
        _cluster_command("stop", brokers)
        return
    stopped = _local_kafka(secure).stop()
    typer.echo("stopped local broker" if stopped else "no local broker of ours was running")


@kafka_app.command("status")
def kafka_status(
    brokers: int = typer.Option(1, min=1, max=9, help=BROKERS_HELP), secure: bool = SECURE
) -> None:
    """Report whether the broker answers, its version and address (cluster: every node and
    the controller quorum)."""
    if brokers > 1:
        _cluster_command("status", brokers)
        return
    status = _local_kafka(secure).status()
    typer.echo(status.describe())
    if not status.reachable:
        raise typer.Exit(1)


@kafka_app.command("reset")
def kafka_reset(
    brokers: int = typer.Option(1, min=1, max=9, help=BROKERS_HELP), secure: bool = SECURE
) -> None:
    """Stop the local broker and wipe its data directory."""
    if brokers > 1:
        _cluster_command("reset", brokers)
        return
    _local_kafka(secure).reset()
    typer.echo("local broker stopped and its data wiped")


@app.command("worker")
def worker(
    partitions: int = typer.Option(None, help="partitions per topic (HUB_PARTITIONS)"),
    data_dir: str = typer.Option(None, help="RocksDB data dir (HUB_DATA_DIR)"),
    metrics_port: int = typer.Option(None, help="metrics/health port, 0 = off (HUB_METRICS_PORT)"),
) -> None:
    """Run a hub worker: ingest stage + correlate and area agents (Ctrl-C/SIGTERM stops)."""
    from hub.pipeline.worker import run_worker

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "partitions": partitions,
            "data_dir": data_dir,
            "metrics_port": metrics_port,
        }.items()
        if v is not None
    }
    run_worker(Settings(**overrides))


@app.command("topics")
def topics() -> None:
    """Create the hub's topics that are missing (workers do this on start too)."""
    from hub.pipeline.topics import ensure_topics

    created = ensure_topics(get_settings())
    typer.echo(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


@app.command("simulate")
def simulate_cmd(
    addresses: int = typer.Option(1000, help="addresses in the simulated region"),
    events: int = typer.Option(10000, help="events to generate (exactly)"),
    seed: int = typer.Option(1, help="same seed, same events"),
    out: Path | None = typer.Option(None, help="JSON Lines file (default: stdout)"),
    manifest: Path | None = typer.Option(None, help="write what was planted as JSON"),
    publish: bool = typer.Option(False, help="publish to the inbound topic instead"),
) -> None:
    """Realistic agency traffic for the region (JSON Lines, or straight to Kafka)."""
    from connectors.simulator import manifest_to_dict, run_simulate_cli, simulate

    if publish:
        import orjson

        from connectors.kafka_publish import publish as publish_items

        sim = simulate(addresses, events, seed)
        report = publish_items(sim, get_settings())
        if manifest:
            manifest.write_bytes(orjson.dumps(manifest_to_dict(sim.manifest)))
        typer.echo(
            f"published {report.total} ({report.avro} Avro, {report.invalid} invalid), "
            f"{report.failed} failed"
        )
        raise typer.Exit(1 if report.failed else 0)
    run_simulate_cli(addresses, events, seed, out, manifest_out=manifest)


@app.command("demo")
def demo(
    addresses: int = typer.Option(5000, help="addresses in the simulated region"),
    events: int = typer.Option(50000, help="events to simulate"),
    seed: int = typer.Option(2024, help="simulation seed"),
    keep: bool = typer.Option(False, help="keep the demo's topics afterwards"),
    serve: bool = typer.Option(False, help="then serve the steering-group pages until Ctrl-C"),
    web_port: int = typer.Option(8088, help="port of the pages (with --serve)"),
) -> None:
    """Worker + simulated agency traffic on the broker, then a summary (what `make demo` runs)."""
    from rich.console import Console

    from hubctl.answers import render_dossier
    from tools.demo import run_demo

    raise typer.Exit(
        run_demo(addresses, events, seed, keep, Console(), render_dossier, serve, web_port)
    )


acl_app = typer.Typer(help="Kafka ACLs from a reviewed TOML file (issue 15).", no_args_is_help=True)
app.add_typer(acl_app, name="acl")


@acl_app.command("apply")
def acl_apply(
    file: Path = typer.Option(Path("deploy/kafka/acl.toml"), "--file", help="the ACL TOML"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the difference only"),
) -> None:
    """Make the broker's ACLs of the file's principals equal to the file; print the diff."""
    from confluent_kafka import KafkaException

    from hub.security import redact
    from hubctl.acl import AclFileError, apply_file

    settings = Settings()
    try:
        change = apply_file(file, settings, dry_run=dry_run)
    except AclFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KafkaException as exc:
        typer.echo(f"error: broker refused: {redact(str(exc.args[0]), settings)}", err=True)
        raise typer.Exit(1) from None
    for line in change.lines():
        typer.echo(line)
    verb = "would change" if dry_run else "changed"
    typer.echo(
        f"{verb}: {len(change.add)} added, {len(change.remove)} removed, "
        f"{change.unchanged} unchanged"
    )


register_app = typer.Typer(help="The address register (BAG).", no_args_is_help=True)
app.add_typer(register_app, name="register")


@register_app.command("load")
def register_load(
    csv_file: Path = typer.Argument(..., help="BAG extract: nummeraanduiding_id, postcode, ..."),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate only"),
) -> None:
    """Teach every worker a BAG extract (parked events waiting for these ids are released)."""
    from hub.pipeline.register_seed import seed_register

    report = seed_register(csv_file, Settings(), dry_run=dry_run)
    for bad in report.load.bad_rows[:20]:
        typer.echo(f"{csv_file}:{bad.line}: {bad.field}: {bad.reason}", err=True)
    typer.echo(
        f"{report.load.loaded} of {report.load.rows} rows loaded, {report.load.bad_count} "
        f"refused; {report.published} facts published, {report.failed} failed"
    )
    raise typer.Exit(1 if report.failed else (2 if report.load.bad_count else 0))


def _register_plugins() -> None:
    """Commands that live next to their code (connectors) and the answer commands."""
    from connectors.cli_http import register as register_http
    from connectors.cli_ingest import register as register_ingest
    from hubctl.answers import register as register_answers
    from hubctl.backtest import register as register_backtest
    from hubctl.deliver import register as register_deliver
    from hubctl.manifests import register as register_manifests
    from hubctl.subscriptions import register as register_subscriptions
    from hubctl.web import register as register_web

    register_ingest(app)
    register_http(app)
    register_answers(app)
    register_manifests(app)
    register_backtest(app)
    register_web(app)
    register_subscriptions(app)
    register_deliver(app)


_register_plugins()


if __name__ == "__main__":
    app()
