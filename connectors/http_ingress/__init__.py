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

Modules: ``auth`` (credentials), ``limits``, ``producer`` (acknowledged delivery), ``app``
(handlers, ``create_app``, ``run_http``), ``openapi_doc`` (the OpenAPI document). Imports
``hub`` (contracts, settings, pipeline topic and producer configs) and the connectors
``edge_checks``, ``notificaties`` and ``ratelimit``.
"""

from connectors.http_ingress.app import (
    NOTIFICATIES_AUTH_ENV,
    STATE,
    IngressState,
    TokenLookup,
    TopicsMissing,
    auth_failed,
    close_unread_bodies,
    create_app,
    healthz,
    json_error,
    locked_out,
    openapi,
    post_events,
    rate_limited,
    read_body,
    run_http,
    too_many,
)
from connectors.http_ingress.auth import (
    PUBLISHABLE_SOURCES,
    TOKENS_ENV,
    TOKENS_FILE_ENV,
    Credential,
    ReloadingTokens,
    TokenStore,
    load_reloading_tokens,
    load_tokens,
    load_tokens_file,
    parse_tokens_env,
    token_digest,
)
from connectors.http_ingress.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DELIVERY_TIMEOUT_S,
    MESSAGE_TIMEOUT_MS,
    IngressLimits,
)
from connectors.http_ingress.openapi_doc import (
    AMOUNT_PATTERN,
    BLANK_CLASS,
    HTTP_URL_PATTERN,
    HUISLETTER_PATTERN,
    HUISNUMMER_TEXT_PATTERN,
    MAX_AMOUNT_UNITS,
    TOEVOEGING_PATTERN,
    TRIMMED_PATTERN,
    date_range_pattern,
    occurred_at_pattern,
    openapi_document,
)
from connectors.http_ingress.producer import (
    AsyncProducer,
)

__all__ = [
    "AMOUNT_PATTERN",
    "BLANK_CLASS",
    "DEFAULT_MAX_BODY_BYTES",
    "DELIVERY_TIMEOUT_S",
    "HTTP_URL_PATTERN",
    "HUISLETTER_PATTERN",
    "HUISNUMMER_TEXT_PATTERN",
    "MAX_AMOUNT_UNITS",
    "MESSAGE_TIMEOUT_MS",
    "NOTIFICATIES_AUTH_ENV",
    "PUBLISHABLE_SOURCES",
    "STATE",
    "TOEVOEGING_PATTERN",
    "TOKENS_ENV",
    "TOKENS_FILE_ENV",
    "TRIMMED_PATTERN",
    "AsyncProducer",
    "Credential",
    "IngressLimits",
    "IngressState",
    "ReloadingTokens",
    "TokenLookup",
    "TokenStore",
    "TopicsMissing",
    "auth_failed",
    "close_unread_bodies",
    "create_app",
    "date_range_pattern",
    "healthz",
    "json_error",
    "load_reloading_tokens",
    "load_tokens",
    "load_tokens_file",
    "locked_out",
    "occurred_at_pattern",
    "openapi",
    "openapi_document",
    "parse_tokens_env",
    "post_events",
    "rate_limited",
    "read_body",
    "run_http",
    "token_digest",
    "too_many",
]
