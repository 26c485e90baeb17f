"""Delivery settings (``HUB_DELIVERY_*``), apart from :mod:`hub.settings` because only
``hub deliver`` and ``hub subscriptions`` read them."""

from __future__ import annotations

import ipaddress
from functools import cached_property

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeliverySettings(BaseSettings):
    """Retry, time-out and destination policy of ``hub deliver``."""

    model_config = SettingsConfigDict(env_prefix="HUB_DELIVERY_", extra="ignore")

    #: Where ``hoofdObject``/``resourceUrl`` point: the hub's web page or API for alerts.
    public_url: str = Field(default="http://localhost:8080", description="base URL of alert links")
    max_attempts: int = Field(default=12, ge=1, le=1000)
    #: Seconds from a notification's first attempt after which it is dead-lettered.
    max_age_s: float = Field(default=3600.0, gt=0)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    backoff_jitter_s: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=10.0, gt=0, description="whole request, connect included")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    #: A receiver answers 204; whatever it sends back is read up to this many bytes, then dropped.
    max_response_bytes: int = Field(default=65536, ge=0)
    max_redirects: int = Field(default=3, ge=0, le=10)
    verify_tls: bool = True
    ca_file: str | None = None
    #: CIDR blocks a callback may reach although the default policy refuses them (loopback,
    #: link-local, metadata ...), e.g. ``["127.0.0.0/8"]`` for a receiver on the same host.
    allow_networks: list[str] = Field(default_factory=list)
    #: Fernet key (``hub subscriptions keygen``) sealing Authorization values on the topic.
    secret_key: SecretStr | None = None

    #: A killed ``hub deliver`` holds its partitions until its session times out; short, so a
    #: restarted one resumes within seconds (librdkafka's default is 45 s).
    session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                raise ValueError(f"allow_networks: {text!r} is not a CIDR block") from exc
        return value

    @cached_property
    def allowed(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(t, strict=False) for t in self.allow_networks)
