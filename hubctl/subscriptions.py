"""``hub subscriptions add|list|remove|status|dead-letters|keygen``: who gets Notificaties.

The Authorization value is never an argument (shell history, ``ps``): it is read from an
environment variable (``--auth-env``) or a file (``--auth-file``, ``-`` for stdin), sealed with
``HUB_DELIVERY_SECRET_KEY`` when set, and shown masked (scheme word only) everywhere.
Exit code 1 when the broker cannot be asked or the subscription is unknown, 2 on invalid input.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr, ValidationError

from hub.delivery.config import DeliverySettings
from hub.delivery.secrets import new_key, seal
from hub.delivery.subscription import CHANNELS, Subscription, SubscriptionError, parse_filters
from hub.settings import Settings


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _read_auth(auth_env: str | None, auth_file: Path | None) -> str | None:
    if auth_env and auth_file:
        raise _fail("give --auth-env or --auth-file, not both")
    if auth_env:
        value = os.environ.get(auth_env)
        if not value:
            raise _fail(f"auth: environment variable {auth_env} is not set or empty")
    elif auth_file:
        value = sys.stdin.read() if str(auth_file) == "-" else auth_file.read_text()
        value = value.strip()
        if not value:
            raise _fail("auth: the file is empty")
    else:
        return None
    if len(value) > 1000 or any(ord(c) < 32 for c in value):
        raise _fail("auth: at most 1000 characters, no control characters")
    return value


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(p) for p in error["loc"]) or "-"
        reason = error["msg"].removeprefix("Value error, ")
        parts.append(reason if reason.startswith(f"{field}:") else f"{field}: {reason}")
    return "; ".join(parts)


def _echo_rows(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no subscriptions")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(highlight=False, soft_wrap=False).print(table)


def _cell(value: Any) -> str:
    from rich.markup import escape

    if isinstance(value, dict):
        return escape(
            ", ".join(f"{k}={'|'.join(v) if isinstance(v, list) else v}" for k, v in value.items())
            or "-"
        )
    return escape("-" if value is None else str(value))


def register(app: typer.Typer) -> None:
    """Add the ``subscriptions`` command group to ``app``."""
    subs = typer.Typer(
        help="Subscribers of Notificaties (hub deliver POSTs to them).", no_args_is_help=True
    )
    app.add_typer(subs, name="subscriptions")

    @subs.command("add")
    def add(
        subscription_id: str = typer.Argument(
            ..., metavar="ID", help="slug, e.g. zaaksysteem-groningen"
        ),
        callback: str = typer.Option(
            ..., "--callback", help="http(s) URL the Notificaties are POSTed to"
        ),
        channel: str = typer.Option(..., "--channel", help=" or ".join(sorted(CHANNELS))),
        filters: list[str] = typer.Option(
            [],
            "--filter",
            help="kenmerk=value (steering_group, kind, gemeentecode, status); repeat",
        ),
        auth_env: str = typer.Option(
            None, "--auth-env", help="environment variable holding the Authorization value"
        ),
        auth_file: Path = typer.Option(
            None, "--auth-file", help="file holding the Authorization value ('-': stdin)"
        ),
        from_beginning: bool = typer.Option(
            False, "--from-beginning", help="also deliver transitions emitted before now"
        ),
    ) -> None:
        """Add or replace a subscription (replacing keeps its position: no resend)."""
        from connectors.delivery.store import StoreError, publish_subscription

        delivery = DeliverySettings()
        auth = _read_auth(auth_env, auth_file)
        key = delivery.secret_key.get_secret_value() if delivery.secret_key else None
        now = int(time.time() * 1000)
        settings = Settings()
        try:
            from connectors.delivery.store import read_subscriptions

            existing = read_subscriptions(settings).get(subscription_id)
        except Exception as exc:
            raise _fail(f"cannot read the subscriptions: {exc}", 1) from exc
        created = existing.created_at_ms if existing else now
        start = existing.deliver_from_ms if existing else now
        try:
            sub = Subscription(
                id=subscription_id,
                callback_url=callback,
                auth=SecretStr(seal(auth, key)) if auth is not None else None,
                channel=channel,
                filters=parse_filters(filters),
                created_at_ms=created,
                deliver_from_ms=0 if from_beginning else start,
            )
        except SubscriptionError as exc:
            raise _fail(str(exc)) from exc
        except ValidationError as exc:
            raise _fail(_validation_message(exc)) from exc
        if auth is not None and key is None:
            typer.echo(
                "warning: HUB_DELIVERY_SECRET_KEY is not set: the Authorization value is stored "
                "unsealed on the subscriptions topic (restrict the topic with ACLs, or set a key: "
                "hub subscriptions keygen)",
                err=True,
            )
        try:
            publish_subscription(settings, sub)
        except (StoreError, Exception) as exc:
            raise _fail(f"not stored: {exc}", 1) from exc
        typer.echo(f"subscription {sub.id} stored ({sub.channel})")

    @subs.command("list")
    def list_cmd(
        as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    ) -> None:
        """Subscriptions as every ``hub deliver`` sees them (Authorization masked)."""
        from connectors.delivery.store import public_view, read_subscriptions

        delivery = DeliverySettings()
        key = delivery.secret_key.get_secret_value() if delivery.secret_key else None
        try:
            book = read_subscriptions(Settings())
        except Exception as exc:
            raise _fail(str(exc), 1) from exc
        rows = [public_view(sub, key) for _id, sub in sorted(book.items())]
        _echo_rows(rows, as_json, ["id", "channel", "callback_url", "auth", "filters"])

    @subs.command("remove")
    def remove(subscription_id: str = typer.Argument(..., metavar="ID")) -> None:
        """Remove a subscription; its dead-letter topic is kept."""
        from connectors.delivery.store import read_subscriptions, remove_subscription

        settings = Settings()
        try:
            if subscription_id not in read_subscriptions(settings):
                raise _fail(f"no subscription {subscription_id}", 1)
            remove_subscription(settings, subscription_id)
        except typer.Exit:
            raise
        except Exception as exc:
            raise _fail(str(exc), 1) from exc
        typer.echo(f"subscription {subscription_id} removed")

    @subs.command("status")
    def status_cmd(
        as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    ) -> None:
        """Per subscription: last attempt, totals, lag and dead letters (delivery log topic)."""
        from connectors.delivery.store import status

        try:
            rows = status(Settings(), DeliverySettings())
        except Exception as exc:
            raise _fail(str(exc), 1) from exc
        if as_json:
            _echo_rows(rows, True, [])
            return
        flat = []
        for row in rows:
            entry = row.get("log") or {}
            flat.append(
                {
                    "id": row["id"],
                    "channel": row["channel"],
                    "auth": row["auth"],
                    "delivered": entry.get("delivered_total", 0),
                    "attempts": entry.get("attempts_total", 0),
                    "last": entry.get("outcome"),
                    "status_code": entry.get("status_code"),
                    "latency_ms": entry.get("latency_ms"),
                    "lag": row["lag"],
                    "dead_letters": row["dead_letters"],
                    "last_error": row["last_error"],
                }
            )
        _echo_rows(flat, False, list(flat[0]) if flat else [])

    @subs.command("dead-letters")
    def dead_letters(
        subscription_id: str = typer.Argument(..., metavar="ID"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    ) -> None:
        """Notificaties given up for one subscription, with the last error."""
        from connectors.delivery.store import read_dead_letters

        try:
            letters = read_dead_letters(Settings(), subscription_id)
        except Exception as exc:
            raise _fail(str(exc), 1) from exc
        for letter in letters:
            row = {
                "notification_id": letter.headers.get("hub.delivery.notification_id"),
                "attempts": letter.headers.get("hub.delivery.attempts"),
                "status_code": letter.headers.get("hub.delivery.status_code"),
                "error": letter.headers.get("__connect.errors.exception.message"),
                "actie": letter.message.get("actie"),
                "resourceUrl": letter.message.get("resourceUrl"),
            }
            typer.echo(json.dumps(row) if as_json else " ".join(f"{k}={v}" for k, v in row.items()))

    @subs.command("keygen")
    def keygen() -> None:
        """Print a new key for HUB_DELIVERY_SECRET_KEY (seals Authorization values at rest)."""
        typer.echo(new_key())
