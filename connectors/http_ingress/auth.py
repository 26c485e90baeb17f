"""Ingress credentials: Bearer tokens bound to one source (and optionally organisations).

Only SHA-256 digests are kept in memory and compared with :func:`hmac.compare_digest` against
every entry, so a lookup neither short-circuits on a prefix nor on the matching entry's position.
Tokens come from ``HUB_INGRESS_TOKENS`` or a TOML file (``HUB_INGRESS_TOKENS_FILE``, reloaded
when it changes).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hub.contracts.enums import Source

log = logging.getLogger("connectors.http_ingress")  # one logger name for the whole ingress

TOKENS_ENV = "HUB_INGRESS_TOKENS"
TOKENS_FILE_ENV = "HUB_INGRESS_TOKENS_FILE"
PUBLISHABLE_SOURCES = frozenset(s.value for s in Source if s is not Source.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Credential:
    """One agency token: its SHA-256 digest, the source it may publish, a label for logs, and
    optionally the ``source_org`` values it may claim (None: any, the source is what is bound)."""

    digest: bytes
    source: Source
    label: str
    orgs: frozenset[str] | None = None

    def allows_org(self, value: Any) -> bool:
        """True when an event may carry this ``source_org`` (absent/blank always may)."""
        if self.orgs is None or value is None:
            return True
        return isinstance(value, str) and (not value.strip() or value.strip() in self.orgs)


def _source(value: Any) -> Source:
    if not isinstance(value, str) or value.strip() not in PUBLISHABLE_SOURCES:
        raise ValueError(
            f"token source {value!r} is not one of {', '.join(sorted(PUBLISHABLE_SOURCES))}"
        )
    return Source(value.strip())


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenStore:
    """Bearer token -> Credential, knowing only digests of the tokens."""

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        self._credentials: tuple[Credential, ...] = ()
        for credential in credentials:
            self.add(credential)

    def add(self, credential: Credential) -> None:
        for existing in self._credentials:
            if hmac.compare_digest(existing.digest, credential.digest):
                raise ValueError(f"token {credential.label!r} is configured twice")
        self._credentials = (*self._credentials, credential)

    @classmethod
    def from_tokens(cls, tokens: Mapping[str, str | Source]) -> TokenStore:
        """From plain ``token -> source`` (tests, env); the plain tokens are not kept."""
        store = cls()
        for n, (token, source) in enumerate(tokens.items(), start=1):
            if not token.strip():
                raise ValueError("an ingress token must not be empty")
            src = _source(str(source))
            store.add(Credential(token_digest(token.strip()), src, f"{src.value}#{n}"))
        return store

    def lookup(self, token: str) -> Credential | None:
        """Compare against every entry (no early exit) and return the match, if any."""
        digest = token_digest(token)
        found: Credential | None = None
        for credential in self._credentials:
            if hmac.compare_digest(credential.digest, digest):
                found = credential
        return found

    def __len__(self) -> int:
        return len(self._credentials)


def parse_tokens_env(text: str) -> dict[str, str]:
    """``"token1=NCG,token2=IMG"`` -> {token: source}. Split at the last ``=`` so base64 padding
    in a token survives."""
    out: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        token, sep, source = item.rpartition("=")
        if not sep or not token.strip():
            raise ValueError(f"{TOKENS_ENV}: expected token=SOURCE, got an entry without '='")
        if token.strip() in out:
            raise ValueError(f"{TOKENS_ENV}: a token is configured twice")
        out[token.strip()] = source.strip()
    return out


def load_tokens_file(path: Path) -> list[Credential]:
    """TOML or JSON ``tokens = [{source, sha256 | token, name?}]``; prefer ``sha256`` (hex) so
    the file holds no usable secret."""
    raw = path.read_bytes()
    data = orjson.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list 'tokens' of {{source, sha256|token, name}}")
    out: list[Credential] = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: tokens[{n}] is not a table/object")
        source = _source(entry.get("source"))
        label = str(entry.get("name") or f"{source.value}@{path.name}#{n}")
        if "sha256" in entry:
            try:
                digest = bytes.fromhex(str(entry["sha256"]).strip())
            except ValueError as exc:
                raise ValueError(f"{path}: tokens[{n}].sha256 is not hex") from exc
            if len(digest) != hashlib.sha256().digest_size:
                raise ValueError(f"{path}: tokens[{n}].sha256 is not a SHA-256 digest")
        elif isinstance(entry.get("token"), str) and entry["token"].strip():
            digest = token_digest(entry["token"].strip())
        else:
            raise ValueError(f"{path}: tokens[{n}] needs 'sha256' or 'token'")
        out.append(Credential(digest, source, label, _orgs(entry.get("orgs"), path, n)))
    return out


def _orgs(value: Any, path: Path, n: int) -> frozenset[str] | None:
    """``orgs = ["001479179", ...]``: the ``source_org`` values a token may claim."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError(f"{path}: tokens[{n}].orgs must be a non-empty list of strings")
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{path}: tokens[{n}].orgs must be a non-empty list of strings")
    return frozenset(v.strip() for v in value)


def load_tokens(env: Mapping[str, str] | None = None) -> TokenStore:
    """Tokens from ``HUB_INGRESS_TOKENS`` and/or the file named by ``HUB_INGRESS_TOKENS_FILE``."""
    env = os.environ if env is None else env
    store = TokenStore.from_tokens(parse_tokens_env(env.get(TOKENS_ENV, "")))
    path = env.get(TOKENS_FILE_ENV, "").strip()
    if path:
        for credential in load_tokens_file(Path(path)):
            store.add(credential)
    return store


class ReloadingTokens:
    """Tokens from the environment plus a token file that is re-read when it changes.

    Revoking a token must not need a restart: before a lookup the file's (mtime, size, inode)
    is compared with the loaded version, at most once per ``check_interval`` seconds, and
    :meth:`reload` (wired to SIGHUP by :func:`run_http`) re-reads it at once. A file that no
    longer parses is refused with an ERROR log and the previous tokens stay in force (failing
    closed would lock every agency out over one typo); fix the file and it is picked up.
    """

    def __init__(
        self,
        fixed: Mapping[str, str],
        path: Path | None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed = dict(fixed)
        self.path = path
        self.check_interval = check_interval
        self._clock = clock
        self._checked_at = clock()
        self._version: tuple[int, int, int] | None = None
        self._store = self._build()

    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _build(self) -> TokenStore:
        store = TokenStore.from_tokens(self._fixed)
        if self.path is not None:
            version = self._stat()
            for credential in load_tokens_file(self.path):
                store.add(credential)
            self._version = version
        return store

    def reload(self) -> bool:
        """Re-read the file now; False (previous tokens kept) when it does not load."""
        self._checked_at = self._clock()
        try:
            store = self._build()
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            self._version = self._stat()  # do not retry a broken version on every request
            log.error(
                "ingress token file not reloaded; previous tokens stay in force",
                extra={"error": type(exc).__name__, "detail": str(exc)[:200]},
            )
            return False
        self._store = store
        log.info("ingress tokens reloaded", extra={"tokens": len(store)})
        return True

    def _maybe_reload(self) -> None:
        if self.path is None or self._clock() - self._checked_at < self.check_interval:
            return
        self._checked_at = self._clock()
        if self._stat() != self._version:
            self.reload()

    def lookup(self, token: str) -> Credential | None:
        self._maybe_reload()
        return self._store.lookup(token)

    def __len__(self) -> int:
        return len(self._store)


def load_reloading_tokens(env: Mapping[str, str] | None = None) -> ReloadingTokens:
    """Like :func:`load_tokens`, but the token file is reloaded on change (see the class)."""
    env = os.environ if env is None else env
    path = env.get(TOKENS_FILE_ENV, "").strip()
    return ReloadingTokens(parse_tokens_env(env.get(TOKENS_ENV, "")), Path(path) if path else None)
