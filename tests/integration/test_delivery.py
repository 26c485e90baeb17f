"""``hub deliver`` end to end: real broker, real ``hub`` processes, real HTTP receivers on loopback.

Each test runs on an empty, uniquely prefixed topic set (``pipeline_harness``), adds its
subscriptions with the real ``hub subscriptions add`` command and starts ``hub deliver`` as a
process. The receivers are aiohttp servers in a thread; what they answer is scripted per test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from aiohttp import web
from confluent_kafka import Producer

from connectors.kafka_publish import publish
from connectors.simulator import simulate
from hub.contracts.codec import AvroCodec
from hub.delivery.secrets import new_key
from hub.pipeline.clients import producer_config
from tests.integration.pipeline_harness import HubUnderTest, _with_pdeathsig, hub_under_test

SCHEMA = Path(__file__).parents[1] / "fixtures" / "notificaties_notificatie.schema.json"
VALIDATOR = jsonschema_rs.Draft4Validator(json.loads(SCHEMA.read_text()), validate_formats=True)
T0 = 1_717_200_000_000
TOKEN = "Bearer delivery-test-secret-7f3a"


class Receiver:
    """A Notificaties callback on 127.0.0.1: records every request and answers
    ``answer(n)`` for the n-th request (1-based), after ``delay`` seconds."""

    def __init__(self, answer: Callable[[int], int] = lambda n: 204, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.requests: list[tuple[int, dict[str, str], bytes]] = []  # (status, headers, body)
        self.lock = threading.Lock()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            done = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            done.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/notificaties"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if self.delay:
                await asyncio.sleep(self.delay)
            with self.lock:
                status = self.answer(len(self.requests) + 1)
                self.requests.append((status, dict(request.headers), body))
            return web.Response(status=status)

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/api/v1/notificaties", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            self._runner = runner
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies answered 2xx, in arrival order."""
        with self.lock:
            return [orjson.loads(b) for s, _h, b in self.requests if 200 <= s < 300]

    def delivered_raw(self) -> list[bytes]:
        with self.lock:
            return [b for s, _h, b in self.requests if 200 <= s < 300]


def ident(message: dict[str, Any]) -> tuple[str, int]:
    k = message["kenmerken"]
    return k["fingerprint"], int(k["version"])


def delivery_env(hub: HubUnderTest, **extra: str) -> dict[str, str]:
    return {
        **hub.env(0),
        "HUB_DELIVERY_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        "HUB_DELIVERY_PUBLIC_URL": "https://hub.example.nl",
        "HUB_DELIVERY_SECRET_KEY": hub_key(hub),
        "HUB_LOG_LEVEL": "INFO",
        "SUB_AUTH": TOKEN,
        **extra,
    }


_KEYS: dict[str, str] = {}


def hub_key(hub: HubUnderTest) -> str:
    return _KEYS.setdefault(hub.token, new_key())


def hub_cli(hub: HubUnderTest, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubctl", *args],
        env=delivery_env(hub, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_subscription(hub: HubUnderTest, sub_id: str, url: str, channel: str, *filters: str) -> None:
    args = ["subscriptions", "add", sub_id, "--callback", url, "--channel", channel]
    args += ["--auth-env", "SUB_AUTH"]
    for f in filters:
        args += ["--filter", f]
    result = hub_cli(hub, *args)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr


def start_deliver(
    hub: HubUnderTest, log_name: str = "deliver", **env: str
) -> subprocess.Popen[bytes]:
    log = (hub.root / f"{log_name}.log").open("ab")
    proc = subprocess.Popen(
        _with_pdeathsig([sys.executable, "-m", "hubctl", "deliver"], True),
        env=delivery_env(hub, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    hub.processes.append(proc)
    return proc


def wait_until(check: Callable[[], bool], timeout: float, what: str, hub: HubUnderTest) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for proc in hub.processes:
            if proc.poll() not in (None, 0, -9, -15):
                raise AssertionError(f"a process exited {proc.returncode}:\n{deliver_logs(hub)}")
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}:\n{deliver_logs(hub)}")


def deliver_logs(hub: HubUnderTest) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(hub.root.glob("*.log")))


def per_fingerprint(idents: list[tuple[str, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for fp, version in idents:
        out[fp].append(version)
    return dict(out)


def first_receipts(messages: list[dict[str, Any]]) -> list[tuple[str, int]]:
    seen: set[tuple[str, int]] = set()
    out = []
    for m in messages:
        i = ident(m)
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def assert_valid(messages: list[dict[str, Any]]) -> None:
    for m in messages:
        errors = [e.message for e in VALIDATOR.iter_errors(m)]
        assert errors == [], (m, errors)


def signal_record(
    fp: str, version: int, kind: str = "SAMENLOOP", group: str = "GRONINGEN"
) -> dict[str, Any]:
    """An Alert.v1 record as the engine emits it on ``signals``."""
    return {
        "fingerprint": fp,
        "kind": kind,
        "category": "SIGNAL",
        "status": "FIRING",
        "version": version,
        "address_key": "9711AB-12A",
        "area": None,
        "gemeentecode": "GM0014",
        "steering_group": group,
        "lead": None,
        "cases": [],
        "event_ids": [f"ev-{fp}-{version}"],
        "detail": {},
        "config_version": "test-1",
        "starts_at": T0,
        "ends_at": None,
        "emitted_at": T0 + version,
        "trigger_event_id": f"ev-{fp}-{version}",
        "trigger_ingested_at": T0,
    }


def publish_signals(hub: HubUnderTest, records: list[dict[str, Any]]) -> None:
    producer = Producer(producer_config(hub.settings))
    codec = AvroCodec()
    for rec in records:
        producer.produce(
            hub.topics.signals, key=rec["steering_group"].encode(), value=codec.encode("Alert", rec)
        )
    assert producer.flush(30) == 0


# --- tests
def test_two_subscribers_get_exactly_the_transitions_they_asked_for_in_order(
    broker: str, tmp_path: Path
) -> None:
    """A real worker correlates simulated traffic on an empty prefix; two subscriptions with
    different channels and filters each receive exactly their matching transitions, in version
    order per fingerprint, as valid Notificaties with the subscription's Authorization."""
    with hub_under_test(broker, tmp_path, partitions=2) as hub, Receiver() as a, Receiver() as b:
        hub.die_with_parent = True
        add_subscription(hub, "samenloop-only", a.url, "hub-signalen", "kind=SAMENLOOP")
        add_subscription(
            hub,
            "eemsdelta-firing",
            b.url,
            "hub-aanspreekpunt",
            "steering_group=EEMSDELTA",
            "status=FIRING",
        )
        start_deliver(hub)
        publish(simulate(addresses=300, events=3000, seed=7), hub.settings)
        hub.start_worker()
        hub.wait_caught_up()
        records = hub.alert_records()  # both topics, partition order = delivery order per key

        def wanted(r: dict[str, Any], category: str, **f: str) -> bool:
            return r["category"] == category and all(r[k] == v for k, v in f.items())

        want_a = [
            (r["fingerprint"], r["version"])
            for r in records
            if wanted(r, "SIGNAL", kind="SAMENLOOP")
        ]
        want_b = [
            (r["fingerprint"], r["version"])
            for r in records
            if wanted(r, "ALERT", steering_group="EEMSDELTA", status="FIRING")
        ]
        assert want_a and want_b, "the simulation should give both subscribers something"
        wait_until(lambda: len(a.delivered()) >= len(want_a), 180, "subscriber a", hub)
        wait_until(lambda: len(b.delivered()) >= len(want_b), 180, "subscriber b", hub)
        time.sleep(2)  # anything extra would arrive now
        got_a, got_b = a.delivered(), b.delivered()
        assert per_fingerprint([ident(m) for m in got_a]) == per_fingerprint(want_a)
        assert per_fingerprint([ident(m) for m in got_b]) == per_fingerprint(want_b)
        assert {m["kanaal"] for m in got_a} == {"hub-signalen"}
        assert {m["kanaal"] for m in got_b} == {"hub-aanspreekpunt"}
        assert {m["actie"] for m in got_b} <= {"create", "update"}
        assert_valid(got_a + got_b)
        for _status, headers, _body in a.requests + b.requests:
            assert headers["Authorization"] == TOKEN
        print(f"\nsubscriber a: {len(got_a)} notificaties, b: {len(got_b)}")


def test_recovering_subscriber_gets_everything_dead_one_is_dead_lettered_others_unaffected(
    broker: str, tmp_path: Path
) -> None:
    """Delivery alone: alert records are published directly on ``signals``. One receiver answers
    500 four times then 204, one always 503, one always 204. With 6 attempts per notification
    the flaky one gets everything, the dead one's notifications land on its dead-letter topic
    with the last error, and the healthy one has everything before the dead one is given up."""
    records = [
        signal_record(f"fp{c}", v, kind=k)
        for c, k in zip("abc", ["SAMENLOOP", "PLAN_OVERLAP", "MANDATE_EXCEEDED"], strict=True)
        for v in range(1, 5)
    ]
    env = {
        "HUB_DELIVERY_MAX_ATTEMPTS": "6",
        "HUB_DELIVERY_BACKOFF_INITIAL_S": "0.2",
        "HUB_DELIVERY_BACKOFF_MAX_S": "0.8",
        "HUB_DELIVERY_BACKOFF_JITTER_S": "0.1",
    }
    with (
        hub_under_test(broker, tmp_path, partitions=2) as hub,
        Receiver() as healthy,
        Receiver(lambda n: 500 if n <= 4 else 204) as flaky,
        Receiver(lambda n: 503) as dead,
    ):
        add_subscription(hub, "healthy", healthy.url, "hub-signalen")
        add_subscription(hub, "flaky", flaky.url, "hub-signalen")
        add_subscription(hub, "dead", dead.url, "hub-signalen", "kind=SAMENLOOP")
        port = _free_port()
        start_deliver(hub, HUB_METRICS_PORT=str(port), **env)
        publish_signals(hub, records)
        want = [(r["fingerprint"], r["version"]) for r in records]
        wait_until(lambda: len(healthy.delivered()) >= len(want), 120, "healthy subscriber", hub)
        dead_letters_then = _dead_letter_count(hub, "dead")
        assert dead_letters_then < 4, "the healthy subscriber waited for the dead one"
        wait_until(lambda: len(first_receipts(flaky.delivered())) >= len(want), 120, "flaky", hub)
        wait_until(lambda: _dead_letter_count(hub, "dead") >= 4, 180, "dead letters", hub)

        assert first_receipts(healthy.delivered()) == want  # one key, one partition: exact order
        assert per_fingerprint(first_receipts(flaky.delivered())) == per_fingerprint(want)
        assert [s for s, _h, _b in flaky.requests[:4]] == [500] * 4
        assert len(dead.requests) == 4 * 6  # every attempt reached the receiver
        assert_valid(healthy.delivered() + [orjson.loads(b) for _s, _h, b in dead.requests])

        status = hub_cli(hub, "subscriptions", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert TOKEN not in status.stdout and "delivery-test-secret" not in status.stdout
        rows = {row["id"]: row for row in map(json.loads, status.stdout.splitlines())}
        assert rows["dead"]["dead_letters"] == 4 and rows["dead"]["last_error"] == "HTTP 503"
        assert rows["dead"]["auth"] == "Bearer ****" and rows["dead"]["sealed"] is True
        assert rows["healthy"]["dead_letters"] == 0
        letters = hub_cli(hub, "subscriptions", "dead-letters", "dead", "--json")
        parsed = [json.loads(line) for line in letters.stdout.splitlines()]
        assert [p["notification_id"] for p in parsed] == [f"fpa:{v}" for v in range(1, 5)]
        assert {p["attempts"] for p in parsed} == {"6"} and {p["status_code"] for p in parsed} == {
            "503"
        }
        listing = hub_cli(hub, "subscriptions", "list", "--json")
        assert TOKEN not in listing.stdout and listing.stdout.count("Bearer ****") == 3

        refused = hub_cli(
            hub,
            "subscriptions",
            "add",
            "bad",
            "--callback",
            "ftp://x.example.nl/",
            "--channel",
            "hub-signalen",
        )
        assert refused.returncode == 2 and "callback_url" in refused.stderr
        removed = hub_cli(hub, "subscriptions", "remove", "healthy")
        assert removed.returncode == 0, removed.stderr
        after = hub_cli(hub, "subscriptions", "list", "--json").stdout.splitlines()
        assert sorted(json.loads(line)["id"] for line in after) == ["dead", "flaky"]

        scrape = (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        )
        assert (
            'hub_delivery_attempts_total{outcome="http_error",subscription="dead"} 24.0' in scrape
        )
        assert (
            'hub_delivery_attempts_total{outcome="http_error",subscription="flaky"} 4.0' in scrape
        )
        assert 'hub_delivery_dead_letters_total{subscription="dead"} 4.0' in scrape
        assert "delivery-test-secret" not in deliver_logs(hub)


def test_kill_9_of_hub_deliver_loses_nothing_and_repeats_only_exact_copies(
    broker: str, tmp_path: Path
) -> None:
    """Delivery alone: 300 alert records published directly on ``signals`` (20 fingerprints x
    15 versions). ``hub deliver`` is killed with SIGKILL mid-stream and started again: every
    notification arrives, first receipts stay in version order per fingerprint, and any
    duplicate is byte-identical to its first copy."""
    records = [
        signal_record(f"fp{i:02d}x", v, group=f"G{i % 3}") for v in range(1, 16) for i in range(20)
    ]
    with hub_under_test(broker, tmp_path, partitions=3) as hub, Receiver(delay=0.01) as rx:
        add_subscription(hub, "all-signals", rx.url, "hub-signalen")
        publish_signals(hub, records)
        first = start_deliver(hub, "deliver-1")
        wait_until(lambda: len(rx.delivered()) >= 80, 120, "80 notificaties", hub)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        at_kill = len(rx.delivered())
        restarted = time.monotonic()
        start_deliver(hub, "deliver-2")
        want = {(r["fingerprint"], r["version"]) for r in records}
        wait_until(lambda: {ident(m) for m in rx.delivered()} >= want, 180, "all notificaties", hub)
        took = time.monotonic() - restarted  # process start included; a figure, not asserted
        time.sleep(2)
        raw = rx.delivered_raw()
        messages = [orjson.loads(b) for b in raw]
        assert {ident(m) for m in messages} == want
        firsts: dict[tuple[str, int], bytes] = {}
        duplicates = 0
        for body, m in zip(raw, messages, strict=True):
            i = ident(m)
            if i in firsts:
                duplicates += 1
                assert body == firsts[i], "a duplicate differs from its first copy"
            else:
                firsts[i] = body
        for fp, versions in per_fingerprint(first_receipts(messages)).items():
            assert versions == sorted(versions), fp
        assert_valid(messages)
        print(
            f"\nkill -9 after {at_kill} of {len(want)} delivered; duplicates: {duplicates}; "
            f"the rest ({len(raw) - at_kill}) {took:.1f} s after the restart"
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dead_letter_count(hub: HubUnderTest, sub_id: str) -> int:
    from tests.integration.kafka_helpers import published_count

    topic = f"{hub.settings.topic_prefix}delivery-dead-letter.{sub_id}"
    try:
        return published_count(hub.broker, topic)
    except Exception:
        return 0


def test_sigterm_while_retrying_stops_and_the_notification_is_sent_again_after_restart(
    broker: str, tmp_path: Path
) -> None:
    """Delivery alone: one alert record published directly; the receiver answers 503. SIGTERM
    during the back-off ends ``hub deliver`` cleanly without committing the record, and the
    next ``hub deliver`` sends the same notification again."""
    with hub_under_test(broker, tmp_path, partitions=1) as hub, Receiver(lambda n: 503) as rx:
        add_subscription(hub, "down", rx.url, "hub-signalen")
        publish_signals(hub, [signal_record("fpterm", 1)])
        proc = start_deliver(
            hub, HUB_DELIVERY_BACKOFF_INITIAL_S="5", HUB_DELIVERY_BACKOFF_MAX_S="60"
        )
        wait_until(lambda: len(rx.requests) >= 2, 120, "two attempts", hub)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        hub.processes.remove(proc)
        before = len(rx.requests)
        start_deliver(hub, "deliver-2")
        wait_until(lambda: len(rx.requests) > before, 120, "the resend", hub)
        bodies = {body for _s, _h, body in rx.requests}
        assert len(bodies) == 1  # the same notification, byte for byte
        assert _dead_letter_count(hub, "down") == 0
