"""A stop that hangs ends at its deadline: the loop's tasks logged, the children told, an exit."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from hub.pipeline.stop_deadline import EXIT_STATUS, StopDeadline, task_stacks


async def _waits_for_the_broker(gate: asyncio.Event) -> None:
    await gate.wait()


def test_an_expired_stop_logs_where_tasks_wait_stops_children_and_exits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    exited = threading.Event()
    statuses: list[int] = []

    def exit_process(status: int) -> None:
        statuses.append(status)
        exited.set()

    deadline = StopDeadline(
        seconds=0.1, stop_children=lambda: events.append("children"), exit_process=exit_process
    )

    async def go() -> None:
        gate = asyncio.Event()
        hung = asyncio.ensure_future(_waits_for_the_broker(gate))
        deadline.arm(asyncio.get_running_loop())
        deadline.arm(asyncio.get_running_loop())  # a second signal: one countdown
        while not exited.is_set():  # the loop keeps running, as a hung stop's does
            await asyncio.sleep(0.01)
        gate.set()
        await hung

    with caplog.at_level(logging.ERROR, logger="hub.pipeline.stop_deadline"):
        asyncio.run(asyncio.wait_for(go(), 10))
    assert statuses == [EXIT_STATUS]
    assert events == ["children"]
    text = caplog.text
    assert "still stopping" in text
    assert "_waits_for_the_broker" in text  # the hung task's location


def test_a_stop_that_finishes_in_time_is_not_cut_short() -> None:
    statuses: list[int] = []
    deadline = StopDeadline(seconds=0.2, exit_process=statuses.append)

    async def go() -> None:
        deadline.arm(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        deadline.cancel()  # the process exits normally
        await asyncio.sleep(0.4)

    asyncio.run(go())
    assert statuses == []


async def _a_stop_step(gate: asyncio.Event) -> None:
    await _waits_for_the_broker(gate)


def test_task_stacks_follow_each_task_down_to_the_await_that_waits() -> None:
    async def go() -> str:
        gate = asyncio.Event()
        task = asyncio.ensure_future(_a_stop_step(gate))
        await asyncio.sleep(0)
        try:
            return task_stacks(asyncio.get_running_loop())
        finally:
            gate.set()
            await task

    stacks = asyncio.run(go())
    chain = [line.strip().split(" (")[0] for line in stacks.splitlines() if line.startswith("  ")]
    assert chain.index("_a_stop_step") < chain.index("_waits_for_the_broker") < chain.index("wait")
    assert "go" in chain


def test_task_stacks_can_keep_only_the_tasks_running_some_code() -> None:
    async def go() -> tuple[str, str]:
        gate = asyncio.Event()
        task = asyncio.ensure_future(_a_stop_step(gate))
        await asyncio.sleep(0)
        try:
            loop = asyncio.get_running_loop()
            return task_stacks(loop, only=__file__), task_stacks(loop, only="/no/such/code/")
        finally:
            gate.set()
            await task

    ours, none = asyncio.run(go())
    assert "_a_stop_step" in ours
    assert none == ""
