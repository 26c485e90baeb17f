"""The dossier's record rows are its AddressDossier record, and encode to the same bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from hub.contracts.codec import AvroCodec
from hub.contracts.normalised import NormalisedEvent
from hub.contracts.privacy import redacting
from hub.engine import Dossier
from hub.engine.dossier import RECORD_LAYOUT
from hub.pipeline.correlate import dossier_encoder
from tests.engine_events import event
from tests.unit.test_engine_properties import histories, run

CODEC = AvroCodec()


def _named(row: tuple[Any, ...]) -> dict[str, Any]:
    """A :meth:`Dossier.record_row` back as the record it stands for (lists, dicts)."""
    record = dict(zip(RECORD_LAYOUT["AddressDossier"], row, strict=True))
    record["nummeraanduiding_ids"] = list(record["nummeraanduiding_ids"])
    record["pand_ids"] = list(record["pand_ids"])
    record["cases"] = [
        dict(zip(RECORD_LAYOUT["DossierCase"], case, strict=True)) for case in record["cases"]
    ]
    lead = record["lead"]
    record["lead"] = (
        None if lead is None else dict(zip(RECORD_LAYOUT["LeadRef"], lead, strict=True))
    )
    return record


def _dossiers(events: list[NormalisedEvent]) -> list[Dossier]:
    engine, _ = run(events)
    return list(engine.dossiers.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_record_row_holds_the_values_of_to_record(events: list[NormalisedEvent]) -> None:
    for dossier in _dossiers(events):
        assert _named(dossier.record_row()) == dossier.to_record()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_the_codecs_dossier_encoder_writes_the_records_bytes(
    events: list[NormalisedEvent],
) -> None:
    by_row = dossier_encoder(CODEC.encode)
    for dossier in _dossiers(events):
        assert by_row(dossier) == CODEC.encode("AddressDossier", dossier.to_record())


def test_the_codecs_encode_takes_the_row_path(monkeypatch: pytest.MonkeyPatch) -> None:
    (dossier,) = _dossiers(_one_case())
    expected = CODEC.encode("AddressDossier", dossier.to_record())

    def no_record(self: Dossier) -> dict[str, Any]:
        raise AssertionError("built the record dict")

    monkeypatch.setattr(Dossier, "to_record", no_record)
    assert dossier_encoder(CODEC.encode)(dossier) == expected


def test_a_wrapped_encode_still_gets_the_record() -> None:
    (dossier,) = _dossiers(_one_case())
    redacted = dossier_encoder(redacting(CODEC.encode))(dossier)
    _, record = CODEC.decode(redacted)
    assert record["cases"][0]["contact_name"] is None  # the wrapper saw the record
    assert dossier.cases[("NCG", "c0")].contact_name == "Ans"
    seen: list[str] = []

    def spy(name: str, record: dict[str, Any]) -> bytes:
        seen.append(name)
        return b"x"

    assert dossier_encoder(spy)(dossier) == b"x"
    assert seen == ["AddressDossier"]


def _one_case() -> list[NormalisedEvent]:
    return [
        event(
            "NCG",
            "c0",
            "DAMAGE",
            "OPENED",
            1000,
            address_key="9711AA-1-",
            gemeentecode="GM0014",
            steering_group="Groningen",
            contact_name="Ans",
            amount="12.50",
        )
    ]
