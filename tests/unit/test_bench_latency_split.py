"""The bench's per-leg latency split leaves out parked triggers and splits by record kind."""

from __future__ import annotations

from bench.latency import LatencyResult


def _result() -> LatencyResult:
    return LatencyResult(
        rate_target=1000.0,
        duration_s=1.0,
        produced=3,
        produce_s=1.0,
        inbound_ms=[10.0, 20.0, 30.0],
        hub_ms=[5.0, 50.0, 9000.0],
        outbound_ms=[1.0, 2.0, 3.0],
        split_triggers=["a", "b", "parked"],
        split_kinds=["CONTACT_ROUTING", "AREA_CLUSTER", "CONTACT_ROUTING"],
        parked_ids={"parked"},
    )


def test_split_of_never_parked_samples_leaves_out_the_parked_wait() -> None:
    split = _result().to_dict()["split_not_parked"]
    assert split["samples"] == 2
    assert split["hub_p99_ms"] is not None and split["hub_p99_ms"] <= 50.0
    assert _result().to_dict()["split"]["hub_p99_ms"] > 1000.0  # the mixed row keeps it


def test_split_of_never_parked_samples_is_given_per_record_kind() -> None:
    by_kind = _result().to_dict()["split_not_parked"]["by_kind"]
    assert by_kind["AREA_CLUSTER"]["hub_p50_ms"] == 50.0
    assert by_kind["CONTACT_ROUTING"]["hub_p50_ms"] == 5.0
    assert by_kind["CONTACT_ROUTING"]["inbound_p99_ms"] == 10.0
