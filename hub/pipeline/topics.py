"""The hub's topics: names, partition counts and configs in one place, and their creation.

| topic | key | value | notes |
|---|---|---|---|
| ``case-events`` | any | CaseEvent (Avro) | inbound from trusted internal producers (ingress) |
| ``case-events.<source>`` | any | CaseEvent (Avro) | inbound of one agency (issue 15) |
| ``normalised`` | ``batch`` | JSON batch of NormalisedEvents of one partition | internal |
| ``dossiers`` | address key | AddressDossier (Avro) | compacted |
| ``contact-routing`` | address key | Alert (Avro), category ALERT | |
| ``signals`` | steering group | Alert (Avro), category SIGNAL | one group in order |
| ``area-updates`` | 4-digit postcode | JSON AreaUpdate | internal, feeds AREA_CLUSTER |
| ``dead-letter`` | original key | original bytes, Connect-style error headers | |
| ``parked`` | event id | original CaseEvent bytes | compacted; tombstoned on release |
| ``address-register`` | fact key | JSON register fact | compacted, read whole by every worker |
| ``building-cases`` | pand/source/case | CaseEvent JSON | compacted, read whole by every worker |
| ``notifications`` | kanaal | VNG Notificaties JSON | inbound notifications (callback) |

All names carry ``settings.topic_prefix`` (default ``hub.``).

Faust's own topics (the tables' changelogs ``<app_id>-dossiers-changelog`` and
``<app_id>-areas-changelog``, and the assignor's ``<app_id>-__assignor-__leader``) are created
here too, before any consumer subscribes: a consumer that subscribes to a topic that does not
exist yet ignores it until its next metadata refresh (minutes), so a worker on an empty cluster
would own no partition of it meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.contracts.enums import Source
from hub.pipeline.clients import admin_config
from hub.settings import Settings

#: Sources that publish on their own inbound topic: every real source (UNKNOWN is a reader
#: default). A new source added to the enum gets its topic on the next worker start.
AGENCY_SOURCES: tuple[Source, ...] = tuple(s for s in Source if s is not Source.UNKNOWN)

DOSSIER_TABLE = "dossiers"
AREA_TABLE = "areas"
# roll and compact the changelogs soon, so a recovering worker replays ~one record per key
# instead of one per batch that touched it
CHANGELOG_CONFIG = {"segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1"}

#: Size limits (``max.message.bytes``, the broker's bound on one record batch), D1/D2:
#: - inbound ``case-events``: 1 MiB. One CaseEvent is at most 256 KiB encoded (the contract's
#:   bound, checked at decode), so this leaves room for batching; anything larger is refused by
#:   the broker at the producer, anything between 256 KiB and 1 MiB is dead-lettered.
#: - ``dead-letter``: 2 MiB, more than the largest dead letter the hub produces: the original
#:   key (with the value within the inbound 1 MiB), a value cut to 256 KiB and bounded headers.
#: - ``normalised``: 8 MiB; the ingest stage splits batches at 4 MiB (hub.pipeline.batches).
INBOUND_MAX_MESSAGE_BYTES = 1024 * 1024
DEAD_LETTER_MAX_MESSAGE_BYTES = 2 * 1024 * 1024
NORMALISED_MAX_MESSAGE_BYTES = 8 * 1024 * 1024

COMPACTED = {
    "cleanup.policy": "compact",
    "min.cleanable.dirty.ratio": "0.1",
    "segment.ms": "600000",
}


@dataclass(frozen=True)
class Topics:
    case_events: str
    normalised: str
    dossiers: str
    contact_routing: str
    signals: str
    area_updates: str
    dead_letter: str
    parked: str
    address_register: str
    building_cases: str
    notifications: str
    #: (source value, topic) of each agency's own inbound topic, ``<prefix>case-events.<source>``
    agency_inbound: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        p = settings.topic_prefix
        return cls(
            case_events=f"{p}case-events",
            normalised=f"{p}normalised",
            dossiers=f"{p}dossiers",
            contact_routing=f"{p}contact-routing",
            signals=f"{p}signals",
            area_updates=f"{p}area-updates",
            dead_letter=f"{p}dead-letter",
            parked=f"{p}parked",
            address_register=f"{p}address-register",
            building_cases=f"{p}building-cases",
            notifications=f"{p}notifications",
            agency_inbound=tuple(
                (source.value, agency_topic(p, source.value)) for source in AGENCY_SOURCES
            ),
        )

    def inbound(self, shared: bool = True) -> list[str]:
        """The topics the ingest stage reads: every agency's, plus the shared one if enabled."""
        return ([self.case_events] if shared else []) + [t for _, t in self.agency_inbound]

    def source_of(self, topic: str) -> str | None:
        """The source bound to an agency inbound topic; None for the shared topic (trusted)."""
        for source, name in self.agency_inbound:
            if name == topic:
                return source
        return None

    def specs(self, partitions: int) -> dict[str, tuple[int, dict[str, str]]]:
        """Topic name → (partitions, config). Global state topics get one partition."""
        plain: dict[str, str] = {}
        inbound = {"max.message.bytes": str(INBOUND_MAX_MESSAGE_BYTES)}
        return {
            self.case_events: (partitions, inbound),
            **{topic: (partitions, inbound) for _, topic in self.agency_inbound},
            self.normalised: (
                partitions,
                {"max.message.bytes": str(NORMALISED_MAX_MESSAGE_BYTES)},
            ),
            self.dossiers: (partitions, COMPACTED),
            self.contact_routing: (partitions, plain),
            self.signals: (partitions, plain),
            self.area_updates: (partitions, plain),
            self.dead_letter: (
                partitions,
                {"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES)},
            ),
            self.parked: (1, COMPACTED),
            self.address_register: (1, COMPACTED),
            self.building_cases: (1, COMPACTED),
            self.notifications: (partitions, plain),
        }


def with_min_isr(settings: Settings, config: dict[str, str]) -> dict[str, str]:
    """``config`` plus ``min.insync.replicas`` when the settings fix it (replicated clusters)."""
    if settings.min_insync_replicas is None:
        return dict(config)
    return {**config, "min.insync.replicas": str(settings.min_insync_replicas)}


def faust_specs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """Faust's internal topics of this app id, as Faust itself would declare them."""
    changelog = {"cleanup.policy": "compact", **CHANGELOG_CONFIG}
    app = settings.app_id
    return {
        f"{app}-{DOSSIER_TABLE}-changelog": (settings.partitions, changelog),
        f"{app}-{AREA_TABLE}-changelog": (settings.partitions, changelog),
        f"{app}-__assignor-__leader": (1, {}),
    }


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the hub's topics (and Faust's) that are missing; return the names created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topics = Topics.from_settings(settings)
    admin = AdminClient(admin_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    specs = {**topics.specs(settings.partitions), **faust_specs(settings)}
    wanted = [
        NewTopic(
            name,
            num_partitions=parts,
            replication_factor=settings.replication_factor,
            config=with_min_isr(settings, config),
        )
        for name, (parts, config) in specs.items()
        if name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except Exception as exc:  # a concurrent worker created it first: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


def wait_for_topics(
    settings: Settings,
    retry_s: float = 2.0,
    max_wait_s: float = 30.0,
    halt: threading.Event | None = None,
) -> bool:
    """Create the missing topics and wait until every partition has a leader.

    Retries while the broker is unreachable (a worker may start before its broker): with
    back-off, logged, until ready or until ``halt`` is set (a SIGTERM during the wait: the
    process must not hang until its grace period runs out). True when ready, False when halted.
    Called before any consumer subscribes (see the module doc).
    """
    import logging

    from confluent_kafka.admin import AdminClient
    from tenacity import Retrying, retry_if_exception_type, wait_exponential

    log = logging.getLogger(__name__)

    def attempt() -> None:
        created = ensure_topics(settings, timeout=10.0)
        if created:
            log.info("created %d topic(s)", len(created))
        topics = Topics.from_settings(settings)
        wanted = {**topics.specs(settings.partitions), **faust_specs(settings)}
        admin = AdminClient(admin_config(settings))
        meta = admin.list_topics(timeout=10.0).topics
        leaderless = [
            name
            for name in wanted
            if name not in meta
            or meta[name].error is not None
            or any(p.leader < 0 for p in meta[name].partitions.values())
        ]
        if leaderless:
            raise TopicsNotReady(f"{len(leaderless)} topic(s) without leaders yet")

    def before_sleep(state: Any) -> None:
        exc = state.outcome.exception()
        log.warning("topics not ready (%s: %s); retrying", type(exc).__name__, exc)

    stop = halt if halt is not None else threading.Event()
    try:
        for try_ in Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=retry_s / 2, max=max_wait_s),
            before_sleep=before_sleep,
            stop=lambda _state: stop.is_set(),
            sleep=_interruptible(stop),  # a set halt ends the back-off at once
            reraise=True,
        ):
            with try_:
                if stop.is_set():
                    raise TopicsNotReady("halted")
                attempt()
    except Exception:
        if stop.is_set():
            return False
        raise
    return True


def _interruptible(stop: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


def agency_topic(prefix: str, source: str) -> str:
    """``<prefix>case-events.<source in lower case>``, e.g. ``hub.case-events.ncg``."""
    return f"{prefix}case-events.{source.lower()}"


class TopicsNotReady(RuntimeError):
    """Some topic exists but has partitions without a leader yet."""


def delete_topics(
    broker: str | Settings,
    names: list[str] | None = None,
    prefixes: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> list[str]:
    """Delete ``names`` and every topic starting with one of ``prefixes`` (best effort).

    For throw-away topic sets: demo runs, tests, benchmarks. Returns the names asked for.
    ``broker`` is an address (plaintext) or the settings (their client security is used).
    """
    import contextlib

    from confluent_kafka.admin import AdminClient

    settings = broker if isinstance(broker, Settings) else Settings(broker=broker)
    admin = AdminClient(admin_config(settings))
    wanted = set(names or [])
    if prefixes:
        wanted.update(
            n for n in admin.list_topics(timeout=timeout).topics if n.startswith(prefixes)
        )
    if wanted:
        for future in admin.delete_topics(sorted(wanted), operation_timeout=timeout).values():
            with contextlib.suppress(Exception):  # already gone: fine
                future.result(timeout)
    return sorted(wanted)
