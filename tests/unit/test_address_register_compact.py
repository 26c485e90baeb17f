"""The register's compact layouts behave exactly like the plain layout they replaced (issue 17,
memory): same facts returned, same answers, same snapshot. Two layouts are under test: a common
address (at most one 16-digit id and one 16-digit pand) packed into one int, and every other shape
in an entry with ids as ints and single values bare; an address moves from the first to the
second when it takes a second id or pand or an odd one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.address.register import (
    AddressRegister,
    Fact,
    gemeente_fact,
    nummeraanduiding_fact,
    pand_fact,
)


class PlainRegister:
    """The layout before issue 17 (strings and tuples throughout), kept as the reference."""

    def __init__(self) -> None:
        self.by_key: dict[str, list] = {}  # key -> [ids tuple, pands tuple, gemeentecode]
        self.key_by_id: dict[str, str] = {}
        self.keys_by_pand: dict[str, list[str]] = {}

    def learn(
        self,
        key: str,
        nummeraanduiding_id: str | None = None,
        pand_id: str | None = None,
        gemeentecode: str | None = None,
    ) -> list[Fact]:
        if nummeraanduiding_id is None and pand_id is None and gemeentecode is None:
            return []
        entry = self.by_key.setdefault(key, [(), (), None])
        facts: list[Fact] = []
        if nummeraanduiding_id is not None:
            old = self.key_by_id.get(nummeraanduiding_id)
            if old != key:
                if old is not None:
                    old_entry = self.by_key[old]
                    old_entry[0] = tuple(i for i in old_entry[0] if i != nummeraanduiding_id)
                self.key_by_id[nummeraanduiding_id] = key
                entry[0] = (*entry[0], nummeraanduiding_id)
                facts.append(nummeraanduiding_fact(nummeraanduiding_id, key))
        if pand_id is not None and pand_id not in entry[1]:
            self.keys_by_pand.setdefault(pand_id, []).append(key)
            entry[1] = (*entry[1], pand_id)
            facts.append(pand_fact(pand_id, key))
        if gemeentecode is not None and entry[2] != gemeentecode:
            entry[2] = gemeentecode
            facts.append(gemeente_fact(key, gemeentecode))
        return facts

    def facts(self) -> list[Fact]:
        out: list[Fact] = []
        for key, (ids, pands, gm) in self.by_key.items():
            out.extend(nummeraanduiding_fact(i, key) for i in ids)
            out.extend(pand_fact(p, key) for p in pands)
            if gm is not None:
                out.append(gemeente_fact(key, gm))
        return out


KEYS = [f"9711AB-{n}" for n in range(1, 6)]
# 16-digit ids (held as ints, leading zeros included) and odd ones learn() also accepts as given
NIDS = ["0014200000000001", "0014200000000002", "1234200000000003", "0000000000000000", "42", "x"]
PANDS = ["0014100000000001", "0014100000000002", "9999100000000009", "٠٠١٤١٠٠٠٠٠٠٠٠٠٠١", "p"]
CODES = ["GM0014", "GM0363"]

learn_call = st.tuples(
    st.sampled_from(KEYS),
    st.none() | st.sampled_from(NIDS),
    st.none() | st.sampled_from(PANDS),
    st.none() | st.sampled_from(CODES),
)


# only 16-digit ids, one pand per address mostly: the packed layout, ids moving between keys
packed_call = st.tuples(
    st.sampled_from(KEYS),
    st.none() | st.sampled_from(NIDS[:4]),
    st.none() | st.sampled_from(PANDS[:3]),
    st.none() | st.sampled_from(CODES),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(learn_call, max_size=40))
def test_compact_register_answers_like_the_plain_layout(calls: list[tuple]) -> None:
    _same_as_plain(calls)


@settings(max_examples=300, deadline=None)
@given(st.lists(packed_call, max_size=40))
def test_packed_addresses_answer_like_the_plain_layout(calls: list[tuple]) -> None:
    _same_as_plain(calls)


def _same_as_plain(calls: list[tuple]) -> None:
    compact, plain = AddressRegister(), PlainRegister()
    for key, nid, pand, gm in calls:
        got = compact.learn(key, nummeraanduiding_id=nid, pand_id=pand, gemeentecode=gm)
        assert got == plain.learn(key, nid, pand, gm)
    assert len(compact) == len(plain.by_key)
    assert compact.building_count == len(plain.keys_by_pand)
    for key in KEYS:
        entry = plain.by_key.get(key, [(), (), None])
        assert (key in compact) == (key in plain.by_key)
        assert compact.ids_of(key) == entry[0]
        assert compact.buildings_of(key) == entry[1]
        assert compact.municipality_of(key) == entry[2]
    for nid in NIDS:
        assert compact.key_for_id(nid) == plain.key_by_id.get(nid)
    for pand in PANDS:
        assert compact.keys_in_building(pand) == tuple(plain.keys_by_pand.get(pand, ()))
    assert list(compact.iter_facts()) == plain.facts()
    rebuilt = AddressRegister()
    for fact in compact.iter_facts():
        rebuilt.learn(
            fact["address_key"],
            nummeraanduiding_id=fact.get("nummeraanduiding_id"),
            pand_id=fact.get("pand_id"),
            gemeentecode=fact.get("gemeentecode"),
        )
    assert list(rebuilt.iter_facts()) == list(compact.iter_facts())


def test_ids_keep_their_leading_zeros_and_type() -> None:
    reg = AddressRegister()
    reg.learn("9711AB-1", nummeraanduiding_id="0000000000000007", pand_id="0014100000000001")
    assert reg.ids_of("9711AB-1") == ("0000000000000007",)
    assert reg.buildings_of("9711AB-1") == ("0014100000000001",)
    assert reg.key_for_id("0000000000000007") == "9711AB-1"
    assert reg.key_for_id("7") is None  # the int form is internal: only the id string finds it
    assert all(isinstance(v, str) for f in reg.iter_facts() for v in f.values())


def test_a_common_address_is_one_packed_int_until_it_takes_a_second_id() -> None:
    """The memory claim: an address with one id, one pand and a municipality is held as an int
    (no entry object), and one with two ids as an entry; answers stay the same either way."""
    reg = AddressRegister()
    reg.learn("9711AB-1", nummeraanduiding_id=NIDS[0], pand_id=PANDS[0], gemeentecode="GM0014")
    reg.learn("9711AB-2", nummeraanduiding_id=NIDS[1], pand_id=PANDS[0], gemeentecode="GM0014")
    assert type(reg._by_key["9711AB-1"]) is int  # the layout is the point
    assert reg.learn("9711AB-1", nummeraanduiding_id=NIDS[2]) == [
        nummeraanduiding_fact(NIDS[2], "9711AB-1")
    ]
    assert type(reg._by_key["9711AB-1"]) is not int
    assert reg.ids_of("9711AB-1") == (NIDS[0], NIDS[2])
    assert reg.buildings_of("9711AB-1") == (PANDS[0],)
    assert reg.municipality_of("9711AB-1") == "GM0014"
    assert reg.keys_in_building(PANDS[0]) == ("9711AB-1", "9711AB-2")
    # an id moving away from a packed address leaves it packed, without that id
    assert reg.learn("9711AB-3", nummeraanduiding_id=NIDS[1]) == [
        nummeraanduiding_fact(NIDS[1], "9711AB-3")
    ]
    assert reg.ids_of("9711AB-2") == ()
    assert reg.buildings_of("9711AB-2") == (PANDS[0],)
    assert type(reg._by_key["9711AB-2"]) is int


def test_the_id_and_pand_maps_share_the_registers_key_object() -> None:
    """A key learned in pieces (facts arrive one by one) is held once, not once per map."""
    reg = AddressRegister()
    first = "".join(["9711AB-", "7"])
    reg.learn(first, nummeraanduiding_id=NIDS[0])
    reg.learn("".join(["9711AB-", "7"]), pand_id=PANDS[0])  # an equal, distinct str object
    (held,) = reg.keys_in_building(PANDS[0])
    assert held is first
    assert reg.key_for_id(NIDS[0]) is first
