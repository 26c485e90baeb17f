"""``hub demo``: a simulated region through a real worker on the local broker, then a summary.

Each run gets its own topic prefix, consumer groups and data dir (so running it twice never
mixes results) and deletes its topics at the end unless ``--keep``. The broker itself is
started/stopped by ``make demo`` (deploy/local-kafka/with-kafka.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub import answers
from hub.pipeline.lag import pipeline_lag
from hub.pipeline.topics import delete_topics, ensure_topics
from hub.settings import PROJECT_ROOT, Settings


def _worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "HUB_BROKER": settings.broker,
        "HUB_TOPIC_PREFIX": settings.topic_prefix,
        "HUB_APP_ID": settings.app_id,
        "HUB_PARTITIONS": str(settings.partitions),
        "HUB_DATA_DIR": str(settings.data_dir),
        "HUB_METRICS_PORT": str(settings.metrics_port),
        "HUB_LOG_LEVEL": "WARNING",
    }


def _wait_caught_up(
    settings: Settings, worker: subprocess.Popen[bytes], log: Path, timeout_s: float = 600
) -> float:
    began = time.monotonic()
    zero_since: float | None = None
    while time.monotonic() - began < timeout_s:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited ({worker.returncode}); see {log}")
        if pipeline_lag(settings) == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since >= 2.0:
                return zero_since - began
        else:
            zero_since = None
        time.sleep(0.5)
    raise TimeoutError(f"worker not caught up after {timeout_s:.0f}s; see {log}")


def run_demo(
    addresses: int,
    events: int,
    seed: int,
    keep: bool,
    console: Console,
    render_dossier: Callable[[dict[str, Any]], None] | None = None,
    serve: bool = False,
    web_port: int = 8088,
) -> int:
    """Run the demo; ``render_dossier`` (the CLI's ``hub dossier`` view) shows one example.
    Ends with the URL of the steering-group pages; ``serve`` keeps them up until Ctrl-C."""
    run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    base = Settings()
    settings = base.model_copy(
        update={
            "topic_prefix": f"demo.{run}.",
            "app_id": f"hub-demo-{run}",
            "data_dir": PROJECT_ROOT / ".local" / "demo" / run,
        }
    )
    log = PROJECT_ROOT / ".local" / "demo" / f"{run}.worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]hub demo[/] run {run} on broker {settings.broker}")
    ensure_topics(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "hubctl", "worker"],
        env=_worker_env(settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        sim = simulate(addresses=addresses, events=events, seed=seed)
        began = time.monotonic()
        with Progress(
            TextColumn("publishing simulated agency events"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("publish", total=len(sim))

            def tracked():  # type: ignore[no-untyped-def]
                for n, item in enumerate(sim, 1):
                    if n % 2000 == 0:
                        progress.update(task, completed=n)
                    yield item

            report = publish(tracked(), settings)
        published_s = time.monotonic() - began
        caught_up_s = _wait_caught_up(settings, worker, log)
        total_s = time.monotonic() - began
        _summary(settings, sim, report.total, published_s, total_s, console, render_dossier)
        del caught_up_s
        _web(settings, run, serve, keep, web_port, console)
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
        if not keep:
            _delete_topics(settings)


def _summary(
    settings: Settings,
    sim: object,
    published: int,
    published_s: float,
    total_s: float,
    console: Console,
    render_dossier: Callable[[dict[str, Any]], None] | None,
) -> None:
    manifest = sim.manifest  # type: ignore[attr-defined]
    dead = answers.read_dead_letters(settings)
    alerts = answers.read_alerts(settings, firing=True).alerts
    dossier_keys = {
        m.key for m in answers.read_to_end(settings, [settings.topic_prefix + "dossiers"])
    }
    console.print(
        f"\n[bold]Events in[/]: {published:,} published in {published_s:.1f}s; "
        f"worker caught up (lag 0) {total_s:.1f}s after the first event "
        f"({published / total_s:,.0f} events/s end to end, worker start-up included)"
    )
    reasons = Counter(e.letter.reason for e in dead)
    console.print(
        f"[bold]Dead letters[/]: {len(dead)} "
        + (", ".join(f"{r} {n}" for r, n in reasons.most_common()) or "")
    )
    console.print(f"[bold]Dossiers[/]: {len(dossier_keys):,} addresses")
    table = Table(title="Firing alerts and signals per steering group")
    kinds = sorted({a["kind"] for a in alerts})
    groups = sorted({a["steering_group"] for a in alerts})
    table.add_column("steering group")
    for kind in kinds:
        table.add_column(kind, justify="right")
    per = Counter((a["steering_group"], a["kind"]) for a in alerts)
    for group in groups:
        table.add_row(group, *(str(per[(group, k)] or "") for k in kinds))
    console.print(table)
    planted = sorted(manifest.samenloop)
    found = {a["address_key"] for a in alerts if a["kind"] == "SAMENLOOP"}
    console.print(
        f"Planted samenloop addresses found firing: {len(found & set(planted))}/{len(planted)}"
    )
    console.print(
        f"Metrics: http://localhost:{settings.metrics_port}/metrics (while the worker "
        "runs; `hub worker` serves the same)"
    )
    if planted and render_dossier is not None:
        console.print(f"\n[bold]Example[/]: hub dossier {planted[0]}")
        render_dossier(answers.dossier_json(answers.read_dossier(settings, planted[0])))


def _web(
    settings: Settings, run: str, serve: bool, keep: bool, port: int, console: Console
) -> None:
    """Print where the steering-group pages of this run's data are; with ``serve``, serve them
    (``hub serve-web``) until Ctrl-C. The login token is fresh per run, for a regional account
    that sees every group (written hashed to .local/demo/RUN.access.toml)."""
    import secrets

    from hub.web.access import token_hash
    from hub.web.serve import serve_web

    base = f"http://127.0.0.1:{port}/"
    if not (serve or keep):
        console.print(
            f"\n[bold]Steering-group pages[/]: {base} (`hub demo --serve` keeps them up; "
            "this run's topics are deleted now)"
        )
        return
    token = secrets.token_urlsafe(16)
    access = PROJECT_ROOT / ".local" / "demo" / f"{run}.access.toml"
    access.write_text(
        f'[[accounts]]\nname = "demo-regio"\ngroups = ["*"]\ncontacts = true\n'
        f'token_sha256 = "{token_hash(token)}"\n',
        encoding="utf-8",
    )
    url = f"{base}login?token={token}"
    if not serve:
        console.print(
            f"\n[bold]Steering-group pages[/]: HUB_TOPIC_PREFIX={settings.topic_prefix} "
            f"hub serve-web --port {port} --access {access}\nthen open {url}"
        )
        return
    console.print(f"\n[bold]Steering-group pages[/]: {url}  (Ctrl-C stops)")
    serve_web(settings, access, port=port)


def _delete_topics(settings: Settings) -> None:
    delete_topics(settings, prefixes=(settings.topic_prefix, settings.app_id))
