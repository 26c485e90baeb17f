"""``hub serve-http``: the HTTP ingress and the Notificaties callback in one aiohttp server."""

from __future__ import annotations

from collections.abc import Callable

import typer

from connectors.http_ingress import DEFAULT_MAX_BODY_BYTES, TopicsMissing, run_http
from hub.settings import Settings, get_settings

__all__ = ["register", "run_http"]


def register(app: typer.Typer, settings_factory: Callable[[], Settings] = get_settings) -> None:
    """Add ``serve-http`` to ``app``."""

    @app.command("serve-http")
    def serve_http(
        port: int = typer.Option(8080, "--port", help="TCP port"),
        host: str = typer.Option("0.0.0.0", "--host", help="interface to listen on"),
        max_body_bytes: int = typer.Option(
            DEFAULT_MAX_BODY_BYTES, "--max-body-bytes", help="request body limit (413 above)"
        ),
    ) -> None:
        """Serve POST /v1/events, POST /v1/notificaties, /openapi.json and /healthz.

        Tokens: HUB_INGRESS_TOKENS ("token=SOURCE,...") and/or HUB_INGRESS_TOKENS_FILE (TOML or
        JSON); the Notificaties subscription's header value: HUB_NOTIFICATIES_AUTH.
        """
        from hub.logs import setup_logging

        setup_logging()
        try:
            run_http(settings_factory(), host, port, max_body_bytes=max_body_bytes)
        except ValueError as exc:  # configuration: tokens, auth
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except TopicsMissing as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
