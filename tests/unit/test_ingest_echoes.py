"""The ingest stage skips its own state records when it reads them back (hub.pipeline.echoes).

Each ingest child follows the address register and the building cases to learn what other
children learned; its own records come back too. Skipping them must leave the memory exactly as
applying them would, also when another child's record about the same key comes in between.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.pipeline.echoes import Echoes
from tests.unit.test_ingest_crash_order import (
    BATCH_1,
    BATCH_2,
    PAND,
    TOPICS,
    Broker,
    Record,
    _messages,
    _run_batch,
    _start,
    default_bounds,  # noqa: F401  (autouse: resets the occurred_at bounds)
)

REGISTER = TOPICS.address_register
CASES = TOPICS.building_cases


def test_an_own_record_read_back_is_skipped_once() -> None:
    echoes = Echoes()
    echoes.produced(REGISTER, b"k", b"v1")
    assert echoes.skip(REGISTER, b"k", b"v1")
    assert not echoes.skip(REGISTER, b"k", b"v1")  # a second copy is someone else's
    assert len(echoes) == 0


def test_records_of_other_keys_or_topics_are_never_skipped() -> None:
    echoes = Echoes()
    echoes.produced(REGISTER, b"k", b"v")
    assert not echoes.skip(REGISTER, b"other", b"v")
    assert not echoes.skip(CASES, b"k", b"v")
    assert echoes.skip(REGISTER, b"k", b"v")


def test_own_records_after_a_foreign_one_of_the_same_key_are_applied() -> None:
    """Own v1, v2 in flight; another child's f arrives between them: v1 is skipped (nothing came
    in between yet), f and v2 are applied, so the memory ends on v2 as the topic does."""
    echoes = Echoes()
    echoes.produced(CASES, b"k", b"v1")
    echoes.produced(CASES, b"k", b"v2")
    assert echoes.skip(CASES, b"k", b"v1")
    assert not echoes.skip(CASES, b"k", b"f")
    assert not echoes.skip(CASES, b"k", b"v2")
    assert len(echoes) == 0
    echoes.produced(CASES, b"k", b"v3")  # the crossing is forgotten once nothing is in flight
    assert echoes.skip(CASES, b"k", b"v3")


def test_a_foreign_record_read_before_the_own_one_makes_the_own_one_apply() -> None:
    """Produced v after reading nothing, but f was in the topic before v: f is applied over the
    memory's v, so v must be applied again to end where the topic ends."""
    echoes = Echoes()
    echoes.produced(REGISTER, b"k", b"v")
    assert not echoes.skip(REGISTER, b"k", b"f")
    assert not echoes.skip(REGISTER, b"k", b"v")


def _memory(stage: Any) -> tuple[list[str], list[str]]:
    ingestor = stage.ingestor
    facts = sorted(json.dumps(f, sort_keys=True) for f in ingestor.register.iter_facts())
    cases = sorted(repr(t) for t in ingestor.building_cases(PAND))
    return facts, cases


def test_a_stage_following_its_own_state_applies_none_of_it_and_ends_as_a_restore(
    tmp_path: Path,
) -> None:
    broker = Broker()
    worker = _start(broker, tmp_path / "a")
    _run_batch(worker.stage, _messages(BATCH_1, 0))
    _run_batch(worker.stage, _messages(BATCH_2, len(BATCH_1)))
    own = len(broker.logs.get(REGISTER, [])) + len(broker.logs.get(CASES, []))
    assert own > 0, "the batches taught the register and remembered a building case"
    applied: list[Any] = []
    apply_fact = worker.stage.ingestor.apply_fact
    worker.stage.ingestor.apply_fact = lambda fact: applied.append(fact) or apply_fact(fact)  # type: ignore[method-assign]

    worker.stage._follow_state(worker.reader)  # type: ignore[arg-type]

    assert applied == []
    assert worker.stage.stats.echoes == own
    assert _memory(worker.stage) == _memory(_start(broker, tmp_path / "b").stage)


def test_another_childs_fact_is_still_applied_and_releases_what_it_unlocks(
    tmp_path: Path,
) -> None:
    broker = Broker()
    worker = _start(broker, tmp_path / "a")
    _run_batch(worker.stage, _messages(BATCH_1, 0))  # parks an event on the pand
    fact = {"fact": "pand", "pand_id": PAND, "address_key": "9711AB-12"}
    broker.append(Record(REGISTER, b"pand|x", json.dumps(fact).encode()))

    worker.stage._follow_state(worker.reader)  # type: ignore[arg-type]

    assert worker.stage.stats.released > 0, "the foreign fact released the parked case"
    assert _memory(worker.stage) == _memory(_start(broker, tmp_path / "b").stage)
