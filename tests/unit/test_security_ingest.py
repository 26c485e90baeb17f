"""Source bound to the inbound topic (issue 15), and the privacy option, without a broker.

An event on ``case-events.<agency>`` whose ``source`` is another agency's is dead-lettered as
SOURCE_MISMATCH (field ``source``) and produces nothing else; the shared topic stays trusted.
"""

from __future__ import annotations

from hub.contracts.deadletter import H_REASON, H_STAGE, H_TOPIC
from hub.contracts.privacy import CONTACT_FIELDS, without_contact_details
from hub.pipeline.batches import decode_batch
from hub.pipeline.topics import Topics
from hub.settings import Settings
from tests.unit.test_pipeline_limits import TOPICS, FakeMessage, FakeProducer, _json, _stage

NCG_TOPIC = dict(TOPICS.agency_inbound)["NCG"]
IMG_TOPIC = dict(TOPICS.agency_inbound)["IMG"]


def test_every_agency_has_its_own_inbound_topic_named_after_its_source() -> None:
    topics = Topics.from_settings(Settings(topic_prefix="hub."))
    assert dict(topics.agency_inbound) == {
        "NCG": "hub.case-events.ncg",
        "IMG": "hub.case-events.img",
        "MUNICIPALITY": "hub.case-events.municipality",
        "HOUSING_CORPORATION": "hub.case-events.housing_corporation",
    }
    assert topics.inbound(shared=False) == [t for _, t in topics.agency_inbound]
    assert topics.inbound()[0] == topics.case_events
    assert all(t in topics.specs(2) for t in topics.inbound())


def test_a_spoofed_source_on_an_agency_topic_is_dead_lettered_and_nothing_else_happens() -> None:
    producer = FakeProducer()
    stage = _stage(producer)
    # the sample is an NCG event; IMG's principal publishes it on IMG's own topic
    stage.process([FakeMessage(_json(event_id="spoof"), 7, _topic=IMG_TOPIC)])  # type: ignore[list-item]
    (letter,) = producer.records
    assert letter.topic == TOPICS.dead_letter
    assert letter.headers[H_REASON] == "SOURCE_MISMATCH"
    assert letter.headers["hub.errors.field"] == "source"
    assert letter.headers[H_STAGE] == "validate"
    assert letter.headers[H_TOPIC] == IMG_TOPIC
    assert stage.stats.accepted == 0 and stage.stats.rejected["SOURCE_MISMATCH"] == 1


def test_an_event_on_its_own_agency_topic_and_on_the_shared_topic_is_accepted() -> None:
    producer = FakeProducer()
    stage = _stage(producer)
    stage.process(
        [
            FakeMessage(_json(event_id="own"), 1, _topic=NCG_TOPIC),
            FakeMessage(_json(event_id="shared"), 2, _topic=TOPICS.case_events),
        ]
    )  # type: ignore[list-item]
    assert not producer.on(TOPICS.dead_letter)
    forwarded = [e.event_id for r in producer.on(TOPICS.normalised) for e in decode_batch(r.value)]
    assert sorted(forwarded) == ["own", "shared"]


def test_without_contact_details_blanks_name_phone_and_email_but_keeps_role_and_agency() -> None:
    contact = {
        "source": "NCG",
        "case_id": "V-1",
        "contact_role": "RESIDENT_COUNSELLOR",
        "contact_name": "Bewonersbegeleider 1",
        "contact_phone": "+31 50 123 4567",
        "contact_email": "bb1@example.org",
    }
    alert = {"fingerprint": "f", "lead": dict(contact), "cases": [dict(contact)]}
    dossier = {"address_key": "k", "cases": [dict(contact), {**contact, "case_id": "V-2"}]}
    for record in (alert, dossier):
        out = without_contact_details(record)
        items = [out["lead"]] if "lead" in out else []
        items += out["cases"]
        for item in items:
            assert all(item[f] is None for f in CONTACT_FIELDS)
            assert (item["source"], item["contact_role"]) == ("NCG", "RESIDENT_COUNSELLOR")
        assert record["cases"][0]["contact_name"] == "Bewonersbegeleider 1"  # input untouched
