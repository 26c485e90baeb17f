"""The shipped Avro schemas: loadable, fingerprinted per the spec, releasable, and in step with
the pydantic model and with the record shapes the engine emits."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import pytest

from hub.contracts import enums
from hub.contracts.avro import (
    SchemaSet,
    check_compatible,
    check_release,
    crc64_fingerprint,
    default_schema_set,
    load_schema_file,
    schema_dir,
)
from hub.contracts.events import Address, CaseEvent, Contact

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V1 = default_schema_set().get("CaseEvent", 1)


def _rabin(data: bytes) -> int:
    """CRC-64-AVRO straight from the Avro specification (independent of fastavro)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_every_released_schema_loads_with_namespace_and_matching_file_name() -> None:
    schemas = default_schema_set()
    assert {"CaseEvent", "Alert", "AddressDossier", "DeadLetter"} <= set(schemas.names)
    for sv in schemas:
        assert sv.fullname == f"nl.groningen.hub.{sv.name}"
        assert sv.path is not None and sv.path.name == f"{sv.name}.v{sv.version}.avsc"


def test_schema_dir_is_found_from_the_package_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUB_SCHEMA_DIR", raising=False)
    assert (schema_dir() / "CaseEvent.v1.avsc").is_file()


def test_schema_dir_can_be_overridden_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUB_SCHEMA_DIR", str(tmp_path))
    assert schema_dir() == tmp_path


def test_fingerprint_matches_the_avro_spec_test_vector_for_null() -> None:
    # Avro spec: fingerprint64("null") = 0x63dd24e7cc258f8a, written little endian on the wire.
    assert crc64_fingerprint('"null"') == bytes.fromhex("8a8f25cce724dd63")


@pytest.mark.parametrize("sv", list(default_schema_set()), ids=lambda sv: sv.name)
def test_fingerprint_is_crc64_avro_of_the_canonical_form(sv: Any) -> None:
    expected = _rabin(sv.canonical.encode()).to_bytes(8, "little")
    assert sv.fingerprint == expected


def test_fingerprint_ignores_docs_but_not_fields() -> None:
    raw = json.loads(json.dumps(V1.raw))
    raw["doc"] = "another text"
    assert crc64_fingerprint(raw) == V1.fingerprint
    raw["fields"] = raw["fields"][:-1]
    assert crc64_fingerprint(raw) != V1.fingerprint


def test_shipped_schemas_satisfy_the_release_policy() -> None:
    assert check_release(default_schema_set()) == []


def test_release_policy_rejects_an_incompatible_v2() -> None:
    bad = load_schema_file(FIXTURES / "avro_incompatible" / "CaseEvent.v2.avsc")
    problems = check_release(default_schema_set().with_versions([bad]))
    assert any("case_id" in p and "no default" in p for p in problems), problems


def test_release_policy_accepts_the_compatible_test_v2() -> None:
    v2 = load_schema_file(FIXTURES / "avro_v2" / "CaseEvent.v2.avsc")
    assert check_release(default_schema_set().with_versions([v2])) == []


def test_schema_set_refuses_a_file_whose_record_name_differs(tmp_path: Path) -> None:
    from hub.contracts.avro import SchemaError

    (tmp_path / "Alert.v1.avsc").write_text(json.dumps(V1.raw))
    with pytest.raises(SchemaError, match="named"):
        SchemaSet.from_dir(tmp_path)


# ------------------------------------------------------------- compatibility rules, one by one


def _mutated(mutate: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(V1.raw))
    mutate(raw)
    return raw


def _field(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in raw["fields"] if f["name"] == name)


def test_reader_adding_a_field_without_default_cannot_read_old_data() -> None:
    new = _mutated(lambda r: r["fields"].append({"name": "x", "type": "string"}))
    assert any("x: reader field is missing" in p for p in check_compatible(V1, new))


def test_reader_adding_an_optional_field_can_read_old_data() -> None:
    new = _mutated(
        lambda r: r["fields"].append({"name": "x", "type": ["null", "string"], "default": None})
    )
    assert check_compatible(V1, new) == []


def test_changing_a_field_type_is_incompatible() -> None:
    new = _mutated(lambda r: _field(r, "event_id").update(type="long"))
    assert any("event_id: type changed" in p for p in check_compatible(V1, new))


def test_numeric_promotion_is_compatible_one_way_only() -> None:
    a = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}
    b = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    assert check_compatible(a, b) == []
    assert check_compatible(b, a) != []


def test_dropping_an_enum_symbol_needs_a_reader_default() -> None:
    def drop_decided(r: dict[str, Any]) -> None:
        _field(r, "status")["type"]["symbols"].remove("DECIDED")

    assert any("DECIDED" in p for p in check_compatible(V1, _mutated(drop_decided)))

    def drop_img(r: dict[str, Any]) -> None:
        _field(r, "source")["type"]["symbols"].remove("IMG")

    # Source has a default symbol (UNKNOWN): an old writer's IMG resolves to UNKNOWN.
    assert check_compatible(V1, _mutated(drop_img)) == []


def test_changing_a_logical_type_is_flagged_even_though_bytes_would_resolve() -> None:
    new = _mutated(lambda r: _field(r, "occurred_at").update(type="long"))
    assert any("logical type" in p for p in check_compatible(V1, new))


def test_making_a_required_field_nullable_reads_old_data_but_not_vice_versa() -> None:
    new = _mutated(lambda r: _field(r, "case_id").update(type=["null", "string"], default=None))
    assert check_compatible(V1, new) == []
    assert any("case_id" in p for p in check_compatible(new, V1))


# ------------------------------------------------------------- pydantic model <-> Avro schema


def _avro_fields(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in record["fields"]}


def _is_optional_avro(field: dict[str, Any]) -> bool:
    t = field["type"]
    return isinstance(t, list) and "null" in t


def _is_optional_model(annotation: Any) -> bool:
    return isinstance(annotation, UnionType | typing._UnionGenericAlias) and NoneType in (  # type: ignore[attr-defined]
        typing.get_args(annotation)
    )


def _named(schema: Any, kind: str) -> dict[str, Any]:
    if isinstance(schema, list):
        return next(b for b in schema if isinstance(b, dict) and b.get("type") == kind)
    return schema if isinstance(schema, dict) and schema.get("type") == kind else schema["type"]


@pytest.mark.parametrize(
    ("model", "path"),
    [(CaseEvent, ()), (Address, ("address",)), (Contact, ("contact",))],
    ids=["CaseEvent", "Address", "Contact"],
)
def test_pydantic_model_and_avro_schema_agree_field_by_field(
    model: Any, path: tuple[str, ...]
) -> None:
    record = V1.raw
    for name in path:
        record = _named(_avro_fields(record)[name]["type"], "record")
    avro = _avro_fields(record)
    assert list(avro) == list(model.model_fields), "same field names, same order"
    for name, info in model.model_fields.items():
        required_in_model = info.is_required()
        avro_field = avro[name]
        assert ("default" not in avro_field) == required_in_model, name
        if name != "attributes":  # a map with default {} is optional in both, never null
            assert _is_optional_avro(avro_field) == _is_optional_model(info.annotation), name


@pytest.mark.parametrize(
    ("field", "enum"),
    [
        (("source",), enums.Source),
        (("case_type",), enums.CaseType),
        (("status",), enums.CaseStatus),
        (("contact", "role"), enums.ContactRole),
    ],
)
def test_avro_enum_symbols_equal_the_python_enum(field: tuple[str, ...], enum: Any) -> None:
    record = V1.raw
    for name in field[:-1]:
        record = _named(_avro_fields(record)[name]["type"], "record")
    avro_enum = _named(_avro_fields(record)[field[-1]]["type"], "enum")
    assert avro_enum["symbols"] == [m.value for m in enum]


def test_extensible_enums_have_a_reader_default() -> None:
    source = _named(_avro_fields(V1.raw)["source"]["type"], "enum")
    assert source["default"] == enums.Source.UNKNOWN.value


# ------------------------------------------------------------- outbound records: engine contract

ALERT_FIELDS = {
    "fingerprint": "string",
    "kind": "string",
    "category": "string",
    "status": "string",
    "version": "long",
    "address_key": ["null", "string"],
    "area": ["null", "string"],
    "gemeentecode": ["null", "string"],
    "steering_group": "string",
    "event_ids": {"type": "array", "items": "string"},
    "detail": {"type": "map", "values": "string"},
    "config_version": "string",
    "starts_at": {"type": "long", "logicalType": "timestamp-millis"},
    "ends_at": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
    "emitted_at": {"type": "long", "logicalType": "timestamp-millis"},
    "trigger_event_id": ["null", "string"],
    "trigger_ingested_at": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
}
CASE_REF_FIELDS = [
    "source",
    "case_id",
    "case_type",
    "contact_role",
    "contact_name",
    "contact_phone",
    "contact_email",
]
CASE_SUMMARY_FIELDS = [
    "source",
    "case_id",
    "case_type",
    "status",
    "planned_start",
    "planned_end",
    "amount_eur",
]
DOSSIER_CASE_FIELDS = [
    "source",
    "case_id",
    "case_type",
    "status",
    "active",
    "occurred_at",
    "planned_start",
    "planned_end",
    "contact_role",
    "contact_name",
    "contact_phone",
    "contact_email",
    "amount_eur",
    "last_event_id",
]


def test_alert_schema_has_exactly_the_fields_the_engine_emits() -> None:
    fields = _avro_fields(default_schema_set().current("Alert").raw)
    assert set(fields) == set(ALERT_FIELDS) | {"lead", "cases"}
    for name, avro_type in ALERT_FIELDS.items():
        assert fields[name]["type"] == avro_type, name
    lead = _named(fields["lead"]["type"], "record")
    assert [f["name"] for f in lead["fields"]] == CASE_REF_FIELDS
    summary = fields["cases"]["type"]["items"]
    assert [f["name"] for f in summary["fields"]] == CASE_SUMMARY_FIELDS


def test_dossier_schema_has_exactly_the_fields_the_engine_emits() -> None:
    fields = _avro_fields(default_schema_set().current("AddressDossier").raw)
    assert list(fields) == [
        "address_key",
        "nummeraanduiding_ids",
        "pand_ids",
        "gemeentecode",
        "steering_group",
        "cases",
        "lead",
        "version",
        "updated_at",
    ]
    case = fields["cases"]["type"]["items"]
    assert [f["name"] for f in case["fields"]] == DOSSIER_CASE_FIELDS
    lead = _named(fields["lead"]["type"], "record")
    assert [f["name"] for f in lead["fields"]] == ["source", "case_id"]
