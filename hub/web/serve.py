"""Run the web process: the follower thread fills the view, aiohttp serves it until stopped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

from aiohttp import web

from hub.address.municipalities import load_municipalities
from hub.settings import Settings
from hub.web.access import AccessPolicy
from hub.web.app import build_app
from hub.web.follow import Follower
from hub.web.state import ViewState

log = logging.getLogger(__name__)


def serve_web(
    settings: Settings,
    access_file: Path,
    host: str = "127.0.0.1",
    port: int = 8088,
    today: Callable[[], date | None] = lambda: None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Blocks until SIGINT/SIGTERM. ``on_ready`` gets the base URL once the socket listens."""
    policy = AccessPolicy.from_file(access_file)
    state = ViewState()
    follower = Follower(settings, state)
    follower.start()
    app = build_app(state, policy, load_municipalities(settings.reference_config), today)
    base = f"http://{host}:{port}/"

    async def announce(_: web.Application) -> None:
        log.info("serving steering-group pages", extra={"url": base})
        if on_ready is not None:
            on_ready(base)

    app.on_startup.append(announce)
    try:
        web.run_app(app, host=host, port=port, access_log=None, print=None, handle_signals=True)
    finally:
        follower.stop()
        follower.join(5)
