"""Client security settings rendered for both Kafka client libraries (issue 15).

One place turns ``Settings.security_protocol``/``sasl_*``/``ssl_ca_file`` into what each library
wants, so every producer, consumer, admin client and the Faust app speak the same listener:

- :func:`confluent_security` → keys for a confluent-kafka (librdkafka) config dict;
- :func:`aiokafka_security` → keyword arguments for aiokafka clients;
- :func:`ssl_context` → the CA-verifying context Faust's ``SASLCredentials`` wants.

The password comes from ``HUB_SASL_PASSWORD`` or ``HUB_SASL_PASSWORD_FILE`` and is only ever
read here; it is a :class:`~pydantic.SecretStr` everywhere else, so a repr, a log line or a
settings dump shows ``**********``.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

from hub.settings import Settings


class SecurityConfigError(ValueError):
    """The security settings are incomplete or contradictory (names the setting)."""


def uses_sasl(settings: Settings) -> bool:
    return settings.security_protocol.startswith("SASL_")


def uses_tls(settings: Settings) -> bool:
    return settings.security_protocol in ("SSL", "SASL_SSL")


def sasl_password(settings: Settings) -> str:
    """The SASL password from the setting or its file (first line, whitespace stripped)."""
    if settings.sasl_password is not None:
        return settings.sasl_password.get_secret_value()
    if settings.sasl_password_file is not None:
        try:
            return settings.sasl_password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:  # the path is not a secret; the content never reaches here
            raise SecurityConfigError(
                f"sasl_password_file: cannot read {settings.sasl_password_file}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
    raise SecurityConfigError(
        f"sasl_password: required with security_protocol={settings.security_protocol} "
        "(HUB_SASL_PASSWORD or HUB_SASL_PASSWORD_FILE)"
    )


def _check(settings: Settings) -> None:
    if uses_sasl(settings) and not settings.sasl_username:
        raise SecurityConfigError(
            f"sasl_username: required with security_protocol={settings.security_protocol}"
        )
    if settings.ssl_ca_file is not None and not settings.ssl_ca_file.is_file():
        raise SecurityConfigError(f"ssl_ca_file: no such file {settings.ssl_ca_file}")


def confluent_security(settings: Settings) -> dict[str, Any]:
    """librdkafka security keys (empty for PLAINTEXT, so plaintext configs stay as they were)."""
    if settings.security_protocol == "PLAINTEXT":
        return {}
    _check(settings)
    config: dict[str, Any] = {"security.protocol": settings.security_protocol.lower()}
    if uses_sasl(settings):
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = sasl_password(settings)
    if uses_tls(settings) and settings.ssl_ca_file is not None:
        config["ssl.ca.location"] = str(settings.ssl_ca_file)
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context that verifies the broker against ``ssl_ca_file`` (or the system
    store) including its host name."""
    _check(settings)
    cafile = str(settings.ssl_ca_file) if settings.ssl_ca_file is not None else None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaConsumer``/``AIOKafkaProducer``/admin clients."""
    if settings.security_protocol == "PLAINTEXT":
        return {}
    _check(settings)
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if uses_tls(settings):
        kwargs["ssl_context"] = ssl_context(settings)
    if uses_sasl(settings):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = sasl_password(settings)
    return kwargs


def settings_json_with_secret(settings: Settings) -> str:
    """The settings as JSON *with* the password, for a child process of ours (never logged).

    ``model_dump_json`` masks a SecretStr, so a child rebuilt from it would send ``**********``.
    """
    data = json.loads(settings.model_dump_json())
    if settings.sasl_password is not None:
        data["sasl_password"] = settings.sasl_password.get_secret_value()
    return json.dumps(data)


def redact(text: str, settings: Settings) -> str:
    """``text`` with the configured password replaced (for messages that quote client errors)."""
    secret: str | None = None
    if settings.sasl_password is not None:
        secret = settings.sasl_password.get_secret_value()
    if secret:
        text = text.replace(secret, "**********")
    return text
