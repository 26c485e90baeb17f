"""Per-address dossier: latest state wins, duplicates, bounded memory, serialisation, records."""

from __future__ import annotations

import orjson

from hub.engine import Dossier, Engine, apply, apply_many, default_config
from hub.engine.dossier import Repeats
from tests.engine_events import ADDRESS, T0_MS, event
from tests.unit.schema_fields import record_fields

CONFIG = default_config()

DOSSIER_KEYS = record_fields("AddressDossier")
DOSSIER_CASE_KEYS = record_fields("AddressDossier", "cases")


def fold(*events, config=CONFIG) -> Dossier:
    d = None
    for ev in events:
        d, _, _ = apply(d, ev, config, now_ms=7)
    assert d is not None
    return d


def test_late_older_event_does_not_overwrite_newer_state():
    d = fold(event(status="PLANNED", at=10), event(status="OPENED", at=5))
    (case,) = d.to_record()["cases"]
    assert case["status"] == "PLANNED"
    assert case["occurred_at"] == event(at=10).occurred_at_ms


def test_equal_occurred_at_the_event_processed_last_wins():
    d = fold(event(status="OPENED", at=5), event(status="ON_HOLD", at=5))
    assert d.to_record()["cases"][0]["status"] == "ON_HOLD"


def test_duplicate_event_id_is_ignored_even_when_it_would_win_a_tie():
    first = event(status="OPENED", at=5)
    d = fold(first, event(status="ON_HOLD", at=5))
    version = d.version
    d, ts, ups = apply(d, first, CONFIG, now_ms=8)
    assert (ts, ups, d.version) == ([], [], version)
    assert d.to_record()["cases"][0]["status"] == "ON_HOLD"


def test_closed_case_shrinks_to_a_summary_without_personal_data():
    d = fold(
        event(status="PLANNED", at=1, contact_name="Bea", start="2025-01-01", end="2025-02-01"),
        event(status="CLOSED", at=2),
    )
    (case,) = d.to_record()["cases"]
    assert case["active"] is False and case["status"] == "CLOSED"
    assert case["contact_name"] is None and case["planned_start"] is None


def test_closed_cases_are_bounded_newest_kept():
    config = CONFIG.replace(max_closed_cases=2)
    events = [event(case_id=f"c{i}", status="CLOSED", at=i) for i in range(5)]
    d = fold(*events, event(case_id="open", at=9), config=config)
    ids = sorted(c["case_id"] for c in d.to_record()["cases"])
    assert ids == ["c3", "c4", "open"]


def test_recent_event_ids_are_bounded():
    config = CONFIG.replace(dedup_window=3)
    d = fold(*[event(status="OPENED", at=i) for i in range(10)], config=config)
    assert len(d.recent) == 3


def test_dossier_record_has_exactly_the_avro_fields():
    d = fold(
        event(at=1, nummeraanduiding_id="0014200000123456", pand_id="0014100000000001"),
        event("IMG", "s1", "DAMAGE", at=2, amount="12.30", contact_email="x@example.org"),
    )
    rec = d.to_record()
    assert set(rec) == DOSSIER_KEYS
    assert all(set(c) == DOSSIER_CASE_KEYS for c in rec["cases"])
    assert rec["nummeraanduiding_ids"] == ["0014200000123456"]
    assert rec["pand_ids"] == ["0014100000000001"]
    assert rec["lead"] == {"source": "NCG", "case_id": "c1"}
    assert rec["updated_at"] == event(at=2).occurred_at_ms  # event time, not now_ms=7
    assert next(c for c in rec["cases"] if c["case_id"] == "s1")["amount_eur"] == "12.30"


def test_bytes_round_trip_preserves_state_and_behaviour():
    events = [
        event(status="PLANNED", at=1, start="2025-03-01", end="2025-09-01"),
        event("IMG", "s1", "DAMAGE", "OPENED", at=2),
        event("NCG", "k1", "BOTTLENECK", at=3, amount="60000.00"),
    ]
    d = fold(*events)
    restored = Dossier.from_bytes(d.to_bytes())
    assert restored == d
    assert restored.to_record() == d.to_record()
    nxt = event("IMG", "s1", "DAMAGE", "DECIDED", at=4)
    _, ts1, _ = apply(d, nxt, CONFIG, now_ms=9)
    _, ts2, _ = apply(restored, nxt, CONFIG, now_ms=9)
    assert [t.to_record() for t in ts1] == [t.to_record() for t in ts2]
    assert ts1  # SAMENLOOP resolved


def test_apply_many_equals_one_by_one_final_state():
    events = [
        event(status="PLANNED", at=1, start="2025-03-01", end="2025-09-01"),
        event("IMG", "s1", "DAMAGE", "OPENED", at=2),
        event("IMG", "s1", "DAMAGE", "DECIDED", at=3),
        event("MUNICIPALITY", "w1", "PUBLIC_WORKS", at=4, start="2025-04-01", end="2025-05-01"),
    ]
    single = fold(*events)
    batched, ts, _ = apply_many(None, events, CONFIG, now_ms=7)
    assert batched is not None
    assert {fp for fp, st in batched.alerts.items() if st.status == "FIRING"} == {
        fp for fp, st in single.alerts.items() if st.status == "FIRING"
    }
    # The batch does not emit the SAMENLOOP flap that came and went inside it.
    assert "SAMENLOOP" not in {t.kind for t in ts}


def test_building_case_reaches_a_late_learned_address():
    """A pand case is fanned out per address; a newly learned address gets it later."""
    engine = Engine(CONFIG, clock=lambda: 1)
    pand = "0014100000000042"
    other = "9711AB-14-"
    engine.process(event(at=1, pand_id=pand))  # strengthening of the building, known address
    engine.process(event("IMG", "s9", "DAMAGE", at=2, address_key=other))  # claim at a 2nd address
    assert engine.firing() == set()
    # The register learns that `other` is in the building: the ingest stage releases the case.
    ts = engine.process(event(at=1, pand_id=pand, address_key=other))
    assert {(t.kind, t.address_key) for t in ts} >= {("SAMENLOOP", other)}
    assert engine.dossiers[other].to_record()["pand_ids"] == [pand]


def test_gemeentecode_and_steering_group_from_latest_event():
    d = fold(
        event(at=5, gemeentecode="GM1979", steering_group="Eemsdelta"),
        event("IMG", "s1", "DAMAGE", at=1, gemeentecode="GM0010", steering_group="OLD"),
    )
    assert (d.gemeentecode, d.steering_group) == ("GM1979", "Eemsdelta")
    assert d.address_key == ADDRESS


# --- event identity is (source, event_id) (issue 12 D5) ---------------------------------------


def test_same_event_id_from_another_source_is_applied():
    repeats = Repeats()
    d, _, _ = apply(None, event("IMG", "s1", "DAMAGE", at=1, event_id="evt-1001"), CONFIG, 7)
    d, _, _ = apply(d, event("NCG", "n1", at=2, event_id="evt-1001"), CONFIG, 7, repeats)
    assert {c["source"] for c in d.to_record()["cases"]} == {"IMG", "NCG"}
    assert repeats == Repeats()


def test_same_source_same_id_other_content_is_a_conflict_and_not_applied():
    repeats = Repeats()
    first = event("IMG", "s1", "DAMAGE", "OPENED", at=1, event_id="evt-1")
    other = event("IMG", "s1", "DAMAGE", "DECIDED", at=2, event_id="evt-1")
    d, _, _ = apply_many(None, [first, other], CONFIG, 7, repeats)
    assert d is not None and d.to_record()["cases"][0]["status"] == "OPENED"
    assert repeats.conflicts == [other] and repeats.duplicates == []
    version = d.version
    d, ts, ups = apply(d, other, CONFIG, 7, repeats)  # again, in a later batch
    assert (ts, ups, d.version) == ([], [], version)
    assert repeats.conflicts == [other, other]


def test_exact_repeat_is_dropped_and_reported_as_duplicate():
    repeats = Repeats()
    first = event("IMG", "s1", "DAMAGE", at=1, event_id="evt-1")
    d, _, _ = apply(None, first, CONFIG, 7)
    version = d.version
    resent = event("IMG", "s1", "DAMAGE", at=1, event_id="evt-1")
    d, ts, _ = apply(d, resent, CONFIG, 8, repeats)
    assert (ts, d.version) == ([], version)
    assert repeats.duplicates == [resent] and repeats.conflicts == []


def test_resend_differing_only_in_derived_fields_is_an_exact_repeat():
    """Register-derived fields and ingest time may differ between two sends of one event."""
    repeats = Repeats()
    first = event("NCG", at=1, event_id="e", nummeraanduiding_id=None)
    later = event("NCG", at=1, event_id="e", nummeraanduiding_id="0014200000123456")
    apply_many(None, [first, later], CONFIG, 7, repeats)
    assert repeats.duplicates == [later] and repeats.conflicts == []


def test_format_1_dossier_bytes_are_read_and_written_as_format_2():
    """Dossiers stored by the previous version (bare event ids, wall-clock updated_at)."""
    d = fold(
        event("NCG", "c1", at=1, event_id="n-1"),
        event("IMG", "s1", "DAMAGE", at=3, event_id="i-1"),
        event("IMG", "s1", "DAMAGE", "ON_HOLD", at=2, event_id="i-0"),  # late, older
    )
    row = orjson.loads(d.to_bytes())
    row[0] = 1
    row[8] = ["n-1", "i-1", "i-0"]
    row[15] = 1_900_000_000_000  # the wall clock it used to store
    old = Dossier.from_bytes(orjson.dumps(row))
    assert old.to_record()["cases"] == d.to_record()["cases"]
    assert old.updated_at == T0_MS + 3000  # newest occurred_at of the cases
    # ids that were a case's last event got its source; the rest match any source, as before
    assert old.recent == {("NCG", "n-1"): "", ("IMG", "i-1"): "", ("", "i-0"): ""}
    version = old.version
    repeats = Repeats()
    for ev in (
        event("NCG", "c1", at=1, event_id="n-1"),
        event("MUNICIPALITY", "m", "PERMIT", at=4, event_id="i-0"),
    ):
        old, _, _ = apply(old, ev, CONFIG, 7, repeats)
    assert old.version == version and len(repeats.duplicates) == 2
    again = Dossier.from_bytes(old.to_bytes())
    assert orjson.loads(old.to_bytes())[0] == 2 and again.recent == old.recent


def test_updated_at_is_the_latest_applied_occurred_at_whatever_the_order():
    events = [
        event("NCG", at=5),
        event("IMG", "s1", "DAMAGE", at=9),
        event("NCG", status="ON_HOLD", at=3),  # late
    ]
    forward, _, _ = apply_many(None, events, CONFIG, now_ms=111)
    backward = None
    for ev in reversed(events):
        backward, _, _ = apply(backward, ev, CONFIG, now_ms=222)
    assert forward is not None and backward is not None
    assert forward.to_record()["updated_at"] == event(at=9).occurred_at_ms
    assert backward.to_record()["updated_at"] == event(at=9).occurred_at_ms


def test_replaying_the_same_events_gives_byte_identical_dossier_records():
    events = [
        event("NCG", at=1, start="2025-01-01", end="2025-06-01", pand_id="0014100000000001"),
        event("IMG", "s1", "DAMAGE", at=2, contact_name="Zaak 1"),
        event("IMG", "s1", "DAMAGE", "DECIDED", at=4, amount="10.00"),
    ]
    one, _, _ = apply_many(None, events, CONFIG, now_ms=1)
    two, _, _ = apply_many(None, events, CONFIG, now_ms=999_999)
    assert one is not None and two is not None
    assert one.to_bytes() == two.to_bytes()
    assert orjson.dumps(one.to_record()) == orjson.dumps(two.to_record())
