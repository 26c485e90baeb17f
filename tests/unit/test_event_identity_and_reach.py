"""Event identity is (source, event_id) (issue 12 D5); an event's reach follows what it identifies
(issue 13.6). Through the oracle (contracts -> Ingestor -> Engine) and the correlate step."""

from __future__ import annotations

from typing import Any

import orjson

from hub.contracts.deadletter import parse_dead_letter
from hub.contracts.decode import RejectReason
from hub.contracts.normalised import NormalisedEvent
from hub.engine import default_config
from hub.engine.dossier import DUPLICATE_EVENT_ID_CONFLICT, Dossier
from hub.oracle import OracleResult, run_oracle
from hub.pipeline.correlate import OutputTopics, correlate_batch, group_by_key
from tests.engine_events import event

CONFIG = default_config()
PAND = "0014100000000042"
TOPICS = OutputTopics("dossiers", "contact-routing", "signals", "area-updates", "dead-letter")


def case_event(
    event_id: str,
    source: str,
    case_id: str,
    case_type: str,
    status: str = "OPENED",
    at: str = "2024-05-01T10:00:00Z",
    **address: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": source,
        "case_id": case_id,
        "case_type": case_type,
        "status": status,
        "occurred_at": at,
        "address": {"gemeentecode": "GM0014", **address},
    }


def firing(result: OracleResult) -> set[tuple[str, str]]:
    """(kind, address key) of every FIRING alert."""
    return {(r["kind"], r["address_key"]) for r in result.firing_records().values()}


def encode(_name: str, record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


# --- issue 12 D5: (source, event_id) ------------------------------------------------------------


def test_same_event_id_from_img_and_ncg_stores_both_cases_and_fires() -> None:
    at = {"postcode": "9711AB", "huisnummer": 12}
    result = run_oracle(
        [
            case_event("evt-1001", "IMG", "IMG-1", "DAMAGE", **at),
            case_event("evt-1001", "NCG", "NCG-1", "STRENGTHENING", **at),
        ]
    )
    (dossier,) = result.engine.dossiers.values()
    assert set(dossier.cases) == {("IMG", "IMG-1"), ("NCG", "NCG-1")}
    assert firing(result) == {("SAMENLOOP", "9711AB-12"), ("CONTACT_ROUTING", "9711AB-12")}
    assert result.rejected == {} and result.conflicts == [] and result.duplicates == {}


def test_same_source_same_id_other_content_is_reported_as_a_conflict() -> None:
    at = {"postcode": "9711AB", "huisnummer": 12}
    result = run_oracle(
        [
            case_event("evt-7", "IMG", "IMG-1", "DAMAGE", **at),
            case_event("evt-7", "IMG", "IMG-1", "DAMAGE", "DECIDED", "2024-06-01T10:00:00Z", **at),
        ]
    )
    assert result.rejected == {DUPLICATE_EVENT_ID_CONFLICT: 1}
    assert [(e.event_id, e.status) for e in result.conflicts] == [("evt-7", "DECIDED")]
    (dossier,) = result.engine.dossiers.values()
    assert dossier.cases[("IMG", "IMG-1")].status == "OPENED"  # the conflict was not applied


def test_exact_repeat_is_dropped_and_counted() -> None:
    sent = case_event("evt-7", "IMG", "IMG-1", "DAMAGE", postcode="9711AB", huisnummer=12)
    result = run_oracle([sent, dict(sent)])
    assert result.duplicates == {"IMG": 1}
    assert result.rejected == {} and result.conflicts == []


def test_reject_reason_is_a_known_code() -> None:
    assert RejectReason(DUPLICATE_EVENT_ID_CONFLICT) == DUPLICATE_EVENT_ID_CONFLICT


def test_correlate_dead_letters_a_conflict_and_counts_an_exact_repeat() -> None:
    img = event("IMG", "s1", "DAMAGE", at=1, event_id="evt-1001")
    ncg = event("NCG", "n1", at=2, event_id="evt-1001")
    changed = event("IMG", "s1", "DAMAGE", "DECIDED", at=3, event_id="evt-1001")
    repeat = event("IMG", "s1", "DAMAGE", at=1, event_id="evt-1001")
    out = correlate_batch(group_by_key([img, ncg]), {}, CONFIG, TOPICS, encode, now_ms=5)
    assert out.conflicts == [] and out.dead_letters == [] and not out.duplicates
    (stored,) = out.writes.values()
    assert {c.source for c in Dossier.from_bytes(stored).cases.values()} == {"IMG", "NCG"}
    kinds = {orjson.loads(r.value).get("kind") for r in out.records if r.topic != "dossiers"}
    assert kinds == {"SAMENLOOP", "CONTACT_ROUTING"}

    current = {img.address_key: stored}
    out = correlate_batch(group_by_key([changed, repeat]), current, CONFIG, TOPICS, encode, 9)
    assert out.conflicts == [changed] and out.duplicates == {"IMG": 1}
    assert out.writes == {} and out.records == []  # nothing applied
    (letter,) = out.dead_letters
    assert letter.topic == "dead-letter" and letter.key == b"s1"
    assert NormalisedEvent.from_dict(orjson.loads(letter.value)) == changed
    parsed = parse_dead_letter(letter.headers, letter.value, letter.key)
    assert (parsed.reason, parsed.stage, parsed.field) == (
        DUPLICATE_EVENT_ID_CONFLICT,
        "correlate",
        "event_id",
    )
    assert parsed.rejected_at_ms == 9 and parsed.topic is None
    assert "evt-1001" in parsed.message and "IMG" in parsed.message


def test_correlate_without_a_dead_letter_topic_still_lists_conflicts() -> None:
    topics = OutputTopics("dossiers", "contact-routing", "signals", "area-updates")
    first = event("IMG", "s1", "DAMAGE", at=1, event_id="e")
    other = event("IMG", "s1", "DAMAGE", "DECIDED", at=2, event_id="e")
    out = correlate_batch(group_by_key([first, other]), {}, CONFIG, topics, encode, 1)
    assert out.conflicts == [other] and out.dead_letters == []


# --- issue 13.6: address-level and building-level cases in one building -------------------------


def test_building_case_and_address_claims_side_by_side_in_one_building() -> None:
    """Samenloop fires at each address with its own undecided claim, not at the neighbours."""

    def home(
        event_id: str,
        source: str,
        case_id: str,
        case_type: str,
        number: int,
        at: str = "2024-05-01T10:00:00Z",
    ) -> dict[str, Any]:
        """An address-level event that names its building (a register fact)."""
        return case_event(
            event_id,
            source,
            case_id,
            case_type,
            "OPENED",
            at,
            postcode="9711AB",
            huisnummer=number,
            pand_id=PAND,
        )

    result = run_oracle(
        [
            home("p-1", "MUNICIPALITY", "GM-P-1", "PERMIT", 1),
            home("p-2", "MUNICIPALITY", "GM-P-2", "PERMIT", 3),
            home("d-1", "IMG", "IMG-1", "DAMAGE", 1),  # per-address damage claims
            home("d-2", "IMG", "IMG-2", "DAMAGE", 5),
            # the building-level strengthening case: the pand alone
            case_event("s-1", "NCG", "NCG-1", "STRENGTHENING", pand_id=PAND),
            # an address learned after the building case: it still receives it
            home("p-3", "MUNICIPALITY", "GM-P-3", "PERMIT", 7, "2024-05-02T10:00:00Z"),
        ]
    )
    keys = ["9711AB-1", "9711AB-3", "9711AB-5", "9711AB-7"]
    dossiers = result.engine.dossiers
    assert sorted(dossiers) == keys
    for key in keys:  # the building case reached every address, including the later one
        assert ("NCG", "NCG-1") in dossiers[key].cases
    claims = {key: [ref for ref in dossiers[key].cases if ref[0] == "IMG"] for key in keys}
    assert claims == {
        "9711AB-1": [("IMG", "IMG-1")],
        "9711AB-3": [],
        "9711AB-5": [("IMG", "IMG-2")],
        "9711AB-7": [],
    }
    samenloop = {key for kind, key in firing(result) if kind == "SAMENLOOP"}
    assert samenloop == {"9711AB-1", "9711AB-5"}
    assert all(PAND in dossiers[key].pand_ids for key in keys)
