"""Shared fixtures: the live broker (session scope) and uniquely named topics per test.

Tests under ``tests/integration`` are marked ``broker`` automatically, so ``pytest -m "not
broker"`` (``make test-fast``) runs the pure tier alone. A broker test never mocks Kafka: when the
broker at HUB_BROKER does not answer, it fails with a clear message (``make test`` starts one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.settings import Settings

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def broker() -> str:
    """Address of a live Kafka broker; fails (does not skip) when none answers."""
    from tools.local_kafka import LocalKafka, probe

    settings = Settings()
    if probe(settings.broker, timeout=10.0) is None:
        pytest.fail(
            f"no Kafka broker answers at {settings.broker}: run `make test` or "
            "`hub kafka start` (or set HUB_BROKER)"
        )
    status = LocalKafka(settings).status()
    print(f"\nbroker under test: {status.describe()}")
    return settings.broker


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names unique to this test run, readable in broker listings."""
    token = uuid.uuid4().hex[:8]
    test = request.node.name.replace("[", "-").replace("]", "")[:40]

    def make(label: str) -> str:
        return f"test.{test}.{label}.{token}"

    return make


@pytest.fixture
def topic_factory(broker: str, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics for one test; delete them afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from hub.pipeline.topics import delete_topics

    admin = AdminClient({"bootstrap.servers": broker})
    created: list[str] = []

    def create(label: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_name(label)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield create
    delete_topics(broker, created)
