"""HTTP ingress (aiohttp): agencies POST CaseEvents; the hub answers only after the broker has them.

Endpoints (OpenAPI 3 at ``GET /openapi.json``; see docs/connectors.md):

- ``POST /v1/events``: one CaseEvent object or a JSON array of them. All are validated first (a
  batch is refused whole on any error), then published as Avro keyed by ``case_id`` with the
  idempotent, acks=all producer, and 202 ``{"accepted": [event_ids]}`` is sent only once every
  event was acknowledged by the broker. 400 not JSON / wrong shape, 401 no or unknown token,
  403 an event of another source than the token's, 413 body over the limit, 422 field errors,
  503 the broker did not acknowledge (retry: the dossiers deduplicate by ``event_id``).
- ``POST /v1/notificaties``: the VNG Notificaties callback (:mod:`connectors.notificaties`).
- ``GET /healthz``, ``GET /openapi.json``: unauthenticated.

Credentials: each Bearer token belongs to one source. Only SHA-256 digests are kept in memory and
compared with :func:`hmac.compare_digest` against every entry, so a lookup neither short-circuits
on a prefix nor on the matching entry's position. Logs carry counts, sources, reason codes and
field names, never values (a field error can echo a postcode or house number).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from connectors.notificaties import CallbackAuth, Notificatie, make_handler
from hub.contracts.decode import Rejection, encode_case_event, parse_case_event_json
from hub.contracts.enums import Source
from hub.contracts.events import CaseEvent
from hub.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: How long a request waits for broker acknowledgements before answering 503.
DELIVERY_TIMEOUT_S = 30.0
#: The producer gives up on a message a little earlier, so the request sees a real error.
MESSAGE_TIMEOUT_MS = 25_000
TOKENS_ENV = "HUB_INGRESS_TOKENS"
TOKENS_FILE_ENV = "HUB_INGRESS_TOKENS_FILE"
NOTIFICATIES_AUTH_ENV = "HUB_NOTIFICATIES_AUTH"
PUBLISHABLE_SOURCES = frozenset(s.value for s in Source if s is not Source.UNKNOWN)


# -------------------------------------------------------------------------------- credentials


@dataclass(frozen=True, slots=True)
class Credential:
    """One agency token: its SHA-256 digest, the source it may publish, a label for logs."""

    digest: bytes
    source: Source
    label: str


def _source(value: Any) -> Source:
    if not isinstance(value, str) or value.strip() not in PUBLISHABLE_SOURCES:
        raise ValueError(
            f"token source {value!r} is not one of {', '.join(sorted(PUBLISHABLE_SOURCES))}"
        )
    return Source(value.strip())


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenStore:
    """Bearer token -> Credential, knowing only digests of the tokens."""

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        self._credentials: tuple[Credential, ...] = ()
        for credential in credentials:
            self.add(credential)

    def add(self, credential: Credential) -> None:
        for existing in self._credentials:
            if hmac.compare_digest(existing.digest, credential.digest):
                raise ValueError(f"token {credential.label!r} is configured twice")
        self._credentials = (*self._credentials, credential)

    @classmethod
    def from_tokens(cls, tokens: Mapping[str, str | Source]) -> TokenStore:
        """From plain ``token -> source`` (tests, env); the plain tokens are not kept."""
        store = cls()
        for n, (token, source) in enumerate(tokens.items(), start=1):
            if not token.strip():
                raise ValueError("an ingress token must not be empty")
            src = _source(str(source))
            store.add(Credential(token_digest(token.strip()), src, f"{src.value}#{n}"))
        return store

    def lookup(self, token: str) -> Credential | None:
        """Compare against every entry (no early exit) and return the match, if any."""
        digest = token_digest(token)
        found: Credential | None = None
        for credential in self._credentials:
            if hmac.compare_digest(credential.digest, digest):
                found = credential
        return found

    def __len__(self) -> int:
        return len(self._credentials)


def parse_tokens_env(text: str) -> dict[str, str]:
    """``"token1=NCG,token2=IMG"`` -> {token: source}. Split at the last ``=`` so base64 padding
    in a token survives."""
    out: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        token, sep, source = item.rpartition("=")
        if not sep or not token.strip():
            raise ValueError(f"{TOKENS_ENV}: expected token=SOURCE, got an entry without '='")
        if token.strip() in out:
            raise ValueError(f"{TOKENS_ENV}: a token is configured twice")
        out[token.strip()] = source.strip()
    return out


def load_tokens_file(path: Path) -> list[Credential]:
    """TOML or JSON ``tokens = [{source, sha256 | token, name?}]``; prefer ``sha256`` (hex) so
    the file holds no usable secret."""
    raw = path.read_bytes()
    data = orjson.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list 'tokens' of {{source, sha256|token, name}}")
    out: list[Credential] = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: tokens[{n}] is not a table/object")
        source = _source(entry.get("source"))
        label = str(entry.get("name") or f"{source.value}@{path.name}#{n}")
        if "sha256" in entry:
            try:
                digest = bytes.fromhex(str(entry["sha256"]).strip())
            except ValueError as exc:
                raise ValueError(f"{path}: tokens[{n}].sha256 is not hex") from exc
            if len(digest) != hashlib.sha256().digest_size:
                raise ValueError(f"{path}: tokens[{n}].sha256 is not a SHA-256 digest")
        elif isinstance(entry.get("token"), str) and entry["token"].strip():
            digest = token_digest(entry["token"].strip())
        else:
            raise ValueError(f"{path}: tokens[{n}] needs 'sha256' or 'token'")
        out.append(Credential(digest, source, label))
    return out


def load_tokens(env: Mapping[str, str] | None = None) -> TokenStore:
    """Tokens from ``HUB_INGRESS_TOKENS`` and/or the file named by ``HUB_INGRESS_TOKENS_FILE``."""
    env = os.environ if env is None else env
    store = TokenStore.from_tokens(parse_tokens_env(env.get(TOKENS_ENV, "")))
    path = env.get(TOKENS_FILE_ENV, "").strip()
    if path:
        for credential in load_tokens_file(Path(path)):
            store.add(credential)
    return store


# ---------------------------------------------------------------------------------- producer


class AsyncProducer:
    """A confluent-kafka producer for an asyncio server: a thread serves delivery callbacks and
    resolves one future per message, so a request can await its own acknowledgements."""

    def __init__(self, producer: Any, owned: bool) -> None:
        self.producer = producer
        self._owned = owned
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ingress-delivery", daemon=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncProducer:
        from confluent_kafka import Producer

        from hub.pipeline.clients import producer_config

        config = producer_config(
            settings,
            **{
                "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                "allow.auto.create.topics": False,
                "linger.ms": 2,
            },
        )
        return cls(Producer(config), owned=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving callbacks; flush what is queued when the producer is ours."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._owned:
            self.producer.flush(timeout)

    async def send_all(
        self, topic: str, records: Sequence[tuple[bytes, bytes]], timeout: float
    ) -> list[str | None]:
        """Produce every (key, value) and wait for each delivery report; per record, None when
        the broker acknowledged it, else the error text."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[str | None]] = []
        for key, value in records:
            future: asyncio.Future[str | None] = loop.create_future()
            futures.append(future)
            try:
                self.producer.produce(
                    topic, value=value, key=key, on_delivery=_resolver(loop, future)
                )
            except BufferError:
                future.set_result("producer queue full")
            except Exception as exc:  # KafkaException: unknown topic, message too large, ...
                future.set_result(f"{type(exc).__name__}: {exc}")
        if futures:
            await asyncio.wait(futures, timeout=timeout)
        return [f.result() if f.done() else "not acknowledged in time" for f in futures]


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[str | None]) -> Any:
    def on_delivery(err: Any, msg: Any) -> None:
        result = None if err is None else str(err)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, result)

    return on_delivery


def _settle(future: asyncio.Future[str | None], result: str | None) -> None:
    if not future.done():
        future.set_result(result)


# --------------------------------------------------------------------------------------- app


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


@dataclass
class IngressState:
    settings: Settings
    tokens: TokenStore
    case_events_topic: str
    notifications_topic: str
    max_body_bytes: int
    delivery_timeout: float
    producer: AsyncProducer | None = None


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


async def read_body(request: web.Request) -> bytes | web.Response:
    """The body, or a 413 response when it is over the app's limit (checked on the declared
    length first, so an oversized upload is refused before it is read)."""
    limit = request.app[STATE].max_body_bytes
    too_large = json_error(413, "too_large", f"the body is over the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        return too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large


def _authenticate(request: web.Request, tokens: TokenStore) -> Credential | web.Response:
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


async def post_events(request: web.Request) -> web.StreamResponse:
    """Validate, publish, and answer after the broker acknowledged every event."""
    state = request.app[STATE]
    credential = _authenticate(request, state.tokens)
    if isinstance(credential, web.Response):
        return credential
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
    events: list[CaseEvent] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        result = parse_case_event_json(item)
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
                "fields": ",".join(sorted({str(e["field"]) for e in errors})),
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
    tokens: TokenStore | Mapping[str, str],
    notificaties_auth: str | None,
    producer: Any = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    case_events_topic: str | None = None,
    notifications_topic: str | None = None,
    delivery_timeout: float = DELIVERY_TIMEOUT_S,
) -> web.Application:
    """The ingress app: events, notificaties callback, health, OpenAPI.

    ``tokens`` is a :class:`TokenStore` or plain ``token -> source``; ``producer`` an existing
    confluent-kafka Producer (not closed by the app) or None for one built from ``settings`` at
    startup. Topic names default to the settings' topics.
    """
    from hub.pipeline.topics import Topics

    topics = Topics.from_settings(settings)
    store = tokens if isinstance(tokens, TokenStore) else TokenStore.from_tokens(tokens)
    callback_auth = CallbackAuth(notificaties_auth) if notificaties_auth else None
    state = IngressState(
        settings=settings,
        tokens=store,
        case_events_topic=case_events_topic or topics.case_events,
        notifications_topic=notifications_topic or topics.notifications,
        max_body_bytes=max_body_bytes,
        delivery_timeout=delivery_timeout,
    )
    app = web.Application(client_max_size=max_body_bytes)
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
        make_handler(callback_auth, publish_notification, json_error, read_body),
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    return app


def run_http(
    settings: Settings,
    host: str = "0.0.0.0",
    port: int = 8080,
    *,
    tokens: TokenStore | None = None,
    notificaties_auth: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Serve the ingress until interrupted; credentials default to the environment."""
    store = tokens if tokens is not None else load_tokens()
    auth = notificaties_auth or os.environ.get(NOTIFICATIES_AUTH_ENV, "").strip() or None
    if not len(store) and auth is None:
        raise ValueError(
            f"nothing to serve: set {TOKENS_ENV} / {TOKENS_FILE_ENV} and/or {NOTIFICATIES_AUTH_ENV}"
        )
    if not len(store):
        log.warning("no ingress tokens configured: POST /v1/events refuses every call")
    if auth is None:
        log.warning("no notificaties auth configured: POST /v1/notificaties refuses every call")
    app = create_app(settings, store, auth, max_body_bytes=max_body_bytes)
    log.info("http ingress starting", extra={"host": host, "port": port, "tokens": len(store)})
    web.run_app(app, host=host, port=port, print=None)


# ----------------------------------------------------------------------------------- OpenAPI


def _schemas() -> dict[str, Any]:
    """JSON schemas of the bodies, from the pydantic models (so the description cannot drift)."""
    ref = "#/components/schemas/{model}"
    out: dict[str, Any] = {}
    for name, schema in (
        ("CaseEvent", CaseEvent.model_json_schema(ref_template=ref)),
        ("Notificatie", Notificatie.model_json_schema(ref_template=ref, by_alias=True)),
    ):
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    error_item = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "description": "position in the batch (0 for one)"},
            "field": {"type": ["string", "null"], "description": "dotted path: address.postcode"},
            "reason": {"type": "string", "description": "reason code, e.g. INVALID_FIELD"},
            "message": {"type": "string"},
        },
        "required": ["field", "reason"],
    }
    out["Error"] = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": error_item},
        },
        "required": ["error", "message"],
    }
    out["Accepted"] = {
        "type": "object",
        "properties": {"accepted": {"type": "array", "items": {"type": "string"}}},
        "required": ["accepted"],
    }
    out["DeliveryFailed"] = {
        "type": "object",
        "properties": {
            "error": {"type": "string", "const": "broker_unavailable"},
            "message": {"type": "string"},
            "accepted": {"type": "array", "items": {"type": "string"}},
            "failed": {"type": "array", "items": {"type": "string"}},
        },
    }
    return out


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict[str, Any]:
    """The OpenAPI 3.1 description served at ``GET /openapi.json``."""
    case_event = {"$ref": "#/components/schemas/CaseEvent"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hub ingress",
            "version": "1",
            "description": (
                "CaseEvents from agencies and VNG Notificaties callbacks into the hub. "
                f"Bodies are limited to {max_body_bytes} bytes."
            ),
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "summary": "Publish one CaseEvent or a batch",
                    "description": (
                        "Validates every event, refuses the whole request on any error, publishes "
                        "to the case-events topic and answers 202 only after the broker "
                        "acknowledged every event. Events may only carry the source the token "
                        "belongs to. Retrying is safe: events are deduplicated by event_id."
                    ),
                    "security": [{"agencyToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        case_event,
                                        {"type": "array", "items": case_event, "minItems": 1},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "every event is on the broker",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Accepted"}
                                }
                            },
                        },
                        "400": _error("not JSON, or not an object / array of objects"),
                        "401": _error("no Bearer token, or an unknown one"),
                        "403": _error("an event of a source the token does not belong to"),
                        "413": _error(f"body over {max_body_bytes} bytes"),
                        "422": _error("field errors: errors[] with index, field, reason"),
                        "503": {
                            "description": "the broker did not acknowledge every event; retry",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/DeliveryFailed"}
                                }
                            },
                        },
                    },
                }
            },
            "/v1/notificaties": {
                "post": {
                    "summary": "VNG Notificaties API callback",
                    "description": (
                        "Receives a notification of an Open Notificaties subscription and records "
                        "it on the notifications topic (key: kanaal) before answering 204."
                    ),
                    "security": [{"notificatiesAuth": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Notificatie"}
                            }
                        },
                    },
                    "responses": {
                        "204": {"description": "recorded"},
                        "400": _error("not JSON or an invalid notification (errors[])"),
                        "401": _error("the subscription's Authorization header is missing"),
                        "403": _error("the Authorization header does not match"),
                        "413": _error(f"body over {max_body_bytes} bytes"),
                        "503": _error("not configured, or the broker did not acknowledge"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "the process serves requests"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "agencyToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a per-agency token; each token belongs to one source",
                },
                "notificatiesAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "the auth value given to Open Notificaties for the subscription",
                },
            },
        },
    }
