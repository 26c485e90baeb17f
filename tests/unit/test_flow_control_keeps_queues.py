"""The end of a rebalance's recovery keeps what the fetcher queued meanwhile
(:mod:`hub.pipeline.faust_flow`): standby changelog records and input messages. Faust's own flow
control cleared both, which left holes in standby tables and stopped commits. Every other
resume still clears (records fetched before a seek must not be applied after it)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

from faust.types import TP

from hub.pipeline.faust_flow import KeepQueuedAtRecoveryEnd, ResumeKeepsQueues
from hub.pipeline.topics import Topics
from hub.pipeline.topology import HubApp, build_topology
from hub.settings import Settings


async def _no_step(messages: object) -> None:
    return None


def _app() -> tuple[HubApp, Topics]:
    settings = Settings(topic_prefix="flow.")
    topics = Topics.from_settings(settings)
    return build_topology(settings, topics, _no_step, _no_step).app, topics


def _queues(app: HubApp, topics: Topics) -> tuple[Any, Any]:
    changelog: Any = app.tables.changelog_queue  # type: ignore[attr-defined]
    stream: Any = app.topic(topics.normalised).queue
    changelog.put_nowait("standby changelog record")
    stream.put_nowait("input message")
    return changelog, stream


def test_the_end_of_recovery_keeps_queued_standby_records_and_input_messages() -> None:
    """Faust's ``Recovery.on_recovery_completed`` itself, with the consumer and fetcher faked."""

    async def go() -> tuple[int, int]:
        app, topics = _app()
        changelog, stream = _queues(app, topics)
        consumer = mock.MagicMock()
        consumer.assignment.return_value = {TP(topics.normalised, 0)}
        consumer.perform_seek = mock.AsyncMock()
        app._consumer = consumer  # type: ignore[attr-defined]
        fetcher = mock.MagicMock()
        fetcher.maybe_start = mock.AsyncMock()
        recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
        assert isinstance(recovery, KeepQueuedAtRecoveryEnd)
        with mock.patch.object(type(app), "_fetcher", fetcher):
            await recovery.on_recovery_completed(app.consumer_generation_id)
        consumer.perform_seek.assert_awaited()  # the path that cleared the queues ran
        assert app.flow_control.is_active()
        return changelog.qsize(), stream.qsize()

    assert asyncio.run(go()) == (1, 1)


def test_a_rebalance_still_clears_the_queues() -> None:
    """``App._on_partitions_revoked`` clears them explicitly: older generations' records go."""

    async def go() -> tuple[int, int]:
        app, topics = _app()
        assert isinstance(app.flow_control, ResumeKeepsQueues)
        changelog, stream = _queues(app, topics)
        app.flow_control.suspend()
        app.flow_control.clear()
        return changelog.qsize(), stream.qsize()

    assert asyncio.run(go()) == (0, 0)


def test_any_other_resume_still_clears_the_queues() -> None:
    """As in Faust: a recovery's resumes after its seeks drop records fetched before them."""

    async def go() -> tuple[int, int, bool]:
        app, topics = _app()
        changelog, stream = _queues(app, topics)
        app.flow_control.suspend()
        app.flow_control.resume()
        flow: Any = app.flow_control
        return changelog.qsize(), stream.qsize(), flow.keep_queued

    assert asyncio.run(go()) == (0, 0, False)
