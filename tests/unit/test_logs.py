"""hub.logs: structured output and the personal-data filter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hub.logs import PersonalDataFilter, redact_text, setup_logging

Captured = tuple[logging.Logger, io.StringIO]


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """A logger writing JSON through the hub handler into a buffer; root restored afterwards."""
    monkeypatch.setenv("HUB_LOG_JSON", "true")
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    handler = setup_logging(level="DEBUG", stream=buffer)
    try:
        yield logging.getLogger("hub.test"), buffer
    finally:
        root.removeHandler(handler)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_redacts_postcode_and_email_in_message_at_info(capture: Captured) -> None:
    log, buffer = capture
    log.info(
        "event %s for 9711 AB 12 from jan.jansen@example.nl", "evt-1", extra={"rule": "SAMENLOOP"}
    )
    (doc,) = lines(buffer)
    assert doc["level"] == "INFO" and doc["logger"] == "hub.test"
    assert "9711" not in doc["msg"] and "jan.jansen" not in doc["msg"]
    assert "<redacted:postcode>" in doc["msg"] and "<redacted:email>" in doc["msg"]
    assert "evt-1" in doc["msg"]
    assert doc["rule"] == "SAMENLOOP"


def test_redacts_personal_extra_fields_but_keeps_ids_and_rules(capture: Captured) -> None:
    log, buffer = capture
    log.warning(
        "alert emitted",
        extra={
            "event_id": "evt-42",
            "case_id": "Z-1",
            "rule": "PLAN_OVERLAP",
            "rule_name": "X",
            "contact_name": "Jan Jansen",
            "contact_phone": "06-12345678",
            "email": "a@b.nl",
            "postcode": "9711AB",
            "address_key": "9711AB-12A-2",
            "payload": {"contact": {"name": "Jan"}, "note": "call 0612345678", "count": 3},
        },
    )
    (doc,) = lines(buffer)
    assert doc["event_id"] == "evt-42" and doc["case_id"] == "Z-1"
    assert doc["rule"] == "PLAN_OVERLAP" and doc["rule_name"] == "X"
    for key in ("contact_name", "contact_phone", "email", "postcode", "address_key"):
        assert doc[key] == "<redacted>", key
    assert doc["payload"] == {"contact": "<redacted>", "note": "call <redacted:phone>", "count": 3}
    text = buffer.getvalue()
    for secret in ("Jansen", "12345678", "a@b.nl", "9711"):
        assert secret not in text


def test_debug_records_are_not_touched(capture: Captured) -> None:
    log, buffer = capture
    log.debug("resolved 9711AB", extra={"postcode": "9711AB"})
    (doc,) = lines(buffer)
    assert doc["msg"] == "resolved 9711AB" and doc["postcode"] == "9711AB"


def test_exception_text_is_redacted(capture: Captured) -> None:
    from pydantic import ValidationError

    from hub.contracts.events import Contact

    log, buffer = capture
    try:
        Contact(name="Jan Jansen", phone="x" * 50)
    except ValidationError:
        log.exception("rejected event %s", "evt-7")
    (doc,) = lines(buffer)
    assert "evt-7" in doc["msg"]
    assert "ValidationError" in doc["exc"]
    assert "xxxxx" not in doc["exc"] and "input_value=<redacted>" in doc["exc"]


def test_plain_format_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_LOG_JSON", raising=False)
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    handler = setup_logging(stream=buffer)
    try:
        setup_logging(stream=buffer)  # idempotent: still one hub handler
        assert sum(1 for h in root.handlers if h.get_name() == "hub") == 1
        logging.getLogger("hub.x").info("signal for 9711AB", extra={"event_id": "e1"})
    finally:
        for h in list(root.handlers):
            if h.get_name() == "hub":
                root.removeHandler(h)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    out = buffer.getvalue()
    assert "INFO hub.x: signal for <redacted:postcode> event_id=e1" in out
    assert handler is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9711AB", "<redacted:postcode>"),
        ("9711 ab", "<redacted:postcode>"),
        ("key 9711AB-12A-2", "key <redacted:postcode>-12A-2"),
        ("1000 SA", "1000 SA"),  # SA/SD/SS are never used
        ("0014200000123456", "<redacted:bag-id>"),
        ("+31 6 12345678", "<redacted:phone>"),
        ("event evt-123 rule SAMENLOOP", "event evt-123 rule SAMENLOOP"),
        ("0123AB", "0123AB"),  # a postcode never starts with 0
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_filter_never_drops_records() -> None:
    record = logging.LogRecord("hub", logging.ERROR, __file__, 1, "bad %s %s", ("one",), None)
    assert PersonalDataFilter().filter(record) is True  # bad args: keeps the template
    assert record.getMessage() == "bad %s %s"
