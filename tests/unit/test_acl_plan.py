"""``hub acl apply`` without a broker: the shipped ACL file, placeholders, the diff (idempotent,
scoped to the file's principals and names) and clear errors for a bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.pipeline.topics import Topics
from hub.settings import Settings
from hubctl.acl import Acl, AclFileError, diff, load_plan, plan_from_dict

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "kafka" / "acl.toml"
SETTINGS = Settings(topic_prefix="hub.", app_id="hub")


def _ops(plan: Any, principal: str, name: str) -> set[str]:
    return {a.operation for a in plan.acls if a.principal == principal and a.name == name}


def test_each_agency_may_write_only_its_own_inbound_topic() -> None:
    plan = load_plan(SHIPPED, SETTINGS)
    topics = Topics.from_settings(SETTINGS)
    agencies = {p: s for p, s in plan.sources.items()}
    assert set(agencies.values()) == {s for s, _ in topics.agency_inbound}
    for principal, source in agencies.items():
        own = dict(topics.agency_inbound)[source]
        written = {a.name for a in plan.acls if a.principal == principal and a.resource == "TOPIC"}
        assert written == {own}
        assert _ops(plan, principal, own) == {"WRITE", "DESCRIBE"}
        assert not any(a.operation == "READ" for a in plan.acls if a.principal == principal)


def test_the_reader_reads_routing_signals_and_dossiers_only() -> None:
    plan = load_plan(SHIPPED, SETTINGS)
    read = {
        a.name
        for a in plan.acls
        if a.principal == "User:hub-reader" and a.resource == "TOPIC" and a.operation == "READ"
    }
    assert read == {"hub.contact-routing", "hub.signals", "hub.dossiers"}
    assert not any(
        a.operation in ("WRITE", "CREATE") for a in plan.acls if a.principal == "User:hub-reader"
    )


def test_placeholders_follow_the_topic_prefix_and_app_id() -> None:
    plan = load_plan(SHIPPED, Settings(topic_prefix="test.abc.", app_id="test-abc"))
    names = {a.name for a in plan.acls}
    assert "test.abc.case-events.ncg" in names and "test-abc-" in names
    assert not any("{" in n for n in names)


def test_applying_the_same_plan_twice_changes_nothing() -> None:
    plan = load_plan(SHIPPED, SETTINGS)
    first = diff(plan, set())
    assert len(first.add) == len(plan.acls) and not first.remove
    second = diff(plan, set(first.add))
    assert second.empty and second.unchanged == len(plan.acls)


def test_the_diff_removes_stale_grants_but_leaves_other_principals_and_prefixes_alone() -> None:
    plan = load_plan(SHIPPED, SETTINGS)
    stale = Acl("User:ncg", "TOPIC", "hub.dossiers", "LITERAL", "READ")
    foreign_principal = Acl("User:someone", "TOPIC", "hub.dossiers", "LITERAL", "READ")
    foreign_prefix = Acl("User:ncg", "TOPIC", "other.case-events.ncg", "LITERAL", "WRITE")
    change = diff(plan, set(plan.acls) | {stale, foreign_principal, foreign_prefix})
    assert change.remove == (stale,) and not change.add
    assert change.lines() == [f"- {stale.describe()}"]


@pytest.mark.parametrize(
    ("grant", "where"),
    [
        ({"resource": "tpoic", "name": "x", "operations": ["READ"]}, "grants[0].resource"),
        ({"resource": "topic", "name": "x", "operations": ["REED"]}, "grants[0].operations"),
        ({"resource": "topic", "operations": ["READ"]}, "grants[0].name"),
        ({"resource": "topic", "name": "x", "pattern": "glob", "operations": ["READ"]}, "pattern"),
    ],
)
def test_a_bad_grant_is_refused_naming_principal_and_field(
    grant: dict[str, Any], where: str
) -> None:
    with pytest.raises(AclFileError) as info:
        plan_from_dict({"principals": {"ncg": {"grants": [grant]}}}, SETTINGS)
    assert "principals.ncg" in str(info.value) and where in str(info.value)
