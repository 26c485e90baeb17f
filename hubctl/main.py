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
kafka_app = typer.Typer(help="The local single-node Kafka (KRaft).", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")


@kafka_app.command("start")
def kafka_start(wait: float = typer.Option(90.0, help="seconds to wait for the broker")) -> None:
    """Start the local broker (or reuse one that already answers at HUB_BROKER)."""
    from tools.local_kafka import KafkaError, LocalKafka

    try:
        status = LocalKafka(get_settings()).start(wait_s=wait)
    except KafkaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(status.describe())


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local broker this project started (never someone else's)."""
    from tools.local_kafka import LocalKafka

    stopped = LocalKafka(get_settings()).stop()
    typer.echo("stopped local broker" if stopped else "no local broker of ours was running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Report whether the broker answers, its version and address."""
    from tools.local_kafka import LocalKafka

    status = LocalKafka(get_settings()).status()
    typer.echo(status.describe())
    if not status.reachable:
        raise typer.Exit(1)


@kafka_app.command("reset")
def kafka_reset() -> None:
    """Stop the local broker and wipe its data directory."""
    from tools.local_kafka import LocalKafka

    LocalKafka(get_settings()).reset()
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
) -> None:
    """Worker + simulated agency traffic on the broker, then a summary (what `make demo` runs)."""
    from rich.console import Console

    from hubctl.answers import render_dossier
    from tools.demo import run_demo

    raise typer.Exit(run_demo(addresses, events, seed, keep, Console(), render_dossier))


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
    from hubctl.deliver import register as register_deliver
    from hubctl.subscriptions import register as register_subscriptions

    register_ingest(app)
    register_http(app)
    register_answers(app)
    register_subscriptions(app)
    register_deliver(app)


_register_plugins()


if __name__ == "__main__":
    app()
