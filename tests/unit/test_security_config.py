"""Client security settings (issue 15): one rendering for confluent-kafka, aiokafka and Faust;
the password never shows in a repr, a settings dump or an error message."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from hub.pipeline.clients import admin_config, consumer_config, producer_config
from hub.pipeline.topology import faust_credentials
from hub.security import (
    SecurityConfigError,
    aiokafka_security,
    confluent_security,
    redact,
    settings_json_with_secret,
)
from hub.settings import Settings
from tools.local_kafka_secure import generate_tls

PASSWORD = "s3cret-Pa55word-xyz"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_tls(tmp_path_factory.mktemp("tls")).ca


def _secure(ca: Path, **kw: object) -> Settings:
    values: dict[str, object] = {
        "broker": "localhost:19392",
        "security_protocol": "SASL_SSL",
        "sasl_username": "ncg",
        "sasl_password": PASSWORD,
        "ssl_ca_file": ca,
    }
    values.update(kw)
    return Settings(**values)  # type: ignore[arg-type]


def test_plaintext_settings_add_no_security_keys_to_any_client() -> None:
    s = Settings(broker="localhost:19092")
    assert confluent_security(s) == {} and aiokafka_security(s) == {}
    for config in (producer_config(s), consumer_config(s, "g"), admin_config(s)):
        assert "security.protocol" not in config and "sasl.password" not in config
    assert faust_credentials(s) is None


def test_sasl_ssl_settings_reach_producer_consumer_and_admin_configs(ca_file: Path) -> None:
    s = _secure(ca_file)
    expected = {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "ncg",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(ca_file),
    }
    for config in (producer_config(s), consumer_config(s, "g"), admin_config(s)):
        assert {k: config[k] for k in expected} == expected


def test_aiokafka_and_faust_get_the_same_principal_and_a_verifying_tls_context(
    ca_file: Path,
) -> None:
    s = _secure(ca_file)
    kwargs = aiokafka_security(s)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("ncg", PASSWORD)
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    creds = faust_credentials(s)
    assert (creds.username, creds.password) == ("ncg", PASSWORD)
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.protocol.value == "SASL_SSL"
    assert PASSWORD not in repr(creds)


def test_the_password_can_come_from_a_file(tmp_path: Path, ca_file: Path) -> None:
    secret_file = tmp_path / "ncg.password"
    secret_file.write_text(PASSWORD + "\n")
    s = _secure(ca_file, sasl_password=None, sasl_password_file=secret_file)
    assert confluent_security(s)["sasl.password"] == PASSWORD


def test_the_password_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path
) -> None:
    monkeypatch.setenv("HUB_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("HUB_SASL_USERNAME", "img")
    monkeypatch.setenv("HUB_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("HUB_SSL_CA_FILE", str(ca_file))
    assert confluent_security(Settings())["sasl.username"] == "img"
    assert confluent_security(Settings())["sasl.password"] == PASSWORD


def test_the_password_never_shows_in_repr_or_a_settings_dump(ca_file: Path) -> None:
    s = _secure(ca_file)
    assert PASSWORD not in repr(s) and PASSWORD not in str(s)
    assert PASSWORD not in s.model_dump_json()


def test_a_child_process_gets_the_password_through_its_settings_json(ca_file: Path) -> None:
    s = _secure(ca_file)
    child = Settings.model_validate_json(settings_json_with_secret(s))
    assert confluent_security(child)["sasl.password"] == PASSWORD
    assert json.loads(settings_json_with_secret(Settings()))["sasl_password"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sasl_username": None}, "sasl_username"),
        ({"sasl_password": None}, "sasl_password"),
        ({"ssl_ca_file": Path("/nonexistent/ca.pem")}, "ssl_ca_file"),
        (
            {"sasl_password": None, "sasl_password_file": Path("/nonexistent/pw")},
            "sasl_password_file",
        ),
    ],
)
def test_incomplete_security_settings_fail_naming_the_setting_without_the_password(
    ca_file: Path, changes: dict[str, object], field: str
) -> None:
    with pytest.raises(SecurityConfigError) as info:
        confluent_security(_secure(ca_file, **changes))
    assert str(info.value).startswith(field) and PASSWORD not in str(info.value)


def test_redact_removes_the_configured_password_from_a_message(ca_file: Path) -> None:
    s = _secure(ca_file)
    assert redact(f"failed with {PASSWORD} inside", s) == "failed with ********** inside"
