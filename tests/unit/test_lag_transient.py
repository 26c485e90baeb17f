"""group_lag asks again while a partition has no leader (a topic the worker just created)."""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from hub.pipeline.lag import group_lag
from hub.settings import Settings


class _Metadata:
    def __init__(self) -> None:
        self.topics = {"t": type("T", (), {"partitions": {0: None, 1: None}})()}


class _Reader:
    """Fails ``failures`` watermark calls with ``code``, then answers (high 10, low 0)."""

    calls = 0
    failures = 2
    code = KafkaError.NOT_LEADER_FOR_PARTITION

    def __init__(self, config: dict[str, Any]) -> None:
        pass

    def list_topics(self, timeout: float) -> _Metadata:
        return _Metadata()

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, 4) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        type(self).calls += 1
        if type(self).calls <= type(self).failures:
            raise KafkaException(KafkaError(type(self).code))
        return 0, 10

    def close(self) -> None:
        pass


def test_a_partition_without_a_leader_for_a_moment_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(confluent_kafka, "Consumer", _Reader)
    _Reader.calls, _Reader.failures = 0, 2
    assert group_lag(Settings(), "g", ["t"]) == {("t", 0): 6, ("t", 1): 6}
    assert _Reader.calls == 4  # two refused, then both partitions


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confluent_kafka, "Consumer", _Reader)
    _Reader.calls, _Reader.failures = 0, 1
    _Reader.code = KafkaError.GROUP_AUTHORIZATION_FAILED
    try:
        with pytest.raises(KafkaException):
            group_lag(Settings(), "g", ["t"])
        assert _Reader.calls == 1
    finally:
        _Reader.code = KafkaError.NOT_LEADER_FOR_PARTITION
