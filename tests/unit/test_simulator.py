"""The traffic simulator: determinism, contract validity, planted ground truth, speed.

The ground-truth tests run the stream through the real oracle (``hub.oracle.run_oracle``: contracts,
``Ingestor``, engine with the default rules config) and assert that what the simulator says it
planted is exactly what fires, so the rules are written once (in ``hub.engine``).
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
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from connectors.simulator import (
    CONTRACT_REASONS,
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
from hub.engine import default_config
from hub.oracle import OracleResult, run_oracle

Item = dict | str
CONFIG = default_config()  # the thresholds the simulator plants against


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
# Manifest set names per alert kind (pairs: the two cases of a pair signal, sorted).
_KIND_SETS = {
    "SAMENLOOP": "samenloop",
    "REPAIR_BEFORE_STRENGTHENING": "repair_before_strengthening",
    "INSULATION_BEFORE_STRENGTHENING": "insulation_before_strengthening",
    "PLAN_OVERLAP": "plan_overlap",
    "MANDATE_EXCEEDED": "mandate_exceeded",
    "CONTACT_ROUTING": "contact_routing",
}


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


def _fired(result: OracleResult) -> dict[str, Any]:
    """What fires at the end of the stream, by the oracle, in the manifest's terms."""
    out: dict[str, Any] = defaultdict(set)
    records = result.firing_records().values()
    for record in records:
        kind = record["kind"]
        if kind == "AREA_CLUSTER":
            out["area_clusters_fired"].add(record["area"])
            continue
        name = _KIND_SETS[kind]
        out[name].add(record["address_key"])
        cases = tuple(sorted((c["source"], c["case_id"]) for c in record["cases"]))
        if kind == "MANDATE_EXCEEDED":
            out["mandate_exceeded_cases"].update(cases)
        elif len(cases) == 2 and kind != "CONTACT_ROUTING":
            out[name + "_pairs"].add(cases)
    # Distinct addresses per area with a firing signal of an area rule (the manifest's count).
    signalled = {(r["area"], r["address_key"]) for r in records if r["kind"] in CONFIG.area_rules}
    counts = Counter(area for area, _ in signalled)
    out["area_counts"] = {a: n for a, n in sorted(counts.items()) if n >= CONFIG.area_threshold}
    return out


@pytest.fixture(scope="module")
def fired(items: list[Item]) -> dict[str, Any]:
    return _fired(run_oracle(items, CONFIG))


def test_planted_ground_truth_matches_the_oracle(
    items: list[Item], sim: Simulation, fired: dict[str, Any]
) -> None:
    m = sim.manifest
    _, ingestor = _final_states(items, m)
    # everything the stream sends is resolvable by the end, except building cases of buildings
    # none of whose addresses had a case of its own (the register never hears of them)
    for parked in ingestor.parked_events():
        assert parked.address.pand_id is not None and parked.address.postcode is None
        assert parked.address.nummeraanduiding_id is None
    for name in (
        "samenloop",
        "repair_before_strengthening",
        "repair_before_strengthening_pairs",
        "insulation_before_strengthening",
        "insulation_before_strengthening_pairs",
        "plan_overlap",
        "plan_overlap_pairs",
        "mandate_exceeded",
        "mandate_exceeded_cases",
        "contact_routing",
    ):
        assert fired[name] == getattr(m, name), name
    # AREA_CLUSTER: the same areas fire; the manifest counts the addresses with a firing area
    # signal at the end (the record's address_count is that of its last version, per size bucket)
    assert fired["area_clusters_fired"] == set(m.area_clusters)
    assert fired["area_counts"] == m.area_clusters
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
    firing = (
        fired["samenloop"]
        | fired["repair_before_strengthening"]
        | fired["insulation_before_strengthening"]
        | fired["plan_overlap"]
    )
    assert (
        not (m.samenloop_near_miss | m.before_strengthening_near_miss | m.plan_overlap_near_miss)
        & firing
    )
    assert not m.mandate_near_miss & fired["mandate_exceeded"]


def test_planted_samenloop_addresses_in_detail(items: list[Item], sim: Simulation) -> None:
    m = sim.manifest
    states, _ = _final_states(items, m)
    assert len(m.samenloop) >= 0.02 * 4_000
    for key in m.samenloop:
        ref = m.addresses[key]
        assert ref.gemeentecode in CONFIG.samenloop_municipalities
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
    got = _fired(run_oracle(items, CONFIG, ingestor=Ingestor(register=register)))
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
