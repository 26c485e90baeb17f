"""HTTP ingress limits and edge checks (issue 12, D7/D8): log-safe field names, rate limits and
lockout with 429 + Retry-After, body read timeout, token file reload, source_org binding, and the
ingest stage's address normalisation answered at the edge."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.http_ingress import IngressLimits, ReloadingTokens, create_app
from hub.logs import PlainFormatter
from hub.settings import Settings
from tests.integration.kafka_helpers import published_count, sample, wait_for_leaders

NCG_TOKEN = "ncg-limits-token"
NCG = {"Authorization": f"Bearer {NCG_TOKEN}"}
WRONG = {"Authorization": "Bearer guessed-token"}


@pytest.fixture
def topics(broker: str, topic_factory: Callable[..., str]) -> tuple[str, str]:
    names = topic_factory("case-events"), topic_factory("notifications")
    for name in names:
        wait_for_leaders(broker, name)
    return names


def make_app(topics: tuple[str, str], tokens: Any = None, **limits: float) -> web.Application:
    return create_app(
        Settings(),
        tokens if tokens is not None else {NCG_TOKEN: "NCG"},
        "Bearer n0t1f",
        case_events_topic=topics[0],
        notifications_topic=topics[1],
        limits=IngressLimits(**limits),
    )


def posts(
    app: web.Application, requests: list[tuple[Any, dict[str, str]]]
) -> list[tuple[int, dict[str, str], Any]]:
    """POST each (body, headers) to /v1/events in order; (status, headers, JSON body) each."""

    async def main() -> list[tuple[int, dict[str, str], Any]]:
        out = []
        async with TestClient(TestServer(app)) as client:
            for body, headers in requests:
                async with client.post("/v1/events", json=body, headers=headers) as response:
                    text = await response.text()
                    out.append(
                        (
                            response.status,
                            dict(response.headers),
                            json.loads(text) if text else None,
                        )
                    )
        return out

    return asyncio.run(main())


# ------------------------------------------------------------------------------------ D7 logs


def test_sender_chosen_keys_are_not_logged_and_cannot_forge_a_log_line(
    topics: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    event = sample()
    event["x\n2024-05-01 CRITICAL hub: forged"] = "1"
    event["address"]["Jan Jansen"] = "12"
    event["attributes"] = {"Piet de Vries": "x" * 5000}  # over the value bound: a field error

    with caplog.at_level(logging.INFO, logger="connectors.http_ingress"):
        [(status, _, body)] = posts(make_app(topics), [(event, NCG)])

    assert status == 422
    assert {e["field"] for e in body["errors"]}  # the sender still learns which keys are wrong
    [record] = [r for r in caplog.records if r.getMessage() == "ingress refused invalid events"]
    line = PlainFormatter().format(record)
    assert "\n" not in line
    assert "forged" not in line and "Jansen" not in line and "Piet" not in line
    assert "unknown field" in record.fields


# ---------------------------------------------------------------------------- D8a rate limits


def test_repeated_wrong_tokens_are_locked_out_with_429_and_retry_after(
    broker: str, topics: tuple[str, str]
) -> None:
    app = make_app(topics, auth_failures_burst=5, auth_failures_per_min=6)

    answers = posts(app, [(sample(), WRONG)] * 30 + [(sample(), NCG)])

    statuses = [status for status, _, _ in answers]
    assert statuses[:5] == [401] * 5
    assert statuses[5:30] == [429] * 25  # guessing stops at the burst
    assert statuses[30] == 429  # locked before the token is even looked at
    assert all(int(headers["Retry-After"]) >= 1 for _, headers, _ in answers[5:])
    assert published_count(broker, topics[0]) == 0


def test_a_token_over_its_request_rate_gets_429_with_retry_after(
    broker: str, topics: tuple[str, str]
) -> None:
    app = make_app(topics, requests_per_s=0.5, burst=3)
    events = [sample(event_id=f"r{i}") for i in range(5)]

    answers = posts(app, [(e, NCG) for e in events])

    assert [status for status, _, _ in answers] == [202, 202, 202, 429, 429]
    assert answers[3][1]["Retry-After"] == "2"  # one token refills in 2 s at 0.5/s
    assert answers[3][2]["error"] == "too_many_requests"
    assert published_count(broker, topics[0]) == 3


# --------------------------------------------------------------------------- D8b read timeout


@pytest.mark.parametrize(
    ("auth", "status"),
    [(f"Authorization: Bearer {NCG_TOKEN}\r\n", b"408"), ("", b"401")],
    ids=["with-token-408", "without-token-401"],
)
def test_a_half_sent_body_is_answered_and_the_connection_closed_within_the_read_timeout(
    topics: tuple[str, str], auth: str, status: bytes
) -> None:
    app = make_app(topics, read_timeout_s=1.0)

    async def main() -> tuple[bytes, float]:
        async with TestServer(app) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + auth.encode()
                + b'Content-Length: 1000\r\n\r\n{"event_id": '
            )
            await writer.drain()
            started = time.monotonic()
            answer = await asyncio.wait_for(reader.read(), 10)  # to EOF: the server hung up
            elapsed = time.monotonic() - started
            writer.close()
            return answer, elapsed

    answer, elapsed = asyncio.run(main())

    assert answer.startswith(b"HTTP/1.1 " + status)
    assert elapsed < 3


# --------------------------------------------------------------------------- D8c token reload


def _write_tokens(path: Path, entries: list[dict[str, Any]]) -> None:
    lines = []
    for entry in entries:
        lines.append("[[tokens]]")
        for key, value in entry.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    stat = path.stat()  # a new mtime even within the file system's timestamp granularity
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_token_removed_from_the_file_is_refused_without_a_restart(
    broker: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "tokens.toml"
    _write_tokens(path, [{"name": "ncg-a", "source": "NCG", "token": "token-a"}])
    tokens = ReloadingTokens({}, path, check_interval=0.0)
    app = make_app(topics, tokens)
    a = {"Authorization": "Bearer token-a"}
    b = {"Authorization": "Bearer token-b"}

    async def main() -> list[int]:
        statuses = []
        async with TestClient(TestServer(app)) as client:
            for step in ("before", "revoked", "broken"):
                if step == "revoked":
                    _write_tokens(path, [{"name": "ncg-b", "source": "NCG", "token": "token-b"}])
                if step == "broken":
                    path.write_text("[[tokens]\nthis is not toml")
                for headers in (a, b):
                    event = sample(event_id=f"{step}-{headers is a}")
                    async with client.post("/v1/events", json=event, headers=headers) as r:
                        statuses.append(r.status)
        return statuses

    statuses = asyncio.run(main())

    assert statuses[:2] == [202, 401]  # only token-a at first
    assert statuses[2:4] == [401, 202]  # token-a revoked, token-b added, same process
    assert statuses[4:6] == [401, 202]  # a broken file keeps the last good tokens


# ------------------------------------------------------------------------ D8d source_org bind


def test_a_token_with_orgs_may_only_claim_those_source_orgs(
    broker: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "tokens.toml"
    _write_tokens(
        path, [{"name": "gm-groningen", "source": "MUNICIPALITY", "token": "t", "orgs": ["GM0014"]}]
    )
    app = make_app(topics, ReloadingTokens({}, path))
    headers = {"Authorization": "Bearer t"}
    own = sample(event_id="own", source="MUNICIPALITY", source_org="GM0014")
    other = sample(event_id="other", source="MUNICIPALITY", source_org="GM1680")
    unnamed = sample(event_id="unnamed", source="MUNICIPALITY", source_org=None)

    answers = posts(app, [(other, headers), (own, headers), (unnamed, headers)])

    assert answers[0][0] == 403
    assert answers[0][2]["errors"] == [
        {"index": 0, "field": "source_org", "reason": "FORBIDDEN_SOURCE_ORG"}
    ]
    assert [a[0] for a in answers[1:]] == [202, 202]
    assert published_count(broker, topics[0]) == 2


# ------------------------------------------------------------------ D8e address at the edge


@pytest.mark.parametrize(
    ("address", "field"),
    [
        ({"huisletter": "AB"}, "address.huisletter"),
        ({"huisnummertoevoeging": "ABCDE"}, "address.huisnummertoevoeging"),
        ({"huisnummer": "12A", "huisletter": "B"}, "address.huisletter"),
    ],
    ids=["two-letter-huisletter", "long-toevoeging", "conflicting-letter"],
)
def test_an_address_the_ingest_stage_would_dead_letter_is_422_naming_the_field(
    broker: str, topics: tuple[str, str], address: dict[str, Any], field: str
) -> None:
    event = sample()
    event["address"].update(address)

    [(status, _, body)] = posts(make_app(topics), [(event, NCG)])

    assert status == 422
    assert [(e["field"], e["reason"]) for e in body["errors"]] == [(field, "INVALID_ADDRESS")]
    assert published_count(broker, topics[0]) == 0
