"""Topics earlier bench runs left behind are found (and only those), and a run warns of them."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

import bench.harness as harness
import bench.run as bench_run

_ON_BROKER = [
    "bench.20261205-103700-ab12.case-events",  # a kept run's hub topics
    "bench-20261205-103700-ab12-hub-dossiers-changelog",
    "benchrec.20261205-103700-ab12.normalised",  # its recovery phase
    "repartition__bench-20261205-103700-ab12-quix--address",  # the Quix peer's internals
    "changelog__bench-20261205-103700-ab12-quix--dossiers",
    "hub.case-events",  # the demo's and an operator's topics are not the bench's
    "hub-dossiers-changelog",
    "benchmark-results",
    "__consumer_offsets",
]


class _Admin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def list_topics(self, timeout: float) -> Any:
        class _Metadata:
            topics = dict.fromkeys(_ON_BROKER)

        return _Metadata()


def test_leftover_topics_are_the_bench_runs_topics_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "AdminClient", _Admin)
    assert harness.leftover_topics("localhost:1") == sorted(_ON_BROKER[:5])


def test_a_run_warns_of_leftovers_and_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "AdminClient", _Admin)
    out = io.StringIO()
    bench_run._warn_of_leftovers("localhost:1", Console(file=out, width=300))
    assert "5 topic(s) of earlier bench runs" in out.getvalue()
    assert "python -m bench.run --drop-leftovers" in out.getvalue()
