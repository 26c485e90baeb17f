"""Metrics, liveness and readiness over HTTP (pure: no Kafka import).

A tiny threaded HTTP server, independent of any event loop, so both the confluent-kafka ingest
stage and the Faust workers can run it:

- ``GET /metrics``: the hub's :data:`hub.metrics.REGISTRY` (Prometheus text or OpenMetrics);
  ``?name[]=a&name[]=b`` (as prometheus_client's own handler) renders only those series.
- ``GET /healthz``: 200 while the process serves requests (liveness).
- ``GET /readyz``: 200 when the readiness callable says ready, else 503; the body is JSON
  ``{"ready": bool, "reason": str}``.

:class:`Readiness` is a thread-safe readiness callable for workers: ready = joined the consumer
group and consuming (optionally: polled recently) and every table recovered its assigned partitions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from prometheus_client.exposition import choose_encoder

from hub import metrics

log = logging.getLogger(__name__)

#: Returns ``(ready, reason)``. Called from the server thread: must be thread-safe and cheap.
ReadinessCheck = Callable[[], tuple[bool, str]]


def always_ready() -> tuple[bool, str]:
    """Readiness for processes without consumers (e.g. an HTTP ingress)."""
    return True, "ready"


class Readiness:
    """Thread-safe readiness of a consuming worker, usable as a :data:`ReadinessCheck`.

    Call :meth:`set_assigned` on (re)assignment, :meth:`set_table_recovery` while tables recover,
    :meth:`set_consuming` once the consume loop runs and :meth:`heartbeat` on every poll. With
    ``stall_after_s`` set, a loop that has not polled for that long is reported not ready.
    """

    def __init__(self, tables: Iterable[str] = (), stall_after_s: float | None = None) -> None:
        self._lock = threading.Lock()
        self._recovered: dict[str, bool] = dict.fromkeys(tables, False)
        self._assigned: frozenset[tuple[str, int]] = frozenset()
        self._consuming = False
        self._stall_after_s = stall_after_s
        self._last_poll = time.monotonic()
        self._blockers: dict[str, str] = {}

    def set_assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """New assignment: tables must recover the new partitions again."""
        with self._lock:
            self._assigned = frozenset(partitions)
            for table in self._recovered:
                self._recovered[table] = False
        for table in list(self._recovered):
            metrics.set_table_recovery(table, 0.0, recovered=False)

    def set_table_recovery(self, table: str, progress: float, recovered: bool) -> None:
        """Record a table's recovery progress (also updates the recovery metrics)."""
        with self._lock:
            self._recovered[table] = recovered
        metrics.set_table_recovery(table, progress, recovered)

    def set_consuming(self, consuming: bool = True) -> None:
        """Mark the consume loop as running (or stopped)."""
        with self._lock:
            self._consuming = consuming
            self._last_poll = time.monotonic()

    def set_blocker(self, name: str, reason: str | None) -> None:
        """Not ready while ``name`` cannot make progress (``reason``); ``None`` clears it.

        E.g. a processing step retrying the same batch, the broker away, the ingest child
        restarting, a source topic with partitions nobody in the group owns.
        """
        with self._lock:
            if reason is None:
                self._blockers.pop(name, None)
            else:
                self._blockers[name] = reason

    def heartbeat(self) -> None:
        """Note that the consume loop polled just now."""
        self._last_poll = time.monotonic()

    @property
    def assigned(self) -> frozenset[tuple[str, int]]:
        return self._assigned

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            if not self._consuming:
                return False, "not consuming yet"
            if self._blockers:
                return False, "; ".join(self._blockers[k] for k in sorted(self._blockers))
            pending = sorted(t for t, done in self._recovered.items() if not done)
            if pending:
                return False, f"recovering tables: {', '.join(pending)}"
            idle = time.monotonic() - self._last_poll
            if self._stall_after_s is not None and idle > self._stall_after_s:
                return False, f"consumer has not polled for {idle:.0f}s"
            return True, f"ready, {len(self._assigned)} partitions assigned"


class _Handler(BaseHTTPRequestHandler):
    server: _HealthServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept") or "")
            registry: Any = metrics.REGISTRY
            names = parse_qs(query).get("name[]")
            if names:  # prometheus_client's own filter: only the series named
                registry = registry.restricted_registry(names)
            self._send(200, encoder(registry), content_type)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            try:
                ready, reason = self.server.readiness()
            except Exception as exc:  # a broken check means not ready, never a crash
                ready, reason = False, f"readiness check failed: {type(exc).__name__}"
            body = json.dumps({"ready": ready, "reason": reason}).encode() + b"\n"
            self._send(200 if ready else 503, body, "application/json")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("health http: " + format, *args)


class _HealthServer(ThreadingHTTPServer):
    daemon_threads = True
    readiness: ReadinessCheck


@dataclass
class MetricsServer:
    """Handle of a running server: its bound ``port`` and :meth:`close`."""

    host: str
    port: int
    _server: _HealthServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    port: int, readiness: ReadinessCheck | None = None, host: str = "0.0.0.0"
) -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread.

    ``port=0`` binds an ephemeral port (read it from the returned handle). Without ``readiness``
    the process reports ready (:func:`always_ready`).
    """
    server = _HealthServer((host, port), _Handler)
    server.readiness = readiness or always_ready
    thread = threading.Thread(target=server.serve_forever, name="hub-metrics-http", daemon=True)
    thread.start()
    bound_port = server.server_address[1]
    log.info("metrics and health endpoints on port %d", bound_port)
    return MetricsServer(host=host, port=int(bound_port), _server=server, _thread=thread)
