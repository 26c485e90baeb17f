"""The address register: learning, facts, CSV seeding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.address.register import (
    CSV_COLUMNS,
    AddressRegister,
    fact_key,
    gemeente_fact,
    nummeraanduiding_fact,
    pand_fact,
)

NID_1 = "0014200000000001"
NID_2 = "0014200000000002"
PAND_1 = "0014100000000001"
PAND_2 = "0014100000000002"


def test_learn_returns_only_new_facts() -> None:
    reg = AddressRegister()
    facts = reg.learn("9711AB-12", nummeraanduiding_id=NID_1, pand_id=PAND_1, gemeentecode="GM0014")
    assert facts == [
        nummeraanduiding_fact(NID_1, "9711AB-12"),
        pand_fact(PAND_1, "9711AB-12"),
        gemeente_fact("9711AB-12", "GM0014"),
    ]
    assert reg.learn("9711AB-12", nummeraanduiding_id=NID_1, pand_id=PAND_1) == []
    assert reg.learn("9711AB-12") == []
    assert reg.key_for_id(NID_1) == "9711AB-12"
    assert reg.ids_of("9711AB-12") == (NID_1,)
    assert reg.keys_in_building(PAND_1) == ("9711AB-12",)
    assert reg.buildings_of("9711AB-12") == (PAND_1,)
    assert reg.municipality_of("9711AB-12") == "GM0014"
    assert "9711AB-12" in reg and len(reg) == 1


def test_unknowns_are_empty() -> None:
    reg = AddressRegister()
    assert reg.key_for_id(NID_1) is None
    assert reg.keys_in_building(PAND_1) == ()
    assert reg.buildings_of("9711AB-12") == ()
    assert reg.municipality_of("9711AB-12") is None
    assert reg.ids_of("9711AB-12") == ()


def test_building_with_many_addresses_and_dwelling_spanning_buildings() -> None:
    reg = AddressRegister()
    for n in range(1, 4):
        reg.learn(f"9711AB-{n}", pand_id=PAND_1)
    facts = reg.learn("9711AB-3", pand_id=PAND_2)  # address 3 spans two buildings
    assert facts == [pand_fact(PAND_2, "9711AB-3")]
    assert reg.keys_in_building(PAND_1) == ("9711AB-1", "9711AB-2", "9711AB-3")
    assert reg.keys_in_building(PAND_2) == ("9711AB-3",)
    assert reg.buildings_of("9711AB-3") == (PAND_1, PAND_2)
    assert reg.building_count == 2


def test_id_moving_to_another_key_and_municipality_last_writer_wins() -> None:
    reg = AddressRegister()
    reg.learn("9711AB-12", nummeraanduiding_id=NID_1, gemeentecode="GM0017")
    assert reg.learn("9711AC-12", nummeraanduiding_id=NID_1) == [
        nummeraanduiding_fact(NID_1, "9711AC-12")
    ]
    assert reg.key_for_id(NID_1) == "9711AC-12"
    assert reg.ids_of("9711AB-12") == ()
    assert reg.learn("9711AB-12", gemeentecode="GM0014") == [gemeente_fact("9711AB-12", "GM0014")]
    assert reg.municipality_of("9711AB-12") == "GM0014"


def test_facts_rebuild_the_register_through_json() -> None:
    reg = AddressRegister()
    reg.learn("9711AB-12", nummeraanduiding_id=NID_1, pand_id=PAND_1, gemeentecode="GM0014")
    reg.learn("9711AB-12A-2", nummeraanduiding_id=NID_2, pand_id=PAND_1)
    reg.learn("9711AB-12A-2", pand_id=PAND_2)
    wire = [json.loads(json.dumps(f)) for f in reg.iter_facts()]
    copy = AddressRegister()
    applied = [f for fact in wire for f in copy.apply_fact(fact)]
    assert applied == wire
    assert [copy.apply_fact(f) for f in wire] == [[] for _ in wire]  # idempotent
    for key in ("9711AB-12", "9711AB-12A-2"):
        assert copy.to_facts(key) == reg.to_facts(key)
    assert copy.keys_in_building(PAND_1) == reg.keys_in_building(PAND_1)


def test_fact_keys_for_compaction() -> None:
    assert fact_key(nummeraanduiding_fact(NID_1, "9711AB-12")) == f"nummeraanduiding:{NID_1}"
    assert fact_key(pand_fact(PAND_1, "9711AB-12")) == f"pand:{PAND_1}:9711AB-12"
    assert fact_key(gemeente_fact("9711AB-12", "GM0014")) == "gemeente:9711AB-12"


@pytest.mark.parametrize(
    "fact",
    [
        {"fact": "nummeraanduiding", "nummeraanduiding_id": NID_1},
        {"fact": "pand", "pand_id": NID_1, "address_key": "9711AB-12"},  # wrong type code
        {"fact": "gemeente", "address_key": "9711ab-12", "gemeentecode": "GM0014"},
        {"fact": "gemeente", "address_key": "9711AB-12", "gemeentecode": "Groningen"},
        {"address_key": "9711AB-12"},
    ],
)
def test_malformed_facts_raise(fact: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        AddressRegister().apply_fact(fact)


def test_unknown_fact_kind_is_ignored() -> None:
    reg = AddressRegister()
    assert reg.apply_fact({"fact": "verblijfsobject", "address_key": "9711AB-12"}) == []
    assert len(reg) == 0


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_seed_reports_bad_rows_with_line_numbers_and_keeps_going(tmp_path: Path) -> None:
    csv_path = _write(
        tmp_path / "bag.csv",
        [
            ",".join(CSV_COLUMNS),
            f"{NID_1},9711 ab,12,a,,{PAND_1},GM0014",
            "0014200000000003,0711AB,5,,,,GM0014",  # line 3: postcode starts with 0
            f"{NID_2},9711AB,14,,2,{PAND_1},0014",
            "",
            "14200000000004,9711AB,16,,,,",  # line 6: id lost its leading zeros
            f"0014200000000005,9711AB,18,,,{PAND_2},",
            "0014200000000006,9711AB,20",  # line 8: too few columns
            f"{NID_2},9711AB,14,,2,{PAND_2},GM0014",  # same dwelling, second building
        ],
    )
    reg = AddressRegister()
    report = reg.load_csv(csv_path)
    assert (report.rows, report.loaded, report.bad_count) == (7, 4, 3)
    assert not report.ok
    assert [(b.line, b.field) for b in report.bad_rows] == [
        (3, "address.postcode"),
        (6, "address.nummeraanduiding_id"),
        (8, "row"),
    ]
    assert reg.key_for_id(NID_1) == "9711AB-12A"
    assert reg.keys_in_building(PAND_1) == ("9711AB-12A", "9711AB-14-2")
    assert reg.buildings_of("9711AB-14-2") == (PAND_1, PAND_2)
    assert reg.municipality_of("9711AB-14-2") == "GM0014"
    assert reg.municipality_of("9711AB-18") is None  # no code in the extract: derived later


def test_csv_semicolons_bom_extra_columns_and_code_mapping(tmp_path: Path) -> None:
    header = ";".join(("woonplaats", *CSV_COLUMNS))
    path = tmp_path / "bag.csv"
    path.write_text(
        "\ufeff" + header + "\n" + "Delfzijl;0010200000000001;9934AA;1;;;0010100000000001;0010\n",
        encoding="utf-8",
    )
    reg = AddressRegister()
    report = reg.load_csv(path, map_gemeentecode=lambda code: {"GM0010": "GM1979"}.get(code, code))
    assert report.ok and report.loaded == 1
    assert reg.municipality_of("9934AA-1") == "GM1979"


def test_csv_missing_column_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "bag.csv", ["nummeraanduiding_id,postcode", f"{NID_1},9711AB"])
    with pytest.raises(ValueError, match="huisnummer"):
        AddressRegister().load_csv(path)
