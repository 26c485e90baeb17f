"""The Notificatie the hub POSTs for one alert transition (VNG Notificaties API 1.0 shape).

=============== ==============================================================================
``kanaal``      ``hub-signalen`` (category SIGNAL) or ``hub-aanspreekpunt`` (category ALERT)
``hoofdObject`` ``<public_url>/alerts/<fingerprint>``: the finding, across its versions
``resource``    ``signaal`` or ``aanspreekpunt``
``resourceUrl`` ``<public_url>/alerts/<fingerprint>/versions/<version>``: this transition
``actie``       ``create`` (FIRING, version 1), ``update`` (FIRING, later version),
                ``destroy`` (RESOLVED)
``aanmaakdatum`` the record's ``emitted_at`` (UTC, RFC 3339)
``kenmerken``   kind, status, category, steering_group, gemeentecode and area (when set),
                fingerprint, version: the filter keys plus the message's identity
=============== ==============================================================================

Content-light on purpose: no address, no case ids, no contact data; a receiver that needs them
fetches ``resourceUrl`` with its own credentials. The message is a pure function of the alert
record, so a redelivered record gives a byte-identical body, and (``hoofdObject``,
``kenmerken.version``), equivalently ``resourceUrl``, identifies it for deduplication.

A FIRING record with version > 1 is an ``update`` even when it re-fires a resolved finding or is
the first record of a fingerprint created above a pruned version floor (the record alone cannot
tell these apart, and a redelivery must give the same body): receivers treat ``update`` of an
unknown ``hoofdObject`` as ``create``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from hub.delivery.subscription import CHANNELS

CHANNEL_OF_CATEGORY: dict[str, str] = {category: ch for ch, category in CHANNELS.items()}
RESOURCE_OF_CHANNEL: dict[str, str] = {
    "hub-signalen": "signaal",
    "hub-aanspreekpunt": "aanspreekpunt",
}
KENMERK_MAX = 1000


class NotDeliverable(ValueError):
    """The record cannot become a Notificatie (unknown category or status)."""


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(int(value) / 1000.0, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def actie(record: Mapping[str, Any]) -> str:
    status = record["status"]
    if status == "RESOLVED":
        return "destroy"
    if status == "FIRING":
        return "create" if int(record["version"]) == 1 else "update"
    raise NotDeliverable(f"status: {status!r} is neither FIRING nor RESOLVED")


def kenmerken(record: Mapping[str, Any]) -> dict[str, str]:
    """The filterable facts of a transition (string values, none empty)."""
    out = {
        "kind": record.get("kind"),
        "status": record.get("status"),
        "category": record.get("category"),
        "steering_group": record.get("steering_group"),
        "gemeentecode": record.get("gemeentecode"),
        "area": record.get("area"),
        "fingerprint": record.get("fingerprint"),
        "version": str(record.get("version")),
    }
    return {k: str(v)[:KENMERK_MAX] for k, v in out.items() if v not in (None, "")}


def build(record: Mapping[str, Any], public_url: str) -> dict[str, Any]:
    """The Notificatie for one decoded Alert record."""
    channel = CHANNEL_OF_CATEGORY.get(record.get("category", ""))
    if channel is None:
        raise NotDeliverable(f"category: {record.get('category')!r} has no channel")
    base = public_url.rstrip("/")
    fp = quote(str(record["fingerprint"]), safe="")
    main = f"{base}/alerts/{fp}"
    return {
        "kanaal": channel,
        "hoofdObject": main,
        "resource": RESOURCE_OF_CHANNEL[channel],
        "resourceUrl": f"{main}/versions/{int(record['version'])}",
        "actie": actie(record),
        "aanmaakdatum": _iso(record["emitted_at"]),
        "kenmerken": kenmerken(record),
    }


def identity(message: Mapping[str, Any]) -> str:
    """What receivers deduplicate on: ``<fingerprint>:<version>`` (also sent as the
    ``X-Hub-Notification-Id`` header)."""
    k = message["kenmerken"]
    return f"{k['fingerprint']}:{k['version']}"


def body(message: Mapping[str, Any]) -> bytes:
    """The request body: keys in the order built, so a redelivery is byte-identical."""
    return orjson.dumps(message)
