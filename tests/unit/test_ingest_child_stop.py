"""The ingest child exits by itself once told to stop, even when its Kafka clients cannot
finish (librdkafka's commit and close wait for an absent broker). No broker here: the child's
clients point at a closed port, so it is still busy reaching one when SIGTERM comes."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

from hub.pipeline.ingest_process import EXIT_UNFLUSHED, _child_main
from hub.security import settings_json_with_secret
from hub.settings import Settings


@pytest.mark.timeout(60)
def test_a_child_told_to_stop_while_the_broker_is_away_exits_by_its_deadline() -> None:
    ctx = mp.get_context("spawn")
    settings = Settings(topic_prefix="childstop.", broker="localhost:1")
    ready, channel = ctx.Event(), ctx.Queue()  # referenced until the child has them
    child = ctx.Process(
        target=_child_main,
        args=(settings_json_with_secret(settings), ready, channel, os.getpid(), 1.0),
        daemon=True,
    )
    child.start()
    try:
        time.sleep(3)  # started, trying to reach the broker
        assert child.is_alive()
        child.terminate()
        child.join(30)
        assert child.exitcode == EXIT_UNFLUSHED
    finally:
        if child.is_alive():
            child.kill()
