"""The agents' processors with in-memory stores: no broker, milliseconds each."""

from __future__ import annotations

from collections import Counter

import orjson

from hub.contracts.codec import get_codec
from hub.contracts.normalised import NormalisedEvent
from hub.engine.config import default_config
from hub.pipeline.batches import encode_batches
from hub.pipeline.correlate import OutputTopics
from hub.pipeline.processors import AreaProcessor, CorrelateProcessor, StepResult

TOPICS = OutputTopics(
    dossiers="t.dossiers",
    contact_routing="t.contact-routing",
    signals="t.signals",
    area_updates="t.area-updates",
    dead_letter="t.dead-letter",
)
KEY = "9711AB-12A"
DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01


class MemoryStore:
    """A table's partitions as dicts; ``apply`` plays the runtime's persist."""

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = {}
        self.reads = 0

    def get_many(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        self.reads += len(keys)
        part = self.data.get(partition, {})
        return [part.get(k) for k in keys]

    def apply(self, result: StepResult) -> None:
        for partition, writes in result.writes.items():
            self.data.setdefault(partition, {}).update(writes)


def _event(
    event_id: str, source: str, case_id: str, case_type: str, day: int, **kw: object
) -> NormalisedEvent:
    return NormalisedEvent(
        event_id=event_id,
        source=source,
        case_id=case_id,
        case_type=case_type,
        status=str(kw.pop("status", "OPENED")),
        occurred_at_ms=T0 + day * DAY,
        address_key=str(kw.pop("address_key", KEY)),
        gemeentecode="GM0014",
        steering_group="GRONINGEN",
        **kw,  # type: ignore[arg-type]
    )


def _message(events: list[NormalisedEvent]) -> bytes:
    (payload,) = list(encode_batches(events))
    return payload


def _correlator() -> CorrelateProcessor:
    return CorrelateProcessor(default_config(), TOPICS, get_codec().encode)


def _alerts(result: StepResult) -> list[dict]:
    codec = get_codec()
    return [
        codec.decode(r.value)[1]
        for r in result.records
        if r.topic in (TOPICS.contact_routing, TOPICS.signals)
    ]


def _comparable(result: StepResult) -> list[tuple[str, bytes, object]]:
    """Records as (topic, key, content), the alerts' wall-clock ``emitted_at`` left out."""
    codec = get_codec()
    out: list[tuple[str, bytes, object]] = []
    for r in result.records:
        if r.topic in (TOPICS.contact_routing, TOPICS.signals):
            record = dict(codec.decode(r.value)[1])
            record.pop("emitted_at", None)
            out.append((r.topic, r.key, record))
        else:
            out.append((r.topic, r.key, r.value))
    return out


def test_strengthening_and_an_open_damage_claim_give_dossier_alert_and_samenloop() -> None:
    store = MemoryStore()
    ncg = _event("e1", "NCG", "V-1", "STRENGTHENING", 0)
    img = _event("e2", "IMG", "S-1", "DAMAGE", 1)
    result = _correlator().process([(3, _message([ncg, img]))], store)
    kinds = {a["kind"] for a in _alerts(result)}
    assert {"CONTACT_ROUTING", "SAMENLOOP"} <= kinds
    assert [r.topic for r in result.records].count(TOPICS.dossiers) == 1
    assert set(result.writes) == {3} and KEY.encode() in result.writes[3]


def test_a_later_message_sees_the_pending_state_of_an_earlier_one_in_the_same_call() -> None:
    """Two messages in one call fold like two calls with a persist in between."""
    ncg = _event("e1", "NCG", "V-1", "STRENGTHENING", 0)
    img = _event("e2", "IMG", "S-1", "DAMAGE", 1)
    together = _correlator().process([(0, _message([ncg])), (0, _message([img]))], MemoryStore())

    store = MemoryStore()
    first = _correlator().process([(0, _message([ncg]))], store)
    store.apply(first)
    second = _correlator().process([(0, _message([img]))], store)
    assert _comparable(together) == _comparable(first) + _comparable(second)
    assert together.writes[0] == second.writes[0]


def test_replaying_a_processed_message_emits_nothing() -> None:
    store = MemoryStore()
    message = _message([_event("e1", "NCG", "V-1", "STRENGTHENING", 0)])
    first = _correlator().process([(0, message)], store)
    store.apply(first)
    again = _correlator().process([(0, message)], store)
    assert first.records and not again.records
    assert again.outcomes[0].duplicates == Counter({"NCG": 1})


def test_an_unreadable_internal_batch_is_dead_lettered_and_the_rest_processed() -> None:
    good = _message([_event("e1", "NCG", "V-1", "STRENGTHENING", 0)])
    result = _correlator().process([(1, b"not a batch"), (1, good)], MemoryStore())
    letters = [r for r in result.records if r.topic == TOPICS.dead_letter]
    assert len(letters) == 1 and letters[0].value == b"not a batch"
    assert dict(letters[0].headers or [])["hub.errors.stage"] == b"correlate"
    assert result.rejected == Counter({"BAD_INTERNAL_BATCH": 1})
    assert any(r.topic == TOPICS.dossiers for r in result.records)


def test_same_source_and_id_with_other_content_is_a_dead_lettered_conflict() -> None:
    store = MemoryStore()
    store.apply(
        _correlator().process(
            [(0, _message([_event("e1", "NCG", "V-1", "STRENGTHENING", 0)]))], store
        )
    )
    clash = _event("e1", "NCG", "V-1", "STRENGTHENING", 5, status="CANCELLED")
    result = _correlator().process([(0, _message([clash]))], store)
    letters = [r for r in result.records if r.topic == TOPICS.dead_letter]
    assert len(letters) == 1
    assert dict(letters[0].headers or [])["hub.errors.reason"] == b"DUPLICATE_EVENT_ID_CONFLICT"
    assert result.rejected == Counter({"DUPLICATE_EVENT_ID_CONFLICT": 1})


def test_area_updates_fold_into_a_cluster_with_state_carried_through_the_store() -> None:
    config = default_config()
    store = MemoryStore()
    correlator = _correlator()
    updates: list[tuple[int, bytes]] = []
    for i in range(
        config.area_cluster_min_addresses if hasattr(config, "area_cluster_min_addresses") else 5
    ):
        key = f"9711AB-{i + 1}"
        events = [
            _event(f"n{i}", "NCG", f"V-{i}", "STRENGTHENING", 0, address_key=key),
            _event(f"d{i}", "IMG", f"S-{i}", "DAMAGE", 1, address_key=key),
        ]
        result = correlator.process([(0, _message(events))], store)
        store.apply(result)
        updates += [(0, r.value) for r in result.records if r.topic == TOPICS.area_updates]
    assert updates, "samenloop flips must reach the area agent"
    areas = AreaProcessor(config, TOPICS, get_codec().encode)
    area_store = MemoryStore()
    half = len(updates) // 2
    first = areas.process(updates[:half], area_store)
    area_store.apply(first)
    second = areas.process(updates[half:], area_store)
    one_go = areas.process(updates, MemoryStore())
    assert second.writes == one_go.writes  # state carried through the store
    assert "AREA_CLUSTER" in {t.kind for t in one_go.transitions}
    assert [t.kind for t in first.transitions + second.transitions] == [
        t.kind for t in one_go.transitions
    ]
    assert area_store.reads > 0


def test_an_unreadable_area_update_is_dead_lettered_not_raised() -> None:
    areas = AreaProcessor(default_config(), TOPICS, get_codec().encode)
    result = areas.process([(0, b"{broken"), (0, orjson.dumps({"nope": 1}))], MemoryStore())
    assert [r.topic for r in result.records] == [TOPICS.dead_letter, TOPICS.dead_letter]
    assert result.rejected == Counter({"BAD_INTERNAL_BATCH": 2})
