"""Authorization values at rest: sealed with Fernet when a key is configured.

The subscriptions topic is readable by whoever may read the hub's topics, and a compacted topic
keeps a value until it is overwritten. So an Authorization value is written as
``fernet:<token>`` when ``HUB_DELIVERY_SECRET_KEY`` is set (``hub subscriptions keygen`` makes
one); without a key it is written as ``plain:<value>`` and ``hub subscriptions add`` warns.
Either way the topic should be readable only by the hub's principals (Kafka ACLs).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

SEALED = "fernet:"
PLAIN = "plain:"


class SecretError(ValueError):
    """A sealed value cannot be opened (no key, or another key); never carries the value."""


def new_key() -> str:
    return Fernet.generate_key().decode()


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise SecretError(
            "HUB_DELIVERY_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes)"
        ) from exc


def seal(value: str, key: str | None) -> str:
    """The stored form of ``value``."""
    if key is None:
        return PLAIN + value
    return SEALED + _fernet(key).encrypt(value.encode()).decode()


def unseal(stored: str, key: str | None) -> str:
    """The Authorization value back from its stored form."""
    if stored.startswith(PLAIN):
        return stored[len(PLAIN) :]
    if stored.startswith(SEALED):
        if key is None:
            raise SecretError("the auth value is sealed but HUB_DELIVERY_SECRET_KEY is not set")
        try:
            return _fernet(key).decrypt(stored[len(SEALED) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretError("the auth value was sealed with another key") from exc
    raise SecretError("the stored auth value has an unknown form")


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED)


def mask(value: str | None) -> str:
    """What ``list``/``status`` show: the scheme word of an Authorization value, never more."""
    if not value:
        return "-"
    scheme = value.split(" ", 1)[0] if " " in value else ""
    return f"{scheme} ****" if scheme and len(scheme) <= 10 and scheme.isalpha() else "****"
