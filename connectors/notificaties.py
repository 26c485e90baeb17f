"""VNG Notificaties API callback: ``POST /v1/notificaties``.

A municipality's Open Zaak / Open Notificaties setup tells subscribers that a case changed; it
does not send the case itself. The hub records each notification on the notifications topic
(keyed by ``kanaal``, JSON) only after the broker acknowledged it, then answers 204, so a later
connector can fetch the case from ``resourceUrl``/``hoofdObject`` without losing any.

Open Notificaties sends the subscription's ``auth`` value verbatim as the ``Authorization``
header, and checks that the callback refuses calls without it when the subscription is made:
a missing header is 401, a different value 403. The comparison is over SHA-256 digests with
:func:`hmac.compare_digest`, so neither timing nor length of the secret leaks.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from connectors.edge_checks import log_safe_fields

log = logging.getLogger(__name__)

#: Sends one record (topic fixed by the caller): key, value -> None or the delivery error.
Publish = Callable[[bytes, bytes], Awaitable[str | None]]
#: Builds a JSON error response: status, code, message, field errors, extra headers.
ErrorResponse = Callable[..., web.Response]


@dataclass(frozen=True, slots=True)
class Guards:
    """The app's per-client limits, applied around the callback's authentication:
    ``locked_out`` before it (429 or None), ``auth_failed`` on a refusal (counts it, returns the
    answer), ``rate_limited`` after it (429 or None; the key names the client)."""

    locked_out: Callable[[web.Request], web.Response | None]
    auth_failed: Callable[[web.Request, web.Response], web.Response]
    rate_limited: Callable[[web.Request, str], web.Response | None]


def _no_lock(request: web.Request) -> web.Response | None:
    return None


def _no_count(request: web.Request, response: web.Response) -> web.Response:
    return response


def _no_limit(request: web.Request, key: str) -> web.Response | None:
    return None


NO_GUARDS = Guards(_no_lock, _no_count, _no_limit)

MAX_URL_LENGTH = 1000


def _http_url(value: str) -> str:
    """An absolute http(s) URL; kept as sent (no normalisation: a later fetch uses it as is)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError("must be an absolute http(s) URL")
    return value


def _iso_text(value: Any) -> Any:
    """Only ISO 8601 text: pydantic's lax mode would also take a Unix timestamp number."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2024-05-01T10:00:00+02:00")
    return value


HttpUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_http_url)]


class Notificatie(BaseModel):
    """A notification as the VNG Notificaties API (1.0) sends it to a subscriber's callback.

    Fields other than the seven of the standard are ignored (newer versions may add some);
    ``aanmaakdatum`` needs a UTC offset (OpenAPI ``date-time`` is RFC 3339).
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)

    kanaal: str = Field(min_length=1, max_length=50)
    hoofd_object: HttpUrl = Field(alias="hoofdObject")
    resource: str = Field(min_length=1, max_length=100)
    resource_url: HttpUrl = Field(alias="resourceUrl")
    actie: str = Field(min_length=1, max_length=100)
    aanmaakdatum: Annotated[AwareDatetime, BeforeValidator(_iso_text)]
    kenmerken: dict[str, Annotated[str, Field(max_length=1000)]] = Field(default_factory=dict)

    def to_record(self, received_at: datetime) -> dict[str, Any]:
        """The value recorded on the notifications topic: the standard's field names, plus
        when the hub received it."""
        return {
            "kanaal": self.kanaal,
            "hoofdObject": self.hoofd_object,
            "resource": self.resource,
            "resourceUrl": self.resource_url,
            "actie": self.actie,
            "aanmaakdatum": self.aanmaakdatum.isoformat(),
            "kenmerken": dict(self.kenmerken),
            "received_at": received_at.isoformat(timespec="milliseconds"),
        }


_WORD_RE = re.compile(r"[A-Za-z0-9_.-]{1,50}")


def _loggable(value: str) -> str:
    """A vocabulary word of the standard (``zaken``, ``status``, ``create``) as sent; anything
    else is the sender's free text (a newline would forge a log line) and is not logged."""
    return value if _WORD_RE.fullmatch(value) else "<other>"


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors -> [{"field", "reason"}] with the standard's (camelCase) field names."""
    out = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        field = ".".join(str(p) for p in error["loc"]) or "-"
        reason = error["msg"].removeprefix("Value error, ")
        out.append({"field": field, "reason": reason})
    return out


class CallbackAuth:
    """The subscription's auth header value, held as a SHA-256 digest only."""

    def __init__(self, value: str) -> None:
        if not value.strip():
            raise ValueError("the notificaties auth value must not be empty")
        self._digest = hashlib.sha256(value.encode()).digest()

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)


def make_handler(
    auth: CallbackAuth | None,
    publish: Publish,
    error: ErrorResponse,
    read_body: Callable[[web.Request], Awaitable[bytes | web.Response]],
    guards: Guards = NO_GUARDS,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The ``POST /v1/notificaties`` handler; publishing, body and rate limits come from the
    app."""

    async def post_notificatie(request: web.Request) -> web.StreamResponse:
        if auth is None:  # fail closed: an unconfigured callback accepts nothing
            return error(
                503, "not_configured", "the notificaties callback is not configured on this hub"
            )
        locked = guards.locked_out(request)
        if locked is not None:
            return locked
        presented = request.headers.get("Authorization")
        if presented is None:
            return guards.auth_failed(
                request,
                error(401, "unauthorized", "the subscription's Authorization header is missing"),
            )
        if not auth.matches(presented):
            return guards.auth_failed(
                request, error(403, "forbidden", "the Authorization header does not match")
            )
        limited = guards.rate_limited(request, "notificaties")
        if limited is not None:
            return limited
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error(400, "not_json", f"body is not JSON: {exc.msg}")
        if not isinstance(payload, dict):
            return error(400, "wrong_shape", "a notification must be a JSON object")
        try:
            notification = Notificatie.model_validate(payload)
        except ValidationError as exc:
            errors = field_errors(exc)
            log.info(
                "notificatie refused",
                extra={"fields": log_safe_fields((e["field"] for e in errors), Notificatie)},
            )
            return error(400, "invalid_notification", "the notification is invalid", errors)
        record = notification.to_record(datetime.now(UTC))
        failure = await publish(notification.kanaal.encode(), orjson.dumps(record))
        if failure is not None:
            log.warning(
                "notificatie not recorded", extra={"kanaal": _loggable(notification.kanaal)}
            )
            return error(
                503,
                "broker_unavailable",
                "the notification could not be recorded, please retry",
                headers={"Retry-After": "5"},
            )
        log.info(
            "notificatie recorded",
            extra={
                "kanaal": _loggable(notification.kanaal),
                "resource": _loggable(notification.resource),
                "actie": _loggable(notification.actie),
            },
        )
        return web.Response(status=204)

    return post_notificatie
