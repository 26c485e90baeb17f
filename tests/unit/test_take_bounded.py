"""The correlate agent's take: bounded by messages and by bytes, acks only after the body.

Runs a real Faust agent in Faust's own test context (in-memory topic, no broker).
"""

from __future__ import annotations

import asyncio
import itertools

import faust

from hub.pipeline.take import take_bounded

_apps = itertools.count()


def _run(values: list[bytes], max_messages: int, max_bytes: int) -> list[dict]:
    """Feed ``values`` to an agent that takes with the given bounds; what each batch saw."""
    app = faust.App(f"t-take-{next(_apps)}", store="memory://")
    topic = app.topic("in", value_serializer="raw")
    batches: list[dict] = []
    seen_before: list[faust.types.EventT] = []

    @app.agent(topic)
    async def agent(stream: faust.StreamT) -> None:
        async for batch in take_bounded(stream, max_messages, max_bytes, 0.05):
            batches.append(
                {
                    "sizes": [len(e.value) for e in batch],
                    "acked_in_body": [e.message.acked for e in batch],
                    "earlier_acked": all(e.message.acked for e in seen_before),
                }
            )
            seen_before.extend(batch)

    async def go() -> None:
        async with agent.test_context() as ctx:
            for value in values:
                await ctx.put(value)
            for _ in range(200):
                if sum(len(b["sizes"]) for b in batches) >= len(values):
                    break
                await asyncio.sleep(0.01)

    asyncio.run(go())
    return batches


def test_a_batch_ends_once_its_values_reach_the_byte_bound() -> None:
    batches = _run([b"x" * 100] * 6, max_messages=100, max_bytes=250)
    assert [b["sizes"] for b in batches] == [[100, 100, 100], [100, 100, 100]]


def test_a_batch_ends_at_the_message_bound_when_values_are_small() -> None:
    batches = _run([b"x"] * 5, max_messages=2, max_bytes=1_000_000)
    assert [len(b["sizes"]) for b in batches] == [2, 2, 1]


def test_fewer_values_than_either_bound_come_out_after_the_window() -> None:
    batches = _run([b"a", b"bb"], max_messages=100, max_bytes=1_000_000)
    assert [b["sizes"] for b in batches] == [[1, 2]]


def test_events_are_acked_only_after_the_body_returned_for_them() -> None:
    batches = _run([b"x" * 10] * 4, max_messages=2, max_bytes=1_000_000)
    assert len(batches) == 2
    assert not any(b["acked_in_body"][i] for b in batches for i in range(2))
    assert batches[1]["earlier_acked"]  # the first batch's events, once its body returned
