"""One POST of a Notificatie to an untrusted receiver (aiohttp).

Guards: only http(s) callback URLs without user info; every address checked against the
destination policy of :mod:`hub.delivery.destinations`, literal IPs before connecting and names
in the resolver at connection time (so a name that resolves to a metadata address later is
refused too; no DNS cache); TLS verified unless switched off; a total and a connect time-out;
the response body read up to ``max_response_bytes`` and the rest dropped with the connection;
redirects followed only for 307/308 to the same scheme, host and port (a POST stays a POST and
the Authorization value never goes to another host).

Nothing here logs. Errors returned in :class:`hub.delivery.policy.Attempt` name the kind of
failure and never the URL's path/query or a header value.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from hub import __version__
from hub.delivery.config import DeliverySettings
from hub.delivery.destinations import (
    IPNetwork,
    UnsafeDestination,
    check_address,
    check_callback_url,
    literal_address,
    same_origin,
)
from hub.delivery.policy import HTTP_ERROR, NETWORK, REFUSED, TIMEOUT, Attempt, classify_status

USER_AGENT = f"hub-delivery/{__version__}"
NOTIFICATION_ID_HEADER = "X-Hub-Notification-Id"


class BlockedAddress(OSError):
    """The resolver refused an address (an OSError so aiohttp reports it as a connect error)."""


class GuardedResolver(ThreadedResolver):
    """The system resolver, refusing names that resolve to any address the policy refuses."""

    def __init__(self, allowed: Iterable[IPNetwork]) -> None:
        super().__init__()
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        for result in results:
            try:
                check_address(ipaddress.ip_address(result["host"].split("%")[0]), self._allowed)
            except UnsafeDestination as exc:
                raise BlockedAddress(str(exc)) from None
        return results


def _ssl(settings: DeliverySettings) -> ssl.SSLContext | bool:
    if not settings.verify_tls:
        return False
    return ssl.create_default_context(cafile=settings.ca_file)


class Sender:
    """A shared aiohttp session for all subscriptions (open with ``async with``)."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.settings.allowed),
            use_dns_cache=False,
            ssl=_ssl(self.settings),
            limit=0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self.settings.timeout_s, connect=self.settings.connect_timeout_s
            ),
            auto_decompress=False,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, auth: str | None, body: bytes, notification_id: str) -> Attempt:
        """POST ``body`` to ``url``; never raises for anything the receiver or network does."""
        assert self._session is not None, "use Sender as an async context manager"
        started = time.monotonic()

        def took() -> float:
            return time.monotonic() - started

        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            NOTIFICATION_ID_HEADER: notification_id,
        }
        if auth is not None:
            headers["Authorization"] = auth
        current = url
        status: int | None = None
        for _hop in range(self.settings.max_redirects + 1):
            try:
                check_callback_url(current)
                literal = literal_address(urlsplit(current).hostname or "")
                if literal is not None:
                    check_address(literal, self.settings.allowed)
            except UnsafeDestination as exc:
                return Attempt(REFUSED, status, took(), str(exc))
            try:
                async with self._session.post(
                    current, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    await resp.content.read(self.settings.max_response_bytes)
                    if not resp.content.at_eof():
                        resp.close()  # more than we read: drop it with the connection
                    location = resp.headers.get("Location")
            except TimeoutError:
                return Attempt(TIMEOUT, None, took(), "no complete answer within the time-out")
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress):
                    return Attempt(REFUSED, None, took(), str(exc.os_error))
                return Attempt(
                    NETWORK, None, took(), f"cannot connect: {type(exc.os_error).__name__}"
                )
            except BlockedAddress as exc:
                return Attempt(REFUSED, None, took(), str(exc))
            except aiohttp.ClientError as exc:
                return Attempt(NETWORK, None, took(), f"network error: {type(exc).__name__}")
            except (OSError, asyncio.IncompleteReadError) as exc:
                return Attempt(NETWORK, None, took(), f"network error: {type(exc).__name__}")
            if status in (307, 308) and location:
                target = urljoin(current, location)
                if not same_origin(current, target):
                    return Attempt(REFUSED, status, took(), "redirect to another host not followed")
                current = target
                continue
            if 300 <= status < 400:
                return Attempt(
                    HTTP_ERROR,
                    status,
                    took(),
                    f"HTTP {status}: only 307/308 to the same host are followed",
                )
            outcome = classify_status(status)
            return Attempt(
                outcome, status, took(), None if outcome != HTTP_ERROR else f"HTTP {status}"
            )
        return Attempt(HTTP_ERROR, status, took(), "too many redirects")
