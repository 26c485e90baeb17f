"""Who may see what on the steering-group pages: accounts, their groups, their roles.

An access file (TOML) lists accounts. Each has a name (an account, e.g. ``stuurgroep-mg``, never a
person's name: it appears in the audit log), the steering groups it may see (``["*"]`` = all, for
the regional coordinators), whether it may see contact details, and how it is recognised: a
bearer token (stored as its SHA-256, so the file holds no secret) and/or a user name set by a
trusted reverse proxy in a header (``X-Remote-User`` by default; only honoured when the file says
``trust_header``)::

    trust_header = "X-Remote-User"   # optional

    [[accounts]]
    name = "stuurgroep-midden-groningen"
    groups = ["MIDDEN_GRONINGEN"]
    contacts = true
    token_sha256 = "9f86d0..."        # sha256 of the token, hex
    remote_user = "mg-portal"         # optional

Pure: no I/O beyond reading the file, no Kafka.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ALL = "*"


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    groups: list[str] = Field(min_length=1)
    contacts: bool = False
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    remote_user: str | None = None

    @model_validator(mode="after")
    def _recognisable(self) -> AccountConfig:
        if self.token_sha256 is None and self.remote_user is None:
            raise ValueError(f"account {self.name}: needs token_sha256 or remote_user")
        return self


class AccessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    trust_header: str | None = None
    accounts: list[AccountConfig] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Account:
    """A recognised viewer: which groups, whether contact details are shown."""

    name: str
    groups: frozenset[str]
    contacts: bool

    def sees(self, group: str) -> bool:
        return ALL in self.groups or group in self.groups

    def visible(self, groups: list[str] | tuple[str, ...] | set[str]) -> list[str]:
        return sorted(g for g in groups if self.sees(g))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessPolicy:
    """Identity from a token (header ``Authorization: Bearer``, or the session cookie) or a
    trusted proxy header; unknown identity -> None (the app answers 401)."""

    def __init__(self, config: AccessConfig) -> None:
        self.trust_header = config.trust_header
        self._by_token: dict[str, Account] = {}
        self._by_user: dict[str, Account] = {}
        for a in config.accounts:
            account = Account(a.name, frozenset(a.groups), a.contacts)
            if a.token_sha256:
                self._by_token[a.token_sha256] = account
            if a.remote_user:
                self._by_user[a.remote_user] = account

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AccessPolicy:
        return cls(AccessConfig.model_validate(data))

    @classmethod
    def from_file(cls, path: Path) -> AccessPolicy:
        return cls.from_mapping(tomllib.loads(path.read_text(encoding="utf-8")))

    def by_token(self, token: str | None) -> Account | None:
        if not token:
            return None
        digest = token_hash(token)
        for known, account in self._by_token.items():
            if hmac.compare_digest(known, digest):
                return account
        return None

    def identify(self, headers: Mapping[str, str], cookie_token: str | None) -> Account | None:
        auth = headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return self.by_token(auth[7:].strip())
        if self.trust_header and headers.get(self.trust_header):
            return self._by_user.get(headers[self.trust_header])
        return self.by_token(cookie_token)
