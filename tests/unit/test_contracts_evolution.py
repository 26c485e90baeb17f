"""Schema evolution as a deployment meets it: several versions of one record in the schema
directory, data from a version the hub does not ship yet, and the release policy per pair."""

from __future__ import annotations

import copy
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hub.contracts.avro import (
    SchemaSet,
    check_compatible,
    default_schema_set,
    load_schema_file,
    schema_dir,
)
from hub.contracts.codec import AvroCodec
from hub.contracts.decode import (
    Rejection,
    RejectReason,
    case_event_to_avro_dict,
    decode_case_event,
    decode_case_events,
    parse_case_event_json,
)
from hub.contracts.events import CaseEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V2_FILE = FIXTURES / "avro_v2" / "CaseEvent.v2.avsc"
_SAMPLE = json.loads((FIXTURES / "contracts" / "samples.json").read_text())["CaseEvent"]


def sample(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_SAMPLE), **changes}


def _event() -> CaseEvent:
    event = parse_case_event_json(sample())
    assert isinstance(event, CaseEvent), event
    return event


def _v1_record() -> dict[str, Any]:
    return case_event_to_avro_dict(_event())


def _v2_record() -> dict[str, Any]:
    return dict(_v1_record(), channel="phone")


@pytest.fixture
def shipped_with_v2(tmp_path: Path) -> SchemaSet:
    """A schema directory as a deployment that shipped CaseEvent.v2 next to v1 would have it."""
    for avsc in schema_dir().glob("*.avsc"):
        shutil.copy(avsc, tmp_path)
    shutil.copy(V2_FILE, tmp_path)
    return SchemaSet.from_dir(tmp_path)


def test_loader_keeps_every_version_of_a_record_and_reads_into_the_newest(
    shipped_with_v2: SchemaSet,
) -> None:
    versions = shipped_with_v2.versions("CaseEvent")
    assert [sv.version for sv in versions] == [1, 2]
    assert shipped_with_v2.current("CaseEvent").version == 2
    for sv in versions:
        assert shipped_with_v2.by_fingerprint(sv.fingerprint) is sv
    v1 = default_schema_set().get("CaseEvent", 1)
    assert shipped_with_v2.get("CaseEvent", 1).fingerprint == v1.fingerprint


def test_v2_writer_record_decodes_with_the_v1_only_reader_when_both_are_loaded() -> None:
    v2 = load_schema_file(V2_FILE)
    reader = AvroCodec(default_schema_set().with_versions([v2], pinned={"CaseEvent": 1}))
    raw = reader.encode_with(v2, _v2_record())
    event = decode_case_event(raw, reader)
    assert isinstance(event, CaseEvent), event
    assert event == _event()


def test_shipping_a_newer_schema_with_an_optional_field_keeps_v1_and_v2_data_valid(
    shipped_with_v2: SchemaSet,
) -> None:
    """The newest schema is the reader, so decoded dicts carry fields the model lacks: the
    Avro path ignores them (Avro resolution), instead of refusing every event."""
    codec = AvroCodec(shipped_with_v2)
    v1_raw = AvroCodec().encode("CaseEvent", _v1_record())
    v2_raw = codec.encode_with(shipped_with_v2.get("CaseEvent", 2), _v2_record())
    assert codec.decode(v2_raw)[1]["channel"] == "phone"
    for result in (decode_case_event(v1_raw, codec), decode_case_event(v2_raw, codec)):
        assert result == _event()
    assert decode_case_events([v1_raw, v2_raw], codec) == [_event(), _event()]


def test_json_still_refuses_a_field_the_model_does_not_know() -> None:
    result = parse_case_event_json(sample(channel="phone"))
    assert isinstance(result, Rejection)
    assert result.reason_code == RejectReason.INVALID_FIELD and result.field == "channel"


def test_data_of_a_version_not_shipped_is_unknown_schema_until_its_avsc_ships(
    shipped_with_v2: SchemaSet,
) -> None:
    raw = AvroCodec(shipped_with_v2).encode_with(shipped_with_v2.get("CaseEvent", 2), _v2_record())
    before = decode_case_event(raw, AvroCodec())
    assert isinstance(before, Rejection)
    assert (before.reason_code, before.stage) == (RejectReason.UNKNOWN_SCHEMA, "decode")
    assert "hub dlq replay --reason UNKNOWN_SCHEMA" in before.message
    assert decode_case_event(raw, AvroCodec(shipped_with_v2)) == _event()


def _consecutive_pairs(schemas: SchemaSet) -> list[tuple[Any, Any]]:
    pairs = []
    for name in schemas.names:
        versions = schemas.versions(name)
        pairs.extend(itertools.pairwise(versions))
    return pairs


def test_every_released_version_reads_data_of_the_previous_version_of_its_record() -> None:
    """BACKWARD per consecutive pair in schemas/avro (check_release also demands FORWARD)."""
    shipped = SchemaSet.from_dir(schema_dir())
    problems = [
        f"{new.name} v{new.version} <- v{old.version}: {p}"
        for old, new in _consecutive_pairs(shipped)
        for p in check_compatible(old, new)
    ]
    assert problems == []


def test_the_pairwise_check_sees_the_versions_in_a_directory(shipped_with_v2: SchemaSet) -> None:
    """Guards the test above against passing vacuously when a directory holds two versions."""
    pairs = [(a.version, b.version) for a, b in _consecutive_pairs(shipped_with_v2)]
    assert (1, 2) in pairs
    bad = load_schema_file(V2_FILE.parents[1] / "avro_incompatible" / "CaseEvent.v2.avsc")
    assert check_compatible(default_schema_set().get("CaseEvent", 1), bad) != []
