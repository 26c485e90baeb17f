"""The ``hub`` command line (typer): broker lifecycle, worker, ingest, answers, operations."""

from __future__ import annotations

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
    from hub.kafka_local import KafkaError, LocalKafka

    try:
        status = LocalKafka(get_settings()).start(wait_s=wait)
    except KafkaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(status.describe())


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local broker this project started (never someone else's)."""
    from hub.kafka_local import LocalKafka

    stopped = LocalKafka(get_settings()).stop()
    typer.echo("stopped local broker" if stopped else "no local broker of ours was running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Report whether the broker answers, its version and address."""
    from hub.kafka_local import LocalKafka

    status = LocalKafka(get_settings()).status()
    typer.echo(status.describe())
    if not status.reachable:
        raise typer.Exit(1)


@kafka_app.command("reset")
def kafka_reset() -> None:
    """Stop the local broker and wipe its data directory."""
    from hub.kafka_local import LocalKafka

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

    overrides = {
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


if __name__ == "__main__":
    app()
