"""``hub deliver``: POST VNG Notificaties for alert transitions to the subscribers."""

from __future__ import annotations

import typer

from hub.settings import Settings


def register(app: typer.Typer) -> None:
    @app.command("deliver")
    def deliver(
        metrics_port: int = typer.Option(
            None, help="metrics/health port, 0 = off (HUB_METRICS_PORT)"
        ),
    ) -> None:
        """Deliver Notificaties to every subscription (own consumer groups; SIGTERM stops)."""
        from connectors.delivery.runtime import run_deliver
        from hub.delivery.config import DeliverySettings

        settings = Settings() if metrics_port is None else Settings(metrics_port=metrics_port)
        run_deliver(settings, DeliverySettings())
