"""VNG Notificaties callback (``POST /v1/notificaties``) against the real broker: 204 only once the
notification is on the notifications topic; 401/403 without the subscription's header; 400 on
a bad notification; nothing recorded on any refusal."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Consumer

from connectors.http_ingress import create_app
from hub.settings import Settings
from tests.integration.kafka_helpers import published_count, wait_for_leaders

AUTH = "Bearer abc123-subscription"
NOTIFICATION = {
    "kanaal": "zaken",
    "hoofdObject": "https://openzaak.example.nl/zaken/api/v1/zaken/d4d8-11ea",
    "resource": "status",
    "resourceUrl": "https://openzaak.example.nl/zaken/api/v1/statussen/77f2",
    "actie": "create",
    "aanmaakdatum": "2024-05-01T10:00:00+02:00",
    "kenmerken": {
        "bronorganisatie": "001479179",
        "zaaktype": "https://openzaak.example.nl/catalogi/api/v1/zaaktypen/1",
        "vertrouwelijkheidaanduiding": "openbaar",
    },
}


def consume_one(broker: str, topic: str, timeout: float = 30.0) -> Any:
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"reader.{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg
    finally:
        consumer.close()
    raise AssertionError(f"nothing on {topic} within {timeout}s")


def send(app: web.Application, body: Any, headers: dict[str, str]) -> tuple[int, str]:
    """POST to the callback of ``app`` served on an ephemeral port; return status and body."""

    async def main() -> tuple[int, str]:
        async with TestClient(TestServer(app)) as client:
            kwargs: dict[str, Any] = {"headers": headers}
            kwargs["data" if isinstance(body, bytes) else "json"] = body
            async with client.post("/v1/notificaties", **kwargs) as response:
                return response.status, await response.text()

    return asyncio.run(main())


@pytest.fixture
def topic(broker: str, topic_factory: Callable[..., str]) -> str:
    name = topic_factory("notifications", partitions=2)
    wait_for_leaders(broker, name)
    return name


@pytest.fixture
def other(broker: str, topic_factory: Callable[..., str]) -> str:
    """The case-events topic: the app checks at startup that both of its topics exist."""
    name = topic_factory("case-events")
    wait_for_leaders(broker, name)
    return name


@pytest.fixture
def app(broker: str, topic: str, other: str) -> web.Application:
    return create_app(
        Settings(), {"t": "NCG"}, AUTH, notifications_topic=topic, case_events_topic=other
    )


def test_notification_is_recorded_keyed_by_kanaal_before_204(
    broker: str, topic: str, app: web.Application
) -> None:
    status, text = send(app, NOTIFICATION, {"Authorization": AUTH})

    assert (status, text) == (204, "")
    assert published_count(broker, topic) == 1  # on the broker before the answer
    message = consume_one(broker, topic)
    assert message.key() == b"zaken"
    record = json.loads(message.value())
    assert {k: record[k] for k in NOTIFICATION} == {
        **NOTIFICATION,
        "aanmaakdatum": "2024-05-01T10:00:00+02:00",
    }
    assert record["received_at"]


def test_missing_auth_header_is_401(broker: str, topic: str, app: web.Application) -> None:
    status, text = send(app, NOTIFICATION, {})

    assert status == 401
    assert json.loads(text)["error"] == "unauthorized"
    assert published_count(broker, topic) == 0


@pytest.mark.parametrize(
    "value",
    ["Bearer wrong", "abc123-subscription", AUTH + "x"],
    ids=["other-token", "without-scheme", "longer"],
)
def test_wrong_auth_header_is_403(
    broker: str, topic: str, app: web.Application, value: str
) -> None:
    status, text = send(app, NOTIFICATION, {"Authorization": value})

    assert status == 403
    assert json.loads(text)["error"] == "forbidden"
    assert published_count(broker, topic) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kanaal": None}, "kanaal"),
        ({"hoofdObject": "not a url"}, "hoofdObject"),
        ({"resourceUrl": "ftp://openzaak.example.nl/x"}, "resourceUrl"),
        ({"aanmaakdatum": "2024-05-01T10:00:00"}, "aanmaakdatum"),  # no offset
        ({"aanmaakdatum": 1714550400}, "aanmaakdatum"),  # not ISO text
        ({"aanmaakdatum": "yesterday"}, "aanmaakdatum"),
        ({"kenmerken": {"bronorganisatie": 1}}, "kenmerken.bronorganisatie"),
        ({"actie": ""}, "actie"),
    ],
    ids=[
        "missing-kanaal",
        "bad-url",
        "not-http",
        "naive-date",
        "epoch-date",
        "text-date",
        "non-string-kenmerk",
        "empty-actie",
    ],
)
def test_bad_notification_is_400_with_field_errors(
    broker: str, topic: str, app: web.Application, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**NOTIFICATION, **change}.items() if v is not None}

    status, text = send(app, body, {"Authorization": AUTH})

    assert status == 400
    answer = json.loads(text)
    assert answer["error"] == "invalid_notification"
    assert field in [e["field"] for e in answer["errors"]]
    assert published_count(broker, topic) == 0


@pytest.mark.parametrize("body", [b"{nope", b"[]"], ids=["not-json", "array"])
def test_not_a_json_object_is_400(
    broker: str, topic: str, app: web.Application, body: bytes
) -> None:
    status, _ = send(app, body, {"Authorization": AUTH})

    assert status == 400
    assert published_count(broker, topic) == 0


def test_unconfigured_callback_refuses_everything(broker: str, topic: str, other: str) -> None:
    app = create_app(
        Settings(), {"t": "NCG"}, None, notifications_topic=topic, case_events_topic=other
    )

    status, _ = send(app, NOTIFICATION, {"Authorization": AUTH})

    assert status == 503
    assert published_count(broker, topic) == 0


def test_sender_chosen_kenmerken_keys_and_words_are_not_logged(
    topic: str, other: str, caplog: pytest.LogCaptureFixture
) -> None:
    from hub.logs import PlainFormatter

    def app() -> web.Application:
        return create_app(
            Settings(), {"t": "NCG"}, AUTH, notifications_topic=topic, case_events_topic=other
        )

    refused = {**NOTIFICATION, "kenmerken": {"x\nCRITICAL Jan Jansen": "v" * 2000}}
    odd = {**NOTIFICATION, "kanaal": "zaken\nCRITICAL forged", "actie": "Piet de Vries"}

    with caplog.at_level(logging.INFO, logger="connectors.notificaties"):
        first = send(app(), refused, {"Authorization": AUTH})
        second = send(app(), odd, {"Authorization": AUTH})

    assert (first[0], second[0]) == (400, 204)
    lines = [PlainFormatter().format(r) for r in caplog.records]
    assert lines and all("\n" not in line for line in lines)
    assert not any(word in line for line in lines for word in ("Jansen", "Piet", "forged"))
