"""Structured logging without personal data.

:func:`setup_logging` installs one stream handler on the root logger: JSON lines when
``HUB_LOG_JSON`` is true, plain text otherwise; level from ``HUB_LOG_LEVEL`` (default INFO).
Extra fields (``log.info("alert", extra={"event_id": ..., "rule": ...})``) become JSON keys or
``key=value`` pairs.

The handler carries :class:`PersonalDataFilter`: at INFO and above it replaces the values of
extra fields named like personal data (name, phone, e-mail, postcode, address, address key, BAG
address id) and masks Dutch postcodes, e-mail addresses, Dutch phone numbers and pydantic
``input_value=...`` echoes in the message, in string extras and in exception text. Event ids, case
ids and rule names pass unchanged. DEBUG records are left as they are (never enable DEBUG in
production). Note: a 4-digit number followed by two letters (``1500 ms``) reads as a postcode and is
masked; log durations as extras (``duration_s=1.5``).

The handler also carries :class:`RepeatLimiter`: aiokafka's lines repeat at most once per 10 s
each (its clients log every retry while the broker is away, thousands a second).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

REDACTED = "<redacted>"

#: Extra-field names whose values are always personal data (compared lower-cased).
PERSONAL_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "naam",
        "contact_name",
        "resident_name",
        "owner_name",
        "applicant_name",
        "counsellor_name",
        "full_name",
        "first_name",
        "last_name",
        "surname",
        "phone",
        "telephone",
        "telefoon",
        "contact_phone",
        "mobile",
        "email",
        "e_mail",
        "mail",
        "contact_email",
        "postcode",
        "postal_code",
        "zip",
        "address",
        "adres",
        "address_key",
        "street",
        "straat",
        "huisnummer",
        "house_number",
        "huisletter",
        "huisnummertoevoeging",
        "nummeraanduiding_id",
        "pand_id",
        "contact",
    }
)
#: Substrings that mark a field name as personal (e.g. ``resident_email``, ``home_address``).
PERSONAL_FIELD_PARTS: tuple[str, ...] = ("phone", "email", "postcode", "address", "adres")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "<redacted:email>"),
    # Dutch postcode: 4 digits (first 1-9), optional space, 2 letters (not SA/SD/SS); any case.
    (re.compile(r"\b[1-9][0-9]{3} ?(?!(?i:sa|sd|ss)\b)[A-Za-z]{2}\b"), "<redacted:postcode>"),
    # BAG nummeraanduiding id (4-digit municipality code + "20" + 10 digits).
    (re.compile(r"\b[0-9]{4}20[0-9]{10}\b"), "<redacted:bag-id>"),
    # Dutch phone numbers: +31 / 0031 / 0, then 9 digits (spaces/dashes allowed).
    (re.compile(r"(?:\+31|\b0031|\b0)[ -]?[1-9](?:[ -]?[0-9]){8}\b"), "<redacted:phone>"),
    # pydantic ValidationError echoes the offending input.
    (re.compile(r"input_value=(?:'[^']*'|\"[^\"]*\"|[^,\]\s]+)"), "input_value=<redacted>"),
)

_STANDARD_ATTRS: frozenset[str] = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


def redact_text(text: str) -> str:
    """Mask postcodes, e-mail addresses, phone numbers, BAG address ids and pydantic inputs."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_personal_field(key: str) -> bool:
    """True when an extra-field name denotes personal data."""
    lowered = key.lower()
    return lowered in PERSONAL_FIELDS or any(part in lowered for part in PERSONAL_FIELD_PARTS)


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and is_personal_field(k)
            else _redact_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, depth + 1) for v in value]
    return value


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with ``extra=``."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class PersonalDataFilter(logging.Filter):
    """Redact personal data from records at ``min_level`` (INFO) and above; never drop one."""

    def __init__(self, min_level: int = logging.INFO) -> None:
        super().__init__()
        self.min_level = min_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level or getattr(record, "_hub_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad format args: keep the template only
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key, value in extra_fields(record).items():
            record.__dict__[key] = REDACTED if is_personal_field(key) else _redact_value(value)
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        record._hub_redacted = True
        return True


#: Loggers whose repeated lines are thinned (see :class:`RepeatLimiter`).
REPEAT_LIMITED: tuple[str, ...] = ("aiokafka",)
#: Within this many seconds a line repeats at most once (per logger and message template).
REPEAT_WINDOW_S = 10.0


class RepeatLimiter(logging.Filter):
    """Lets a library's line through once per :data:`REPEAT_WINDOW_S` per logger and template.

    While the broker is away aiokafka's clients retry in a tight loop and log each attempt at
    ERROR ("Unable connect to node with id 1", "Unable to update metadata from [1]"): 3,000-5,000
    lines a second, 62,654 of one fault run's 66,326 lines in 15 s (stop 40). That buries the
    hub's own lines and costs a 2-core worker CPU while it should be stopping or catching up.
    The first line of a kind passes; the repeats within the window are counted, and the next
    one after it carries ``similar_suppressed=<count>``. The hub's own loggers are untouched.
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = REPEAT_LIMITED,
        window_s: float = REPEAT_WINDOW_S,
        clock: Any = None,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window_s = window_s
        self.clock = clock or time.monotonic
        self._seen: dict[tuple[str, Any], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.msg)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.similar_suppressed = seen[1]
        if len(self._seen) > 1000:  # templates with data in them: never grow without bound
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            if not key.startswith("_"):
                doc.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text.rstrip("\n")
        if record.stack_info:
            doc["stack"] = record.stack_info
        return orjson.dumps(doc, default=str).decode()


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in extra_fields(record).items() if not k.startswith("_")}
        if not extras:
            return line
        head, sep, tail = line.partition("\n")  # keep key=value on the message line
        pairs = " ".join(f"{k}={v}" for k, v in extras.items())
        return f"{head} {pairs}{sep}{tail}"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def setup_logging(
    level: str | int | None = None, json: bool | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Install the hub's handler on the root logger (idempotent); return it.

    ``json``/``level`` default to ``HUB_LOG_JSON`` / ``HUB_LOG_LEVEL``.
    """
    use_json = _env_flag("HUB_LOG_JSON") if json is None else json
    resolved = level if level is not None else os.environ.get("HUB_LOG_LEVEL", "INFO")
    if isinstance(resolved, str):
        resolved = resolved.upper()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("hub")
    handler.setFormatter(JsonFormatter() if use_json else PlainFormatter())
    handler.addFilter(RepeatLimiter())  # first: a dropped line costs no redaction
    handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "hub":
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    root.setLevel(resolved)
    return handler
