"""The correlate agent's take: bounded by messages and by bytes, acks only after the body.

Runs a real Faust agent in Faust's own test context (in-memory topic, no broker).
"""

from __future__ import annotations

import asyncio
import itertools

import faust

from hub.pipeline.take import take_bounded

_apps = itertools.count()


def _run(
    values: list[bytes],
    max_messages: int,
    max_bytes: int,
    within: float = 0.05,
    pauses: dict[int, float] | None = None,
    busy_within: float | None = None,
    busy_bytes: int = 0,
) -> list[dict]:
    """Feed ``values`` to an agent that takes with the given bounds; what each batch saw.

    ``pauses``: seconds to wait before putting the value at that index (after the earlier
    values have come out of the take)."""
    app = faust.App(f"t-take-{next(_apps)}", store="memory://")
    topic = app.topic("in", value_serializer="raw")
    batches: list[dict] = []
    seen_before: list[faust.types.EventT] = []
    put_at: list[float] = []

    @app.agent(topic)
    async def agent(stream: faust.StreamT) -> None:
        async for batch in take_bounded(
            stream, max_messages, max_bytes, within, busy_within, busy_bytes
        ):
            now = asyncio.get_running_loop().time()
            batches.append(
                {
                    "sizes": [len(e.value) for e in batch],
                    "acked_in_body": [e.message.acked for e in batch],
                    "earlier_acked": all(e.message.acked for e in seen_before),
                    "at": now,
                    "waited": now - put_at[len(seen_before)],
                }
            )
            seen_before.extend(batch)

    async def out(n: int) -> None:
        for _ in range(int(10 / 0.01)):
            if sum(len(b["sizes"]) for b in batches) >= n:
                return
            await asyncio.sleep(0.01)

    async def go() -> None:
        async with agent.test_context() as ctx:
            for i, value in enumerate(values):
                if pauses and i in pauses:
                    await out(i)
                    await asyncio.sleep(pauses[i])
                put_at.append(asyncio.get_running_loop().time())
                await ctx.put(value)
            await out(len(values))

    asyncio.run(go())
    return batches


def test_a_batch_ends_once_its_values_reach_the_byte_bound() -> None:
    batches = _run([b"x" * 100] * 6, max_messages=100, max_bytes=250)
    assert [b["sizes"] for b in batches] == [[100, 100, 100], [100, 100, 100]]


def test_a_batch_ends_at_the_message_bound_when_values_are_small() -> None:
    batches = _run([b"x"] * 5, max_messages=2, max_bytes=1_000_000)
    assert [len(b["sizes"]) for b in batches] == [2, 2, 1]


def test_a_message_after_an_idle_spell_is_handed_over_at_once() -> None:
    """The window paces steps; it never delays the first message after the pipeline idled."""
    batches = _run([b"a", b"bb"], 100, 1_000_000, within=2.0, pauses={1: 2.5})
    assert [b["sizes"] for b in batches] == [[1], [2]]
    assert all(b["waited"] < 1.0 for b in batches)  # far less than the 2 s window


def test_messages_during_a_window_come_out_together_when_it_ends() -> None:
    """After a step, what arrives within ``within`` of its start waits for one next step."""
    batches = _run([b"a", b"bb", b"ccc"], 100, 1_000_000, within=1.0, pauses={1: 0.0})
    assert [b["sizes"] for b in batches] == [[1], [2, 3]]
    assert batches[1]["at"] - batches[0]["at"] >= 0.9  # not before the window ended


def _after_idle_then(second: bytes) -> list[dict]:
    """One byte after idling, then ``second`` at once, then two more: a 50 ms window, or the
    1 s busy one from 100 bytes per 50 ms."""
    return _run(
        [b"w", second, b"a", b"b"],
        100,
        1_000_000,
        0.05,
        {1: 0.0, 2: 0.0},
        busy_within=1.0,
        busy_bytes=100,
    )


def test_after_a_busy_batch_the_next_window_is_the_busy_one() -> None:
    """A high rate gets fewer, fuller steps; the worker's cost is mostly per step."""
    batches = _after_idle_then(b"x" * 120)
    # the first step, after idling, is quiet; 120 bytes within the next 50 ms are busy
    assert [b["sizes"] for b in batches] == [[1], [120], [1, 1]]
    assert batches[1]["at"] - batches[0]["at"] < 0.5
    assert batches[2]["at"] - batches[1]["at"] >= 0.9  # the 1 s window, not the 50 ms one


def test_after_a_quiet_batch_the_next_window_is_the_short_one() -> None:
    batches = _after_idle_then(b"x" * 99)
    assert [b["sizes"] for b in batches] == [[1], [99], [1, 1]]
    assert batches[2]["at"] - batches[1]["at"] < 0.5


def test_a_rate_below_half_the_busy_rate_goes_back_to_the_short_window() -> None:
    """The rate decides, not one list's size: 150 bytes over the 1 s busy window is far below
    half of 100 bytes per 50 ms, so the window after it is the short one again."""
    batches = _run(
        [b"w", b"x" * 120, b"y" * 150, b"a", b"b"],
        100,
        1_000_000,
        0.05,
        {1: 0.0, 2: 0.0, 3: 0.0},
        busy_within=1.0,
        busy_bytes=100,
    )
    assert [b["sizes"] for b in batches] == [[1], [120], [150], [1, 1]]
    assert batches[2]["at"] - batches[1]["at"] >= 0.9  # busy: the 1 s window
    assert batches[3]["at"] - batches[2]["at"] < 0.5  # not another 1 s window


def test_events_are_acked_only_after_the_body_returned_for_them() -> None:
    batches = _run([b"x" * 10] * 4, max_messages=2, max_bytes=1_000_000)
    assert len(batches) == 2
    assert not any(b["acked_in_body"][i] for b in batches for i in range(2))
    assert batches[1]["earlier_acked"]  # the first batch's events, once its body returned
