"""Alert lifecycle: fingerprints, versions, no re-emission, record shape."""

from __future__ import annotations

from hub.engine import Engine, apply, default_config
from tests.engine_events import event
from tests.unit.schema_fields import record_fields

CONFIG = default_config()

ALERT_KEYS = record_fields("Alert")
LEAD_KEYS = record_fields("Alert", "lead")
CASE_KEYS = record_fields("Alert", "cases")


def mandate(amount: str, at: int, status: str = "OPENED"):
    return event("NCG", "k1", "BOTTLENECK", status, at, amount=amount)


def test_transition_record_has_exactly_the_avro_fields():
    engine = Engine(CONFIG, clock=lambda: 123)
    engine.process(event("IMG", "s1", "DAMAGE", at=1))
    (t,) = engine.process(event("NCG", "v1", "STRENGTHENING", at=2, contact_name="Cor"))[:1]
    rec = t.to_record()
    assert set(rec) == ALERT_KEYS
    assert set(rec["lead"]) == LEAD_KEYS
    assert all(set(c) == CASE_KEYS for c in rec["cases"])
    assert rec["emitted_at"] == 123
    assert rec["config_version"] == CONFIG.config_version
    assert rec["trigger_event_id"] == event("NCG", "v1", "STRENGTHENING", at=2).event_id
    assert rec["trigger_ingested_at"] == event(at=2).ingested_at_ms
    assert rec["starts_at"] == event(at=2).occurred_at_ms
    assert rec["area"] == "9711"
    assert all(isinstance(v, str) for v in rec["detail"].values())


def test_fingerprint_is_stable_across_content_changes_and_version_increments():
    engine = Engine(CONFIG, clock=lambda: 0)
    (a,) = engine.process(mandate("60000", 1))
    (b,) = engine.process(mandate("70000", 2))
    assert a.fingerprint == b.fingerprint
    assert (a.version, b.version) == (1, 2)
    assert b.detail["amount"] == "70000.00"


def test_unchanged_content_emits_nothing():
    engine = Engine(CONFIG, clock=lambda: 0)
    engine.process(mandate("60000", 1))
    assert engine.process(mandate("60000", 2, status="ON_HOLD")) == []


def test_resolved_alert_that_fires_again_continues_its_versions():
    engine = Engine(CONFIG, clock=lambda: 0)
    ts = []
    for at, amount in enumerate(["60000", "100", "60000", "100"], start=1):
        ts += engine.process(mandate(amount, at))
    assert [(t.status, t.version) for t in ts] == [
        ("FIRING", 1),
        ("RESOLVED", 2),
        ("FIRING", 3),
        ("RESOLVED", 4),
    ]
    assert ts[2].ends_at is None and ts[1].ends_at == event(at=2).occurred_at_ms


def test_dropped_resolved_alert_never_reuses_a_version():
    config = CONFIG.replace(max_resolved_alerts=0)
    d = None
    seen = set()
    for at, amount in enumerate(["60000", "100", "60000", "100", "60000"], start=1):
        d, ts, _ = apply(d, mandate(amount, at), config, now_ms=0)
        for t in ts:
            assert t.key not in seen
            seen.add(t.key)
    assert d is not None and len(seen) == 5


def test_reprocessing_the_same_input_emits_nothing():
    events = [
        event("NCG", "v1", "STRENGTHENING", "PLANNED", 1, start="2025-03-01", end="2025-09-01"),
        event("IMG", "s1", "DAMAGE", "PLANNED", 2, start="2025-01-01", end="2025-02-01"),
        mandate("50000.01", 3),
    ]
    engine = Engine(CONFIG, clock=lambda: 0)
    first = [t for ev in events for t in engine.process(ev)]
    assert first
    assert [t for ev in events for t in engine.process(ev)] == []


def test_config_version_changes_with_thresholds_not_with_comments():
    from hub.engine.config import parse_config

    assert parse_config("# only a comment\n").config_version == CONFIG.config_version
    assert CONFIG.replace(min_gap_days=15).config_version != CONFIG.config_version
    assert parse_config("mandate_eur = 50000\n").config_version == CONFIG.config_version
