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
import signal
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
from aiohttp import web

from connectors.edge_checks import check_case_event, log_safe_fields
from connectors.notificaties import CallbackAuth, Guards, Notificatie, make_handler
from connectors.ratelimit import BucketConfig, TokenBuckets, retry_after
from hub.contracts.decode import Rejection, encode_case_event
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


@dataclass(frozen=True, slots=True)
class IngressLimits:
    """Per-client limits of the ingress (environment names in brackets).

    - ``requests_per_s`` / ``burst`` per token, and for the notificaties callback as a whole
      [``HUB_INGRESS_RATE``, ``HUB_INGRESS_BURST``]: above it 429 with ``Retry-After``.
    - ``auth_failures_per_min`` / ``auth_failures_burst`` per remote address
      [``HUB_INGRESS_AUTH_FAILURES_PER_MIN``, ``HUB_INGRESS_AUTH_FAILURES_BURST``]: every
      request without a valid credential takes one; when none is left, every request from that
      address is 429 until one has refilled, before its credential is even looked at (so
      guessing stays at ~10 tries a minute instead of thousands a second).
    - ``read_timeout_s`` [``HUB_INGRESS_READ_TIMEOUT_S``]: the whole body must arrive within
      it, else 408 and the connection is closed (a half-sent body no longer holds it open).
    """

    requests_per_s: float = 20.0
    burst: float = 40.0
    auth_failures_per_min: float = 10.0
    auth_failures_burst: float = 10.0
    read_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngressLimits:
        env = os.environ if env is None else env
        names = {
            "requests_per_s": "HUB_INGRESS_RATE",
            "burst": "HUB_INGRESS_BURST",
            "auth_failures_per_min": "HUB_INGRESS_AUTH_FAILURES_PER_MIN",
            "auth_failures_burst": "HUB_INGRESS_AUTH_FAILURES_BURST",
            "read_timeout_s": "HUB_INGRESS_READ_TIMEOUT_S",
        }
        values: dict[str, float] = {}
        for attr, name in names.items():
            text = env.get(name, "").strip()
            if text:
                try:
                    values[attr] = float(text)
                except ValueError as exc:
                    raise ValueError(f"{name}: expected a number, got {text!r}") from exc
        limits = cls(**values)
        if limits.read_timeout_s <= 0:
            raise ValueError("HUB_INGRESS_READ_TIMEOUT_S must be > 0")
        return limits


# -------------------------------------------------------------------------------- credentials


@dataclass(frozen=True, slots=True)
class Credential:
    """One agency token: its SHA-256 digest, the source it may publish, a label for logs, and
    optionally the ``source_org`` values it may claim (None: any, the source is what is bound)."""

    digest: bytes
    source: Source
    label: str
    orgs: frozenset[str] | None = None

    def allows_org(self, value: Any) -> bool:
        """True when an event may carry this ``source_org`` (absent/blank always may)."""
        if self.orgs is None or value is None:
            return True
        return isinstance(value, str) and (not value.strip() or value.strip() in self.orgs)


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
        out.append(Credential(digest, source, label, _orgs(entry.get("orgs"), path, n)))
    return out


def _orgs(value: Any, path: Path, n: int) -> frozenset[str] | None:
    """``orgs = ["001479179", ...]``: the ``source_org`` values a token may claim."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError(f"{path}: tokens[{n}].orgs must be a non-empty list of strings")
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{path}: tokens[{n}].orgs must be a non-empty list of strings")
    return frozenset(v.strip() for v in value)


def load_tokens(env: Mapping[str, str] | None = None) -> TokenStore:
    """Tokens from ``HUB_INGRESS_TOKENS`` and/or the file named by ``HUB_INGRESS_TOKENS_FILE``."""
    env = os.environ if env is None else env
    store = TokenStore.from_tokens(parse_tokens_env(env.get(TOKENS_ENV, "")))
    path = env.get(TOKENS_FILE_ENV, "").strip()
    if path:
        for credential in load_tokens_file(Path(path)):
            store.add(credential)
    return store


class ReloadingTokens:
    """Tokens from the environment plus a token file that is re-read when it changes.

    Revoking a token must not need a restart: before a lookup the file's (mtime, size, inode)
    is compared with the loaded version, at most once per ``check_interval`` seconds, and
    :meth:`reload` (wired to SIGHUP by :func:`run_http`) re-reads it at once. A file that no
    longer parses is refused with an ERROR log and the previous tokens stay in force (failing
    closed would lock every agency out over one typo); fix the file and it is picked up.
    """

    def __init__(
        self,
        fixed: Mapping[str, str],
        path: Path | None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed = dict(fixed)
        self.path = path
        self.check_interval = check_interval
        self._clock = clock
        self._checked_at = clock()
        self._version: tuple[int, int, int] | None = None
        self._store = self._build()

    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _build(self) -> TokenStore:
        store = TokenStore.from_tokens(self._fixed)
        if self.path is not None:
            version = self._stat()
            for credential in load_tokens_file(self.path):
                store.add(credential)
            self._version = version
        return store

    def reload(self) -> bool:
        """Re-read the file now; False (previous tokens kept) when it does not load."""
        self._checked_at = self._clock()
        try:
            store = self._build()
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            self._version = self._stat()  # do not retry a broken version on every request
            log.error(
                "ingress token file not reloaded; previous tokens stay in force",
                extra={"error": type(exc).__name__, "detail": str(exc)[:200]},
            )
            return False
        self._store = store
        log.info("ingress tokens reloaded", extra={"tokens": len(store)})
        return True

    def _maybe_reload(self) -> None:
        if self.path is None or self._clock() - self._checked_at < self.check_interval:
            return
        self._checked_at = self._clock()
        if self._stat() != self._version:
            self.reload()

    def lookup(self, token: str) -> Credential | None:
        self._maybe_reload()
        return self._store.lookup(token)

    def __len__(self) -> int:
        return len(self._store)


def load_reloading_tokens(env: Mapping[str, str] | None = None) -> ReloadingTokens:
    """Like :func:`load_tokens`, but the token file is reloaded on change (see the class)."""
    env = os.environ if env is None else env
    path = env.get(TOKENS_FILE_ENV, "").strip()
    return ReloadingTokens(parse_tokens_env(env.get(TOKENS_ENV, "")), Path(path) if path else None)


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


# ----------------------------------------------------------------------------------- OpenAPI


#: Every character Python's ``str.isspace`` or pydantic's strip treats as blank, spelled out:
#: ECMA ``\s`` (what a JSON Schema client uses) lacks U+0085 and U+001C-U+001F.
BLANK_CLASS = r"\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: No leading or trailing blank: the models strip them, so "  " would become an empty value.
TRIMMED_PATTERN = rf"^[^{BLANK_CLASS}](?:.*[^{BLANK_CLASS}])?$"
#: Absolute http(s) URL with a plain host name and no blank (what ``_http_url`` accepts).
HTTP_URL_PATTERN = (
    r"^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
    rf"(?:[/?#][^{BLANK_CLASS}]*)?$"
)
#: The forms hub.address normalises without a doubt (it accepts more, e.g. "12 a", "0012").
HUISNUMMER_TEXT_PATTERN = r"^[1-9][0-9]{0,4}$"
HUISLETTER_PATTERN = r"^[A-Za-z]$"
TOEVOEGING_PATTERN = r"^[A-Za-z0-9]{1,4}$"
#: Euro cents: at most 12 digits before the point (max_digits 14, decimal_places 2).
AMOUNT_PATTERN = r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?$"
MAX_AMOUNT_UNITS = 10**12 - 1
_TIME_PATTERN = (
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])$"
)


def _alternatives(values: Iterable[int], width: int) -> str:
    return "(?:" + "|".join(f"{v:0{width}d}" for v in values) + ")"


def date_range_pattern(first: date, last: date) -> str:
    """A regex for the dates ``YYYY-MM-DD`` in [first, last], days 01-28 only (every month has
    them; stricter than the handler, never looser)."""
    any_day = "(?:0[1-9]|1[0-9]|2[0-8])"
    any_month = "(?:0[1-9]|1[0-2])"
    branches: list[str] = []

    def month(year: int, month: int, lo_day: int, hi_day: int) -> None:
        hi_day = min(hi_day, 28)
        if lo_day > hi_day:
            return
        days = (
            any_day if (lo_day, hi_day) == (1, 28) else _alternatives(range(lo_day, hi_day + 1), 2)
        )
        branches.append(f"{year:04d}-{month:02d}-{days}")

    def partial_year(year: int, lo: tuple[int, int], hi: tuple[int, int]) -> None:
        for m in range(lo[0], hi[0] + 1):
            month(year, m, lo[1] if m == lo[0] else 1, hi[1] if m == hi[0] else 28)

    if first > last:
        return "(?!)"
    if first.year == last.year:
        partial_year(first.year, (first.month, first.day), (last.month, last.day))
    else:
        partial_year(first.year, (first.month, first.day), (12, 28))
        if last.year - first.year > 1:
            years = _alternatives(range(first.year + 1, last.year), 4)
            branches.append(f"{years}-{any_month}-{any_day}")
        partial_year(last.year, (1, 1), (last.month, last.day))
    return "(?:" + "|".join(branches) + ")"


def occurred_at_pattern(now: datetime | None = None) -> str:
    """``occurred_at`` as the contract accepts it now: RFC 3339 with an offset (at most 13:59
    from UTC), inside the plausibility window of the contract. Dates are kept two days inside
    either bound, so any time of day at any offset is still plausible."""
    try:
        from hub.contracts.events import occurred_at_bounds
    except ImportError:  # a contract without the plausibility check: its default window
        floor, max_future = datetime(2012, 1, 1, tzinfo=UTC), timedelta(days=1)
    else:
        bounds = occurred_at_bounds()
        floor, max_future = bounds.floor, bounds.max_future
    now = now or datetime.now(UTC)
    first = floor.astimezone(UTC).date() + timedelta(days=2)
    last = (now + max_future).date() - timedelta(days=2)
    return "^" + date_range_pattern(first, last) + _TIME_PATTERN


def _nonnull(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional property (pydantic: ``anyOf: [X, {type: null}]``)."""
    for branch in prop.get("anyOf", ()):
        if branch.get("type") != "null":
            return cast(dict[str, Any], branch)
    return prop


def _tighten_case_event(schemas: dict[str, Any]) -> None:
    """What the generated CaseEvent schema cannot say by itself: the handler's further checks
    (source not UNKNOWN, address identification and normalisation, occurred_at plausibility,
    amount in cents, no blank-padded ids), so that a schema-valid event is an accepted one."""
    source = schemas["Source"]
    source["enum"] = [v for v in source["enum"] if v in PUBLISHABLE_SOURCES]
    event = schemas["CaseEvent"]["properties"]
    for name in ("event_id", "case_id"):
        event[name]["pattern"] = TRIMMED_PATTERN
    # Keys are stripped too: a blank key would become an empty one.
    event["attributes"].setdefault("propertyNames", {})["pattern"] = TRIMMED_PATTERN
    event["occurred_at"]["pattern"] = occurred_at_pattern()
    event["occurred_at"]["description"] = (
        "RFC 3339 with offset, not before the configured floor nor more than the configured "
        "margin in the future (the pattern is computed when this document is served)"
    )
    event["amount_eur"] = {
        "anyOf": [
            {"type": "string", "pattern": AMOUNT_PATTERN},
            {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT_UNITS},
            {"type": "null"},
        ],
        "default": None,
        "description": "euros with at most two decimals; a string is preferred",
    }
    for name in ("planned_start", "planned_end"):
        _nonnull(event[name])["pattern"] = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    event["planned_end"]["description"] = "on or after planned_start (422 otherwise)"
    address = schemas["Address"]
    props = address["properties"]
    huisnummer = props["huisnummer"]["anyOf"]
    for branch in huisnummer:
        if branch.get("type") == "string":
            branch["pattern"] = HUISNUMMER_TEXT_PATTERN
    _nonnull(props["huisletter"])["pattern"] = HUISLETTER_PATTERN
    _nonnull(props["huisnummertoevoeging"])["pattern"] = TOEVOEGING_PATTERN
    # One of the three identifications, each with a real (non-null) value.
    address["anyOf"] = [
        {
            "required": ["postcode", "huisnummer"],
            "properties": {
                "postcode": {"type": "string"},
                "huisnummer": {"type": ["integer", "string"]},
            },
        },
        {
            "required": ["nummeraanduiding_id"],
            "properties": {"nummeraanduiding_id": {"type": "string"}},
        },
        {"required": ["pand_id"], "properties": {"pand_id": {"type": "string"}}},
    ]


def _tighten_notificatie(schemas: dict[str, Any]) -> None:
    """URLs as the callback requires them, and no blank-padded words."""
    props = schemas["Notificatie"]["properties"]
    for name in ("hoofdObject", "resourceUrl"):
        props[name].update(format="uri", pattern=HTTP_URL_PATTERN)
    for name in ("kanaal", "resource", "actie"):
        props[name]["pattern"] = TRIMMED_PATTERN
    props["aanmaakdatum"]["pattern"] = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + _TIME_PATTERN


def _schemas() -> dict[str, Any]:
    """JSON schemas of the bodies, generated from the pydantic models (bounds cannot drift),
    then tightened to the checks the models do not express (see ``_tighten_*``)."""
    ref = "#/components/schemas/{model}"
    out: dict[str, Any] = {}
    for name, schema in (
        ("CaseEvent", CaseEvent.model_json_schema(ref_template=ref)),
        ("Notificatie", Notificatie.model_json_schema(ref_template=ref, by_alias=True)),
    ):
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    _tighten_case_event(out)
    _tighten_notificatie(out)
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
