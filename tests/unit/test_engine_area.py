"""Rule 6 AREA_CLUSTER: per 4-digit postcode area, from per-address flag flips."""

from __future__ import annotations

from hub.engine import AreaState, AreaUpdate, Engine, default_config
from hub.engine.area import apply
from tests.engine_events import event

CONFIG = default_config()


def samenloop_at(address_key: str, at: int, steering_group: str = "Groningen"):
    common = dict(address_key=address_key, steering_group=steering_group, at=at)
    return [
        event("NCG", f"v-{address_key}", "STRENGTHENING", "PLANNED", **common),
        event("IMG", f"s-{address_key}", "DAMAGE", "OPENED", **common),
    ]


def area_records(engine: Engine) -> list[dict]:
    return [r for r in engine.firing_records().values() if r["kind"] == "AREA_CLUSTER"]


def test_area_cluster_fires_at_threshold_distinct_addresses():
    engine = Engine(CONFIG, clock=lambda: 0)
    for i in range(4):
        for ev in samenloop_at(f"9711A{chr(65 + i)}-1-", i):
            engine.process(ev)
    assert area_records(engine) == []
    for ev in samenloop_at("9711ZZ-3-", 9):
        engine.process(ev)
    (rec,) = area_records(engine)
    assert (rec["area"], rec["address_key"], rec["category"]) == ("9711", None, "SIGNAL")
    assert rec["detail"]["address_count"] == "5"
    assert rec["steering_group"] == "Groningen"


def test_other_area_does_not_count():
    engine = Engine(CONFIG, clock=lambda: 0)
    for i in range(4):
        for ev in samenloop_at(f"9711A{chr(65 + i)}-1-", i):
            engine.process(ev)
    for ev in samenloop_at("9712AA-1-", 9):
        engine.process(ev)
    assert area_records(engine) == []


def test_address_flag_update_only_on_flip():
    engine = Engine(CONFIG.replace(area_threshold=1), clock=lambda: 0)
    evs = samenloop_at("9711AA-1-", 1)
    engine.process(evs[0])
    ts = engine.process(evs[1])
    assert "AREA_CLUSTER" in {t.kind for t in ts}
    # A second signal at the same address does not re-send the flag nor a new area version.
    ts = engine.process(
        event("MUNICIPALITY", "w", "PUBLIC_WORKS", "OPENED", 2, address_key="9711AA-1-")
    )
    assert "AREA_CLUSTER" not in {t.kind for t in ts}


def _update(addr: str, flag: bool, group: str) -> AreaUpdate:
    return AreaUpdate("9711", addr, flag, group, occurred_at_ms=1, event_id=f"e-{addr}")


def test_area_steering_group_majority_ties_alphabetical():
    config = CONFIG.replace(area_threshold=4)
    state = None
    out = []
    for addr, group in [("a", "Oldambt"), ("b", "Groningen"), ("c", "Oldambt"), ("d", "Groningen")]:
        state, ts = apply(state, _update(addr, True, group), config, now_ms=0)
        out += ts
    assert [t.steering_group for t in out] == ["Groningen"]  # 2-2 tie: alphabetical
    state, ts = apply(state, _update("e", True, "Oldambt"), config, now_ms=0)
    assert [(t.status, t.version, t.steering_group) for t in ts] == [("FIRING", 2, "Oldambt")]


def test_area_resolves_below_threshold_and_state_round_trips():
    config = CONFIG.replace(area_threshold=2)
    state, _ = apply(None, _update("a", True, "G"), config, now_ms=0)
    state, (fired,) = apply(state, _update("b", True, "G"), config, now_ms=0)
    restored = AreaState.from_bytes(state.to_bytes())
    assert restored == state
    restored, (resolved,) = apply(restored, _update("a", False, "G"), config, now_ms=0)
    assert (resolved.status, resolved.version, resolved.fingerprint) == (
        "RESOLVED",
        2,
        fired.fingerprint,
    )
    # Unknown address leaving, or a repeated flag: nothing to emit.
    assert apply(restored, _update("zz", False, "G"), config)[1] == []
    assert apply(restored, _update("b", True, "G"), config)[1] == []


def test_area_update_record_round_trip():
    up = _update("a", True, "G")
    assert AreaUpdate.from_record(up.to_record()) == up


def test_area_new_version_per_threshold_step_of_growth_not_per_member():
    config = CONFIG.replace(area_threshold=2)
    state = None
    versions = []
    for addr in "abcde":
        state, ts = apply(state, _update(addr, True, "G"), config, now_ms=0)
        versions.append([(t.status, t.version, t.detail["address_count"]) for t in ts])
    assert versions == [[], [("FIRING", 1, "2")], [], [("FIRING", 2, "4")], []]
    # Leaving back into a smaller bucket is a content change as well.
    state, ts = apply(state, _update("e", False, "G"), config, now_ms=0)
    assert ts == []
    state, ts = apply(state, _update("d", False, "G"), config, now_ms=0)
    assert [(t.status, t.version, t.detail["address_count"]) for t in ts] == [("FIRING", 3, "3")]
