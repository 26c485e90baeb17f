"""The generated Avro writers write exactly fastavro's bytes, and leave what they cannot to it."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.contracts.avro import default_schema_set
from hub.contracts.avro_writer import compile_writer, record_fields
from hub.contracts.codec import AvroCodec, EncodeError, InMemorySchemaRegistry

_LONG = st.integers(-(1 << 63), (1 << 63) - 1)
_SMALL = st.integers(-200, 200)  # both sides of the one-byte zig-zag fast path

ALL_TYPES = parse_schema(
    {
        "type": "record",
        "name": "Everything",
        "namespace": "test",
        "fields": [
            {"name": "b", "type": "boolean"},
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "s", "type": "string"},
            {"name": "raw", "type": "bytes"},
            {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
            {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
            {"name": "opt", "type": ["null", "string"], "default": None},
            {"name": "m", "type": {"type": "map", "values": ["null", "long"]}},
            {
                "name": "items",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Item",
                        "fields": [
                            {
                                "name": "at",
                                "type": {"type": "long", "logicalType": "timestamp-millis"},
                            },
                            {"name": "colour", "type": "Colour"},
                        ],
                    },
                },
            },
            {"name": "again", "type": ["null", "Item"], "default": None},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        ],
    }
)


def _strategy(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid values of ``schema`` (a parsed schema), edge cases included."""
    if isinstance(schema, str):
        simple: dict[str, st.SearchStrategy[Any]] = {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.one_of(_SMALL, st.integers(-(1 << 31), (1 << 31) - 1)),
            "long": st.one_of(_SMALL, _LONG),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "string": st.text(max_size=90),  # both sides of the one-byte length
            "bytes": st.binary(max_size=90),
        }
        return simple[schema] if schema in simple else _strategy(named[schema], named)
    if isinstance(schema, list):
        return st.one_of(*(_strategy(branch, named) for branch in schema))
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "timestamp-millis":
        moments = st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        )
        return st.one_of(st.integers(0, 1 << 42), _SMALL, moments)
    if logical == "date":
        return st.one_of(st.integers(-1000, 100_000), st.dates())
    if kind == "record":
        return st.fixed_dictionaries(
            {f["name"]: _strategy(f["type"], named) for f in schema["fields"]}
        )
    if kind == "array":
        return st.lists(_strategy(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=70), _strategy(schema["values"], named), max_size=3)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    return _strategy(kind, named)


def _fastavro(schema: dict[str, Any], record: Any) -> bytes:
    out = BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


def _generated(schema: dict[str, Any], record: Any) -> bytes:
    writer = compile_writer(schema)
    assert writer is not None
    out = bytearray()
    writer(out, record)
    return bytes(out)


def _records(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _strategy(schema, dict(schema["__named_schemas"]))


_SCHEMAS = default_schema_set()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_generated_writer_writes_fastavros_bytes_for_every_type(data: st.DataObject) -> None:
    record = data.draw(_records(ALL_TYPES))
    assert _generated(ALL_TYPES, record) == _fastavro(ALL_TYPES, record)


@pytest.mark.parametrize("name", ["AddressDossier", "Alert"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_generated_writer_writes_fastavros_bytes_for_the_published_records(
    name: str, data: st.DataObject
) -> None:
    schema = _SCHEMAS.current(name).parsed
    record = data.draw(_records(schema))
    assert _generated(schema, record) == _fastavro(schema, record)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 127, 128, 8191, 8192, 20_000])
def test_lengths_and_numbers_at_the_varint_boundaries_match_fastavro(size: int) -> None:
    numbers = [size, -size, size - 1, -size - 1, (1 << 63) - 1 - size, -(1 << 63) + size]
    for n in numbers:
        record = {
            "b": True,
            "i": max(min(n, (1 << 31) - 1), -(1 << 31)),
            "l": n,
            "f": 0.5,
            "d": -1.25,
            "s": "x" * size,
            "raw": b"\x00" * size,
            "e": "GREEN",
            "fx": b"abcd",
            "opt": "é" * (size // 2),
            "m": {"k" * size: n, "": None},
            "items": [{"at": abs(n), "colour": "RED"}] * (size % 5),
            "again": None,
            "day": size,
        }
        assert _generated(ALL_TYPES, record) == _fastavro(ALL_TYPES, record), n


def test_a_missing_field_with_a_default_is_written_as_the_default() -> None:
    record = {"address_key": "9711AB-1-", "fingerprint": "x"}
    schema = _SCHEMAS.current("Alert").parsed
    full = {f["name"]: f.get("default") for f in schema["fields"]}
    full.update(
        fingerprint="fp",
        kind="K",
        category="ALERT",
        status="FIRING",
        version=3,
        steering_group="G",
        cases=[],
        event_ids=["e"],
        detail={},
        config_version="1",
        starts_at=1,
        emitted_at=2,
    )
    del full["address_key"]  # optional with a null default: left out of the record
    assert _generated(schema, full) == _fastavro(schema, full)
    assert record  # the record itself is untouched


def test_schemas_with_other_unions_are_left_to_fastavro() -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "U",
            "fields": [{"name": "v", "type": ["null", "int", "string"]}],
        }
    )
    assert compile_writer(schema) is None
    codec_schema = _SCHEMAS.current("CaseEvent").parsed  # huisnummer is int or string
    assert compile_writer(codec_schema) is None


def test_a_value_of_the_wrong_type_is_an_encode_error() -> None:
    codec = AvroCodec()
    alert = {
        "fingerprint": "fp",
        "kind": "K",
        "category": "ALERT",
        "status": "FIRING",
        "version": "three",  # not a long
        "steering_group": "G",
        "cases": [],
        "event_ids": [],
        "detail": {},
        "config_version": "1",
        "starts_at": 1,
        "emitted_at": 2,
    }
    with pytest.raises(EncodeError):
        codec.encode("Alert", alert)
    with pytest.raises(EncodeError):
        codec.encode("Alert", dict(alert, version=1 << 64))  # does not fit a long
    with pytest.raises(EncodeError):
        codec.encode("Alert", dict(alert, version=1, kind=7))  # not a string


def _as_rows(schema: Any, named: dict[str, Any], value: Any) -> Any:
    """A record (mapping) of ``schema`` as the positional writer takes it: nested tuples."""
    if isinstance(schema, str):
        return _as_rows(named[schema], named, value) if schema in named else value
    if isinstance(schema, list):  # [null, X]: None or X
        return None if value is None else _as_rows(schema[1], named, value)
    kind = schema["type"]
    if kind == "record":
        return tuple(_as_rows(f["type"], named, value[f["name"]]) for f in schema["fields"])
    if kind == "array":
        return [_as_rows(schema["items"], named, v) for v in value]
    if kind == "map":
        return {k: _as_rows(schema["values"], named, v) for k, v in value.items()}
    return value


def _positional(schema: dict[str, Any], record: Any) -> bytes:
    writer = compile_writer(schema, positional=True)
    assert writer is not None
    out = bytearray()
    writer(out, _as_rows(schema, dict(schema["__named_schemas"]), record))
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_positional_writer_writes_fastavros_bytes_for_every_type(data: st.DataObject) -> None:
    record = data.draw(_records(ALL_TYPES))
    assert _positional(ALL_TYPES, record) == _fastavro(ALL_TYPES, record)


@pytest.mark.parametrize("name", ["AddressDossier", "Alert"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_positional_writer_writes_fastavros_bytes_for_the_published_records(
    name: str, data: st.DataObject
) -> None:
    schema = _SCHEMAS.current(name).parsed
    record = data.draw(_records(schema))
    assert _positional(schema, record) == _fastavro(schema, record)


def test_record_fields_lists_every_record_of_a_schema_in_field_order() -> None:
    fields = record_fields(_SCHEMAS.current("AddressDossier").parsed)
    assert set(fields) == {"AddressDossier", "DossierCase", "LeadRef"}
    assert fields["LeadRef"] == ("source", "case_id")
    assert fields["AddressDossier"][:2] == ("address_key", "nummeraanduiding_ids")
    assert record_fields(ALL_TYPES)["Item"] == ("at", "colour")


def _leadref_layout() -> dict[str, tuple[str, ...]]:
    return record_fields(_SCHEMAS.current("AddressDossier").parsed)


def test_row_encoder_writes_what_encode_writes_in_the_codecs_framing() -> None:
    schema = _SCHEMAS.current("AddressDossier").parsed
    record = {
        "address_key": "9711AB-12-",
        "nummeraanduiding_ids": ["0014200000123456"],
        "pand_ids": [],
        "gemeentecode": "GM0014",
        "steering_group": "G",
        "cases": [
            {
                "source": "NCG",
                "case_id": "c1",
                "case_type": "DAMAGE",
                "status": "OPENED",
                "active": True,
                "occurred_at": 1_767_225_600_123,
                "planned_start": None,
                "planned_end": "2027-01-02",
                "contact_role": None,
                "contact_name": "Siën Ströer",
                "contact_phone": None,
                "contact_email": None,
                "amount_eur": "12.50",
                "last_event_id": "e" * 70,
            }
        ],
        "lead": {"source": "NCG", "case_id": "c1"},
        "version": 70,
        "updated_at": 1_767_225_600_123,
    }
    rows = _as_rows(schema, dict(schema["__named_schemas"]), record)
    single, registry = AvroCodec(), AvroCodec(registry=InMemorySchemaRegistry())
    for codec in (single, registry):
        by_row = codec.row_encoder("AddressDossier", _leadref_layout())
        assert by_row is not None
        assert by_row(rows) == codec.encode("AddressDossier", record)
    assert single.decode(single.row_encoder("AddressDossier", _leadref_layout())(rows))[1]["cases"][
        0
    ]["contact_name"] == ("Siën Ströer")


def test_row_encoder_declines_a_layout_that_is_not_the_schemas() -> None:
    codec = AvroCodec()
    layout = _leadref_layout()
    assert codec.row_encoder("AddressDossier", dict(layout, LeadRef=("case_id", "source"))) is None
    assert codec.row_encoder("AddressDossier", {"AddressDossier": layout["AddressDossier"]}) is None
    assert codec.row_encoder("NoSuchRecord", layout) is None
    assert (
        codec.row_encoder("CaseEvent", record_fields(_SCHEMAS.current("CaseEvent").parsed)) is None
    )


def test_a_row_of_the_wrong_shape_is_an_encode_error() -> None:
    by_row = AvroCodec().row_encoder("AddressDossier", _leadref_layout())
    assert by_row is not None
    row = ("k", (), (), None, "G", [], None, 1, 2)
    assert by_row(row)
    with pytest.raises(EncodeError):
        by_row(row[:-1])  # a field short
    with pytest.raises(EncodeError):
        by_row((*row, 3))  # a field too many
    with pytest.raises(EncodeError):
        by_row(("k", (), (), None, "G", [("NCG", "c")], None, 1, 2))  # a short case row
