"""The generated Avro readers read fastavro's values, and never accept what fastavro refuses."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.contracts.avro import default_schema_set
from hub.contracts.avro_reader import compile_reader
from hub.contracts.codec import AvroCodec, DecodeError
from tests.unit.test_avro_writer import ALL_TYPES, _fastavro, _records

_SCHEMAS = default_schema_set()
_PUBLISHED = ["CaseEvent", "AddressDossier", "Alert", "DeadLetter"]


def _fast(schema: dict[str, Any], raw: bytes) -> tuple[Any, int]:
    reader = compile_reader(schema)
    assert reader is not None
    return reader(raw, 0)


def _slow(schema: dict[str, Any], raw: bytes) -> tuple[Any, int]:
    buf = BytesIO(raw)
    return schemaless_reader(buf, schema, None), buf.tell()


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types, all the way down (1 == True == 1.0 is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)  # NaN


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_generated_reader_reads_fastavros_values_for_every_type(data: st.DataObject) -> None:
    raw = _fastavro(ALL_TYPES, data.draw(_records(ALL_TYPES)))
    fast, slow = _fast(ALL_TYPES, raw), _slow(ALL_TYPES, raw)
    assert _same(fast[0], slow[0]) and fast[1] == slow[1] == len(raw)


@pytest.mark.parametrize("name", _PUBLISHED)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_generated_reader_reads_fastavros_values_for_the_hub_records(
    name: str, data: st.DataObject
) -> None:
    schema = _SCHEMAS.current(name).parsed
    raw = _fastavro(schema, data.draw(_records(schema)))
    fast, slow = _fast(schema, raw), _slow(schema, raw)
    assert _same(fast[0], slow[0]) and fast[1] == slow[1] == len(raw)


@pytest.mark.parametrize("name", ["CaseEvent", "AddressDossier"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_corrupted_record_is_read_as_fastavro_reads_it_or_refused(
    name: str, data: st.DataObject
) -> None:
    """Flip, cut or extend the bytes: whatever the generated reader accepts, fastavro reads the
    same; everything else it refuses (the codec then asks fastavro)."""
    schema = _SCHEMAS.current(name).parsed
    raw = bytearray(_fastavro(schema, data.draw(_records(schema))))
    action = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if action == "flip" and raw:
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif action == "cut":
        del raw[data.draw(st.integers(0, len(raw))) :]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=12))
    corrupt = bytes(raw)
    try:
        fast = _fast(schema, corrupt)
    except Exception:
        return  # refused: the codec reads it with fastavro
    slow = _slow(schema, corrupt)
    assert _same(fast[0], slow[0]) and fast[1] == slow[1]


def test_the_codec_uses_the_generated_reader_only_without_resolution() -> None:
    codec = AvroCodec()
    for version in _SCHEMAS:
        plan = codec._fp_plans[version.fingerprint]
        assert (plan.fast is not None) == (plan.reader is None)


def test_errors_of_corrupt_records_are_still_fastavros() -> None:
    codec = AvroCodec()
    event = _fastavro(_SCHEMAS.current("CaseEvent").parsed, _any_case_event())
    framed = b"\xc3\x01" + _SCHEMAS.current("CaseEvent").fingerprint + event
    assert codec.decode(framed)[0] == "CaseEvent"
    with pytest.raises(DecodeError, match=r"CaseEvent: 2 trailing bytes"):
        codec.decode(framed + b"\x00\x00")
    with pytest.raises(DecodeError, match=r"CaseEvent: corrupt Avro body \(EOFError\)"):
        codec.decode(framed[:-3])


def _any_case_event() -> dict[str, Any]:
    return {
        "event_id": "e1",
        "source": "NCG",
        "source_org": None,
        "case_id": "c1",
        "case_type": "DAMAGE",
        "status": "OPENED",
        "occurred_at": 1_700_000_000_000,
        "address": {"postcode": "9711AB", "huisnummer": 12},
        "planned_start": None,
        "planned_end": None,
        "contact": None,
        "amount_eur": None,
        "attributes": {"k": "v"},
    }
