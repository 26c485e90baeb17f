"""The ingest child's metrics reach the worker's registry: one queue message per cycle, in order."""

from __future__ import annotations

from typing import Any

from hub import metrics
from hub.pipeline.ingest_process import ForwardingMetrics, apply_forwarded


class _Channel:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def put_nowait(self, message: Any) -> None:
        self.messages.append(message)


def _parked() -> float | None:
    return metrics.REGISTRY.get_sample_value("hub_parked_events")


def test_a_cycles_metrics_cross_as_one_message_and_apply_in_call_order() -> None:
    channel = _Channel()
    forward = ForwardingMetrics(channel)
    forward.set_parked(7)
    forward.observe_batch("ingest", 3)
    forward.set_parked(2)
    assert channel.messages == []  # nothing crosses before the cycle ends
    forward.flush()
    assert len(channel.messages) == 1
    apply_forwarded(channel.messages[0])
    assert _parked() == 2  # the cycle's last value wins: the calls kept their order
    forward.flush()
    assert len(channel.messages) == 1  # no calls since: no message


def test_only_the_ingest_stages_helpers_are_applied_from_a_batch() -> None:
    metrics.set_parked(0)
    dossiers = metrics.REGISTRY.get_sample_value("hub_dossiers")
    apply_forwarded([("adjust_dossiers", (10**6,)), ("set_parked", (5,))])
    assert _parked() == 5
    assert metrics.REGISTRY.get_sample_value("hub_dossiers") == dossiers  # not a helper of ingest
