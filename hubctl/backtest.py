"""``hub backtest``: replay recorded events through two rules configs and print the difference.

Wiring: ``hubctl.main`` calls :func:`register`. Exit code 1 for unreadable input (a rules file
that does not validate, no events given, an unreadable date, a broker that does not answer).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer


def _parse_time(text: str | None, option: str) -> int | None:
    """ISO date or datetime (UTC when no offset) -> epoch ms."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not an ISO date or datetime", param_hint=option
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _load(path: Path | None, option: str) -> Any:
    from pydantic import ValidationError

    from hub.engine.config import load_config

    try:
        return load_config(path)
    except (OSError, ValueError, ValidationError) as exc:
        typer.echo(f"error: {option} {path}: {exc}", err=True)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest(
        events: list[Path] = typer.Argument(
            None, help="JSON Lines files of CaseEvents (omit with --topic)", exists=True
        ),
        rules: Path = typer.Option(..., "--rules", help="the new rules config (TOML)"),
        against: Path | None = typer.Option(
            None,
            "--against",
            help="the current rules config (default: HUB_RULES_CONFIG or packaged)",
        ),
        topic: str | None = typer.Option(
            None, "--topic", help="read events from this topic instead (e.g. hub.case-events)"
        ),
        from_: str | None = typer.Option(
            None, "--from", help="with --topic: first record timestamp (ISO date/datetime, UTC)"
        ),
        to: str | None = typer.Option(
            None, "--to", help="with --topic: records before this timestamp (ISO, UTC)"
        ),
        sample: int = typer.Option(3, help="addresses shown per group and change"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object for machines"),
    ) -> None:
        """What a rules change would do: signals that start/stop firing or change lead."""
        from hub.backtest import compare, read_jsonl, read_topic_range, render_text
        from hub.settings import Settings

        settings = Settings()
        new_config = _load(rules, "--rules")
        current_path = against if against is not None else settings.rules_config
        current_config = _load(current_path, "--against")
        extra: Counter[str] = Counter()
        if topic is not None:
            if events:
                raise typer.BadParameter("give event files or --topic, not both")
            from hub.answers.reading import AnswerError

            try:
                items: list[Any] = []
                decoded, extra = read_topic_range(
                    settings, topic, _parse_time(from_, "--from"), _parse_time(to, "--to")
                )
                items.extend(decoded)
            except AnswerError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from exc
        else:
            if not events:
                raise typer.BadParameter("no events: give JSON Lines files or --topic")
            if from_ is not None or to is not None:
                raise typer.BadParameter("--from/--to need --topic")
            items = list(read_jsonl(events))
        report = compare(items, new_config, current_config, extra)
        if as_json:
            typer.echo(json.dumps(report.to_json(sample), ensure_ascii=False))
        else:
            for line in render_text(report, sample):
                typer.echo(line)
