"""Decode errors handed back as values keep no traceback, so a bad record in a poll batch does not
put the batch's objects in a reference cycle (left to the cyclic GC: issue 17)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hub.contracts.codec import AvroCodec, DecodeError
from hub.contracts.decode import (
    Rejection,
    case_event_to_avro_dict,
    decode_inbound_many,
    parse_case_event_json,
)
from hub.contracts.events import CaseEvent

CORRUPT = b"\xc3\x01" + b"\x00" * 8  # single-object framing, unknown fingerprint
REGISTRY_FRAMED = b"\x00\x01\x02\x03\x04body"  # registry framing but no registry configured


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _good(codec: AvroCodec) -> bytes:
    event = parse_case_event_json(
        b'{"event_id": "e1", "source": "NCG", "case_id": "c1", "case_type": "DAMAGE",'
        b' "status": "OPENED", "occurred_at": "2024-05-01T10:00:00+02:00",'
        b' "address": {"postcode": "9711AB", "huisnummer": 12}}'
    )
    assert isinstance(event, CaseEvent)
    return codec.encode("CaseEvent", case_event_to_avro_dict(event))


def test_a_decode_error_in_a_batch_carries_reason_and_message_but_no_traceback() -> None:
    codec = AvroCodec()
    good, bad, worse = codec.decode_batch([_good(codec), REGISTRY_FRAMED, b"\xc3\x01" + b"x" * 20])
    assert isinstance(good, dict)
    assert isinstance(bad, DecodeError) and bad.reason == "UNKNOWN_SCHEMA"
    assert "no registry is configured" in bad.message
    assert isinstance(worse, DecodeError) and worse.reason == "UNKNOWN_SCHEMA"
    for error in (bad, worse):
        assert error.__traceback__ is None
        assert error.__context__ is None or error.__context__.__traceback__ is None


def test_a_batch_with_bad_records_is_freed_without_the_cyclic_gc(no_automatic_gc: None) -> None:
    codec = AvroCodec()
    raws = [_good(codec), REGISTRY_FRAMED, CORRUPT, b"", b"{not json", _good(codec)]
    decoded = decode_inbound_many(raws, codec)
    assert [type(d) for d in decoded] == [CaseEvent, *[Rejection] * 4, CaseEvent]
    del decoded
    assert gc.collect() == 0  # nothing was left in a reference cycle
