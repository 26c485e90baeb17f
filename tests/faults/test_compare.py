"""The judge itself (no broker): duplicates, gaps and the comparison with the oracle."""

from __future__ import annotations

from typing import Any

from hub.contracts.codec import AvroCodec
from hub.oracle import run_oracle
from tests.faults.compare import compare, duplicates, version_gaps

STORY = [
    {
        "event_id": "e1",
        "source": "NCG",
        "case_id": "V-1",
        "case_type": "STRENGTHENING",
        "status": "OPENED",
        "occurred_at": "2024-01-01T10:00:00+01:00",
        "address": {"postcode": "9901AB", "huisnummer": 12, "gemeentecode": "GM1979"},
    },
    {
        "event_id": "e2",
        "source": "IMG",
        "case_id": "S-1",
        "case_type": "DAMAGE",
        "status": "OPENED",
        "occurred_at": "2024-01-02T10:00:00+01:00",
        "address": {"postcode": "9901AB", "huisnummer": 12, "gemeentecode": "GM1979"},
    },
]


def _alerts_and_dossiers() -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """The oracle's own emissions, as a reader of the topics would decode them."""
    codec = AvroCodec()
    oracle = run_oracle(STORY)
    records = [codec.decode(codec.encode("Alert", t.to_record()))[1] for t in oracle.transitions]
    dossiers = [
        codec.decode(codec.encode("AddressDossier", d.to_record()))[1]
        for d in oracle.engine.dossiers.values()
    ]
    return oracle, records, dossiers


def _split(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        [r for r in records if r["category"] == "ALERT"],
        [r for r in records if r["category"] == "SIGNAL"],
    )


def test_the_oracles_own_output_is_clean() -> None:
    oracle, records, dossiers = _alerts_and_dossiers()
    assert oracle.firing()
    cmp = compare(oracle, *_split(records), dossiers, AvroCodec())
    assert cmp.clean, cmp.problems()


def test_lost_and_stale_outputs_are_counted() -> None:
    oracle, records, dossiers = _alerts_and_dossiers()
    routing, signals = _split(records)
    stale = {**dossiers[0], "cases": dossiers[0]["cases"][:1]}
    cmp = compare(oracle, routing, [], [stale], AvroCodec())
    assert cmp.missing["signals"] == len({r["fingerprint"] for r in signals})
    assert cmp.wrong["dossiers"] == 1
    assert not cmp.clean


def test_duplicates_exact_and_not() -> None:
    rec = {"fingerprint": "f", "version": 1, "status": "FIRING", "emitted_at": 1}
    again = {**rec, "emitted_at": 2}  # a replay: only emission metadata differs
    other = {**rec, "status": "RESOLVED"}
    assert duplicates([rec, again])[:2] == (1, 0)
    assert duplicates([rec, again, other])[:2] == (0, 1)


def test_version_gaps() -> None:
    recs = [{"fingerprint": "a", "version": v} for v in (1, 2, 3)]
    recs += [{"fingerprint": "b", "version": v} for v in (1, 3)]
    assert version_gaps(recs) == {"b": [1, 3]}
