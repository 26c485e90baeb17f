"""The ingest stage at its edges, without a broker: batch size in bytes, dead letters that always
fit, the stage each dead letter names, and that every reason code is counted under its own label.

A fake producer records what ``IngestStage.process`` produces; messages are stand-ins with the
accessors of ``confluent_kafka.Message`` the stage uses.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException

from hub import metrics
from hub.contracts.codec import AvroCodec
from hub.contracts.deadletter import (
    H_OFFSET,
    H_PARTITION,
    H_PAYLOAD_SIZE,
    H_PAYLOAD_TRUNCATED,
    H_REASON,
    H_STAGE,
    H_TOPIC,
    MAX_DEAD_LETTER_PAYLOAD,
    parse_dead_letter,
)
from hub.contracts.decode import encode_case_event, parse_case_event_json
from hub.contracts.enums import RejectReason
from hub.contracts.events import CaseEvent, set_occurred_at_bounds
from hub.contracts.normalised import NormalisedEvent
from hub.pipeline.batches import FIELDS, MAX_BATCH_BYTES, decode_batch, encode_batches
from hub.pipeline.ingest import IngestStage
from hub.pipeline.topics import (
    DEAD_LETTER_MAX_MESSAGE_BYTES,
    INBOUND_MAX_MESSAGE_BYTES,
    NORMALISED_MAX_MESSAGE_BYTES,
    Topics,
)
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "contracts" / "samples.json").read_text()
)["CaseEvent"]
SETTINGS = Settings(topic_prefix="unit.", partitions=4)
TOPICS = Topics.from_settings(SETTINGS)


@dataclass
class FakeMessage:
    """What IngestStage reads of a consumed confluent_kafka.Message."""

    _value: bytes | None
    _offset: int = 0
    _key: bytes | None = b"k"
    _topic: str = TOPICS.case_events
    _partition: int = 3

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


@dataclass
class Produced:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    partition: int | None


@dataclass
class FakeProducer:
    """Records produce calls; refuses messages over ``max_bytes`` like librdkafka does."""

    max_bytes: int = 1 << 30
    records: list[Produced] = field(default_factory=list)

    def produce(
        self, topic: str, key: bytes | None = None, value: bytes | None = None, **kw: Any
    ) -> None:
        size = len(key or b"") + len(value or b"")
        if size > self.max_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        headers = {k: v.decode() for k, v in kw.get("headers") or []}
        self.records.append(Produced(topic, key, value, headers, kw.get("partition")))

    def on(self, topic: str) -> list[Produced]:
        return [r for r in self.records if r.topic == topic]


@pytest.fixture(autouse=True)
def default_bounds() -> Iterator[None]:
    yield
    set_occurred_at_bounds(None)  # IngestStage sets the process-wide bounds from its settings


def _stage(producer: FakeProducer, **kwargs: Any) -> IngestStage:
    return IngestStage(SETTINGS, producer, **kwargs)  # type: ignore[arg-type]


def _event(**changes: Any) -> dict[str, Any]:
    event = deepcopy(SAMPLE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = event
        for p in parents:
            target = target[p]
        target[leaf] = value
    return event


def _json(**changes: Any) -> bytes:
    return orjson.dumps(_event(**changes))


def _avro(**changes: Any) -> bytes:
    event = parse_case_event_json(_event(**changes))
    assert isinstance(event, CaseEvent)
    return encode_case_event(event, AvroCodec())


def _normalised(event_id: str, note: str = "") -> NormalisedEvent:
    return NormalisedEvent(
        event_id, "NCG", "c-1", "DAMAGE", "OPENED", 1, "9711AB-12-", attributes={"note": note}
    )


# ------------------------------------------------------------------------------ batch bytes


def test_batches_are_split_by_bytes_and_never_exceed_the_limit() -> None:
    events = [_normalised(f"e{i}", "x" * 900) for i in range(50)]
    limit = 10_000
    messages = list(encode_batches(events, max_bytes=limit))
    assert len(messages) > 1
    assert all(len(m) <= limit for m in messages)
    assert [e for m in messages for e in decode_batch(m)] == events  # all, in order


def test_a_batch_is_byte_for_byte_the_documented_format() -> None:
    events = [_normalised(f"e{i}", 'é\n"') for i in range(3)]
    rows = [[getattr(e, name) for name in FIELDS] for e in events]
    expected = orjson.dumps({"v": 2, "fields": list(FIELDS), "events": rows})
    assert list(encode_batches(events)) == [expected]


def test_the_batch_limit_stays_well_under_the_internal_topic_limit() -> None:
    assert MAX_BATCH_BYTES <= NORMALISED_MAX_MESSAGE_BYTES // 2


def test_an_event_too_large_for_any_batch_is_handed_over_not_raised() -> None:
    big = _normalised("big", "x" * 5_000)
    events = [_normalised("a"), big, _normalised("b")]
    handed: list[tuple[str, int]] = []
    messages = list(
        encode_batches(
            events, max_bytes=2_000, on_oversized=lambda e, n: handed.append((e.event_id, n))
        )
    )
    assert [e.event_id for m in messages for e in decode_batch(m)] == ["a", "b"]
    assert [h[0] for h in handed] == ["big"] and handed[0][1] > 5_000
    assert list(encode_batches([big], max_bytes=2_000)) == []  # without a callback: logged


def test_ingest_dead_letters_an_event_too_large_for_a_batch_and_forwards_the_rest() -> None:
    producer = FakeProducer()
    stage = _stage(producer, batch_max_bytes=6_000)
    big = _json(
        event_id="big",
        attributes__note="x" * 2_000,
        attributes__more="y" * 2_000,
        attributes__most="z" * 2_000,
    )
    stage.process(
        [
            FakeMessage(_json(event_id="small-1"), 1),
            FakeMessage(big, 2),
            FakeMessage(_json(event_id="small-2"), 3),
        ]
    )  # type: ignore[list-item]
    (letter,) = producer.on(TOPICS.dead_letter)
    assert letter.headers[H_REASON] == RejectReason.RECORD_TOO_LARGE
    assert letter.headers[H_STAGE] == "batch"
    assert letter.headers[H_OFFSET] == "2" and letter.value == big
    forwarded = [e.event_id for r in producer.on(TOPICS.normalised) for e in decode_batch(r.value)]
    assert sorted(forwarded) == ["small-1", "small-2"]
    assert all(len(r.value or b"") <= 6_000 for r in producer.on(TOPICS.normalised))
    assert stage.stats.rejected[RejectReason.RECORD_TOO_LARGE] == 1


# ---------------------------------------------------------------------------- dead letters


@pytest.mark.parametrize(
    ("raw", "stage", "reason", "field"),
    [
        (b"\xc3\x01 not avro", "decode", "UNKNOWN_SCHEMA", None),
        (b"{not json", "decode", "UNDECODABLE", None),
        (b"{" + b" " * (300 * 1024) + b"}", "decode", "RECORD_TOO_LARGE", None),
        (_json(address__postcode="SS12"), "validate", "INVALID_FIELD", "address.postcode"),
        (_avro(address__huisletter="AB"), "resolve", "INVALID_ADDRESS", "address.huisletter"),
    ],
    ids=["decode-avro", "decode-json", "decode-size", "validate", "resolve"],
)
def test_the_dead_letter_stage_header_says_where_the_input_failed(
    raw: bytes, stage: str, reason: str, field: str | None
) -> None:
    producer = FakeProducer()
    _stage(producer).process([FakeMessage(raw, 41)])  # type: ignore[list-item]
    (letter,) = producer.on(TOPICS.dead_letter)
    assert letter.headers[H_STAGE] == stage
    assert letter.headers[H_REASON] == reason
    assert letter.headers.get("hub.errors.field") == field
    assert (letter.headers[H_TOPIC], letter.headers[H_PARTITION]) == (TOPICS.case_events, "3")
    assert letter.headers[H_OFFSET] == "41"


def test_an_oversized_message_is_dead_lettered_truncated_with_a_pointer_to_the_original() -> None:
    producer = FakeProducer()
    original = b"\xc3\x01" + b"\x07" * 1_048_500
    _stage(producer).process([FakeMessage(original, 7), FakeMessage(_json(), 8)])  # type: ignore[list-item]
    (letter,) = producer.on(TOPICS.dead_letter)
    assert letter.value == original[:MAX_DEAD_LETTER_PAYLOAD]
    assert letter.headers[H_PAYLOAD_TRUNCATED] == "true"
    assert letter.headers[H_PAYLOAD_SIZE] == str(len(original))
    assert letter.headers[H_REASON] == "RECORD_TOO_LARGE"
    assert (letter.headers[H_TOPIC], letter.headers[H_OFFSET]) == (TOPICS.case_events, "7")
    assert len(producer.on(TOPICS.normalised)) == 1  # the next event still goes through
    parsed = parse_dead_letter(
        list((k, v.encode()) for k, v in letter.headers.items()), letter.value
    )
    assert parsed.payload_truncated and parsed.payload_size == len(original)


def test_a_dead_letter_within_the_bound_keeps_its_value_untouched_and_unmarked() -> None:
    producer = FakeProducer()
    raw = _json(address__postcode="SS12")
    _stage(producer).process([FakeMessage(raw)])  # type: ignore[list-item]
    (letter,) = producer.on(TOPICS.dead_letter)
    assert letter.value == raw and H_PAYLOAD_TRUNCATED not in letter.headers


def test_a_dead_letter_the_producer_refuses_as_too_large_still_goes_out_without_failing() -> None:
    producer = FakeProducer(max_bytes=INBOUND_MAX_MESSAGE_BYTES)
    huge_key = b"k" * (INBOUND_MAX_MESSAGE_BYTES + 1)
    _stage(producer).process([FakeMessage(b"garbage", 5, _key=huge_key)])  # type: ignore[list-item]
    (letter,) = producer.on(TOPICS.dead_letter)
    assert letter.key is None and letter.value is None
    assert letter.headers[H_PAYLOAD_TRUNCATED] == "true"
    assert letter.headers[H_OFFSET] == "5" and letter.headers[H_REASON] == "UNDECODABLE"


def test_the_largest_dead_letter_fits_the_dead_letter_topic() -> None:
    """Key and value share the inbound limit; the value is cut; headers are bounded."""
    producer = FakeProducer()
    key = b"k" * (INBOUND_MAX_MESSAGE_BYTES // 2)
    value = b"{" + b"v" * (INBOUND_MAX_MESSAGE_BYTES // 2)
    _stage(producer).process([FakeMessage(value, 2**62, _key=key)])  # type: ignore[list-item]
    (letter,) = producer.on(TOPICS.dead_letter)
    header_bytes = sum(len(k) + len(v.encode()) for k, v in letter.headers.items())
    assert header_bytes < 8 * 1024
    total = len(letter.key or b"") + len(letter.value or b"") + header_bytes
    assert total < DEAD_LETTER_MAX_MESSAGE_BYTES - 64 * 1024


def test_topic_size_limits_are_set_and_the_dead_letter_topic_holds_more_than_the_inbound() -> None:
    specs = TOPICS.specs(4)
    inbound = int(specs[TOPICS.case_events][1]["max.message.bytes"])
    dead = int(specs[TOPICS.dead_letter][1]["max.message.bytes"])
    assert inbound == INBOUND_MAX_MESSAGE_BYTES == 1024 * 1024
    assert dead >= inbound + 512 * 1024
    assert int(specs[TOPICS.normalised][1]["max.message.bytes"]) == NORMALISED_MAX_MESSAGE_BYTES


# ------------------------------------------------------------------------------ the metric


def _rejected(reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("hub_events_rejected_total", {"reason": reason}) or 0.0


def test_every_reason_code_is_a_label_of_the_rejected_metric_and_counted_as_itself() -> None:
    for reason in RejectReason:
        assert reason.value in metrics.REJECT_REASONS
        before, other = _rejected(reason.value), _rejected(metrics.OTHER)
        metrics.record_rejected({reason: 2})
        assert _rejected(reason.value) == before + 2, reason
        assert _rejected(metrics.OTHER) == other, reason
    exported = metrics.REGISTRY.collect()
    labels = {
        s.labels["reason"] for f in exported if f.name == "hub_events_rejected" for s in f.samples
    }
    assert {r.value for r in RejectReason} <= labels  # exported at 0 from the start


def test_an_address_refused_by_hub_address_is_counted_as_invalid_address_not_other() -> None:
    before, other = _rejected("INVALID_ADDRESS"), _rejected(metrics.OTHER)
    _stage(FakeProducer()).process([FakeMessage(_avro(address__huisletter="AB"))])  # type: ignore[list-item]
    assert _rejected("INVALID_ADDRESS") == before + 1
    assert _rejected(metrics.OTHER) == other


def _emitted_reason_codes() -> set[str]:
    """Every reason code the hub's code can put on a dead letter: ``RejectReason.X``,
    ``reason_code=...``, ``Rejection(X, ...)``, ``DecodeError(X, ...)`` and
    ``("hub.errors.reason", X)``, where X is a literal or a module constant holding one."""
    trees = [
        ast.parse(path.read_text(), str(path))
        for path in [
            *ROOT.joinpath("hub").rglob("*.py"),
            *ROOT.joinpath("connectors").rglob("*.py"),
        ]
    ]
    constants: dict[str, str] = {}  # NAME = "TEXT" at module level, in any module
    for tree in trees:
        for stmt in tree.body:
            if (
                isinstance(stmt, ast.Assign)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = stmt.value.value

    def text(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            value = node.value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            candidates: list[ast.expr] = []
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "RejectReason"
            ):
                found.add(node.attr)
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                candidates = [k.value for k in node.keywords if k.arg == "reason_code"]
                if name in ("Rejection", "DecodeError"):
                    candidates += node.args[:1]
            elif (
                isinstance(node, ast.Tuple)
                and len(node.elts) == 2
                and text(node.elts[0]) == "hub.errors.reason"
            ):
                candidates = [node.elts[1]]
            found.update(t for c in candidates if (t := text(c)) is not None)
    return found


def test_every_reason_code_the_code_can_emit_is_in_the_enum_and_the_metric() -> None:
    emitted = _emitted_reason_codes()
    assert {"INVALID_ADDRESS", "BAD_INTERNAL_BATCH", "UNDECODABLE"} <= emitted  # the scan works
    assert emitted <= {r.value for r in RejectReason}
    assert emitted <= metrics.REJECT_REASONS


def test_producer_errors_are_exported_at_zero_for_every_hub_topic() -> None:
    stage = _stage(FakeProducer())
    for topic in stage.topics.specs(1):
        for error in metrics.PRODUCER_ERROR_NAMES:
            value = metrics.REGISTRY.get_sample_value(
                "hub_producer_errors_total", {"topic": topic, "error": error}
            )
            assert value is not None, (topic, error)
