"""``HUB_TRACE_BATCHES`` logs the changelog offsets each recovery or standby apply wrote (stop 38:
it showed that a standby copy's missing records never reached its table)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from hub.pipeline import trace


def _event(partition: int, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset))


def test_an_apply_is_done_and_logged_by_partition_and_offsets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    applied: list[Any] = []
    table = SimpleNamespace(name="dossiers", apply_changelog_batch=applied.extend)
    monkeypatch.setattr(trace, "ENABLED", True)
    trace.watch_changelog_applies(table)
    with caplog.at_level(logging.WARNING, logger="hub.trace"):
        table.apply_changelog_batch(iter([_event(6, 861), _event(4, 715), _event(6, 913)]))
    assert [(e.message.partition, e.message.offset) for e in applied] == [
        (6, 861),
        (4, 715),
        (6, 913),
    ]
    assert "trace dossiers applied p4=715-715/1 p6=861-913/2" in caplog.text


def test_without_the_trace_the_table_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def apply(batch: Any) -> None:
        return None

    table = SimpleNamespace(name="dossiers", apply_changelog_batch=apply)
    monkeypatch.setattr(trace, "ENABLED", False)
    trace.watch_changelog_applies(table)
    assert table.apply_changelog_batch is apply
