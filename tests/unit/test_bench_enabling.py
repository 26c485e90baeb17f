"""The latency bench's second clock: a record counts from the event that made it possible."""

from __future__ import annotations

from typing import Any

from bench.enabling import enabled_at, enablers_by_event, enabling_events
from hub.contracts.events import CaseEvent

NID = "0014200000000001"
KEY = "9711AB-12"


def wire(event_id: str, address: dict[str, Any], case_id: str, source: str = "IMG") -> bytes:
    event = CaseEvent.model_validate(
        {
            "event_id": event_id,
            "source": source,
            "case_id": case_id,
            "case_type": "DAMAGE" if source == "IMG" else "STRENGTHENING",
            "status": "OPENED",
            "occurred_at": "2024-05-01T10:00:00+02:00",
            "address": address,
        }
    )
    return event.model_dump_json().encode()


PARKED = wire("e-parked", {"nummeraanduiding_id": NID}, "img-1")  # address unknown yet
TEACHER_ADDRESS = {"postcode": "9711AB", "huisnummer": 12, "nummeraanduiding_id": NID}
TEACHER = wire("e-teacher", TEACHER_ADDRESS, "ncg-1", "NCG")
PLAIN = wire("e-plain", {"postcode": "9711AB", "huisnummer": 14}, "img-2")


def test_a_parked_event_is_enabled_by_the_event_that_teaches_its_address() -> None:
    enablers = enabling_events([PARKED, PLAIN, TEACHER])
    assert enablers[("e-parked", KEY)] == "e-teacher"
    assert enablers[("e-teacher", KEY)] == "e-teacher"
    assert enablers[("e-plain", "9711AB-14")] == "e-plain"


def test_an_event_whose_address_is_known_enables_itself() -> None:
    enablers = enabling_events([TEACHER, PARKED])
    assert enablers[("e-parked", KEY)] == "e-parked"


def test_an_exact_repeat_keeps_the_first_enabler() -> None:
    enablers = enabling_events([PARKED, TEACHER, PARKED])
    assert enablers[("e-parked", KEY)] == "e-teacher"


def test_a_record_counts_from_the_later_of_its_trigger_and_its_enabler() -> None:
    enablers = enabling_events([PARKED, PLAIN, TEACHER])
    by_event = enablers_by_event(enablers)
    sent = {"e-parked": 10.0, "e-plain": 11.0, "e-teacher": 19.5}
    assert enabled_at("e-parked", KEY, sent, enablers, by_event, 20.0) == 19.5
    assert enabled_at("e-plain", "9711AB-14", sent, enablers, by_event, 20.0) == 11.0
    # an enabler produced before the measured window (not in ``sent``): the trigger's own time
    assert enabled_at("e-parked", KEY, {"e-parked": 10.0}, enablers, by_event, 20.0) == 10.0
    assert enabled_at("e-unknown", KEY, sent, enablers, by_event, 20.0) is None


def test_a_record_without_address_counts_from_the_latest_enabler_before_it_arrived() -> None:
    # a building case: applied at once to the address known, released to one learned later
    by_event = {"e-case": ["e-case", "e-teacher"]}
    enablers = {("e-case", "A"): "e-case", ("e-case", "B"): "e-teacher"}
    sent = {"e-case": 10.0, "e-teacher": 19.5}
    assert enabled_at("e-case", None, sent, enablers, by_event, 20.0) == 19.5
    # a record that arrived before the teacher was sent came from the first application
    assert enabled_at("e-case", None, sent, enablers, by_event, 12.0) == 10.0
