"""Closed vocabularies of the CaseEvent contract (mirrored by the Avro enums in schemas/avro/)."""

from enum import StrEnum


class Source(StrEnum):
    """The party that issued an event. Extensible by schema evolution (Avro enum default)."""

    NCG = "NCG"
    IMG = "IMG"
    MUNICIPALITY = "MUNICIPALITY"
    HOUSING_CORPORATION = "HOUSING_CORPORATION"
    UNKNOWN = "UNKNOWN"  # Avro enum default: what an old reader sees for a newer source


class CaseType(StrEnum):
    STRENGTHENING = "STRENGTHENING"
    DAMAGE = "DAMAGE"
    ACUTE_UNSAFE = "ACUTE_UNSAFE"
    PERMIT = "PERMIT"
    PUBLIC_WORKS = "PUBLIC_WORKS"
    PSYCHOSOCIAL_SUPPORT = "PSYCHOSOCIAL_SUPPORT"
    INSULATION = "INSULATION"
    MAINTENANCE = "MAINTENANCE"
    RENOVATION = "RENOVATION"
    BOTTLENECK = "BOTTLENECK"


class CaseStatus(StrEnum):
    OPENED = "OPENED"
    ON_HOLD = "ON_HOLD"
    DECIDED = "DECIDED"
    PLANNED = "PLANNED"
    IN_PROGRESS = "IN_PROGRESS"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"


INACTIVE_STATUSES = frozenset({CaseStatus.CLOSED, CaseStatus.CANCELLED})
UNDECIDED_STATUSES = frozenset({CaseStatus.OPENED, CaseStatus.ON_HOLD})


class ContactRole(StrEnum):
    RESIDENT_COUNSELLOR = "RESIDENT_COUNSELLOR"
    CASE_COUNSELLOR = "CASE_COUNSELLOR"
    COORDINATOR = "COORDINATOR"
    OTHER = "OTHER"


class AlertStatus(StrEnum):
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"


class RuleName(StrEnum):
    CONTACT_ROUTING = "CONTACT_ROUTING"
    SAMENLOOP = "SAMENLOOP"
    REPAIR_BEFORE_STRENGTHENING = "REPAIR_BEFORE_STRENGTHENING"
    INSULATION_BEFORE_STRENGTHENING = "INSULATION_BEFORE_STRENGTHENING"
    PLAN_OVERLAP = "PLAN_OVERLAP"
    MANDATE_EXCEEDED = "MANDATE_EXCEEDED"
    AREA_CLUSTER = "AREA_CLUSTER"
