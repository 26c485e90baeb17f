"""Accounts: recognised by token hash or trusted header, limited to their steering groups."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.web.access import AccessPolicy, token_hash

POLICY = AccessPolicy.from_mapping(
    {
        "trust_header": "X-Remote-User",
        "accounts": [
            {"name": "mg", "groups": ["MIDDEN_GRONINGEN"], "contacts": True,
             "token_sha256": token_hash("mg-secret")},
            {"name": "hh", "groups": ["HET_HOGELAND"], "remote_user": "hh-portal"},
            {"name": "regio", "groups": ["*"], "token_sha256": token_hash("regio-secret")},
        ],
    }
)  # fmt: skip


def test_bearer_token_cookie_and_proxy_header_identify_accounts() -> None:
    mg = POLICY.identify({"Authorization": "Bearer mg-secret"}, None)
    assert mg is not None and mg.name == "mg" and mg.contacts
    by_cookie = POLICY.identify({}, "mg-secret")
    assert by_cookie is not None and by_cookie.name == "mg"
    hh = POLICY.identify({"X-Remote-User": "hh-portal"}, None)
    assert hh is not None and hh.name == "hh" and not hh.contacts


def test_unknown_or_missing_identity_is_none() -> None:
    assert POLICY.identify({"Authorization": "Bearer nope"}, None) is None
    assert POLICY.identify({"X-Remote-User": "someone"}, None) is None
    assert POLICY.identify({}, None) is None
    # a wrong bearer token does not fall back to a valid cookie
    assert POLICY.identify({"Authorization": "Bearer nope"}, "mg-secret") is None


def test_proxy_header_is_ignored_unless_trusted() -> None:
    untrusting = AccessPolicy.from_mapping(
        {"accounts": [{"name": "hh", "groups": ["HET_HOGELAND"], "remote_user": "hh-portal"}]}
    )
    assert untrusting.identify({"X-Remote-User": "hh-portal"}, None) is None


def test_groups_limit_what_an_account_sees() -> None:
    mg = POLICY.by_token("mg-secret")
    regio = POLICY.by_token("regio-secret")
    assert mg is not None and regio is not None
    assert mg.sees("MIDDEN_GRONINGEN") and not mg.sees("HET_HOGELAND")
    assert regio.sees("HET_HOGELAND") and regio.sees("REGIONAL")
    assert mg.visible({"HET_HOGELAND", "MIDDEN_GRONINGEN"}) == ["MIDDEN_GRONINGEN"]


def test_a_bad_access_file_is_refused_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text('[[accounts]]\nname = "x"\ngroups = ["OLDAMBT"]\n', encoding="utf-8")
    with pytest.raises(ValidationError, match="needs token_sha256 or remote_user"):
        AccessPolicy.from_file(path)
    path.write_text(
        '[[accounts]]\nname = "x"\ngroups = ["OLDAMBT"]\ntoken = "plain"\n', encoding="utf-8"
    )
    with pytest.raises(ValidationError, match="token"):
        AccessPolicy.from_file(path)


def test_serve_web_command_refuses_a_bad_access_file_before_serving(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hubctl.main import app

    path = tmp_path / "access.toml"
    path.write_text('[[accounts]]\nname = "x y"\ngroups = ["OLDAMBT"]\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["serve-web", "--access", str(path), "--port", "0"])
    assert result.exit_code == 1
    assert "name" in result.output and "access.toml" in result.output
