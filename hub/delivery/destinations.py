"""Receivers are not trusted: which callback URLs and addresses the hub will POST to.

A callback URL is stored only if it is an absolute ``http``/``https`` URL with a host and
without user info (credentials in a URL end up in logs and proxies; the Authorization value is
the place for them). Every address the host resolves to is checked again at connection time
(``connectors.delivery.sender``), so a name that later resolves to a metadata address is refused
too. Refused by default:

* link-local (``169.254.0.0/16``, ``fe80::/10``), which holds the cloud metadata services
  (``169.254.169.254``, ``fd00:ec2::254`` on AWS, ``100.100.100.200`` on Alibaba Cloud);
* loopback, unspecified (``0.0.0.0``), multicast and reserved addresses: a callback has no
  business reaching the hub's own host or broadcasting.

Private networks (RFC 1918, ULA) are allowed: municipal case systems usually live there.
Anything refused by default can be allowed with ``HUB_DELIVERY_ALLOW_NETWORKS`` (CIDR blocks).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_CALLBACK_URL = 200  # the Abonnement.callbackUrl bound of the Notificaties API 1.0

#: Metadata endpoints outside link-local, refused like link-local.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
    }
)
METADATA_HOSTS: frozenset[str] = frozenset({"metadata.google.internal", "metadata"})


class UnsafeDestination(ValueError):
    """A callback URL or an address it resolves to is refused; the message says why (and
    never contains the URL's path or query, which may hold tokens)."""


def check_callback_url(url: str) -> str:
    """The URL as given if it may be stored as a callback, else :class:`UnsafeDestination`."""
    if len(url) > MAX_CALLBACK_URL:
        raise UnsafeDestination(f"callback_url: longer than {MAX_CALLBACK_URL} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UnsafeDestination("callback_url: contains whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("callback_url: only http and https URLs are allowed")
    if not parts.hostname:
        raise UnsafeDestination("callback_url: has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination(
            "callback_url: must not contain user info; put credentials in the auth value"
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise UnsafeDestination("callback_url: the port is not a number 0-65535") from exc
    if parts.hostname.rstrip(".").lower() in METADATA_HOSTS:
        raise UnsafeDestination("callback_url: a cloud metadata host is never a receiver")
    return url


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one (``[::1]`` brackets stripped), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refusal(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be reached (None: it may), given the explicitly allowed blocks."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in allowed):
        return None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    return None


def check_address(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> None:
    """:class:`UnsafeDestination` if ``address`` may not be reached."""
    reason = refusal(address, allowed)
    if reason is not None:
        raise UnsafeDestination(
            f"the callback resolves to {reason}; allow it with HUB_DELIVERY_ALLOW_NETWORKS"
        )


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port equal (default ports filled in): redirects may not leave that."""
    return _origin(urlsplit(a)) == _origin(urlsplit(b))
