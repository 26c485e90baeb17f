"""The internal batch format: version 2 rows are written, version 1 objects are still read."""

from __future__ import annotations

import orjson
import pytest

from hub.contracts.normalised import NormalisedEvent
from hub.pipeline.batches import FIELDS, BatchFormatError, decode_batch, encode_batches

EVENTS = [
    NormalisedEvent(
        "e1",
        "NCG",
        "c-1",
        "DAMAGE",
        "OPENED",
        1_700_000_000_000,
        "9711AB-12-",
        gemeentecode="GM0014",
        contact_name='Ré "x"\n',
        amount_cents=12_345,
        attributes={"k": "v"},
    ),
    NormalisedEvent("e2", "IMG", "c-2", "STRENGTHENING", "CLOSED", 2, "9711AB-14-A"),
]


def _v2(events: list[NormalisedEvent]) -> dict[str, object]:
    payload = orjson.loads(next(iter(encode_batches(events))))
    assert isinstance(payload, dict)
    return payload


def test_a_batch_is_written_as_positional_rows_and_read_back_equal() -> None:
    payload = _v2(EVENTS)
    assert payload["v"] == 2 and payload["fields"] == list(FIELDS)
    assert payload["events"][1][:3] == ["e2", "IMG", "c-2"]  # type: ignore[index]
    assert decode_batch(orjson.dumps(payload)) == EVENTS


def test_a_version_1_batch_of_objects_is_still_read() -> None:
    legacy = orjson.dumps({"v": 1, "events": EVENTS})
    assert decode_batch(legacy) == EVENTS


def test_rows_with_fields_in_another_order_are_read_by_name() -> None:
    payload = _v2(EVENTS)
    order = list(reversed(FIELDS))
    payload["fields"] = order
    payload["events"] = [[getattr(e, name) for name in order] for e in EVENTS]
    assert decode_batch(orjson.dumps(payload)) == EVENTS


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(events=[row[:-1] for row in p["events"]]),  # a value missing
        lambda p: p.update(
            events=[{str(i): v for i, v in enumerate(row)} for row in p["events"]]
        ),  # not a row
        lambda p: p.update(fields=[*p["fields"], "x"], events=[[*r, 1] for r in p["events"]]),
        lambda p: p.pop("fields"),
        lambda p: p.update(v=3),
    ],
    ids=["short-row", "object-row", "unknown-field", "no-fields", "unknown-version"],
)
def test_a_malformed_version_2_batch_is_unreadable_not_half_read(change: object) -> None:
    payload = _v2(EVENTS)
    change(payload)  # type: ignore[operator]
    with pytest.raises(BatchFormatError):
        decode_batch(orjson.dumps(payload))
