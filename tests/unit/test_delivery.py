"""The pure delivery rules (hub.delivery) and the guarded sender against real loopback servers."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from connectors.delivery.sender import Sender
from hub import metrics
from hub.delivery import notificatie
from hub.delivery.config import DeliverySettings
from hub.delivery.destinations import UnsafeDestination, check_callback_url, refusal
from hub.delivery.policy import LogEntry, stop_strategy, wait_strategy
from hub.delivery.secrets import SecretError, mask, new_key, seal, unseal
from hub.delivery.subscription import Subscription, SubscriptionError, fold, parse_filters
from hub.settings import Settings

SCHEMA = Path(__file__).parents[1] / "fixtures" / "notificaties_notificatie.schema.json"
VALIDATOR = jsonschema_rs.Draft4Validator(json.loads(SCHEMA.read_text()), validate_formats=True)


def alert(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "fingerprint": "0123456789abcdef",
        "kind": "SAMENLOOP",
        "category": "SIGNAL",
        "status": "FIRING",
        "version": 1,
        "address_key": "9711AB-12A",
        "area": None,
        "gemeentecode": "GM0014",
        "steering_group": "GRONINGEN",
        "lead": {"source": "NCG", "case_id": "V-1", "contact_name": "Jan Jansen"},
        "cases": [],
        "event_ids": ["e1"],
        "detail": {},
        "config_version": "1",
        "starts_at": 1_704_067_200_000,
        "ends_at": None,
        "emitted_at": 1_704_067_201_234,
    }
    record.update(changes)
    return record


def sub(**changes: Any) -> Subscription:
    fields: dict[str, Any] = {
        "id": "zaaksysteem-groningen",
        "callback_url": "https://zaken.example.nl/api/v1/notificaties",
        "auth": SecretStr("plain:Bearer s3cret-token"),
        "channel": "hub-signalen",
        "filters": {},
        "created_at_ms": 1,
        "deliver_from_ms": 1,
    }
    fields.update(changes)
    return Subscription(**fields)


# --- the message
@pytest.mark.parametrize(
    ("status", "version", "actie"),
    [("FIRING", 1, "create"), ("FIRING", 2, "update"), ("RESOLVED", 3, "destroy")],
)
def test_actie_follows_status_and_version(status: str, version: int, actie: str) -> None:
    message = notificatie.build(alert(status=status, version=version), "https://hub.example.nl")
    assert message["actie"] == actie


def test_message_validates_against_the_standards_notificatie_schema() -> None:
    for record in (alert(), alert(category="ALERT", kind="CONTACT_ROUTING", gemeentecode=None)):
        message = notificatie.build(record, "https://hub.example.nl/")
        errors = [e.message for e in VALIDATOR.iter_errors(message)]
        assert errors == []
    broken = {**notificatie.build(alert(), "https://hub.example.nl"), "aanmaakdatum": "gisteren"}
    assert not VALIDATOR.is_valid(broken)  # the schema check can fail


def test_message_is_content_light_and_names_its_identity() -> None:
    message = notificatie.build(alert(version=4), "https://hub.example.nl")
    text = orjson.dumps(message).decode()
    for personal in ("9711AB", "Jan Jansen", "V-1"):
        assert personal not in text
    assert message["kanaal"] == "hub-signalen" and message["resource"] == "signaal"
    assert message["hoofdObject"] == "https://hub.example.nl/alerts/0123456789abcdef"
    assert message["resourceUrl"] == "https://hub.example.nl/alerts/0123456789abcdef/versions/4"
    assert message["aanmaakdatum"] == "2024-01-01T00:00:01.234Z"
    assert notificatie.identity(message) == "0123456789abcdef:4"
    assert message["kenmerken"] == {
        "kind": "SAMENLOOP",
        "status": "FIRING",
        "category": "SIGNAL",
        "steering_group": "GRONINGEN",
        "gemeentecode": "GM0014",
        "fingerprint": "0123456789abcdef",
        "version": "4",
    }


def test_same_record_gives_a_byte_identical_body() -> None:
    one = notificatie.body(notificatie.build(alert(), "https://h"))
    two = notificatie.body(notificatie.build(dict(reversed(list(alert().items()))), "https://h"))
    assert one == two


def test_records_without_a_channel_are_not_deliverable() -> None:
    with pytest.raises(notificatie.NotDeliverable, match="category"):
        notificatie.build(alert(category="OTHER"), "https://h")
    with pytest.raises(notificatie.NotDeliverable, match="status"):
        notificatie.build(alert(status="PENDING"), "https://h")


# --- subscriptions
def test_filters_match_every_key_case_insensitively_any_of_values() -> None:
    s = sub(
        filters=parse_filters(["kind=samenloop", "kind=PLAN_OVERLAP", "steering_group=GRONINGEN"])
    )
    k = notificatie.kenmerken
    assert s.matches(k(alert()))
    assert s.matches(k(alert(kind="PLAN_OVERLAP")))
    assert not s.matches(k(alert(kind="MANDATE_EXCEEDED")))
    assert not s.matches(k(alert(steering_group="EEMSDELTA")))
    assert not sub(filters={"gemeentecode": ["GM0014"]}).matches(k(alert(gemeentecode=None)))
    assert sub().matches(k(alert()))  # no filters: everything on the channel


@pytest.mark.parametrize(
    ("pair", "field"),
    [("colour=red", "colour"), ("kind", "not key=value"), ("kind=a b", "value of kind")],
)
def test_bad_filters_name_the_field(pair: str, field: str) -> None:
    with pytest.raises(SubscriptionError, match=field):
        parse_filters([pair])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "Zaak"}, "id"),
        ({"id": "gm0014-zaak"}, "id"),  # a run of 4 digits would hide the metric label
        ({"id": "supervisor"}, "reserved"),  # the delivery supervisor's consumer group
        ({"channel": "zaken"}, "channel"),
        ({"callback_url": "ftp://x.example.nl/"}, "only http and https"),
        ({"callback_url": "https://user:pw@x.example.nl/"}, "user info"),
        ({"callback_url": "http://metadata.google.internal/x"}, "metadata"),
    ],
)
def test_invalid_subscriptions_are_refused_with_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        sub(**changes)


def test_authorization_never_shows_in_repr_or_public_view() -> None:
    s = sub()
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)
    view = s.public("Bearer s3cret-token")
    assert view["auth"] == "Bearer ****"
    assert "s3cret" not in json.dumps(view)
    assert s.to_record()["auth"] == "plain:Bearer s3cret-token"  # the stored form is kept


def test_public_view_masks_a_token_in_the_callback_query() -> None:
    view = sub(callback_url="https://zaken.example.nl/hook?token=abc").public(None)
    assert view["callback_url"] == "https://zaken.example.nl/hook?****"
    assert view["auth"] == "****"


def test_fold_applies_records_and_tombstones() -> None:
    book: dict[str, Subscription] = {}
    s = sub()
    fold(book, s.id.encode(), orjson.dumps(s.to_record()))
    assert book == {s.id: s}
    fold(book, s.id.encode(), None)
    assert book == {}


# --- secrets
def test_sealed_auth_opens_only_with_its_key() -> None:
    key = new_key()
    stored = seal("Bearer abc", key)
    assert stored.startswith("fernet:") and "abc" not in stored
    assert unseal(stored, key) == "Bearer abc"
    with pytest.raises(SecretError, match="another key"):
        unseal(stored, new_key())
    with pytest.raises(SecretError, match="not set"):
        unseal(stored, None)
    assert unseal(seal("Token x", None), None) == "Token x"


@pytest.mark.parametrize(
    ("value", "shown"), [("Bearer abc", "Bearer ****"), ("abc", "****"), (None, "-")]
)
def test_mask_shows_the_scheme_word_only(value: str | None, shown: str) -> None:
    assert mask(value) == shown


# --- destinations
@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("127.0.0.1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_refused_addresses(address: str, why: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


def test_private_networks_are_allowed_and_the_allow_list_overrides() -> None:
    assert refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert refusal(ipaddress.ip_address("192.168.1.10")) is None
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None


def test_error_of_a_refused_url_does_not_repeat_the_url() -> None:
    with pytest.raises(UnsafeDestination) as info:
        check_callback_url("gopher://x.example.nl/?token=abc")
    assert "token" not in str(info.value)


def test_allow_networks_must_be_cidr_blocks() -> None:
    with pytest.raises(ValidationError, match="allow_networks"):
        DeliverySettings(allow_networks=["localhost"])


# --- policy
def test_back_off_grows_and_stops_after_the_attempts() -> None:
    from tenacity import RetryCallState, Retrying

    s = DeliverySettings(max_attempts=3, backoff_initial_s=1, backoff_max_s=4, backoff_jitter_s=0)
    wait, stop = wait_strategy(s), stop_strategy(s)
    state = RetryCallState(Retrying(), None, (), {})
    waits = []
    for n in (1, 2, 3, 4):
        state.attempt_number = n
        waits.append(wait(state))
    assert waits == [1, 2, 4, 4]
    state.outcome_timestamp = state.start_time + 1.0  # one second after the first attempt
    state.attempt_number = 2
    assert not stop(state)
    state.attempt_number = 3
    assert stop(state)
    state.attempt_number = 1
    state.outcome_timestamp = state.start_time + s.max_age_s + 1  # too old: stop
    assert stop(state)


def test_log_entry_keeps_running_totals() -> None:
    from hub.delivery.policy import Attempt

    entry = LogEntry("s1")
    entry.record_attempt(10, "fp", 1, 1, Attempt("http_error", 500, 0.01, "HTTP 500"))
    entry.record_attempt(20, "fp", 1, 2, Attempt("delivered", 204, 0.002))
    entry.record_dead_letter(30)
    assert (entry.attempts_total, entry.delivered_total, entry.dead_lettered_total) == (2, 1, 1)
    assert entry.last_delivered_at_ms == 20 and entry.status_code == 204
    assert LogEntry.from_record(entry.to_record()) == entry


def test_delivery_metric_labels_are_bounded() -> None:
    metrics.record_delivery_attempt("https://user:pw@x.example.nl/9711AB", "delivered", 0.1)
    metrics.record_delivery_attempt("zaak-groningen", "weird outcome", 0.1)
    assert metrics.REGISTRY.get_sample_value(
        "hub_delivery_attempts_total", {"subscription": "OTHER", "outcome": "delivered"}
    )
    assert metrics.REGISTRY.get_sample_value(
        "hub_delivery_attempts_total", {"subscription": "zaak-groningen", "outcome": "OTHER"}
    )


# --- the sender against real servers on loopback
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOOPBACK = ["127.0.0.0/8", "::1/128"]


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _post(handler: Handler, path: str = "/hook", **settings: Any) -> Any:
    async def go() -> Any:
        runner, base = await _serve(handler)
        try:
            async with Sender(DeliverySettings(**{"allow_networks": LOOPBACK, **settings})) as s:
                url = path if path.startswith("http") else base + path
                return await s.post(url.replace("BASE", base), "Bearer t", b"{}", "fp:1")
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_sender_delivers_on_204_with_the_headers() -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.update(request.headers)
        return web.Response(status=204)

    result = _post(handler)
    assert result.outcome == "delivered" and result.status == 204
    assert seen["Authorization"] == "Bearer t"
    assert seen["X-Hub-Notification-Id"] == "fp:1"
    assert seen["Content-Type"] == "application/json"


def test_sender_reports_http_errors_and_bounds_the_body() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, body=b"x" * 5_000_000)

    result = _post(handler, max_response_bytes=1024)
    assert result.outcome == "http_error" and result.status == 500 and result.error == "HTTP 500"


def test_sender_times_out() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(status=204)

    result = _post(handler, timeout_s=0.5)
    assert result.outcome == "timeout"


def test_sender_follows_same_host_307_but_not_a_redirect_elsewhere() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/old":
            raise web.HTTPTemporaryRedirect("/new")
        if request.path == "/away":
            raise web.HTTPTemporaryRedirect("http://127.0.0.2:9/x")
        if request.path == "/moved":
            raise web.HTTPFound("/new")
        return web.Response(status=204)

    assert _post(handler, "/old").outcome == "delivered"
    away = _post(handler, "/away")
    assert away.outcome == "refused" and "another host" in (away.error or "")
    assert _post(handler, "/moved").outcome == "http_error"  # 302 would turn the POST into GET


def test_sender_refuses_loopback_unless_allowed_also_by_name() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    assert _post(handler, allow_networks=[]).outcome == "refused"
    by_name = _post(handler, "BASE/hook".replace("BASE", "http://localhost:1"), allow_networks=[])
    assert by_name.outcome == "refused" and "loopback" in (by_name.error or "")
    metadata = _post(handler, "http://169.254.169.254/latest/meta-data", allow_networks=LOOPBACK)
    assert metadata.outcome == "refused"


def test_delivery_topics_get_the_min_isr_of_every_hub_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import connectors.delivery.topics as delivery_topics

    created: list[Any] = []

    class _Admin:
        def __init__(self, config: dict[str, Any]) -> None:
            pass

        def list_topics(self, timeout: float) -> Any:
            return type("Meta", (), {"topics": {}})()

        def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Any]:
            created.extend(topics)
            done = type("Done", (), {"result": lambda self, timeout: None})()
            return {t.topic: done for t in topics}

    monkeypatch.setattr(delivery_topics, "AdminClient", _Admin)
    settings = Settings(replication_factor=3, min_insync_replicas=2)
    names = delivery_topics.ensure_delivery_topics(settings, ("zaken",))
    assert len(names) == 3
    assert {t.config.get("min.insync.replicas") for t in created} == {"2"}


def test_a_halt_ends_the_wait_for_topics_of_an_unreachable_broker() -> None:
    """SIGTERM while `hub deliver` (or a worker) waits for its topics: it must end, not hang."""
    import threading
    import time

    from hub.pipeline.topics import wait_for_topics

    halt = threading.Event()
    settings = Settings(broker="127.0.0.1:1")  # nothing listens there
    threading.Timer(1.0, halt.set).start()
    began = time.monotonic()
    assert wait_for_topics(settings, retry_s=0.2, max_wait_s=0.5, halt=halt) is False
    assert time.monotonic() - began < 25  # one attempt's timeout at most after the halt
