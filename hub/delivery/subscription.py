"""Subscriptions (abonnementen): a callback, an Authorization value, one channel, filters.

Shape after the Notificaties API's ``Abonnement`` (callbackUrl, auth, kanalen with filters on
kenmerken), with one channel per subscription: the hub has two channels and a receiver that
wants both registers twice (two ids, two independent queues).

A subscription is stored as JSON on a compacted topic, key = its id; removing it writes a
tombstone. The id names the subscription everywhere (metric labels, consumer group, dead-letter
topic), so it is a short lower-case slug, never a URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.delivery.destinations import check_callback_url
from hub.delivery.secrets import mask

#: channel -> the alert category it carries (and hence the topic it reads)
CHANNELS: dict[str, str] = {"hub-signalen": "SIGNAL", "hub-aanspreekpunt": "ALERT"}
#: kenmerken a subscription may filter on
FILTER_KEYS: frozenset[str] = frozenset({"steering_group", "kind", "gemeentecode", "status"})

# a slug usable as topic suffix, consumer group and metric label: no run of 4+ digits (the
# metric label guard would hide it as OTHER; such runs look like postcodes and BAG ids)
_ID_RE = re.compile(r"[a-z][a-z0-9-]{1,47}")
_DIGITS_RE = re.compile(r"[0-9]{4}")
_VALUE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class SubscriptionError(ValueError):
    """A subscription is invalid; the message names the field and the reason."""


#: ids a subscription may not take: ``{app_id}-delivery-<id>`` is its consumer group, and the
#: delivery supervisor's group is ``{app_id}-delivery-supervisor``
RESERVED_IDS: frozenset[str] = frozenset({"supervisor"})


def check_id(value: str) -> str:
    if not _ID_RE.fullmatch(value) or _DIGITS_RE.search(value):
        raise SubscriptionError(
            "id: 2-48 characters a-z, 0-9 and '-', starting with a letter, "
            "without 4 digits in a row"
        )
    if value in RESERVED_IDS:
        raise SubscriptionError(
            f"id: {value!r} is reserved (its consumer group is the delivery supervisor's)"
        )
    return value


def parse_filters(pairs: Iterable[str]) -> dict[str, list[str]]:
    """``["kind=SAMENLOOP", "status=FIRING", "kind=PLAN_OVERLAP"]`` -> key -> accepted values."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise SubscriptionError(f"filter: {pair!r} is not key=value")
        if key not in FILTER_KEYS:
            raise SubscriptionError(
                f"filter: {key!r} is not a kenmerk to filter on ({', '.join(sorted(FILTER_KEYS))})"
            )
        if not _VALUE_RE.fullmatch(value):
            raise SubscriptionError(f"filter: value of {key} must be 1-100 of A-Z a-z 0-9 _ . : -")
        values = out.setdefault(key, [])
        if value not in values:
            values.append(value)
    return out


class Subscription(BaseModel):
    """One abonnement. ``auth`` is the *stored* form (see :mod:`hub.delivery.secrets`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    callback_url: str
    auth: SecretStr | None = None
    channel: str
    filters: dict[str, list[str]] = Field(default_factory=dict)
    created_at_ms: int = Field(ge=0)
    #: records whose Kafka timestamp is older are not delivered (0: from the beginning)
    deliver_from_ms: int = Field(ge=0)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id(value)

    @field_validator("callback_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_callback_url(value)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if value not in CHANNELS:
            raise SubscriptionError(f"channel: one of {', '.join(sorted(CHANNELS))}")
        return value

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return parse_filters(f"{k}={v}" for k, values in value.items() for v in values)

    @property
    def category(self) -> str:
        return CHANNELS[self.channel]

    def matches(self, kenmerken: Mapping[str, str]) -> bool:
        """Every filter key has one of its values among the kenmerken (case-insensitive)."""
        for key, accepted in self.filters.items():
            have = kenmerken.get(key)
            if have is None or have.casefold() not in {a.casefold() for a in accepted}:
                return False
        return True

    def to_record(self) -> dict[str, Any]:
        """The topic value: the stored (sealed or plain) auth form, never a masked one."""
        return {
            "id": self.id,
            "callback_url": self.callback_url,
            "auth": self.auth.get_secret_value() if self.auth is not None else None,
            "channel": self.channel,
            "filters": self.filters,
            "created_at_ms": self.created_at_ms,
            "deliver_from_ms": self.deliver_from_ms,
        }

    def public(self, auth_shown: str | None = None) -> dict[str, Any]:
        """For ``list``/``status``: the Authorization value masked (``auth_shown`` is the
        unsealed value when known, only its scheme word is shown), the URL's query masked."""
        record = self.to_record()
        record["callback_url"] = shown_url(self.callback_url)
        if self.auth is None:
            record["auth"] = "-"
        elif auth_shown is not None:
            record["auth"] = mask(auth_shown)
        else:
            record["auth"] = "****"
        return record


def shown_url(url: str) -> str:
    """A callback URL for display: a query string (some receivers put a token there) masked."""
    base, sep, _query = url.partition("?")
    return f"{base}?****" if sep else base


def fold(book: dict[str, Subscription], key: bytes | None, value: bytes | None) -> None:
    """Apply one record of the subscriptions topic to ``book`` (a tombstone removes)."""
    if key is None:
        return
    sub_id = key.decode(errors="replace")
    if value is None:
        book.pop(sub_id, None)
        return
    try:
        book[sub_id] = Subscription.model_validate(orjson.loads(value))
    except (ValueError, orjson.JSONDecodeError):
        book.pop(sub_id, None)  # an unreadable record replaces the old one: nothing delivered
