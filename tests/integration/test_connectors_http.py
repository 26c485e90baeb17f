"""HTTP ingress (``POST /v1/events``) against the real broker: 202 only with the events on the
topic, and every refusal (400, 401, 403, 413, 422, 503) publishing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Producer

from connectors.http_ingress import (
    TokenStore,
    TopicsMissing,
    create_app,
    load_tokens,
    load_tokens_file,
    parse_tokens_env,
)
from hub.contracts.decode import CaseEvent, decode_case_event, parse_case_event_json
from hub.pipeline.clients import producer_config
from hub.settings import Settings
from tests.integration.kafka_helpers import consume, published_count, sample, wait_for_leaders

NCG_TOKEN = "ncg-secret-token"
IMG_TOKEN = "img-secret-token"
TOKENS = {NCG_TOKEN: "NCG", IMG_TOKEN: "IMG"}
NCG = {"Authorization": f"Bearer {NCG_TOKEN}"}
IMG = {"Authorization": f"Bearer {IMG_TOKEN}"}


Call = Callable[[TestClient[Any, Any]], Awaitable[Any]]


def run_against(app: web.Application, call: Call) -> Any:
    """Start the app on an ephemeral port, run ``call(client)``, shut the app down."""

    async def main() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await call(client)

    return asyncio.run(main())


@pytest.fixture
def topic(broker: str, topic_factory: Callable[..., str]) -> str:
    name = topic_factory("case-events", partitions=3)
    wait_for_leaders(broker, name)
    return name


@pytest.fixture
def other(broker: str, topic_factory: Callable[..., str]) -> str:
    """The notifications topic: the app checks at startup that both of its topics exist."""
    name = topic_factory("notifications")
    wait_for_leaders(broker, name)
    return name


@pytest.fixture
def app(broker: str, topic: str, other: str) -> web.Application:
    return create_app(
        Settings(), TOKENS, "Bearer n0t1f", case_events_topic=topic, notifications_topic=other
    )


def post(path: str, *, json_body: Any = None, data: Any = None, headers: Any = None) -> Call:
    async def call(client: TestClient[Any, Any]) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if data is not None:
            kwargs["data"] = data
        else:
            kwargs["json"] = json_body
        async with client.post(path, **kwargs) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text else None)

    return call


def test_one_event_is_answered_202_after_it_is_on_the_topic(
    broker: str, topic: str, app: web.Application
) -> None:
    event = sample()

    status, body = run_against(app, post("/v1/events", json_body=event, headers=NCG))

    assert status == 202
    assert body == {"accepted": [event["event_id"]]}
    assert published_count(broker, topic) == 1  # acknowledged before the answer
    [message] = consume(broker, topic, 1)
    assert message.key() == event["case_id"].encode()
    decoded = decode_case_event(message.value())
    assert isinstance(decoded, CaseEvent)
    assert decoded == parse_case_event_json(event)


def test_batch_is_answered_with_every_event_id(
    broker: str, topic: str, app: web.Application
) -> None:
    events = [sample(event_id=f"b{i}", case_id=f"NCG-{i}") for i in range(5)]

    status, body = run_against(app, post("/v1/events", json_body=events, headers=NCG))

    assert status == 202
    assert body == {"accepted": ["b0", "b1", "b2", "b3", "b4"]}
    assert published_count(broker, topic) == 5
    decoded = sorted(decode_case_event(m.value()).event_id for m in consume(broker, topic, 5))
    assert decoded == ["b0", "b1", "b2", "b3", "b4"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {NCG_TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["no-token", "wrong-token", "not-bearer", "empty-bearer"],
)
def test_missing_or_wrong_token_is_401(
    broker: str, topic: str, app: web.Application, headers: dict[str, str]
) -> None:
    status, body = run_against(app, post("/v1/events", json_body=sample(), headers=headers))

    assert status == 401
    assert body["error"] == "unauthorized"
    assert published_count(broker, topic) == 0


def test_401_carries_a_bearer_challenge(app: web.Application) -> None:
    async def call(client: TestClient[Any, Any]) -> str:
        async with client.post("/v1/events", json=sample()) as response:
            return response.headers.get("WWW-Authenticate", "")

    assert run_against(app, call).startswith("Bearer")


def test_token_of_another_agency_is_403_and_refuses_the_whole_batch(
    broker: str, topic: str, app: web.Application
) -> None:
    batch = [sample(event_id="i1", source="IMG"), sample(event_id="n1", source="NCG")]

    status, body = run_against(app, post("/v1/events", json_body=batch, headers=IMG))

    assert status == 403
    assert body["error"] == "forbidden_source"
    assert body["errors"] == [{"index": 1, "field": "source", "reason": "FORBIDDEN_SOURCE"}]
    assert published_count(broker, topic) == 0


def test_body_over_the_limit_is_413(broker: str, topic: str, other: str) -> None:
    app = create_app(
        Settings(),
        TOKENS,
        None,
        case_events_topic=topic,
        notifications_topic=other,
        max_body_bytes=4096,
    )
    batch = [sample(event_id=f"big{i}") for i in range(20)]  # ~20 KB
    raw = json.dumps(batch).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit on reading
        for i in range(0, len(raw), 1000):
            yield raw[i : i + 1000]

    declared = run_against(app, post("/v1/events", data=raw, headers=NCG))
    app = create_app(
        Settings(),
        TOKENS,
        None,
        case_events_topic=topic,
        notifications_topic=other,
        max_body_bytes=4096,
    )
    streamed = run_against(app, post("/v1/events", data=chunks(), headers=NCG))

    assert declared[0] == 413
    assert declared[1]["error"] == "too_large"
    assert streamed[0] == 413
    assert published_count(broker, topic) == 0


def test_field_errors_are_422_with_index_field_reason_and_nothing_published(
    broker: str, topic: str, app: web.Application
) -> None:
    bad_postcode = sample(event_id="x1")
    bad_postcode["address"]["postcode"] = "SS12"
    no_type = sample(event_id="x2")
    del no_type["case_type"]
    batch = [sample(event_id="ok"), bad_postcode, no_type]

    status, body = run_against(app, post("/v1/events", json_body=batch, headers=NCG))

    assert status == 422
    assert [(e["index"], e["field"], e["reason"]) for e in body["errors"]] == [
        (1, "address.postcode", "INVALID_FIELD"),
        (2, "case_type", "MISSING_FIELD"),
    ]
    assert "not a Dutch postcode" in body["errors"][0]["message"]
    assert published_count(broker, topic) == 0


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"{not json", "not_json"),
        (b'"a string"', "wrong_shape"),
        (b"[]", "wrong_shape"),
        (b"[1, 2]", "wrong_shape"),
    ],
    ids=["not-json", "string", "empty-batch", "array-of-numbers"],
)
def test_not_json_or_wrong_shape_is_400(
    broker: str, topic: str, app: web.Application, data: bytes, error: str
) -> None:
    status, body = run_against(app, post("/v1/events", data=data, headers=NCG))

    assert status == 400
    assert body["error"] == error
    assert published_count(broker, topic) == 0


def test_unacknowledged_events_are_503_not_202(topic: str, other: str) -> None:
    dead = Producer(
        producer_config(
            Settings(broker="127.0.0.1:1"), **{"message.timeout.ms": 1500, "log_level": 0}
        )
    )
    app = create_app(
        Settings(), TOKENS, None, dead, case_events_topic=topic, notifications_topic=other
    )

    status, body = run_against(app, post("/v1/events", json_body=[sample()], headers=NCG))

    assert status == 503
    assert body["error"] == "broker_unavailable"
    assert body["accepted"] == []
    assert body["failed"] == [sample()["event_id"]]


def test_openapi_describes_both_endpoints_with_security(app: web.Application) -> None:
    async def call(client: TestClient[Any, Any]) -> tuple[int, Any, int]:
        async with client.get("/openapi.json") as response:
            doc = await response.json()
            status = response.status
        async with client.get("/healthz") as health:
            return status, doc, health.status

    status, doc, health = run_against(app, call)

    assert status == 200
    assert health == 200
    assert doc["openapi"].startswith("3.")
    events = doc["paths"]["/v1/events"]["post"]
    assert {"202", "400", "401", "403", "413", "422"} <= set(events["responses"])
    assert events["security"] == [{"agencyToken": []}]
    notificaties = doc["paths"]["/v1/notificaties"]["post"]
    assert {"204", "400", "401", "403"} <= set(notificaties["responses"])
    schemas = doc["components"]["schemas"]
    assert "postcode" in schemas["Address"]["properties"]
    assert {"kanaal", "hoofdObject", "resourceUrl", "aanmaakdatum"} <= set(
        schemas["Notificatie"]["properties"]
    )
    assert doc["components"]["securitySchemes"]["agencyToken"]["scheme"] == "bearer"
    refs = json.dumps(doc)
    for name in ("CaseEvent", "Notificatie", "Error", "Accepted"):
        assert f"#/components/schemas/{name}" in refs


def test_tokens_from_env_and_hashed_file_bind_a_source(
    broker: str, topic: str, other: str, tmp_path: Path
) -> None:
    secret = "file-token=="
    tokens_file = tmp_path / "tokens.toml"
    tokens_file.write_text(
        "[[tokens]]\n"
        'name = "img-prod"\n'
        'source = "IMG"\n'
        f'sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"\n'
    )
    store = load_tokens(
        {"HUB_INGRESS_TOKENS": "abc=def=NCG", "HUB_INGRESS_TOKENS_FILE": str(tokens_file)}
    )
    app = create_app(Settings(), store, None, case_events_topic=topic, notifications_topic=other)
    headers = {"Authorization": f"Bearer {secret}"}

    async def call(client: TestClient[Any, Any]) -> list[int]:
        statuses = []
        for body, h in (
            (sample(source="IMG"), headers),
            (sample(source="NCG"), headers),
            (sample(source="NCG", event_id="n2"), {"Authorization": "Bearer abc=def"}),
        ):
            async with client.post("/v1/events", json=body, headers=h) as response:
                statuses.append(response.status)
        return statuses

    assert run_against(app, call) == [202, 403, 202]
    assert parse_tokens_env("a=b=NCG, c=IMG") == {"a=b": "NCG", "c": "IMG"}
    assert len(load_tokens_file(tokens_file)) == 1
    assert secret not in repr(vars(store))


def test_token_config_refuses_unknown_sources_and_duplicates() -> None:
    with pytest.raises(ValueError, match="not one of"):
        TokenStore.from_tokens({"t": "ACME"})
    with pytest.raises(ValueError, match="not one of"):
        TokenStore.from_tokens({"t": "UNKNOWN"})
    with pytest.raises(ValueError, match="without '='"):
        parse_tokens_env("justatoken")
    with pytest.raises(ValueError, match="twice"):
        load_tokens({"HUB_INGRESS_TOKENS": "t=NCG,t=IMG"})


def test_app_refuses_to_start_when_its_topic_is_missing(
    broker: str, other: str, unique_name: Callable[[str], str]
) -> None:
    app = create_app(
        Settings(),
        TOKENS,
        None,
        case_events_topic=unique_name("missing"),
        notifications_topic=other,
    )

    async def call(client: TestClient[Any, Any]) -> None:
        raise AssertionError("the app started")

    with pytest.raises(TopicsMissing, match="do not exist"):
        run_against(app, call)
