"""``hub serve-web``: the read-only steering-group pages (see hub/web).

Wiring: ``hubctl.main`` calls :func:`register`. The access file (accounts, groups, roles) is
required: without it nobody could be recognised, and the pages show personal data.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve-web")
    def serve_web_cmd(
        access: Path = typer.Option(
            ...,
            "--access",
            envvar="HUB_WEB_ACCESS",
            exists=True,
            dir_okay=False,
            help="accounts TOML: token hashes, steering groups, contact rights (hub/web/access.py)",
        ),
        host: str = typer.Option("127.0.0.1", help="listen address"),
        port: int = typer.Option(8088, help="listen port"),
    ) -> None:
        """Serve the steering-group pages, kept fresh by following the output topics."""
        from pydantic import ValidationError

        from hub.logs import setup_logging
        from hub.settings import Settings
        from hub.web.access import AccessPolicy
        from hub.web.serve import serve_web

        settings = Settings()
        try:
            AccessPolicy.from_file(access)
        except (OSError, ValueError, ValidationError) as exc:
            typer.echo(f"error: --access {access}: {exc}", err=True)
            raise typer.Exit(1) from exc
        setup_logging()
        serve_web(
            settings,
            access,
            host,
            port,
            on_ready=lambda url: typer.echo(f"serving {url}", err=True),
        )
