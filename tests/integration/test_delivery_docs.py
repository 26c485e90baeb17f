"""The Kafka consumer example of docs/subscribers.md runs as written and deduplicates."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from tests.integration.pipeline_harness import hub_under_test
from tests.integration.test_delivery import publish_signals, signal_record

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "subscribers.md"


def example_source() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- example: kafka-subscriber -->\n```python\n(.*?)```", text, re.S)
    assert match, "the example block is missing from docs/subscribers.md"
    return match.group(1)


def test_documented_consumer_handles_each_version_once(broker: str, tmp_path: Path) -> None:
    """Delivery alone: alert records published directly, with an exact repeat and a stale
    version; the example prints each (fingerprint, version) once, in order."""
    script = tmp_path / "subscriber.py"
    script.write_text(example_source())
    with hub_under_test(broker, tmp_path, partitions=1) as hub:
        v1, v2, v3 = (signal_record("fpdoc", v) for v in (1, 2, 3))
        other = signal_record("fpother", 1, kind="PLAN_OVERLAP")
        publish_signals(hub, [v1, v2, v2, v1, other, v3])  # v2 repeated, v1 stale
        env = {
            **os.environ,
            "BROKER": broker,
            "TOPIC_PREFIX": hub.settings.topic_prefix,
            "GROUP_ID": f"doc-example-{hub.token}",
            "STOP_AFTER": "4",
        }
        try:
            result = subprocess.run(
                [sys.executable, str(script)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
        except subprocess.TimeoutExpired as hung:
            raise AssertionError(
                f"the example did not exit in 120 s; stdout {hung.stdout!r}, stderr {hung.stderr!r}"
            ) from None
        assert result.returncode == 0, result.stderr
        lines = [orjson.loads(line) for line in result.stdout.splitlines()]
        assert [(x["fingerprint"], x["version"]) for x in lines] == [
            ("fpdoc", 1),
            ("fpdoc", 2),
            ("fpother", 1),
            ("fpdoc", 3),
        ]
