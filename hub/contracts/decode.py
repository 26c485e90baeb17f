"""Bytes or JSON in, a validated :class:`CaseEvent` or a :class:`Rejection` out. Never raises.

A Rejection names the field (dotted path, e.g. ``address.postcode``) and the rule, in the form
``address.postcode: 'SS12' is not a Dutch postcode``. Values are echoed for identifiers, codes
and address parts only; contact data and free attributes are personal or may be, so their values
are never echoed (AVG/GDPR), only the rule they broke.

The Avro path validates the fastavro dict with ``CaseEvent.model_validate`` directly: the decoder
already guarantees the types, and pydantic-core checks the remaining constraints faster than a
hand-written Python fast path plus ``model_construct`` would (measured; see docs/contracts.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from hub.contracts import fast_validate
from hub.contracts.avro import CASE_EVENT
from hub.contracts.codec import AvroCodec, DecodeError, get_codec
from hub.contracts.enums import RejectReason as RejectReason  # re-exported (callers use it)
from hub.contracts.events import (
    IMPLAUSIBLE_TIME,
    MAX_ATTRIBUTE_KEY,
    MAX_RECORD_BYTES,
    CaseEvent,
)


class Stage(StrEnum):
    """Where an input was refused: the ``hub.errors.stage`` header (docs/contracts.md §4)."""

    DECODE = "decode"  # bytes -> record (framing, schema, size)
    VALIDATE = "validate"  # record -> CaseEvent (field rules)
    RESOLVE = "resolve"  # hub.address: normalisation and resolution of the address
    BATCH = "batch"  # packing normalised events into the internal batch message
    CORRELATE = "correlate"  # the correlate agent (internal batches, event id conflicts)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused input: what failed, where, and why. Safe to log and to put in DLQ headers."""

    reason_code: str
    field: str | None
    message: str
    stage: str = Stage.VALIDATE
    exception_class: str = "hub.contracts.decode.Rejection"
    details: tuple[str, ...] = ()  # every message when several fields failed

    def __str__(self) -> str:
        return f"{self.reason_code}: {self.message}"


# Fields whose values must never be echoed in a message (personal data, or may be).
_PERSONAL_PREFIXES = ("contact", "attributes")
# Human rules for fields whose pydantic message would only show a regex.
_FIELD_RULES: dict[str, str] = {
    "address.postcode": "is not a Dutch postcode",
    "address.huisnummer": (
        "is not a house number (1-99999, or text of at most 32 characters starting with one)"
    ),
    "address.nummeraanduiding_id": (
        "is not a BAG nummeraanduiding id (16 digits: municipality code, 20, 10 digits)"
    ),
    "address.pand_id": "is not a BAG pand id (16 digits: municipality code, 10, 10 digits)",
    "address.gemeentecode": "is not a municipality code (GM + 4 digits)",
    "source": "is not a known source (NCG, IMG, MUNICIPALITY, HOUSING_CORPORATION)",
    "occurred_at": "must be an ISO 8601 timestamp with offset, e.g. 2024-05-01T10:00:00+02:00",
}
_TYPE_RULES: dict[str, str] = {
    "timezone_aware": "must carry a UTC offset (ISO 8601, e.g. 2024-05-01T10:00:00+02:00)",
    "extra_forbidden": "is not a field of CaseEvent v1",
    "missing": "is required",
    "string_too_short": "must not be empty",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}
#: Error types whose own message says more than the field's generic rule above.
_OWN_MESSAGE_TYPES = frozenset({"missing", "extra_forbidden", IMPLAUSIBLE_TIME, "string_too_long"})
_MAX_ECHO = 64
_MAX_FIELD_PATH = 100
_ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _echo(value: Any) -> str | None:
    """repr of a scalar, shortened; None for containers (never echo a whole object)."""
    if value is None or isinstance(value, (str, int, float, Decimal, date)):
        text = repr(value) if not isinstance(value, (Decimal, date)) else repr(str(value))
        return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 4] + "...'"
    return None


def _is_personal(field: str) -> bool:
    return field.split(".", 1)[0] in _PERSONAL_PREFIXES


def _rule_from_pydantic(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind in _TYPE_RULES:
        return _TYPE_RULES[kind]
    msg: str = error["msg"]
    if kind == "value_error" and msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    for prefix in (
        "String ",
        "Input ",
        "Value ",
        "Decimal input ",
        "Decimal ",
        "Date ",
        "Dictionary ",
        "Dict ",
    ):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # Union branches show up as extra loc segments ("address.huisnummer.constrained-int").
    if parts[:2] == ["address", "huisnummer"]:
        return "address.huisnummer"
    if parts and parts[0] in ("planned_start", "planned_end", "amount_eur", "occurred_at"):
        return parts[0]
    if len(parts) >= 2 and parts[0] == "contact" and parts[1] == "role":
        return "contact.role"
    if parts and parts[0] == "attributes" and len(parts) >= 2:
        # A key is the sender's free text: name it only when it is short and plain, so no
        # personal data, control character or megabyte key ends up in a header or a log.
        key = parts[1]
        if len(parts) > 2 or len(key) > MAX_ATTRIBUTE_KEY or not _ATTRIBUTE_KEY_RE.match(key):
            return "attributes"
    path = ".".join(parts)
    return path if len(path) <= _MAX_FIELD_PATH else path[: _MAX_FIELD_PATH - 3] + "..."


def _format(field: str, rule: str, value: Any, *, has_value: bool = True) -> str:
    if field and has_value and not _is_personal(field):
        echoed = _echo(value)
        if echoed is not None:
            return f"{field}: {echoed} {rule}"
    return f"{field}: {rule}" if field else rule


def rejection_from_validation_error(exc: ValidationError) -> Rejection:
    """Turn pydantic's errors into one field-named Rejection (the first error leads)."""
    items: list[tuple[str, RejectReason, str]] = []  # (field, reason, message)
    seen: set[str] = set()
    for error in exc.errors(include_url=False, include_context=False):
        field = _field_path(tuple(error["loc"]))
        if field in seen:  # union branches repeat the same field
            continue
        seen.add(field)
        kind = error["type"]
        if kind == "missing":
            reason = RejectReason.MISSING_FIELD
        elif field == "source":
            reason = RejectReason.UNKNOWN_SOURCE
        else:
            reason = RejectReason.INVALID_FIELD
        rule = _FIELD_RULES.get(field) if kind not in _OWN_MESSAGE_TYPES else None
        rule = rule or _rule_from_pydantic(error)
        if error["loc"][-1:] == ("[key]",):
            rule = f"a key {rule}"
        has_value = kind not in ("missing",)
        items.append((field, reason, _format(field, rule, error.get("input"), has_value=has_value)))
    if not items:  # pragma: no cover - pydantic always reports at least one error
        return Rejection(RejectReason.INVALID_FIELD, None, "CaseEvent: invalid")
    field, reason, message = items[0]
    messages = tuple(m for _, _, m in items)
    if len(items) > 1:
        message = f"{message} (and {len(items) - 1} more)"
    return Rejection(
        reason_code=reason,
        field=field or None,
        message=message,
        stage=Stage.VALIDATE,
        exception_class="pydantic_core.ValidationError",
        details=messages,
    )


def too_large(size: int, limit: int = MAX_RECORD_BYTES) -> Rejection | None:
    """A Rejection when an encoded record of ``size`` bytes exceeds the contract's bound.

    Checked before parsing: a huge record costs nothing more to refuse, and nothing larger than
    the bound ever reaches the internal batch, the state or a dead letter's payload whole.
    """
    if size <= limit:
        return None
    return Rejection(
        reason_code=RejectReason.RECORD_TOO_LARGE,
        field=None,
        message=f"CaseEvent: {size} bytes encoded, more than the {limit} allowed",
        stage=Stage.DECODE,
        exception_class="hub.contracts.decode.RecordTooLarge",
    )


def _from_decode_error(exc: DecodeError) -> Rejection:
    return Rejection(
        reason_code=exc.reason,
        field=None,
        message=exc.message,
        stage=Stage.DECODE,
        exception_class=exc.exception_class,
    )


# ------------------------------------------------------------------------------------- Avro


#: Avro records are read into the newest shipped CaseEvent schema, which may carry optional
#: fields the model does not know yet (a newer agency version shipped only so its fingerprint
#: is known): Avro resolution says a reader ignores them, so the Avro path does. JSON has no
#: schema, so there an unknown field stays an error (it is usually a typo).
_AVRO_EXTRA: Literal["ignore"] = "ignore"


def validate_avro_case_event(record: Mapping[str, Any]) -> CaseEvent | Rejection:
    """Validate a decoded Avro CaseEvent dict (types already guaranteed by the decoder)."""
    try:
        return CaseEvent.model_validate(record, extra=_AVRO_EXTRA)
    except ValidationError as exc:
        return rejection_from_validation_error(exc)
    except Exception as exc:  # a validator bug must not crash the worker
        return _unexpected(exc, Stage.VALIDATE)


def decode_case_event(raw: bytes, codec: AvroCodec | None = None) -> CaseEvent | Rejection:
    """Avro bytes (either framing) -> CaseEvent, or a Rejection with a reason. Never raises
    on bad input (a transient schema-registry outage does raise: retry, don't dead-letter)."""
    codec = codec or get_codec()
    if isinstance(raw, (bytes, bytearray, memoryview)) and (refused := too_large(len(raw))):
        return refused
    try:
        _, record = codec.decode(raw, CASE_EVENT)
    except DecodeError as exc:
        return _from_decode_error(exc)
    except (TypeError, AttributeError) as exc:  # not bytes at all
        return _unexpected(exc, Stage.DECODE, RejectReason.UNDECODABLE)
    return validate_avro_case_event(record)


def decode_case_events(
    raws: Sequence[bytes], codec: AvroCodec | None = None
) -> list[CaseEvent | Rejection]:
    """Batch form of :func:`decode_case_event`, for the ingest stage's poll batches."""
    codec = codec or get_codec()
    out: list[CaseEvent | Rejection] = []
    append = out.append
    oversized = {i: r for i, raw in enumerate(raws) if (r := too_large(len(raw))) is not None}
    if oversized:  # refuse them without decoding; keep the output aligned with the input
        results = iter(decode_case_events([r for i, r in enumerate(raws) if i not in oversized]))
        return [oversized[i] if i in oversized else next(results) for i in range(len(raws))]
    for item in validate_avro_case_events(codec.decode_batch(raws, CASE_EVENT)):
        if isinstance(item, DecodeError):
            append(_from_decode_error(item))
        else:
            append(item)
    return out


def validate_avro_case_events(items: Sequence[Any]) -> list[Any]:
    """Batch form of :func:`validate_avro_case_event`: each dict slot becomes its CaseEvent or
    Rejection (exactly the one-by-one result); other slots (decode errors) pass through.

    A record that plainly meets the contract is built without pydantic
    (:mod:`hub.contracts.fast_validate`: half the validation CPU, issue 17); pydantic validates
    every other one, so every Rejection is pydantic's."""
    validate = CaseEvent.model_validate
    floor, latest = fast_validate.bounds()
    accept = fast_validate.accept
    enabled = fast_validate.ENABLED
    out = list(items)
    slow: list[int] = []
    for i, item in enumerate(items):
        if item.__class__ is not dict:
            continue
        event = None
        if enabled:
            try:
                event = accept(item, floor, latest)
            except Exception:  # a bug of the fast path: pydantic decides, as without it
                event = None
        if event is None:
            slow.append(i)
        else:
            out[i] = event
    if slow:
        for i, value in zip(slow, _validate_all([out[i] for i in slow]), strict=True):
            out[i] = value
    for i, item in enumerate(out):
        if item.__class__ is dict:  # refused by the batch call: its Rejection, one by one
            try:
                out[i] = validate(item, extra=_AVRO_EXTRA)
            except ValidationError as exc:
                out[i] = rejection_from_validation_error(exc)
            except Exception as exc:
                out[i] = _unexpected(exc, Stage.VALIDATE)
    return out


#: Every slot of a batch: a CaseEvent when the record validates, else the record itself (the
#: ``Any`` branch, tried only after CaseEvent failed). One pydantic-core call for a poll batch.
_CaseEventOrInput = Annotated[CaseEvent | Any, Field(union_mode="left_to_right")]
_BATCH = TypeAdapter(list[_CaseEventOrInput])


def _validate_all(items: Sequence[Any]) -> list[Any]:
    """``items`` with each decoded record (dict) that validates replaced by its CaseEvent.

    One ``validate_python`` over the whole poll batch instead of one per record: about a fifth
    less validation CPU (issue 17). A record that fails stays a dict in its slot, and the
    caller validates it again on its own, so its Rejection (field, reason, message) is exactly
    the one-by-one path's; other slots (decode errors) pass through untouched. Should the batch
    call itself raise (a validator bug), every slot stays as it came and goes one by one too.
    """
    records = [i for i, item in enumerate(items) if item.__class__ is dict]
    try:
        if len(records) == len(items):
            return list(_BATCH.validate_python(items, extra=_AVRO_EXTRA))
        validated = _BATCH.validate_python([items[i] for i in records], extra=_AVRO_EXTRA)
    except Exception:
        return list(items)
    out = list(items)
    for i, value in zip(records, validated, strict=True):
        out[i] = value
    return out


def decode_inbound_many(
    raws: Sequence[bytes], codec: AvroCodec | None = None
) -> list[CaseEvent | Rejection]:
    """Inbound values in either form, in order: JSON (first byte ``{``) one by one with
    :func:`parse_case_event_json`, every other value Avro through :func:`decode_case_events`.

    The ingest stage's batch decoder: one batch call instead of a :func:`decode_case_event` per
    message saves 10-15% of the decode + validate CPU (per-call codec look-up, framing dispatch
    and error wrapping; measured, issue 17). Same results, same Rejections, in the same order.
    """
    json_at = [i for i, raw in enumerate(raws) if raw[:1] == b"{"]
    if not json_at:
        return decode_case_events(raws, codec)
    is_json = set(json_at)
    avro = iter(decode_case_events([r for i, r in enumerate(raws) if i not in is_json], codec))
    return [
        parse_case_event_json(raw) if i in is_json else next(avro) for i, raw in enumerate(raws)
    ]


def _unexpected(
    exc: BaseException, stage: str, reason: str = RejectReason.INVALID_FIELD
) -> Rejection:
    return Rejection(
        reason_code=reason,
        field=None,
        message=f"CaseEvent: unexpected {type(exc).__name__}",
        stage=stage,
        exception_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
    )


# ------------------------------------------------------------------------------------- JSON


def _json_rejection(
    field: str, rule: str, value: Any, reason: str = RejectReason.INVALID_FIELD
) -> Rejection:
    return Rejection(reason, field, _format(field, rule, value), Stage.VALIDATE, "ValueError")


def _preflight_json(obj: dict[str, Any]) -> dict[str, Any] | Rejection:
    """JSON-only rules pydantic's lax mode would let through: ISO 8601 text for times/dates,
    amounts as strings or numbers (floats go through ``str`` so 0.1 stays 0.1)."""
    out = dict(obj)
    value = obj.get("occurred_at")
    if value is not None:
        if not isinstance(value, str):
            return _json_rejection(
                "occurred_at", "must be an ISO 8601 timestamp string with a UTC offset", value
            )
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return _json_rejection("occurred_at", "is not an ISO 8601 timestamp", value)
        if parsed.tzinfo is None:
            return _json_rejection("occurred_at", _TYPE_RULES["timezone_aware"], value)
        out["occurred_at"] = parsed
    for name in ("planned_start", "planned_end"):
        if name not in obj:
            continue
        value = obj[name]
        if value is None or value == "":
            out[name] = None
            continue
        if not isinstance(value, str):
            return _json_rejection(name, "must be an ISO 8601 date string (YYYY-MM-DD)", value)
        try:
            out[name] = date.fromisoformat(value.strip())
        except ValueError:
            return _json_rejection(name, "is not an ISO 8601 date (YYYY-MM-DD)", value)
    value = obj.get("amount_eur")
    if isinstance(value, bool):
        return _json_rejection("amount_eur", "must be a decimal amount", value)
    if isinstance(value, float):
        out["amount_eur"] = str(value)
    elif value == "":
        out["amount_eur"] = None
    return out


def parse_case_event_json(
    data: bytes | bytearray | str | Mapping[str, Any],
) -> CaseEvent | Rejection:
    """JSON (text or already-parsed object) -> CaseEvent or Rejection; for file and HTTP ingress.

    Same Rejection structure as the Avro path. Timestamps must be ISO 8601 with an offset;
    dates ``YYYY-MM-DD``; ``amount_eur`` a string (preferred) or a number. Never raises.
    """
    try:
        if isinstance(data, (bytes, bytearray, memoryview, str)):
            size = len(data) if not isinstance(data, str) else len(data.encode("utf-8", "replace"))
            if refused := too_large(size):
                return refused
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                return Rejection(
                    RejectReason.UNDECODABLE,
                    None,
                    f"not JSON: {exc.msg} at position {exc.pos}",
                    Stage.DECODE,
                    "orjson.JSONDecodeError",
                )
        else:
            obj = data
        if not isinstance(obj, Mapping):
            return Rejection(
                RejectReason.UNDECODABLE,
                None,
                f"CaseEvent: must be a JSON object, got {type(obj).__name__}",
                Stage.DECODE,
                "TypeError",
            )
        checked = _preflight_json(dict(obj))
        if isinstance(checked, Rejection):
            return checked
        return CaseEvent.model_validate(checked)
    except ValidationError as exc:
        return rejection_from_validation_error(exc)
    except Exception as exc:  # never let bad input crash the worker
        return _unexpected(exc, Stage.VALIDATE)


# ------------------------------------------------------------------------------- conversion


def case_event_to_avro_dict(event: CaseEvent) -> dict[str, Any]:
    """CaseEvent -> dict in the shape of CaseEvent.v1.avsc (fastavro-ready)."""
    a = event.address
    c = event.contact
    return {
        "event_id": event.event_id,
        "source": event.source.value,
        "source_org": event.source_org,
        "case_id": event.case_id,
        "case_type": event.case_type.value,
        "status": event.status.value,
        "occurred_at": event.occurred_at,
        "address": {
            "nummeraanduiding_id": a.nummeraanduiding_id,
            "pand_id": a.pand_id,
            "postcode": a.postcode,
            "huisnummer": a.huisnummer,
            "huisletter": a.huisletter,
            "huisnummertoevoeging": a.huisnummertoevoeging,
            "gemeentecode": a.gemeentecode,
        },
        "planned_start": event.planned_start,
        "planned_end": event.planned_end,
        "contact": None
        if c is None
        else {
            "name": c.name,
            "role": c.role.value if c.role is not None else None,
            "phone": c.phone,
            "email": c.email,
        },
        "amount_eur": event.amount_eur,
        "attributes": dict(event.attributes),
    }


class InvalidCaseEvent(ValueError):
    """Raised by the raising conversion helpers; carries the Rejection."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


def case_event_from_avro_dict(record: Mapping[str, Any]) -> CaseEvent:
    """Decoded Avro dict -> CaseEvent; raises :class:`InvalidCaseEvent` (for tools and tests)."""
    result = validate_avro_case_event(record)
    if isinstance(result, Rejection):
        raise InvalidCaseEvent(result)
    return result


def encode_case_event(event: CaseEvent, codec: AvroCodec | None = None) -> bytes:
    """CaseEvent -> Avro bytes in the codec's framing (connectors, simulator, tests)."""
    return (codec or get_codec()).encode(CASE_EVENT, case_event_to_avro_dict(event))


def case_event_to_json(event: CaseEvent) -> bytes:
    """CaseEvent -> the JSON form accepted by :func:`parse_case_event_json`."""
    return event.model_dump_json(exclude_none=True).encode()
