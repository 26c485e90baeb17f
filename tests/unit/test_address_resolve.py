"""The Ingestor: resolution, building-level fan-out, parking and release, field mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.address.register import CSV_COLUMNS, AddressRegister, nummeraanduiding_fact, pand_fact
from hub.address.resolve import Ingestor, occurred_at_ms
from hub.contracts.events import CaseEvent
from hub.contracts.normalised import NormalisedEvent

PAND = "0014100000000001"
PAND_2 = "0014100000000002"
NID_1 = "0014200000000001"
NID_2 = "0014200000000002"
NID_3 = "0014200000000003"

_seq = iter(range(1_000_000))


def event(
    address: dict[str, Any],
    *,
    source: str = "IMG",
    case_id: str = "c-1",
    case_type: str = "DAMAGE",
    status: str = "OPENED",
    occurred_at: str = "2024-05-01T10:00:00+02:00",
    **extra: Any,
) -> CaseEvent:
    return CaseEvent.model_validate(
        {
            "event_id": f"e-{next(_seq)}",
            "source": source,
            "case_id": case_id,
            "case_type": case_type,
            "status": status,
            "occurred_at": occurred_at,
            "address": address,
            **extra,
        }
    )


def ncg_pand_case(
    status: str = "OPENED", occurred_at: str = "2024-05-01T10:00:00+02:00"
) -> CaseEvent:
    return event(
        {"pand_id": PAND},
        source="NCG",
        case_id="ncg-9",
        case_type="STRENGTHENING",
        status=status,
        occurred_at=occurred_at,
    )


def keys(events: list[NormalisedEvent]) -> list[str]:
    return sorted(e.address_key for e in events)


@pytest.fixture
def ing() -> Ingestor:
    return Ingestor()


def test_postcode_and_number_give_the_key_and_teach_the_register(ing: Ingestor) -> None:
    res = ing.ingest(
        event(
            {
                "postcode": "9711 ab",
                "huisnummer": "12a-2",
                "nummeraanduiding_id": NID_1,
                "pand_id": PAND,
                "gemeentecode": "GM0014",
            }
        ),
        5,
    )
    assert res.error is None and res.parked == [] and res.released == []
    assert keys(res.normalised) == ["9711AB-12A-2"]
    assert {f["fact"] for f in res.learned} == {"nummeraanduiding", "pand", "gemeente"}
    assert ing.register.key_for_id(NID_1) == "9711AB-12A-2"
    assert ing.register.keys_in_building(PAND) == ("9711AB-12A-2",)


def test_normalised_fields() -> None:
    ing = Ingestor()
    ev = event(
        {"postcode": "9711AB", "huisnummer": 12, "nummeraanduiding_id": NID_1},
        source_org="IMG Groningen",
        occurred_at="2024-05-01T10:00:00.123+02:00",
        planned_start="2024-06-01",
        planned_end="2024-07-01",
        amount_eur="50000.10",
        contact={
            "name": "A. de Vries",
            "role": "CASE_COUNSELLOR",
            "phone": "050-1",
            "email": "a@x.nl",
        },
        attributes={"route": "expert"},
    )
    [n] = ing.ingest(ev, 1_714_550_400_999).normalised
    assert n.occurred_at_ms == 1_714_550_400_123  # 08:00:00.123 UTC
    assert n.occurred_at_ms == occurred_at_ms(ev.occurred_at)
    assert (n.source, n.case_id, n.case_type, n.status) == ("IMG", "c-1", "DAMAGE", "OPENED")
    assert (n.planned_start, n.planned_end) == ("2024-06-01", "2024-07-01")
    assert n.amount_cents == 5_000_010
    assert (n.contact_name, n.contact_role, n.contact_phone, n.contact_email) == (
        "A. de Vries",
        "CASE_COUNSELLOR",
        "050-1",
        "a@x.nl",
    )
    assert n.source_org == "IMG Groningen" and n.attributes == {"route": "expert"}
    assert n.ingested_at_ms == 1_714_550_400_999
    assert (n.gemeentecode, n.steering_group) == ("GM0014", "GRONINGEN")
    assert n.nummeraanduiding_id == NID_1 and n.pand_id is None
    assert NormalisedEvent.from_dict(n.to_dict()) == n


def test_invalid_address_is_an_error_not_an_exception(ing: Ingestor) -> None:
    # shapes the contract lets through but that cannot be a Dutch address
    res = ing.ingest(event({"postcode": "9711AB", "huisnummer": "12 abcde"}), 1)
    assert res.error is not None and res.error.field == "address.huisnummertoevoeging"
    assert res.normalised == res.parked == res.released == res.learned == []
    res = ing.ingest(event({"postcode": "9711AB", "huisnummer": "12A", "huisletter": "B"}), 1)
    assert res.error is not None and res.error.field == "address.huisletter"
    # an event built without validation (model_construct) is still checked
    raw = event({"postcode": "9711AB", "huisnummer": 12})
    bad = raw.model_copy(update={"address": raw.address.model_copy(update={"postcode": "0711AB"})})
    res = ing.ingest(bad, 1)
    assert res.error is not None and res.error.field == "address.postcode"
    assert str(res.error) == (
        "address.postcode: '0711AB' is not a Dutch postcode: the first digit cannot be 0"
    )


def test_id_only_uses_the_register_or_parks_until_learned(ing: Ingestor) -> None:
    first = event({"nummeraanduiding_id": NID_1}, case_id="img-1")
    res = ing.ingest(first, 1)
    assert res.parked == [first] and res.normalised == []
    assert ing.parked_events() == [first]
    newer = event(
        {"nummeraanduiding_id": NID_1}, case_id="img-1", occurred_at="2024-05-02T10:00:00Z"
    )
    ing.ingest(newer, 2)
    assert ing.parked_events() == [newer]  # latest state per case only

    res = ing.ingest(
        event(
            {"postcode": "9711AB", "huisnummer": 12, "nummeraanduiding_id": NID_1}, case_id="other"
        ),
        3,
    )
    assert keys(res.normalised) == ["9711AB-12"]
    assert [(r.event_id, r.address_key, r.ingested_at_ms) for r in res.released] == [
        (newer.event_id, "9711AB-12", 2)
    ]
    assert ing.parked_events() == []

    res = ing.ingest(event({"nummeraanduiding_id": NID_1}, case_id="img-2"), 4)
    assert keys(res.normalised) == ["9711AB-12"] and res.parked == []


def test_pand_case_reaches_every_known_address_and_addresses_learned_later() -> None:
    ing = Ingestor()
    # the register knows two addresses of the building (e.g. from another worker's facts)
    for n, nid in ((1, NID_1), (2, NID_2)):
        ing.apply_fact(nummeraanduiding_fact(nid, f"9711AB-{n}"))
        assert ing.apply_fact(pand_fact(PAND, f"9711AB-{n}")).released == []

    res = ing.ingest(ncg_pand_case(), 10)
    assert keys(res.normalised) == ["9711AB-1", "9711AB-2"]
    assert {n.nummeraanduiding_id for n in res.normalised} == {NID_1, NID_2}
    assert all(n.pand_id == PAND and n.case_id == "ncg-9" for n in res.normalised)
    assert res.parked == [] and res.released == []

    # a third address joins through an address-level case that names its building: that case
    # stays at its own address, and the NCG building case follows to the new address
    renovation = event(
        {"postcode": "9711AB", "huisnummer": "3", "nummeraanduiding_id": NID_3, "pand_id": PAND},
        source="HOUSING_CORPORATION",
        case_id="hc-1",
        case_type="RENOVATION",
    )
    res = ing.ingest(renovation, 11)
    assert keys(res.normalised) == ["9711AB-3"]
    assert [(r.case_id, r.address_key, r.nummeraanduiding_id) for r in res.released] == [
        ("ncg-9", "9711AB-3", NID_3)
    ]

    # a fourth joins through a fact another worker published: the building case follows
    res = ing.apply_fact(pand_fact(PAND, "9711AB-4"))
    assert [(r.case_id, r.address_key) for r in res.released] == [("ncg-9", "9711AB-4")]
    assert res.learned == []

    # a newer state of the case reaches all four; a later address gets only the latest state
    res = ing.ingest(ncg_pand_case("PLANNED", "2024-06-01T10:00:00Z"), 12)
    assert keys(res.normalised) == ["9711AB-1", "9711AB-2", "9711AB-3", "9711AB-4"]
    ing.ingest(ncg_pand_case("OPENED", "2024-04-01T10:00:00Z"), 13)  # late, out of order
    res = ing.apply_fact(pand_fact(PAND, "9711AB-5"))
    assert [(r.case_id, r.status, r.address_key) for r in res.released] == [
        ("ncg-9", "PLANNED", "9711AB-5")
    ]
    assert [c.status for c in ing.building_cases(PAND) if c.case_id == "ncg-9"] == ["PLANNED"]


def test_pand_case_with_no_known_address_is_parked_until_one_is(ing: Ingestor) -> None:
    """A pand id on an event means the case concerns the building (see docs/addresses.md)."""
    case = ncg_pand_case()
    res = ing.ingest(case, 1)
    assert res.parked == [case] and res.normalised == []
    assert ing.parked_count == 1

    res = ing.ingest(event({"postcode": "9711AB", "huisnummer": 7, "pand_id": PAND}), 2)
    assert keys(res.normalised) == ["9711AB-7"]
    assert [(r.case_id, r.address_key, r.ingested_at_ms) for r in res.released] == [
        ("ncg-9", "9711AB-7", 1)
    ]
    assert ing.parked_events() == []


def test_address_with_a_pand_id_is_an_address_level_case(ing: Ingestor) -> None:
    """The pand id on an address-level event is a register fact, not a reach (issue 13.6)."""
    ing.register.learn("9711AB-1", pand_id=PAND)
    res = ing.ingest(
        event({"postcode": "9711AB", "huisnummer": 2, "pand_id": PAND}, source="NCG", case_id="n"),
        2,
    )
    assert keys(res.normalised) == ["9711AB-2"]  # not the neighbour 9711AB-1
    assert res.normalised[0].pand_id == PAND
    assert res.released == [] and res.building_case is None
    assert pand_fact(PAND, "9711AB-2") in res.learned
    assert ing.register.keys_in_building(PAND) == ("9711AB-1", "9711AB-2")
    assert ing.building_cases(PAND) == []  # nothing for addresses learned later
    assert ing.apply_fact(pand_fact(PAND, "9711AB-3")).released == []


def test_id_and_pand_is_an_address_level_case_parked_on_its_id(ing: Ingestor) -> None:
    ing.register.learn("9711AB-1", pand_id=PAND)
    case = event({"nummeraanduiding_id": NID_3, "pand_id": PAND}, source="NCG", case_id="n")
    res = ing.ingest(case, 1)
    assert res.parked == [case] and res.normalised == []  # not fanned out to 9711AB-1
    assert ing.building_cases(PAND) == []


def test_pand_only_event_is_a_building_case(ing: Ingestor) -> None:
    ing.register.learn("9711AB-1", pand_id=PAND)
    ing.register.learn("9711AB-2", pand_id=PAND)
    res = ing.ingest(ncg_pand_case(), 1)
    assert keys(res.normalised) == ["9711AB-1", "9711AB-2"]
    assert res.building_case is not None and res.building_case.address_key == ""
    assert ing.building_cases(PAND) == [res.building_case]


def test_remember_skips_address_level_templates_of_older_versions() -> None:
    ing = Ingestor()
    legacy = NormalisedEvent(
        "e1", "IMG", "img-1", "DAMAGE", "OPENED", 1, "9711AB-1", pand_id=PAND
    )  # an address-level event that an older version remembered as a building case
    ing.remember([legacy])
    assert ing.building_cases(PAND) == []
    assert ing.apply_fact(pand_fact(PAND, "9711AB-2")).released == []


def test_unknown_id_in_a_building_is_linked_once_its_key_is_known(ing: Ingestor) -> None:
    case = event({"nummeraanduiding_id": NID_3, "pand_id": PAND}, source="NCG", case_id="n")
    assert ing.ingest(case, 1).parked == [case]
    # the id's key becomes known from an event that does not mention the building
    res = ing.ingest(
        event({"postcode": "9711AB", "huisnummer": 3, "nummeraanduiding_id": NID_3}), 2
    )
    assert pand_fact(PAND, "9711AB-3") in res.learned
    assert [(r.case_id, r.address_key, r.nummeraanduiding_id) for r in res.released] == [
        ("n", "9711AB-3", NID_3)
    ]
    assert ing.register.keys_in_building(PAND) == ("9711AB-3",)
    assert ing.parked_events() == []


def test_facts_of_one_worker_release_parked_events_of_another() -> None:
    a, b = Ingestor(), Ingestor()
    parked = event({"nummeraanduiding_id": NID_1})
    assert b.ingest(parked, 1).parked == [parked]
    learned = a.ingest(
        event(
            {"postcode": "9711AB", "huisnummer": 12, "nummeraanduiding_id": NID_1, "pand_id": PAND}
        ),
        2,
    ).learned
    released = [r for fact in learned for r in b.apply_fact(fact).released]
    assert [(r.event_id, r.address_key) for r in released] == [(parked.event_id, "9711AB-12")]
    assert b.register.keys_in_building(PAND) == ("9711AB-12",)


def test_replay_parked_after_a_csv_seed(tmp_path: Path) -> None:
    ing = Ingestor()
    waiting = event({"nummeraanduiding_id": NID_1})
    building = ncg_pand_case()
    stranger = event({"nummeraanduiding_id": NID_3}, case_id="c-3")
    for e in (waiting, building, stranger):
        ing.ingest(e, 1)
    assert ing.parked_count == 3
    csv = tmp_path / "bag.csv"
    csv.write_text(
        ",".join(CSV_COLUMNS) + f"\n{NID_1},9711AB,12,,,{PAND},0003\n{NID_2},9711AB,14,,,{PAND},\n",
        encoding="utf-8",
    )
    report, res = ing.seed_csv(csv)
    assert report.loaded == 2
    assert sorted((r.case_id, r.address_key) for r in res.released) == [
        ("c-1", "9711AB-12"),
        ("ncg-9", "9711AB-12"),
        ("ncg-9", "9711AB-14"),
    ]
    assert res.parked == [stranger] and ing.parked_events() == [stranger]
    # seeded gemeentecode 0003 (Appingedam) is stored as the current code
    assert ing.register.municipality_of("9711AB-12") == "GM1979"


@pytest.mark.parametrize(
    ("address", "code", "group"),
    [
        # a nummeraanduiding created in Appingedam (0003) belongs to Eemsdelta
        (
            {"postcode": "9901AA", "huisnummer": 1, "nummeraanduiding_id": "0003200000123456"},
            "GM1979",
            "EEMSDELTA",
        ),
        # the event's own gemeentecode wins, old codes mapped through the merger table
        ({"postcode": "9751AA", "huisnummer": 1, "gemeentecode": "GM0017"}, "GM0014", "GRONINGEN"),
        (
            {
                "postcode": "9751AA",
                "huisnummer": 1,
                "nummeraanduiding_id": "0003200000123456",
                "gemeentecode": "GM0014",
            },
            "GM0014",
            "GRONINGEN",
        ),
        # pand prefix when there is nothing else
        (
            {"postcode": "9601AA", "huisnummer": 1, "pand_id": "0018100000000001"},
            "GM1952",
            "MIDDEN_GRONINGEN",
        ),
        # no municipality at all: still processed, unassigned
        ({"postcode": "9711AB", "huisnummer": 1}, None, "UNASSIGNED"),
        ({"postcode": "1011AA", "huisnummer": 1, "gemeentecode": "GM0363"}, "GM0363", "UNASSIGNED"),
        ({"postcode": "9401AA", "huisnummer": 1, "gemeentecode": "GM0106"}, "GM0106", "REGIONAL"),
    ],
)
def test_steering_group_of_normalised_events(
    address: dict[str, Any], code: str | None, group: str
) -> None:
    [n] = Ingestor().ingest(event(address), 1).normalised
    assert (n.gemeentecode, n.steering_group) == (code, group)


def test_register_municipality_beats_id_prefix() -> None:
    reg = AddressRegister()
    reg.learn("9901AA-1", gemeentecode="GM1966")
    ing = Ingestor(register=reg)
    [n] = ing.ingest(
        event({"postcode": "9901AA", "huisnummer": 1, "nummeraanduiding_id": "0003200000123456"}), 1
    ).normalised
    assert (n.gemeentecode, n.steering_group) == ("GM1966", "HET_HOGELAND")


def test_id_only_event_of_a_merged_municipality_routes_to_eemsdelta() -> None:
    ing = Ingestor()
    ing.register.learn("9901AA-1", nummeraanduiding_id="0003200000123456")
    [n] = ing.ingest(event({"nummeraanduiding_id": "0003200000123456"}), 1).normalised
    assert (n.address_key, n.gemeentecode, n.steering_group) == ("9901AA-1", "GM1979", "EEMSDELTA")


def test_building_fan_out_takes_each_address_municipality(ing: Ingestor) -> None:
    ing.register.learn("9711AB-1", nummeraanduiding_id="0017200000000001", pand_id=PAND)
    ing.register.learn("9711AB-2", pand_id=PAND)
    res = ing.ingest(ncg_pand_case(), 1)
    by_key = {n.address_key: (n.gemeentecode, n.nummeraanduiding_id) for n in res.normalised}
    assert by_key == {
        "9711AB-1": ("GM0014", "0017200000000001"),  # Haren id -> Groningen
        "9711AB-2": ("GM0014", None),  # falls back to the pand prefix
    }


def test_building_memory_survives_a_restart_through_remember() -> None:
    first = Ingestor()
    first.ingest(ncg_pand_case(), 1)
    saved = [NormalisedEvent.from_dict(t.to_dict()) for t in first.iter_building_cases()]
    second = Ingestor()
    second.remember(saved)
    res = second.ingest(event({"postcode": "9711AB", "huisnummer": 8, "pand_id": PAND}), 2)
    assert [(r.case_id, r.address_key) for r in res.released] == [("ncg-9", "9711AB-8")]


def test_dwelling_spanning_two_buildings_receives_both_building_cases(ing: Ingestor) -> None:
    ing.ingest(ncg_pand_case(), 1)
    other = event(
        {"pand_id": PAND_2}, source="HOUSING_CORPORATION", case_id="hc", case_type="RENOVATION"
    )
    ing.ingest(other, 1)
    ing.register.learn("9711AB-9", pand_id=PAND)  # learned without release: no emission
    res = ing.ingest(event({"postcode": "9711AB", "huisnummer": 9, "pand_id": PAND_2}), 2)
    assert keys(res.normalised) == ["9711AB-9"]
    assert [(r.case_id, r.address_key) for r in res.released] == [("hc", "9711AB-9")]


_NIDS = [NID_1, NID_2, NID_3]
_PANDS = [PAND, PAND_2]
_ADDRESSES = [
    *({"nummeraanduiding_id": nid} for nid in _NIDS),
    *({"pand_id": pand} for pand in _PANDS),
    *({"nummeraanduiding_id": nid, "pand_id": pand} for nid in _NIDS for pand in _PANDS),
    *({"postcode": "9711AB", "huisnummer": n, "pand_id": PAND} for n in (1, 2)),
    {"postcode": "9711AB", "huisnummer": 3, "nummeraanduiding_id": NID_2},
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("event"),
                st.sampled_from(range(len(_ADDRESSES))),
                st.sampled_from(["c-1", "c-2", "c-3"]),
                st.integers(1, 28),
            ),
            st.tuples(
                st.just("fact"),
                st.sampled_from(_NIDS + _PANDS),
                st.sampled_from(["9711AB-20", "9711AB-21"]),
                st.just(0),
            ),
            st.tuples(st.just("replay"), st.just(0), st.just(""), st.just(0)),
        ),
        max_size=25,
    )
)
def test_parked_count_is_the_number_of_parked_events(
    steps: list[tuple[str, Any, str, int]],
) -> None:
    """The count kept as events park and leave equals the parked events, after every step."""
    ing = Ingestor()
    for kind, what, case_id, day in steps:
        if kind == "event":
            address = _ADDRESSES[what]
            at = f"2024-05-{day:02d}T10:00:00Z"
            ing.ingest(event(address, case_id=case_id, occurred_at=at), day)
        elif kind == "fact":
            fact = (
                nummeraanduiding_fact(what, case_id) if what in _NIDS else pand_fact(what, case_id)
            )
            ing.apply_fact(fact)
        else:
            ing.replay_parked()
        assert ing.parked_count == len(ing.parked_events())


def test_remembered_building_cases_share_their_repeated_strings() -> None:
    """Building cases stay in memory for good (issue 17, memory): each decoded event holds its
    own copy of its source, type, status, organisation, attribute names and values; the
    remembered templates share one copy, and stay equal to the events they came from."""
    ing = Ingestor()
    ing.register.learn("9711AB-1", pand_id=PAND)
    ing.register.learn("9711AB-2", pand_id=PAND_2)
    results = [
        ing.ingest(
            event(
                {"pand_id": pand},
                source="NCG",
                case_id=f"ncg-{n}",
                case_type="STRENGTHENING",
                source_org="".join(["Nationaal Coördinator ", "Groningen"]),  # distinct objects
                attributes={"".join(["program", "ma"]): "".join(["verster", "king"])},
            ),
            n,
        )
        for n, pand in enumerate((PAND, PAND_2))
    ]
    (first,), (second,) = ing.building_cases(PAND), ing.building_cases(PAND_2)
    assert [first, second] == [r.building_case for r in results]
    assert keys(ing.apply_fact(pand_fact(PAND, "9711AB-3")).released) == ["9711AB-3"]
    for name in ("source", "case_type", "status", "source_org", "gemeentecode", "steering_group"):
        assert getattr(first, name) is getattr(second, name), name
    ((name_1, value_1),), ((name_2, value_2),) = first.attributes.items(), second.attributes.items()
    assert name_1 is name_2 and value_1 is value_2
