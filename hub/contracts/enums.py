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


class RejectReason(StrEnum):
    """Every reason code the hub puts on a dead letter (``hub.errors.reason``).

    One closed list so that ``hub_events_rejected_total{reason}`` (hub.metrics derives its label
    set from it) and the dead letters cannot drift apart: a new code is added here first.
    """

    # stage decode
    UNDECODABLE = "UNDECODABLE"  # not Avro in a known framing, corrupt body, not JSON
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"  # fingerprint / schema id not known
    INCOMPATIBLE_SCHEMA = "INCOMPATIBLE_SCHEMA"  # writer schema cannot be resolved to ours
    WRONG_RECORD_TYPE = "WRONG_RECORD_TYPE"  # a valid record, but not a CaseEvent
    RECORD_TOO_LARGE = "RECORD_TOO_LARGE"  # encoded record over the contract's size bound
    # stage validate
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_FIELD = "INVALID_FIELD"  # incl. implausible occurred_at and over-long fields
    UNKNOWN_SOURCE = "UNKNOWN_SOURCE"  # source not in our enum (or the Avro reader default)
    SOURCE_MISMATCH = "SOURCE_MISMATCH"  # source is not the agency whose inbound topic it came on
    # stage resolve (hub.address)
    INVALID_ADDRESS = "INVALID_ADDRESS"
    # stage correlate
    DUPLICATE_EVENT_ID_CONFLICT = "DUPLICATE_EVENT_ID_CONFLICT"  # same (source, id), other content
    BAD_INTERNAL_BATCH = "BAD_INTERNAL_BATCH"  # unreadable message on the internal topic
