"""The GC policy: no automatic full collections, one on a timer (hub.pipeline.gc_policy)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from hub.pipeline.gc_policy import FullCollections, defer_full_collections


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_deferring_freezes_what_exists_and_keeps_young_collections_automatic(
    restored_gc: None,
) -> None:
    gen0, gen1, gen2 = gc.get_threshold()
    before = gc.get_freeze_count()
    defer_full_collections()
    assert gc.get_threshold()[:2] == (gen0, gen1)
    assert gc.get_threshold()[2] > 1_000_000 > gen2  # no automatic full collection
    assert gc.get_freeze_count() > before


def test_a_full_collection_runs_once_its_interval_has_passed(restored_gc: None) -> None:
    now = [100.0]
    full = FullCollections(every_s=30.0, clock=lambda: now[0])
    assert not full.maybe()
    now[0] = 129.9
    assert not full.maybe()
    collections = gc.get_stats()[2]["collections"]
    now[0] = 130.0
    assert full.maybe()
    assert gc.get_stats()[2]["collections"] == collections + 1
    assert full.runs == 1
    assert not full.maybe()  # the interval counts from this collection
    now[0] = 160.0
    assert full.maybe()


def test_cyclic_garbage_is_freed_by_the_timed_full_collection(restored_gc: None) -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    defer_full_collections()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect(1)  # survivors of the young generations move to the oldest one
    alive = weakref.ref(a)
    del a, b
    gc.collect(1)  # young collections do not look at the oldest generation
    assert alive() is not None
    now = [0.0]
    full = FullCollections(every_s=1.0, clock=lambda: now[0])
    now[0] = 1.0
    assert full.maybe()
    assert alive() is None


def test_a_collection_from_the_timer_restarts_the_interval(restored_gc: None) -> None:
    """The worker calls ``collect`` from a Faust timer; a ``maybe`` right after it waits."""
    now = [0.0]
    full = FullCollections(every_s=30.0, clock=lambda: now[0])
    now[0] = 45.0
    collections = gc.get_stats()[2]["collections"]
    full.collect()
    assert gc.get_stats()[2]["collections"] == collections + 1
    assert full.runs == 1
    now[0] = 60.0
    assert not full.maybe()  # 15 s since the timer's collection
    now[0] = 75.0
    assert full.maybe()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_the_ingest_childs_timed_collection_freezes_its_survivors(restored_gc: None) -> None:
    """The next full collection does not walk what survived this one again."""
    survivor = _Node()
    full = FullCollections(every_s=30.0, clock=lambda: 0.0, freeze_survivors=True)
    full.collect()
    assert gc.is_tracked(survivor)
    assert not any(o is survivor for o in gc.get_objects())  # frozen: in no generation
    assert gc.get_freeze_count() > 0


def test_cyclic_garbage_among_frozen_survivors_waits_for_the_complete_collection(
    restored_gc: None,
) -> None:
    now = [0.0]
    full = FullCollections(
        every_s=30.0, clock=lambda: now[0], complete_every_s=600.0, freeze_survivors=True
    )
    alive = _cycle()  # its objects are alive at the next collection, so they are frozen
    held = alive()
    full.collect()
    del held  # the cycle is garbage now, among frozen objects
    now[0] = 30.0
    full.collect()
    assert alive() is not None  # a timed collection does not walk frozen objects
    assert full.complete_runs == 0
    now[0] = 600.0
    full.collect()
    assert full.complete_runs == 1
    assert alive() is None
    now[0] = 630.0
    full.collect()
    assert full.complete_runs == 1  # the next complete one is 600 s after this one


def test_the_workers_timed_collections_free_what_was_alive_at_an_earlier_one(
    restored_gc: None,
) -> None:
    """Faust's ``Consumer.wait_empty`` (before a rebalance or a stop goes on) collects garbage to
    drop the taken messages nobody references; a message frozen while in flight never would be.
    So the worker freezes nothing."""
    full = FullCollections(every_s=30.0, clock=lambda: 0.0)
    alive = _cycle()
    held = alive()
    full.collect()  # the cycle is alive: it survives this collection
    del held
    gc.collect()  # as wait_empty does
    assert alive() is None
    assert full.complete_runs == 0
