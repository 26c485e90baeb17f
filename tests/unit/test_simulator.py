"""The traffic simulator: determinism, contract validity, planted ground truth, speed.

The ground-truth test resolves every valid event with the real ``hub.address.resolve.Ingestor``
(so the address forms the simulator emits are the ones the hub understands) and evaluates the
default rules on the final case states with a small independent oracle written here.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from connectors.simulator import (
    CONTRACT_REASONS,
    SAMENLOOP_MUNICIPALITIES,
    MalformedReason,
    Manifest,
    Shares,
    Simulation,
    municipality_of_postcode,
    run_simulate_cli,
    simulate,
    write_jsonl,
    write_register_csv,
)
from hub.address.municipalities import default_municipalities
from hub.address.normalise import AddressError, normalise_postcode
from hub.address.register import AddressRegister
from hub.address.resolve import Ingestor
from hub.contracts.decode import Rejection, parse_case_event_json
from hub.contracts.events import CaseEvent
from hub.contracts.normalised import NormalisedEvent

Item = dict | str


def _lines(sim: Simulation) -> list[bytes]:
    buf = io.BytesIO()
    write_jsonl(buf, sim)
    return buf.getvalue().splitlines()


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(4_000, 24_000, seed=11)


@pytest.fixture(scope="module")
def items(sim: Simulation) -> list[Item]:
    return list(sim)


def _is_malformed(item: Item, manifest: Manifest) -> bool:
    return (
        isinstance(item, str)
        or "event_id" not in item
        or item["event_id"] in manifest.malformed_event_ids
    )


def _valid(items: list[Item], manifest: Manifest) -> list[dict]:
    return [i for i in items if not _is_malformed(i, manifest)]  # type: ignore[misc]


# --- determinism and counts ---------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = _lines(simulate(1_500, 6_000, seed=3))
    b = _lines(simulate(1_500, 6_000, seed=3))
    c = _lines(simulate(1_500, 6_000, seed=4))
    assert a == b
    assert a != c
    assert len(a) == len(c) == 6_000


def test_deterministic_across_processes_and_hash_seeds() -> None:
    code = (
        "import hashlib, io\n"
        "from connectors.simulator import simulate, write_jsonl\n"
        "b = io.BytesIO(); write_jsonl(b, simulate(800, 3_000, seed=5))\n"
        "print(hashlib.sha256(b.getvalue()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hs},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hs in ("1", "2")
    }
    assert len(digests) == 1


def test_iterating_twice_gives_the_same_stream(sim: Simulation, items: list[Item]) -> None:
    assert [orjson.dumps(i) if isinstance(i, dict) else i for i in sim] == [
        orjson.dumps(i) if isinstance(i, dict) else i for i in items
    ]


def test_exact_counts(sim: Simulation, items: list[Item]) -> None:
    m = sim.manifest
    assert len(items) == m.events == 24_000
    assert m.events == m.valid_events + m.duplicates + sum(m.malformed.values())
    ids = Counter(i["event_id"] for i in _valid(items, m))
    repeated = {k: v for k, v in ids.items() if v > 1}
    assert sum(v - 1 for v in repeated.values()) == m.duplicates > 0
    assert len(ids) == m.valid_events


def test_duplicates_are_exact_resends(items: list[Item], sim: Simulation) -> None:
    seen: dict[str, bytes] = {}
    for item in _valid(items, sim.manifest):
        raw = orjson.dumps(item)
        prev = seen.setdefault(item["event_id"], raw)
        assert prev == raw


# --- validity -----------------------------------------------------------------------------------


def test_every_valid_event_validates(items: list[Item], sim: Simulation) -> None:
    valid = _valid(items, sim.manifest)
    for item in valid:
        CaseEvent.model_validate(item)
        assert isinstance(parse_case_event_json(orjson.dumps(item)), CaseEvent)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", item["occurred_at"])
        if "amount_eur" in item:
            assert re.fullmatch(r"\d+\.\d{2}", item["amount_eur"])
    assert len(valid) == sim.manifest.valid_events + sim.manifest.duplicates


def test_every_malformed_item_is_rejected_for_its_reason(
    items: list[Item], sim: Simulation
) -> None:
    m = sim.manifest
    counts: Counter[str] = Counter()
    for item in items:
        if not _is_malformed(item, m):
            continue
        if isinstance(item, str):
            with pytest.raises(ValueError):
                json.loads(item)
            rejection = parse_case_event_json(item.encode())
            assert isinstance(rejection, Rejection) and rejection.reason_code == "UNDECODABLE"
            counts[MalformedReason.NOT_JSON] += 1
            continue
        reason = m.malformed_event_ids.get(item.get("event_id", ""), "MISSING_FIELD")
        counts[reason] += 1
        assert reason in CONTRACT_REASONS
        with pytest.raises(ValidationError):
            CaseEvent.model_validate(item)
        assert isinstance(parse_case_event_json(orjson.dumps(item)), Rejection)
        if reason == MalformedReason.BAD_POSTCODE:  # also refused by the address normaliser
            with pytest.raises(AddressError):
                normalise_postcode(item["address"]["postcode"])
    assert counts == Counter({k: v for k, v in m.malformed.items() if v})
    assert sum(m.malformed.values()) == round(24_000 * 0.01)
    assert len(counts) >= 6  # a mix of reasons


# --- realism --------------------------------------------------------------------------------------


def test_addresses_ids_and_municipalities_are_consistent(
    items: list[Item], sim: Simulation
) -> None:
    munis = default_municipalities()
    prefixes: Counter[str] = Counter()
    for item in _valid(items, sim.manifest):
        addr = item["address"]
        gm = addr.get("gemeentecode")
        nid = addr.get("nummeraanduiding_id")
        pand = addr.get("pand_id")
        if gm is not None:
            assert munis.current_code(gm) == gm
        for bag_id in (nid, pand):
            if bag_id is not None:
                prefixes[bag_id[:4]] += 1
                if gm is not None:
                    assert munis.code_from_bag_id(bag_id) == gm
        if "postcode" in addr:
            pc = normalise_postcode(addr["postcode"])
            assert gm is None or municipality_of_postcode(pc) == gm
        assert gm is not None or nid is not None  # the municipality is always derivable
    assert {"0010", "0003", "0024", "0014"} <= set(prefixes)  # pre-merger codes appear


def test_messy_spellings_and_address_forms(items: list[Item], sim: Simulation) -> None:
    forms: Counter[str] = Counter()
    announced: set[str] = set()
    for item in _valid(items, sim.manifest):
        addr = item["address"]
        pc = addr.get("postcode")
        if pc is not None:
            forms["space" if " " in pc else "nospace"] += 1
            forms["lower" if pc != pc.upper() else "upper"] += 1
            if isinstance(addr["huisnummer"], str):
                forms["hn_str"] += 1
                if re.fullmatch(r"\d+[A-Za-z]", addr["huisnummer"]):
                    forms["hn_letter"] += 1
            if addr.get("huisletter", "A").islower():
                forms["letter_lower"] += 1
            if "nummeraanduiding_id" in addr:
                announced.add(addr["nummeraanduiding_id"])
        elif "pand_id" in addr and "nummeraanduiding_id" not in addr:
            forms["pand_only"] += 1  # a building-level case (issue 13.6)
            assert item["source"] == "NCG" and item["case_type"] == "STRENGTHENING"
        else:
            forms["id_only"] += 1
            # only after the address was sent with postal fields and this id
            assert addr["nummeraanduiding_id"] in announced
        if "pand_id" in addr and pc is not None:
            forms["pand_with_address"] += 1  # an address-level case naming its building
            if item["source"] != "NCG":
                forms["pand_with_address_not_ncg"] += 1
    for form in (
        "space",
        "nospace",
        "lower",
        "hn_str",
        "hn_letter",
        "letter_lower",
        "pand_only",
        "id_only",
        "pand_with_address",
        "pand_with_address_not_ncg",
    ):
        assert forms[form] > 0, form


_NEXT = {
    "OPENED": {"OPENED", "ON_HOLD", "DECIDED", "PLANNED", "IN_PROGRESS", "CANCELLED", "CLOSED"},
    "ON_HOLD": {"OPENED", "DECIDED", "CLOSED"},
    "DECIDED": {"PLANNED", "CLOSED", "CANCELLED"},
    "PLANNED": {"PLANNED", "IN_PROGRESS", "CANCELLED"},
    "IN_PROGRESS": {"CLOSED"},
}


def test_lifecycles_are_ordered_in_time(items: list[Item], sim: Simulation) -> None:
    by_case: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    out_of_order = 0
    latest: dict[tuple[str, str], str] = {}
    for item in _valid(items, sim.manifest):
        ref = (item["source"], item["case_id"])
        by_case[ref][item["event_id"]] = item
        t = CaseEvent.model_validate(item).occurred_at.isoformat()
        if ref in latest and t < latest[ref]:
            out_of_order += 1
        latest[ref] = max(t, latest.get(ref, t))
    assert out_of_order > 0  # some late events arrive after a newer state of their case
    types: Counter[tuple[str, str]] = Counter()
    for events in by_case.values():
        evs = sorted(
            (CaseEvent.model_validate(e) for e in events.values()), key=lambda e: e.occurred_at
        )
        times = [e.occurred_at for e in evs]
        assert len(set(times)) == len(times)  # strictly increasing within a case
        for prev, cur in pairwise(evs):
            assert cur.status in _NEXT[prev.status], (prev.case_id, prev.status, cur.status)
        last = evs[-1]
        types[(last.source, last.case_type)] += 1
        if last.case_type == "STRENGTHENING" and last.planned_start and last.planned_end:
            assert (last.planned_end - last.planned_start).days >= 120  # 4+ months
    assert {
        ("NCG", "STRENGTHENING"),
        ("IMG", "DAMAGE"),
        ("IMG", "ACUTE_UNSAFE"),
        ("MUNICIPALITY", "INSULATION"),
        ("MUNICIPALITY", "BOTTLENECK"),
        ("MUNICIPALITY", "PERMIT"),
        ("MUNICIPALITY", "PUBLIC_WORKS"),
        ("MUNICIPALITY", "PSYCHOSOCIAL_SUPPORT"),
        ("HOUSING_CORPORATION", "RENOVATION"),
        ("HOUSING_CORPORATION", "MAINTENANCE"),
    } <= set(types)


def test_contacts_are_obviously_fake(items: list[Item], sim: Simulation) -> None:
    no_contact = 0
    for item in _valid(items, sim.manifest):
        c = item.get("contact")
        if c is None:
            no_contact += 1
            continue
        assert re.fullmatch(r"[A-Za-z -]+ \d+", c["name"])
        assert c["email"].endswith("@example.nl")
        assert "phone" not in c or re.fullmatch(r"06-0000\d{4}", c["phone"])
    assert no_contact > 0


# --- ground truth -------------------------------------------------------------------------------

_UNDECIDED = {"OPENED", "ON_HOLD"}
_BEFORE = {"DAMAGE": "rbs", "INSULATION": "ibs"}


def _final_states(
    items: list[Item], manifest: Manifest
) -> tuple[dict[str, dict[tuple[str, str], NormalisedEvent]], Ingestor]:
    """Resolve with the real Ingestor; latest occurred_at per (address, case) wins."""
    ingestor = Ingestor()
    states: dict[str, dict[tuple[str, str], NormalisedEvent]] = defaultdict(dict)
    for item in _valid(items, manifest):
        result = ingestor.ingest(CaseEvent.model_validate(item), 0)
        assert result.error is None
        for ne in (*result.normalised, *result.released):
            cur = states[ne.address_key].get(ne.case_ref)
            if cur is None or ne.occurred_at_ms >= cur.occurred_at_ms:
                states[ne.address_key][ne.case_ref] = ne
    return states, ingestor


def _day(iso: str) -> int:
    return date.fromisoformat(iso).toordinal()


def _oracle(states: dict[str, dict[tuple[str, str], NormalisedEvent]]) -> dict[str, set]:
    out: dict[str, set] = defaultdict(set)
    for key, cases in states.items():
        active = [c for c in cases.values() if c.status not in ("CLOSED", "CANCELLED")]
        if len({c.source for c in active}) >= 2:
            out["contact_routing"].add(key)
        gm = next((c.gemeentecode for c in cases.values() if c.gemeentecode), None)
        if (
            gm in SAMENLOOP_MUNICIPALITIES
            and any(c.case_type == "STRENGTHENING" for c in active)
            and any(c.case_type == "DAMAGE" and c.status in _UNDECIDED for c in active)
        ):
            out["samenloop"].add(key)
        for c in active:
            if c.case_type == "BOTTLENECK" and (c.amount_cents or 0) > 5_000_000:
                out["mandate"].add(key)
                out["mandate_cases"].add(c.case_ref)
        windowed = [c for c in active if c.planned_start and c.planned_end]
        for i, a in enumerate(windowed):
            for b in windowed[i + 1 :]:
                pair = tuple(sorted((a.case_ref, b.case_ref)))
                st, work = (b, a) if b.case_type == "STRENGTHENING" else (a, b)
                rule = _BEFORE.get(work.case_type) if st.case_type == "STRENGTHENING" else None
                if rule is not None:
                    lead = _day(st.planned_start) - _day(work.planned_end)  # type: ignore[arg-type]
                    if 0 < lead <= 365:
                        out[rule].add(key)
                        out[rule + "_pairs"].add(pair)
                        continue
                if a.source == b.source:
                    continue
                gap = max(_day(a.planned_start), _day(b.planned_start)) - min(  # type: ignore[arg-type]
                    _day(a.planned_end),
                    _day(b.planned_end),  # type: ignore[arg-type]
                )
                if gap < 14:
                    out["overlap"].add(key)
                    out["overlap_pairs"].add(pair)
    return out


def test_planted_ground_truth_matches_the_stream(items: list[Item], sim: Simulation) -> None:
    m = sim.manifest
    states, ingestor = _final_states(items, m)
    # everything the stream sends is resolvable by the end, except building cases of buildings
    # none of whose addresses had a case of its own (the register never hears of them)
    for parked in ingestor.parked_events():
        assert parked.address.pand_id is not None and parked.address.postcode is None
        assert parked.address.nummeraanduiding_id is None
    got = _oracle(states)
    assert got["samenloop"] == m.samenloop
    assert got["rbs"] == m.repair_before_strengthening
    assert got["rbs_pairs"] == m.repair_before_strengthening_pairs
    assert got["ibs"] == m.insulation_before_strengthening
    assert got["ibs_pairs"] == m.insulation_before_strengthening_pairs
    assert got["overlap"] == m.plan_overlap
    assert got["overlap_pairs"] == m.plan_overlap_pairs
    assert got["mandate_cases"] == m.mandate_exceeded_cases
    assert got["mandate"] == m.mandate_exceeded
    assert got["contact_routing"] == m.contact_routing
    areas = Counter(
        k[:4]
        for k in m.samenloop
        | m.repair_before_strengthening
        | m.insulation_before_strengthening
        | m.plan_overlap
    )
    assert m.area_clusters == {k: v for k, v in areas.items() if v >= 5}
    # non-zero, and near misses really do not fire
    for name in (
        "samenloop",
        "repair_before_strengthening",
        "insulation_before_strengthening",
        "plan_overlap",
        "mandate_exceeded",
        "samenloop_near_miss",
        "plan_overlap_near_miss",
        "mandate_near_miss",
        "area_clusters",
    ):
        assert len(getattr(m, name)) > 0, name
    firing = got["samenloop"] | got["rbs"] | got["ibs"] | got["overlap"]
    assert (
        not (m.samenloop_near_miss | m.before_strengthening_near_miss | m.plan_overlap_near_miss)
        & firing
    )
    assert not m.mandate_near_miss & got["mandate"]


def test_planted_samenloop_addresses_in_detail(items: list[Item], sim: Simulation) -> None:
    m = sim.manifest
    states, _ = _final_states(items, m)
    assert len(m.samenloop) >= 0.02 * 4_000
    for key in m.samenloop:
        ref = m.addresses[key]
        assert ref.gemeentecode in SAMENLOOP_MUNICIPALITIES
        active = [c for c in states[key].values() if c.status not in ("CLOSED", "CANCELLED")]
        assert any(c.source == "NCG" and c.case_type == "STRENGTHENING" for c in active)
        assert any(
            c.source == "IMG" and c.case_type == "DAMAGE" and c.status in _UNDECIDED for c in active
        )


def test_seeded_register_reaches_every_address_of_a_building(
    items: list[Item], sim: Simulation, tmp_path: Path
) -> None:
    csv_path = tmp_path / "bag.csv"
    assert write_register_csv(csv_path, sim) == sim.manifest.address_count
    register = AddressRegister()
    report = register.load_csv(csv_path)
    assert report.loaded == sim.manifest.address_count and report.bad_count == 0
    ingestor = Ingestor(register=register)
    states: dict[str, dict[tuple[str, str], NormalisedEvent]] = defaultdict(dict)
    for item in _valid(items, sim.manifest):
        for ne in ingestor.ingest(CaseEvent.model_validate(item), 0).normalised:
            cur = states[ne.address_key].get(ne.case_ref)
            if cur is None or ne.occurred_at_ms >= cur.occurred_at_ms:
                states[ne.address_key][ne.case_ref] = ne
    got = _oracle(states)
    assert got["contact_routing"] == sim.manifest.contact_routing_seeded
    assert got["samenloop"] == sim.manifest.samenloop  # planted truth is the same when seeded


def test_shares_are_configurable() -> None:
    none = Shares(
        samenloop=0,
        samenloop_near_miss=0,
        repair_before_strengthening=0,
        insulation_before_strengthening=0,
        plan_overlap=0,
        plan_overlap_near_miss=0,
        mandate_exceeded=0,
        mandate_near_miss=0,
        duplicates=0,
        late=0,
    )
    m = simulate(1_000, 3_000, seed=5, malformed_share=0, shares=none).manifest
    assert not m.samenloop and not m.plan_overlap_pairs and m.duplicates == 0
    assert sum(m.malformed.values()) == 0 and m.valid_events == 3_000


def test_tiny_runs_keep_the_exact_count() -> None:
    for addresses, events in ((1, 1), (5, 40), (50, 10), (200, 1_000)):
        assert len(list(simulate(addresses, events, seed=1))) == events


# --- output -------------------------------------------------------------------------------------


def test_write_jsonl_and_cli(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    out = tmp_path / "events.jsonl"
    manifest_path = tmp_path / "manifest.json"
    m = run_simulate_cli(500, 2_000, 9, out, manifest_out=manifest_path)
    lines = out.read_bytes().splitlines()
    assert len(lines) == m.events == 2_000
    assert json.loads(manifest_path.read_text())["samenloop"] == sorted(m.samenloop)
    run_simulate_cli(500, 2_000, 9, None)
    captured = capsysbinary.readouterr()
    assert captured.out.splitlines() == lines
    assert b'"events_per_second"' in captured.err


def test_generation_speed() -> None:
    """Prints the rate (no timing assert); the full 1M/250k figure is in the slow test."""
    began = time.perf_counter()
    sim = simulate(50_000, 200_000, seed=1)
    planned = time.perf_counter()
    n = sum(1 for _ in sim)
    done = time.perf_counter()
    print(
        f"\nsimulator: 200k events / 50k addresses: plan {planned - began:.2f}s, "
        f"generate {n / (done - planned):,.0f} events/s, overall {n / (done - began):,.0f}/s"
    )


@pytest.mark.slow
def test_generation_speed_one_million() -> None:
    began = time.perf_counter()
    sim = simulate(250_000, 1_000_000, seed=1)
    planned = time.perf_counter()
    n = sum(1 for _ in sim)
    done = time.perf_counter()
    buf = io.BytesIO()
    t = time.perf_counter()
    write_jsonl(buf, sim)
    written = time.perf_counter() - t
    assert n == 1_000_000
    print(
        f"\nsimulator: 1M events / 250k addresses: plan {planned - began:.2f}s, "
        f"generate {n / (done - planned):,.0f} events/s, overall {n / (done - began):,.0f}/s, "
        f"with JSON Lines serialisation {n / written:,.0f} events/s "
        f"({buf.tell() / 1e6:.0f} MB)"
    )
