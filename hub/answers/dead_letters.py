"""Dead letters as read from ``dead-letter``: entries, reasons, JSON for display."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.answers.reading import jsonable, read_to_end
from hub.contracts.deadletter import DeadLetter, parse_dead_letter
from hub.pipeline.topics import Topics
from hub.settings import Settings


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """A dead letter and where it sits on the dead-letter topic."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter

    @property
    def marker(self) -> str:
        """Its key on the replay-marker topic."""
        return f"{self.partition}:{self.offset}"


def read_dead_letters(
    settings: Settings, reason: str | None = None, timeout_s: float = 120.0
) -> list[DeadLetterEntry]:
    """Every dead letter (optionally of one reason code), oldest first."""
    topics = Topics.from_settings(settings)
    out = []
    for msg in read_to_end(settings, [topics.dead_letter], timeout_s=timeout_s):
        letter = parse_dead_letter(msg.headers, msg.value, msg.key)
        if reason is not None and letter.reason.upper() != reason.upper():
            continue
        out.append(DeadLetterEntry(msg.partition, msg.offset, msg.timestamp_ms, letter))
    out.sort(key=lambda e: (e.timestamp_ms, e.partition, e.offset))
    return out


def _bytes_json(raw: bytes | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}
    if all(ch.isprintable() or ch in "\n\r\t" for ch in text):
        return {"text": text}
    return {"base64": base64.b64encode(raw).decode()}


def dead_letter_json(entry: DeadLetterEntry, show_payload: bool = False) -> dict[str, Any]:
    """One ``hub dlq list --json`` line. Key and payload (maybe personal) only on request."""
    dl = entry.letter
    out: dict[str, Any] = {
        "partition": entry.partition,
        "offset": entry.offset,
        "reason": dl.reason,
        "field": dl.field,
        "message": dl.message,
        "stage": dl.stage,
        "origin": dl.origin,
        "topic": dl.topic,
        "original_partition": dl.partition,
        "original_offset": dl.offset,
        "location": dl.location,
        "rejected_at": (
            jsonable(datetime.fromtimestamp(dl.rejected_at_ms / 1000, UTC))
            if dl.rejected_at_ms
            else None
        ),
    }
    if show_payload:
        out["key"] = _bytes_json(dl.key)
        out["payload"] = _bytes_json(dl.payload)
    return out


def reason_counts(entries: Iterable[DeadLetterEntry]) -> dict[str, int]:
    """Dead letters per reason code, most frequent first."""
    return dict(Counter(e.letter.reason for e in entries).most_common())
