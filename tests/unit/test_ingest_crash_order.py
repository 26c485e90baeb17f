"""A crash of the ingest stage between produce and commit never loses what the batch released.

The ingest stage writes two kinds of records per batch: *outputs* (normalised batches, dead
letters) and *state* (register facts, building cases, parked events and their tombstones). Kafka
orders nothing across partitions, so a kill -9 during a flush can leave any subset of the
produced records durable. If a state record (say "this address is in building P") survives while
the output it implies (building P's case released to that address) is lost, the restarted stage
re-reads the batch with the fact already known, releases nothing, and the dossier misses a case:
the stale dossier the fault suite found after kill -9 of the ingest child.

Here a fake broker makes the worst subset durable at a crash (every pending state record, no
pending output), crashes at every flush, restarts a new stage from the durable state topics and
replays the uncommitted batch; the outputs of both lives together must hold every event a
crash-free run produces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from hub.contracts.events import set_occurred_at_bounds
from hub.pipeline.batches import decode_batch
from hub.pipeline.ingest import COMMIT_EVERY_S, IngestStage, ReleaseCheckpoint
from hub.pipeline.state import DeliveryFailed
from hub.pipeline.topics import Topics
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "contracts" / "samples.json").read_text()
)["CaseEvent"]
SETTINGS = Settings(topic_prefix="crash.", partitions=4)
TOPICS = Topics.from_settings(SETTINGS)
STATE_TOPICS = {TOPICS.address_register, TOPICS.building_cases, TOPICS.parked}


class Crash(Exception):
    """kill -9 of the ingest child, in the middle of a flush."""


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    offset: int = 0
    partition: int = 0


class Msg:
    """A consumed message: what IngestStage reads of a confluent_kafka.Message."""

    def __init__(self, record: Record) -> None:
        self._r = record

    def value(self) -> bytes | None:
        return self._r.value

    def key(self) -> bytes | None:
        return self._r.key

    def topic(self) -> str:
        return self._r.topic

    def partition(self) -> int:
        return self._r.partition

    def offset(self) -> int:
        return self._r.offset

    def error(self) -> None:
        return None


@dataclass
class Broker:
    """Durable logs per topic; a producer's records become durable only when flushed."""

    logs: dict[str, list[Record]] = field(default_factory=dict)

    def append(self, record: Record) -> None:
        log = self.logs.setdefault(record.topic, [])
        record.offset = len(log)
        log.append(record)


@dataclass
class CrashingProducer:
    """Buffers produce calls; ``flush`` makes them durable, or crashes on flush number
    ``crash_at`` leaving the worst subset durable (all pending state, no pending output)."""

    broker: Broker
    crash_at: int | None = None
    flushes: int = 0
    pending: list[Record] = field(default_factory=list)

    def produce(
        self, topic: str, key: bytes | None = None, value: bytes | None = None, **kw: Any
    ) -> None:
        self.pending.append(Record(topic, key, value, partition=kw.get("partition") or 0))

    def flush(self, timeout: float = 0) -> int:
        self.flushes += 1
        pending, self.pending = self.pending, []
        if self.crash_at is not None and self.flushes == self.crash_at:
            for record in pending:
                if record.topic in STATE_TOPICS:
                    self.broker.append(record)
            raise Crash
        for record in pending:
            self.broker.append(record)
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


class StateReader:
    """The assign-only consumer the stage restores and follows its global state with."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.positions: dict[str, int] = {}

    def get_watermark_offsets(self, tp: TopicPartition, **kw: Any) -> tuple[int, int]:
        return 0, len(self.broker.logs.get(tp.topic, []))

    def assign(self, parts: list[TopicPartition]) -> None:
        self.positions = {tp.topic: 0 for tp in parts}

    def consume(self, num_messages: int = 1, timeout: float = 0) -> list[Msg]:
        out = []
        for topic, position in self.positions.items():
            log = self.broker.logs.get(topic, [])
            out.extend(Msg(r) for r in log[position:])
            self.positions[topic] = len(log)
        return out

    def incremental_unassign(self, parts: list[TopicPartition]) -> None:
        for tp in parts:
            self.positions.pop(tp.topic, None)


@pytest.fixture(autouse=True)
def default_bounds() -> Iterator[None]:
    yield
    set_occurred_at_bounds(None)


def _event(event_id: str, source: str, case_id: str, case_type: str, **address: Any) -> bytes:
    event = deepcopy(SAMPLE)
    event.update(event_id=event_id, source=source, source_org=source, case_id=case_id)
    event.update(case_type=case_type)
    event["address"] = {
        "nummeraanduiding_id": None,
        "pand_id": None,
        "postcode": None,
        "huisnummer": None,
        "huisletter": None,
        "huisnummertoevoeging": None,
        "gemeentecode": "GM0014",
        **address,
    }
    return json.dumps(event).encode()


PAND = "0014100000654321"
NID = "0014200000123456"
# Batch 1 (committed): a building-level damage case for pand P, with no address of P known yet
# (parked on the pand and remembered), and an id-only claim for an address not yet known
# (parked on its id).
BATCH_1 = [
    _event("img-1", "IMG", "IMG-1", "DAMAGE", pand_id=PAND),
    _event("ncg-1", "NCG", "NCG-1", "STRENGTHENING", nummeraanduiding_id=NID),
]
# Batch 2 (crashes): an address in pand P that carries the id: it teaches "key in P" and
# "id -> key", which releases both parked events to that address.
BATCH_2 = [
    _event(
        "gem-1",
        "MUNICIPALITY",
        "GEM-1",
        "PERMIT",
        postcode="9711AB",
        huisnummer=12,
        pand_id=PAND,
        nummeraanduiding_id=NID,
    ),
]


def _messages(raws: list[bytes], first_offset: int) -> list[Msg]:
    return [
        Msg(Record(TOPICS.case_events, b"k", raw, offset=first_offset + i))
        for i, raw in enumerate(raws)
    ]


class SilentMetrics:
    """Keeps these tests off the process-wide registry (other tests read its source clocks)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@dataclass
class Worker:
    """One ingest stage on the fake broker, with its own data dir (the release checkpoint)."""

    stage: IngestStage
    producer: CrashingProducer
    reader: StateReader


def _start(broker: Broker, data_dir: Path) -> Worker:
    producer = CrashingProducer(broker)
    stage = IngestStage(
        SETTINGS,
        producer,  # type: ignore[arg-type]
        clock=lambda: 1_750_000_000.0,
        metrics_sink=SilentMetrics(),
        checkpoint=ReleaseCheckpoint(data_dir / "checkpoint.json", every_s=0),
    )
    reader = StateReader(broker)
    stage._restore(reader)  # type: ignore[arg-type]
    return Worker(stage, producer, reader)


def _delivered(broker: Broker) -> set[tuple[str, str, str]]:
    """(address key, source, event id) of every normalised event on the internal topic."""
    return {
        (e.address_key, e.source, e.event_id)
        for record in broker.logs.get(TOPICS.normalised, [])
        for e in decode_batch(record.value or b"")
    }


def _run_batch(stage: IngestStage, messages: list[Msg]) -> None:
    stage.process(messages)  # type: ignore[arg-type]
    stage.persist()


def _delivered_list(broker: Broker) -> list[tuple[str, str, str]]:
    return [
        (e.address_key, e.source, e.event_id)
        for record in broker.logs.get(TOPICS.normalised, [])
        for e in decode_batch(record.value or b"")
    ]


def _crash_free(data_dir: Path) -> set[tuple[str, str, str]]:
    broker = Broker()
    stage = _start(broker, data_dir).stage
    _run_batch(stage, _messages(BATCH_1, 0))
    _run_batch(stage, _messages(BATCH_2, len(BATCH_1)))
    return _delivered(broker)


def test_crash_free_run_releases_both_parked_events_to_the_new_address(tmp_path: Path) -> None:
    delivered = _crash_free(tmp_path)
    keys = {key for key, _, _ in delivered}
    assert keys == {"9711AB-12"}
    assert {eid for _, _, eid in delivered} == {"img-1", "ncg-1", "gem-1"}


@pytest.mark.parametrize("crash_at", [1, 2])  # the batch flushes twice: outputs, state
def test_crash_at_any_flush_of_a_batch_loses_no_released_event(
    crash_at: int, tmp_path: Path
) -> None:
    expected = _crash_free(tmp_path / "reference")
    broker = Broker()
    worker = _start(broker, tmp_path)
    stage, first = worker.stage, worker.producer
    _run_batch(stage, _messages(BATCH_1, 0))  # committed
    first.crash_at = first.flushes + crash_at
    with pytest.raises(Crash):
        _run_batch(stage, _messages(BATCH_2, len(BATCH_1)))
    # the restarted child: state from the durable topics, then the uncommitted batch again
    second = _start(broker, tmp_path).stage
    _run_batch(second, _messages(BATCH_2, len(BATCH_1)))
    assert expected - _delivered(broker) == set()


def test_state_records_are_produced_only_after_the_outputs_they_imply_are_durable(
    tmp_path: Path,
) -> None:
    broker = Broker()
    worker = _start(broker, tmp_path)
    stage, producer = worker.stage, worker.producer
    _run_batch(stage, _messages(BATCH_1, 0))
    stage.process(_messages(BATCH_2, len(BATCH_1)))  # type: ignore[arg-type]
    assert producer.pending, "the batch produced its outputs"
    assert all(r.topic not in STATE_TOPICS for r in producer.pending)


def _foreign_link(broker: Broker) -> None:
    """Another worker learned "9711AB-12 is in pand P" and published the fact."""
    fact = {"fact": "pand", "pand_id": PAND, "address_key": "9711AB-12"}
    broker.append(Record(TOPICS.address_register, b"pand|x", json.dumps(fact).encode()))


# The building already has an address (9711AB-14) when the building case arrives, so the case is
# remembered and delivered there, not parked: only the release path can bring it to 9711AB-12.
NEIGHBOUR_THEN_BUILDING_CASE = [
    _event(
        "hc-1",
        "HOUSING_CORPORATION",
        "HC-1",
        "MAINTENANCE",
        postcode="9711AB",
        huisnummer=14,
        pand_id=PAND,
    ),
    BATCH_1[0],
]


def _released_to_new_address(broker: Broker) -> int:
    return _delivered_list(broker).count(("9711AB-12", "IMG", "img-1"))


@pytest.mark.parametrize("crash", [True, False], ids=["crash-before-flush", "clean"])
def test_release_caused_by_another_workers_fact_survives_a_crash(
    crash: bool, tmp_path: Path
) -> None:
    broker = Broker()
    b = _start(broker, tmp_path)
    _run_batch(b.stage, _messages(NEIGHBOUR_THEN_BUILDING_CASE, 0))
    assert not broker.logs.get(TOPICS.parked), "remembered for the building, not parked"
    _foreign_link(broker)
    b.stage._follow_state(b.reader)  # type: ignore[arg-type]
    assert b.producer.pending, "the fact released the building case to the new address"
    if crash:
        b.producer.pending.clear()  # kill -9 before the flush
    else:
        b.stage.persist()
    _start(broker, tmp_path).stage.persist()  # the restarted stage
    # after a crash the restarted stage sends it again; after a clean flush the checkpoint
    # says it was delivered and nothing is repeated
    assert _released_to_new_address(broker) == 1


def test_without_a_checkpoint_a_restart_sends_every_building_case_again(tmp_path: Path) -> None:
    broker = Broker()
    b = _start(broker, tmp_path / "old")
    _run_batch(b.stage, _messages(NEIGHBOUR_THEN_BUILDING_CASE, 0))
    _foreign_link(broker)
    b.stage._follow_state(b.reader)  # type: ignore[arg-type]
    b.stage.persist()
    _start(broker, tmp_path / "wiped").stage.persist()  # a new worker: no checkpoint file
    assert _released_to_new_address(broker) == 2  # an exact repeat, which the engine drops


class _RecordingConsumer:
    def __init__(self) -> None:
        self.commits: list[bool] = []
        self.offsets: list[dict[tuple[str, int], int] | None] = []

    def commit(
        self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> None:
        self.commits.append(asynchronous)
        self.offsets.append(
            None if offsets is None else {(tp.topic, tp.partition): tp.offset for tp in offsets}
        )


_BATCH = [Msg(Record("in", b"k", b"v", offset=o, partition=p)) for p, o in [(0, 7), (1, 3), (0, 9)]]


def test_a_batch_is_committed_without_waiting_for_the_broker(tmp_path: Path) -> None:
    stage = _start(Broker(), tmp_path).stage
    consumer = _RecordingConsumer()
    stage._commit(consumer, _BATCH)  # type: ignore[arg-type]
    assert consumer.commits == [True]


def test_a_batch_commits_its_own_offsets_never_the_stored_ones(tmp_path: Path) -> None:
    """``commit()`` without offsets lets librdkafka's thread pick the stored offsets later,
    which by then include the next batch (consumed, not yet processed): lost on a kill -9."""
    stage = _start(Broker(), tmp_path).stage
    consumer = _RecordingConsumer()
    stage._commit(consumer, _BATCH)  # type: ignore[arg-type]
    assert consumer.offsets == [{("in", 0): 10, ("in", 1): 4}]


def test_a_commit_refused_after_a_rebalance_leaves_the_batch_to_its_new_owner(
    tmp_path: Path,
) -> None:
    stage = _start(Broker(), tmp_path).stage
    now = [1_750_000_000.0]
    stage.clock = lambda: now[0]
    consumer = _RecordingConsumer()
    for code in (KafkaError._ASSIGNMENT_LOST, KafkaError.ILLEGAL_GENERATION, KafkaError._NO_OFFSET):
        stage._on_commit(KafkaError(code), [])  # the answer to an earlier batch's commit
        stage._commit(consumer, _BATCH)  # type: ignore[arg-type]  # no exit: not an error
        now[0] += COMMIT_EVERY_S  # the next batch's commit is due
    stage._on_commit(KafkaError(KafkaError._TRANSPORT), [])
    with pytest.raises(KafkaException):  # anything else still ends the child (restarted)
        stage._commit(consumer, _BATCH)  # type: ignore[arg-type]
    assert consumer.commits == [True, True, True]  # nothing committed after the failed commit


def _at(raw: bytes, event_id: str, occurred_at: str) -> bytes:
    event = json.loads(raw)
    event.update(event_id=event_id, occurred_at=occurred_at)
    return json.dumps(event).encode()


@pytest.mark.parametrize("first", [BATCH_1[0], BATCH_1[1]], ids=["on its pand", "on its id"])
def test_a_restart_does_not_deliver_a_parked_event_its_case_had_superseded(
    tmp_path: Path, first: bytes
) -> None:
    """Two events of one case wait for the same address; only the later is ever released.

    The earlier one's parked record used to stay on the parked topic (only the released event's
    was tombstoned), so every restart re-ingested it, found its address and delivered a stale
    event: the cluster suite's "kill -9 ingest child" saw wrong cases and an extra alert.
    """
    broker = Broker()
    b = _start(broker, tmp_path)
    older = _at(first, "old-1", "2025-01-10T10:00:00Z")
    newer = _at(first, "new-1", "2025-02-10T10:00:00Z")
    _run_batch(b.stage, _messages([newer, older], 0))  # arrival order need not be event order
    _run_batch(b.stage, _messages(BATCH_2, 2))
    delivered = _delivered(broker)
    assert {e for _k, _s, e in delivered} >= {"new-1", "gem-1"}
    _start(broker, tmp_path).stage.persist()  # a restart (kill -9 after the batch was durable)
    assert "old-1" not in {e for _k, _s, e in _delivered(broker)}
    assert _delivered(broker) == delivered


def _parked_now(broker: Broker) -> dict[bytes | None, bytes | None]:
    """The parked topic as compaction would leave it: the latest value per key."""
    return {r.key: r.value for r in broker.logs.get(TOPICS.parked, [])}


def test_a_parked_event_released_while_restoring_leaves_the_parked_topic(tmp_path: Path) -> None:
    """A worker restarts after another learned the id its parked event waits for: the restore
    releases the event, and must tombstone its parked record, or every later restart would
    deliver it again (and, once its case has moved on, a stale state)."""
    broker = Broker()
    a = _start(broker, tmp_path)
    _run_batch(a.stage, _messages([BATCH_1[1]], 0))  # id-only claim: parked on its id
    assert any(v is not None for v in _parked_now(broker).values())
    fact = {"fact": "nummeraanduiding", "nummeraanduiding_id": NID, "address_key": "9711AB-12"}
    key = f"nummeraanduiding:{NID}".encode()
    broker.append(Record(TOPICS.address_register, key, json.dumps(fact).encode()))
    _start(broker, tmp_path)  # down meanwhile: the restore reads the fact and releases
    assert _delivered_list(broker).count(("9711AB-12", "NCG", "ncg-1")) == 1
    assert all(v is None for v in _parked_now(broker).values()), "tombstoned"
    _start(broker, tmp_path)  # another restart: nothing left to deliver again
    assert _delivered_list(broker).count(("9711AB-12", "NCG", "ncg-1")) == 1


class _AwayProducer(CrashingProducer):
    """A broker that never answers: every flush leaves the records waiting."""

    purged: bool = False

    def flush(self, timeout: float = 0) -> int:
        self.flushes += 1
        return len(self.pending)

    def purge(self, **_kw: Any) -> None:
        self.purged = True
        self.pending.clear()


def test_a_stage_asked_to_stop_gives_up_a_flush_the_broker_never_answers(tmp_path: Path) -> None:
    """The flush waits for an absent broker however long, except once the stage is asked to
    stop (SIGTERM, or the worker died): then the batch fails, uncommitted, and is read again."""
    stage = _start(Broker(), tmp_path).stage
    away = _AwayProducer(Broker())
    stage.producer = away  # type: ignore[assignment]
    away.produce("hub.normalised", b"k", b"v")
    stage._stop.set()
    with pytest.raises(DeliveryFailed, match="stopping: 1 record"):
        stage._flush()
    assert away.purged
