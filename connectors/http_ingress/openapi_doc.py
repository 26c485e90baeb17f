"""The OpenAPI 3 document of the ingress, as strict as the handlers (``GET /openapi.json``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from connectors.http_ingress.auth import PUBLISHABLE_SOURCES
from connectors.http_ingress.limits import DEFAULT_MAX_BODY_BYTES
from connectors.notificaties import Notificatie
from hub.contracts.events import CaseEvent

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
