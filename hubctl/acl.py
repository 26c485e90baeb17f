"""``hub acl apply``: the broker's ACLs made equal to a reviewed TOML file (issue 15).

The file (``deploy/kafka/acl.toml``) lists principals and their grants; ``{prefix}`` and
``{app_id}`` are filled in from the settings. Applying is idempotent: the ACLs of the listed
principals on the resources the file manages (names under ``{prefix}``/``{app_id}`` and the names
the file mentions) are compared with the file, missing ones created, extra ones deleted, and the
difference printed (``--dry-run`` prints it only). ACLs of other principals are never touched.

Loading and diffing are pure (unit-tested); only :func:`current_acls`/:func:`apply_diff` talk
to the broker, as the admin principal of the client settings.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.settings import Settings

RESOURCES = {
    "topic": "TOPIC",
    "group": "GROUP",
    "transactional_id": "TRANSACTIONAL_ID",
    "cluster": "BROKER",
}
PATTERNS = {"literal": "LITERAL", "prefixed": "PREFIXED"}
OPERATIONS = frozenset(
    {
        "ALL",
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
    }
)
CLUSTER_NAME = "kafka-cluster"


class AclFileError(ValueError):
    """The ACL file is not valid: the message names the principal, grant and field."""


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding, as Kafka stores it."""

    principal: str  # "User:ncg"
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID, BROKER
    name: str
    pattern: str  # LITERAL, PREFIXED
    operation: str
    host: str = "*"

    def describe(self) -> str:
        pattern = "" if self.pattern == "LITERAL" else f" ({self.pattern.lower()})"
        return (
            f"{self.principal:<20} {self.operation:<16} {self.resource.lower()} "
            f"{self.name}{pattern}"
        )


@dataclass(frozen=True)
class AclPlan:
    """What the file says: its principals, the ACLs they should have, and the managed names."""

    principals: tuple[str, ...]
    acls: frozenset[Acl]
    scopes: tuple[str, ...]  # a name starting with one of these is managed by the file
    sources: dict[str, str] = field(default_factory=dict)  # principal -> bound CaseEvent source

    def manages(self, acl: Acl) -> bool:
        return acl.principal in self.principals and (
            acl.resource == "BROKER" or acl.name.startswith(self.scopes)
        )


@dataclass(frozen=True)
class AclDiff:
    add: tuple[Acl, ...]
    remove: tuple[Acl, ...]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove

    def lines(self) -> list[str]:
        return [f"+ {a.describe()}" for a in self.add] + [f"- {a.describe()}" for a in self.remove]


def _fill(text: str, settings: Settings) -> str:
    return text.replace("{prefix}", settings.topic_prefix).replace("{app_id}", settings.app_id)


def load_plan(path: Path, settings: Settings) -> AclPlan:
    """Parse and check an ACL file; placeholders filled in from ``settings``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AclFileError(f"{path}: {exc}") from None
    return plan_from_dict(data, settings, str(path))


def plan_from_dict(data: dict[str, Any], settings: Settings, origin: str = "acl") -> AclPlan:
    principals = data.get("principals")
    if not isinstance(principals, dict) or not principals:
        raise AclFileError(f"{origin}: principals: at least one [principals.<name>] table")
    acls: set[Acl] = set()
    scopes = {settings.topic_prefix, settings.app_id}
    sources: dict[str, str] = {}
    for name, body in principals.items():
        where = f"{origin}: principals.{name}"
        if not isinstance(body, dict):
            raise AclFileError(f"{where}: must be a table")
        principal = f"User:{name}"
        if "source" in body:
            sources[principal] = str(body["source"])
        for index, grant in enumerate(body.get("grants", [])):
            acls.update(_grant_acls(principal, grant, settings, f"{where}.grants[{index}]"))
    for acl in acls:
        if acl.resource != "BROKER":
            scopes.add(acl.name)
    return AclPlan(
        principals=tuple(f"User:{n}" for n in principals),
        acls=frozenset(acls),
        scopes=tuple(sorted(s for s in scopes if s)),
        sources=sources,
    )


def _grant_acls(principal: str, grant: Any, settings: Settings, where: str) -> list[Acl]:
    if not isinstance(grant, dict):
        raise AclFileError(f"{where}: must be a table")
    resource = RESOURCES.get(str(grant.get("resource", "")))
    if resource is None:
        raise AclFileError(
            f"{where}.resource: {grant.get('resource')!r} is not one of {sorted(RESOURCES)}"
        )
    pattern = PATTERNS.get(str(grant.get("pattern", "literal")))
    if pattern is None:
        raise AclFileError(
            f"{where}.pattern: {grant.get('pattern')!r} is not one of {sorted(PATTERNS)}"
        )
    if resource == "BROKER":
        name = CLUSTER_NAME
    else:
        raw = grant.get("name")
        if not isinstance(raw, str) or not raw:
            raise AclFileError(f"{where}.name: required for a {grant['resource']} grant")
        name = _fill(raw, settings)
    operations = grant.get("operations")
    if not isinstance(operations, list) or not operations:
        raise AclFileError(f"{where}.operations: a non-empty list")
    out = []
    for op in operations:
        if op not in OPERATIONS:
            raise AclFileError(f"{where}.operations: {op!r} is not one of {sorted(OPERATIONS)}")
        out.append(Acl(principal, resource, name, pattern, op))
    return out


def diff(plan: AclPlan, current: Iterable[Acl]) -> AclDiff:
    """What to add and remove so the managed ACLs equal the plan."""
    managed = {a for a in current if plan.manages(a)}
    return AclDiff(
        add=tuple(sorted(plan.acls - managed)),
        remove=tuple(sorted(managed - plan.acls)),
        unchanged=len(plan.acls & managed),
    )


# -- broker side --------------------------------------------------------------------------
def current_acls(admin: Any, principals: Iterable[str], timeout: float = 30.0) -> set[Acl]:
    """The ALLOW ACLs the broker holds for ``principals``."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    found: set[Acl] = set()
    for principal in principals:
        query = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]  # None = any name (the stubs say str)
            ResourcePatternType.ANY,
            principal,
            None,  # type: ignore[arg-type]  # any host
            AclOperation.ANY,
            AclPermissionType.ALLOW,
        )
        for binding in admin.describe_acls(query, request_timeout=timeout).result(timeout):
            found.add(
                Acl(
                    binding.principal,
                    binding.restype.name,
                    binding.name,
                    binding.resource_pattern_type.name,
                    binding.operation.name,
                    binding.host,
                )
            )
    return found


def _binding(acl: Acl) -> Any:
    from confluent_kafka.admin import AclBinding

    return _allow(AclBinding, acl)


def _filter(acl: Acl) -> Any:
    """The filter that matches exactly ``acl`` (what delete_acls takes)."""
    from confluent_kafka.admin import AclBindingFilter

    return _allow(AclBindingFilter, acl)


def _allow(kind: Any, acl: Acl) -> Any:
    from confluent_kafka.admin import AclPermissionType

    return kind(
        acl.resource,
        acl.name,
        acl.pattern,
        acl.principal,
        acl.host,
        acl.operation,
        AclPermissionType.ALLOW,
    )


def apply_diff(admin: Any, change: AclDiff, timeout: float = 30.0) -> None:
    """Create the missing ACLs, then delete the extra ones (each acknowledged)."""
    if change.add:
        for future in admin.create_acls(
            [_binding(a) for a in change.add], request_timeout=timeout
        ).values():
            future.result(timeout)
    if change.remove:
        for future in admin.delete_acls(
            [_filter(a) for a in change.remove], request_timeout=timeout
        ).values():
            future.result(timeout)


def apply_file(
    path: Path, settings: Settings, dry_run: bool = False, timeout: float = 30.0
) -> AclDiff:
    """Load ``path``, compare with the broker, apply unless ``dry_run``; return the diff."""
    from confluent_kafka.admin import AdminClient

    from hub.pipeline.clients import admin_config

    plan = load_plan(path, settings)
    admin = AdminClient(admin_config(settings, log_level=0))
    change = diff(plan, current_acls(admin, plan.principals, timeout))
    if not dry_run and not change.empty:
        apply_diff(admin, change, timeout)
    return change
