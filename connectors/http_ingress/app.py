"""The aiohttp application: handlers for ``/v1/events``, ``/healthz``, ``/openapi.json``, the
notificaties callback wiring, authentication and rate limits per request, ``run_http``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from aiohttp import web

from connectors.edge_checks import check_case_event, log_safe_fields
from connectors.http_ingress.auth import (
    PUBLISHABLE_SOURCES,
    TOKENS_ENV,
    TOKENS_FILE_ENV,
    Credential,
    ReloadingTokens,
    TokenStore,
    load_reloading_tokens,
)
from connectors.http_ingress.limits import DEFAULT_MAX_BODY_BYTES, DELIVERY_TIMEOUT_S, IngressLimits
from connectors.http_ingress.openapi_doc import openapi_document
from connectors.http_ingress.producer import AsyncProducer
from connectors.notificaties import CallbackAuth, Guards, make_handler
from connectors.ratelimit import BucketConfig, TokenBuckets, retry_after
from hub.contracts.decode import Rejection, encode_case_event
from hub.contracts.enums import Source
from hub.contracts.events import CaseEvent
from hub.settings import Settings

log = logging.getLogger("connectors.http_ingress")  # one logger name for the whole ingress

NOTIFICATIES_AUTH_ENV = "HUB_NOTIFICATIES_AUTH"


class TopicsMissing(RuntimeError):
    """The broker answers but a target topic does not exist: refuse to start rather than make
    every request wait out the delivery timeout."""


def _missing_topics(producer: Any, topics: Sequence[str], timeout: float = 5.0) -> list[str]:
    """Target topics the broker does not know; none when the broker does not answer (it may
    come up later, and requests then get 503 until it does)."""
    from confluent_kafka import KafkaException

    try:
        known = producer.list_topics(timeout=timeout).topics
    except KafkaException:
        log.warning("broker not reachable at startup; events get 503 until it is")
        return []
    return [t for t in topics if t not in known]


class TokenLookup(Protocol):
    def lookup(self, token: str) -> Credential | None: ...

    def __len__(self) -> int: ...


@dataclass
class IngressState:
    settings: Settings
    tokens: TokenLookup
    case_events_topic: str
    notifications_topic: str
    max_body_bytes: int
    delivery_timeout: float
    limits: IngressLimits = field(default_factory=IngressLimits)
    producer: AsyncProducer | None = None
    per_client: TokenBuckets = field(init=False)
    auth_failures: TokenBuckets = field(init=False)

    def __post_init__(self) -> None:
        self.per_client = TokenBuckets(BucketConfig(self.limits.requests_per_s, self.limits.burst))
        self.auth_failures = TokenBuckets(
            BucketConfig(self.limits.auth_failures_per_min / 60.0, self.limits.auth_failures_burst)
        )


STATE = web.AppKey("ingress_state", IngressState)


def json_error(
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The one error body of the ingress: ``{"error", "message", "errors"?}``."""
    body: dict[str, Any] = {"error": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _unauthorized(message: str, error: str | None = None) -> web.Response:
    challenge = 'Bearer realm="hub"' + (f', error="{error}"' if error else "")
    return json_error(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _closing(response: web.Response) -> web.Response:
    """Close the connection after this answer: its body was not (fully) read, and waiting for
    the rest would let a client hold the connection open."""
    response.force_close()
    return response


async def read_body(request: web.Request) -> bytes | web.Response:
    """The body, or 413 when it is over the app's limit (checked on the declared length first,
    so an oversized upload is refused before it is read), or 408 when it does not arrive in
    full within the read timeout."""
    state = request.app[STATE]
    limit = state.max_body_bytes
    too_large = json_error(413, "too_large", f"the body is over the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        return _closing(too_large)
    try:
        async with asyncio.timeout(state.limits.read_timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _closing(too_large)
    except TimeoutError:
        log.info("ingress body read timed out", extra={"path": request.path})
        return _closing(
            json_error(
                408,
                "timeout",
                f"the body did not arrive within {state.limits.read_timeout_s:g} s",
            )
        )


@web.middleware
async def close_unread_bodies(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer and hang up when a refusal left the body unread (408, 413, 401, 429): aiohttp
    would otherwise keep reading ("lingering") what a slow or hostile client still sends."""
    response = await handler(request)
    if (
        isinstance(response, web.Response)
        and not response.prepared
        and response.keep_alive is False
        and not request.content.at_eof()
    ):
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()
    return cast(web.StreamResponse, response)


def _client(request: web.Request) -> str:
    """The remote address, the key of the authentication-failure limit. Behind a reverse proxy
    every client has the proxy's address: limit there, or expect one shared bucket."""
    return request.remote or "-"


def too_many(seconds: float, message: str) -> web.Response:
    """429 with ``Retry-After`` (whole seconds)."""
    return _closing(
        json_error(429, "too_many_requests", message, headers={"Retry-After": retry_after(seconds)})
    )


def locked_out(request: web.Request) -> web.Response | None:
    """429 while the remote address has used up its authentication failures."""
    wait = request.app[STATE].auth_failures.wait_time(_client(request))
    if wait > 0:
        return too_many(wait, "too many failed authentications from this address; retry later")
    return None


def auth_failed(request: web.Request, response: web.Response) -> web.Response:
    """Count a failed authentication against the remote address; answer ``response``."""
    request.app[STATE].auth_failures.take(_client(request))
    log.info("ingress authentication failed", extra={"path": request.path})
    return _closing(response)


def rate_limited(request: web.Request, key: str) -> web.Response | None:
    """429 when the client ``key`` (a token label) is over its request rate."""
    wait = request.app[STATE].per_client.take(key)
    if wait > 0:
        return too_many(wait, "request rate over the limit for this client; retry later")
    return None


def _authenticate(request: web.Request, tokens: TokenLookup) -> Credential | web.Response:
    header = request.headers.get("Authorization")
    if header is None:
        return _unauthorized("a Bearer token is required")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("a Bearer token is required", "invalid_request")
    credential = tokens.lookup(token.strip())
    if credential is None:
        return _unauthorized("the token is not valid", "invalid_token")
    return credential


def _foreign_sources(items: Sequence[dict[str, Any]], own: Source) -> list[dict[str, Any]]:
    """Events claiming a known source other than the token's (refused before validation: a
    token must not even learn whether another agency's event would have been valid)."""
    out = []
    for index, item in enumerate(items):
        value = item.get("source")
        claimed = value.strip() if isinstance(value, str) else None
        if claimed in PUBLISHABLE_SOURCES and claimed != own.value:
            out.append({"index": index, "field": "source", "reason": "FORBIDDEN_SOURCE"})
    return out


def _foreign_orgs(items: Sequence[dict[str, Any]], credential: Credential) -> list[dict[str, Any]]:
    """Events claiming a ``source_org`` the token is not bound to (only for tokens with
    ``orgs``; refused before validation for the same reason as a foreign source)."""
    return [
        {"index": index, "field": "source_org", "reason": "FORBIDDEN_SOURCE_ORG"}
        for index, item in enumerate(items)
        if not credential.allows_org(item.get("source_org"))
    ]


async def post_events(request: web.Request) -> web.StreamResponse:
    """Validate, publish, and answer after the broker acknowledged every event."""
    state = request.app[STATE]
    locked = locked_out(request)
    if locked is not None:
        return locked
    credential = _authenticate(request, state.tokens)
    if isinstance(credential, web.Response):
        return auth_failed(request, credential)
    limited = rate_limited(request, f"token:{credential.label}")
    if limited is not None:
        return limited
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return json_error(400, "not_json", f"body is not JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(payload, (dict, list)):
        return json_error(400, "wrong_shape", "expected a CaseEvent object or an array of them")
    items: list[Any] = payload if isinstance(payload, list) else [payload]
    if not items:
        return json_error(400, "wrong_shape", "the batch is empty")
    not_objects = [i for i, item in enumerate(items) if not isinstance(item, dict)]
    if not_objects:
        return json_error(
            400,
            "wrong_shape",
            "every element of the batch must be a CaseEvent object",
            [{"index": i, "field": None, "reason": "NOT_AN_OBJECT"} for i in not_objects[:100]],
        )
    foreign = _foreign_sources(items, credential.source)
    if foreign:
        log.info(
            "ingress refused foreign source",
            extra={"token": credential.label, "events": len(items), "foreign": len(foreign)},
        )
        return json_error(
            403,
            "forbidden_source",
            f"this token may publish events of source {credential.source.value} only",
            foreign,
        )
    foreign = _foreign_orgs(items, credential)
    if foreign:
        log.info(
            "ingress refused foreign source_org",
            extra={"token": credential.label, "events": len(items), "foreign": len(foreign)},
        )
        return json_error(
            403, "forbidden_source_org", "this token may not publish for that source_org", foreign
        )
    events: list[CaseEvent] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        result = check_case_event(item)
        if isinstance(result, Rejection):
            errors.append(
                {
                    "index": index,
                    "field": result.field,
                    "reason": str(result.reason_code),
                    "message": result.message,
                    "details": list(result.details),
                }
            )
        elif result.source is not credential.source:  # defensive: caught above already
            return json_error(403, "forbidden_source", "event of a foreign source")
        else:
            events.append(result)
    if errors:
        log.info(
            "ingress refused invalid events",
            extra={
                "token": credential.label,
                "events": len(items),
                "invalid": len(errors),
                "fields": log_safe_fields(e["field"] for e in errors),
            },
        )
        return json_error(422, "invalid_events", f"{len(errors)} event(s) are invalid", errors)
    producer = state.producer
    if producer is None:  # pragma: no cover - only before startup
        return json_error(503, "not_ready", "the ingress is starting")
    records = [(event.case_id.encode(), encode_case_event(event)) for event in events]
    outcomes = await producer.send_all(state.case_events_topic, records, state.delivery_timeout)
    failed = [e.event_id for e, outcome in zip(events, outcomes, strict=True) if outcome]
    acked = [e.event_id for e, outcome in zip(events, outcomes, strict=True) if not outcome]
    if failed:
        first = next(o for o in outcomes if o)
        log.warning(
            "ingress delivery failed",
            extra={"token": credential.label, "failed": len(failed), "error": first},
        )
        return _json(
            503,
            {
                "error": "broker_unavailable",
                "message": "not every event was acknowledged by the broker; retry the failed ones",
                "accepted": acked,
                "failed": failed,
            },
            headers={"Retry-After": "5"},
        )
    log.info(
        "ingress accepted events",
        extra={"token": credential.label, "source": credential.source.value, "events": len(acked)},
    )
    return _json(202, {"accepted": acked})


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    producer = state.producer
    return _json(
        200,
        {"status": "ok", "queued": len(producer.producer) if producer is not None else None},
    )


async def openapi(request: web.Request) -> web.Response:
    return _json(200, openapi_document(request.app[STATE].max_body_bytes))


def create_app(
    settings: Settings,
    tokens: TokenLookup | Mapping[str, str],
    notificaties_auth: str | None,
    producer: Any = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    case_events_topic: str | None = None,
    notifications_topic: str | None = None,
    delivery_timeout: float = DELIVERY_TIMEOUT_S,
    limits: IngressLimits | None = None,
) -> web.Application:
    """The ingress app: events, notificaties callback, health, OpenAPI.

    ``tokens`` is a :class:`TokenStore` / :class:`ReloadingTokens` or plain ``token -> source``;
    ``producer`` an existing confluent-kafka Producer (not closed by the app) or None for one
    built from ``settings`` at startup. Topic names default to the settings' topics; ``limits``
    to :class:`IngressLimits` defaults.
    """
    from hub.pipeline.topics import Topics

    topics = Topics.from_settings(settings)
    store: TokenLookup = TokenStore.from_tokens(tokens) if isinstance(tokens, Mapping) else tokens
    callback_auth = CallbackAuth(notificaties_auth) if notificaties_auth else None
    state = IngressState(
        settings=settings,
        tokens=store,
        case_events_topic=case_events_topic or topics.case_events,
        notifications_topic=notifications_topic or topics.notifications,
        max_body_bytes=max_body_bytes,
        delivery_timeout=delivery_timeout,
        limits=limits or IngressLimits(),
    )
    app = web.Application(client_max_size=max_body_bytes, middlewares=[close_unread_bodies])
    app[STATE] = state

    async def lifecycle(app: web.Application) -> Any:
        wrapped = (
            AsyncProducer(producer, owned=False)
            if producer is not None
            else AsyncProducer.from_settings(settings)
        )
        wrapped.start()
        try:
            missing = await asyncio.to_thread(
                _missing_topics,
                wrapped.producer,
                (state.case_events_topic, state.notifications_topic),
            )
        except BaseException:
            await asyncio.to_thread(wrapped.close)
            raise
        if missing:
            await asyncio.to_thread(wrapped.close)
            raise TopicsMissing(f"topic(s) {', '.join(missing)} do not exist (run `hub topics`)")
        state.producer = wrapped
        yield
        state.producer = None
        await asyncio.to_thread(wrapped.close)

    async def publish_notification(key: bytes, value: bytes) -> str | None:
        assert state.producer is not None
        outcome = await state.producer.send_all(
            state.notifications_topic, [(key, value)], state.delivery_timeout
        )
        return outcome[0]

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/events", post_events)
    app.router.add_post(
        "/v1/notificaties",
        make_handler(
            callback_auth,
            publish_notification,
            json_error,
            read_body,
            Guards(locked_out, auth_failed, rate_limited),
        ),
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    return app


def run_http(
    settings: Settings,
    host: str = "0.0.0.0",
    port: int = 8080,
    *,
    tokens: TokenLookup | None = None,
    notificaties_auth: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    limits: IngressLimits | None = None,
) -> None:
    """Serve the ingress until interrupted; credentials and limits default to the environment
    (the token file is reloaded on change and on SIGHUP)."""
    store = tokens if tokens is not None else load_reloading_tokens()
    limits = limits or IngressLimits.from_env()
    auth = notificaties_auth or os.environ.get(NOTIFICATIES_AUTH_ENV, "").strip() or None
    if not len(store) and auth is None:
        raise ValueError(
            f"nothing to serve: set {TOKENS_ENV} / {TOKENS_FILE_ENV} and/or {NOTIFICATIES_AUTH_ENV}"
        )
    if not len(store):
        log.warning("no ingress tokens configured: POST /v1/events refuses every call")
    if auth is None:
        log.warning("no notificaties auth configured: POST /v1/notificaties refuses every call")
    app = create_app(settings, store, auth, max_body_bytes=max_body_bytes, limits=limits)
    if isinstance(store, ReloadingTokens):

        async def reload_on_sighup(app: web.Application) -> None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, store.reload)

        app.on_startup.append(reload_on_sighup)
    log.info("http ingress starting", extra={"host": host, "port": port, "tokens": len(store)})
    web.run_app(app, host=host, port=port, print=None)
