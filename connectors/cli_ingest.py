"""``hub ingest FILE... [--dry-run] [--topic T]``: the command-line face of :mod:`connectors.files`.

Exit codes (scripts of agencies depend on them): 0 all published, 2 some records rejected (the
valid ones were published), 1 broker unreachable, topic missing or deliveries failed, 3 an input
file is missing. Rejected lines are printed (first few per file) with line, field and reason;
the rest are in ``FILE.rejects.jsonl``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer

from hub.settings import Settings, get_settings

_SHOWN_REJECTS = 20


def register(app: typer.Typer, settings_factory: Callable[[], Settings] = get_settings) -> None:
    """Add ``ingest`` to ``app``; ``settings_factory`` lets tests point it at their broker."""

    @app.command("ingest")
    def ingest(
        files: list[Path] = typer.Argument(..., help="JSON Lines (.jsonl) or CSV (.csv) files"),
        dry_run: bool = typer.Option(False, "--dry-run", help="validate only, publish nothing"),
        topic: str | None = typer.Option(
            None, "--topic", help="target topic (default: the case-events topic)"
        ),
        progress: bool | None = typer.Option(
            None, "--progress/--no-progress", help="progress bar (default: when a terminal)"
        ),
    ) -> None:
        """Validate CaseEvent files and publish the valid events; reject file + summary per file."""
        from connectors.files import EXIT_INPUT, ingest_files

        show_progress = sys.stderr.isatty() if progress is None else progress
        try:
            report = ingest_files(
                files, settings_factory(), dry_run=dry_run, topic=topic, progress=show_progress
            )
        except (FileNotFoundError, IsADirectoryError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INPUT) from exc
        for file in report.files:
            for item in file.sample_rejects[:_SHOWN_REJECTS]:
                where = item.column or item.field or "-"
                typer.echo(
                    f"{file.path}:{item.line}: {item.reason} [{where}] {item.message}", err=True
                )
            if file.rejected > _SHOWN_REJECTS:
                typer.echo(
                    f"{file.path}: ... {file.rejected - _SHOWN_REJECTS} more rejected, "
                    f"see {file.rejects_path}",
                    err=True,
                )
            outcome = (
                "dry run, nothing published"
                if dry_run
                else f"{file.published} published, {file.delivery_failed} delivery failures"
            )
            typer.echo(
                f"{file.path}: {file.records} records: {file.accepted} valid, "
                f"{file.rejected} rejected; {outcome} ({file.duration_s:.1f}s) "
                f"-> {file.summary_path.name}"
            )
        if report.broker_error is not None:
            typer.echo(f"error: {report.broker_error}", err=True)
        raise typer.Exit(report.exit_code)
