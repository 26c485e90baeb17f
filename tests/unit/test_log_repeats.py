"""aiokafka's retry loops log thousands of identical lines a second while the broker is away:
the hub's handler lets one per window through, with the count of the ones it held back."""

from __future__ import annotations

import io
import logging

from hub.logs import REPEAT_WINDOW_S, RepeatLimiter, setup_logging


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_library_line_repeated_within_the_window_passes_once_then_with_its_count() -> None:
    clock = _Clock()
    limiter = RepeatLimiter(clock=clock)
    template = "Unable connect to node with id %s: %s"
    passed = [limiter.filter(_record("aiokafka", template, 1, "refused")) for _ in range(500)]
    assert passed.count(True) == 1 and passed[0]
    clock.now += REPEAT_WINDOW_S
    later = _record("aiokafka", template, 1, "refused")
    assert limiter.filter(later)
    assert later.similar_suppressed == 499  # type: ignore[attr-defined]


def test_different_lines_and_the_hubs_own_lines_are_not_held_back() -> None:
    limiter = RepeatLimiter(clock=_Clock())
    assert limiter.filter(_record("aiokafka", "Unable connect to node with id %s", 1))
    assert limiter.filter(_record("aiokafka", "Unable to update metadata from %s", [1]))
    assert limiter.filter(_record("aiokafka.consumer.fetcher", "Unable connect to node %s", 1))
    for _ in range(50):
        assert limiter.filter(_record("hub.pipeline.retry", "attempt %d failed", 1))


def test_the_worker_log_handler_thins_a_flood_of_aiokafka_errors() -> None:
    stream = io.StringIO()
    handler = setup_logging(level="INFO", json=False, stream=stream)
    try:
        log = logging.getLogger("aiokafka")
        for _ in range(1000):
            log.error("Unable to update metadata from %s", [1])
        logging.getLogger("hub.test").warning("the hub's own line")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert sum("Unable to update metadata" in line for line in lines) == 1
    assert any("the hub's own line" in line for line in lines)
