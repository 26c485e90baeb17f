"""schemathesis against the running ingress: the published /openapi.json promises no more than
the handlers do.

The ingress is served on a real port with a real broker; schemathesis loads the document from
``GET /openapi.json`` (as an outside client would) and generates a bounded number of requests per
operation and mode. The only allowed outcomes:

- a schema-valid request (positive mode) is accepted: 202 / 204;
- a schema-invalid request (negative mode) is a 4xx that names the field (``errors[].field``),
  or, for a body that is not an object at all, says so (``wrong_shape`` / ``not_json``);
- never a 5xx.

A schema-invalid request that the handler nevertheless accepts is counted and printed but
allowed: the document is deliberately stricter than the handler where the handler is lenient on
purpose (blanks trimmed, ``"12 a"``, ``"0012"``), never looser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from schemathesis.core.parameters import ParameterLocation

from connectors.http_ingress import IngressLimits, create_app
from hub.settings import Settings
from tests.integration.kafka_helpers import wait_for_leaders

#: One token per source: a request is sent with the token of its (first) event's source, as an
#: agency would; a batch mixing sources is then a 403 naming ``source`` (no token may do that).
TOKENS = {
    f"conformance-{s.lower()}": s for s in ("NCG", "IMG", "MUNICIPALITY", "HOUSING_CORPORATION")
}
NOTIFICATIES_AUTH = "Bearer conformance-callback"
#: Requests per operation and mode (2 operations x 2 modes): well under a minute with the broker.
EXAMPLES = 50
ACCEPTED = {"/v1/events": 202, "/v1/notificaties": 204}
WHOLE_BODY_ERRORS = {"wrong_shape", "not_json"}


@contextlib.contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on a free local port in a thread (its own event loop); yield the base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="ingress-under-test", daemon=True)
    thread.start()
    assert started.wait(30), "the ingress did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class Outcomes:
    """What happened per (path, mode): status counts and every request outside the contract."""

    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    lenient: list[str] = field(default_factory=list)
    call_s: float = 0.0

    def judge(self, path: str, mode: str, status: int, body: bytes, sent: Any) -> None:
        self.statuses[(path, mode, status)] += 1
        shown = (
            f"{path} {mode} -> {status} {body[:300]!r} for {json.dumps(sent, default=repr)[:300]}"
        )
        if status >= 500:
            self.violations.append(f"5xx: {shown}")
        elif mode == "positive" and status == 403 and len(sources(sent)) > 1:
            pass  # a batch of several agencies' events: no single token may send it
        elif mode == "positive" and status != ACCEPTED[path]:
            self.violations.append(f"schema-valid but refused: {shown}")
        elif mode == "negative" and 200 <= status < 300:
            self.lenient.append(shown)
        elif mode == "negative" and not names_the_field(status, body):
            self.violations.append(f"refused without naming the field: {shown}")


def sources(body: Any) -> list[str]:
    """The distinct ``source`` values of a CaseEvent body (object or batch), in order."""
    items = body if isinstance(body, list) else [body]
    found = [i["source"] for i in items if isinstance(i, dict) and isinstance(i.get("source"), str)]
    return list(dict.fromkeys(found))


def windows_in_order(body: Any) -> bool:
    """planned_end on or after planned_start in every event that has both."""
    items = body if isinstance(body, list) else [body]
    return all(
        not (isinstance(i, dict) and i.get("planned_start") and i.get("planned_end"))
        or i["planned_end"] >= i["planned_start"]
        for i in items
    )


def auth_for(path: str, body: Any) -> dict[str, str]:
    """The header an honest client sends: the callback's value, or its own source's token."""
    if path == "/v1/notificaties":
        return {"Authorization": NOTIFICATIES_AUTH}
    own = (sources(body) or ["NCG"])[0]
    token = next((t for t, s in TOKENS.items() if s == own), "conformance-ncg")
    return {"Authorization": f"Bearer {token}"}


def names_the_field(status: int, body: bytes) -> bool:
    """A 4xx whose body names a field, or says the body as a whole is not an object/JSON."""
    if not 400 <= status < 500:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    if doc.get("error") in WHOLE_BODY_ERRORS:
        return True
    return any(isinstance(e.get("field"), str) and e["field"] for e in doc.get("errors") or [])


def run_mode(
    schema: Any, base_url: str, path: str, mode: schemathesis.GenerationMode, outcomes: Outcomes
) -> None:
    operation = schema[path]["POST"]
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def exercise(case: Any) -> None:
        case.headers = {**(case.headers or {}), **auth_for(path, case.body)}
        # Only the body counts: the Authorization header is always the honest client's own.
        body_mode = "negative" if case.meta.is_negative_at(ParameterLocation.BODY) else "positive"
        # The one rule JSON Schema cannot state (it cannot compare two values): the document
        # says it in planned_end's description; such a request is left out, not excused.
        assume(body_mode == "negative" or windows_in_order(case.body))
        t0 = time.monotonic()
        response = case.call(base_url=base_url, timeout=30)
        outcomes.call_s += time.monotonic() - t0
        outcomes.judge(path, body_mode, response.status_code, response.content, case.body)

    exercise()


@pytest.fixture
def ingress_url(broker: str, topic_factory: Callable[..., str]) -> Iterator[str]:
    events = topic_factory("case-events", partitions=3)
    notifications = topic_factory("notifications")
    for name in (events, notifications):
        wait_for_leaders(broker, name)
    app = create_app(
        Settings(),
        TOKENS,
        NOTIFICATIES_AUTH,
        case_events_topic=events,
        notifications_topic=notifications,
        limits=IngressLimits(requests_per_s=10_000, burst=10_000),
    )
    with serve(app) as url:
        yield url


@pytest.mark.slow
def test_schema_valid_requests_are_accepted_and_invalid_ones_refused_naming_the_field(
    ingress_url: str,
) -> None:
    schema = schemathesis.openapi.from_url(f"{ingress_url}/openapi.json")
    outcomes = Outcomes()
    started = time.monotonic()

    for path in ("/v1/events", "/v1/notificaties"):
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            run_mode(schema, ingress_url, path, mode, outcomes)

    elapsed = time.monotonic() - started
    total = sum(outcomes.statuses.values())
    print(f"\nschemathesis: {total} requests in {elapsed:.1f} s ({outcomes.call_s:.1f} s waiting)")
    for (path, mode, status), count in sorted(outcomes.statuses.items()):
        print(f"  {path} {mode} {status}: {count}")
    print(f"  schema-invalid yet accepted (handler leniency): {len(outcomes.lenient)}")
    for shown in outcomes.lenient[:40]:
        print(f"    {shown}")
    assert not outcomes.violations, "\n".join(outcomes.violations[:20])
    accepted = {p for (p, m, s) in outcomes.statuses if m == "positive" and s < 300}
    assert accepted == {"/v1/events", "/v1/notificaties"}  # the positive runs did run
