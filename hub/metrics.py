"""Every Prometheus metric of the hub, in one place (pure: no Kafka import).

Naming follows the Prometheus conventions: ``hub_`` prefix, snake_case, ``_total`` on counters,
base units (seconds). All metrics live in the module-level :data:`REGISTRY`, so tests can read them
with ``REGISTRY.get_sample_value(...)`` and a worker exposes exactly the hub's metrics.

Label values are bounded vocabularies. Every helper passes its labels through :func:`safe_label`
(or a pattern guard for operator-chosen names such as topics and tables), so an address, postcode,
case id or a name can never become a label: anything unexpected is counted under ``OTHER``.

Hot-path helpers take batch-level aggregates (e.g. a :class:`collections.Counter`), so the pipeline
pays one call per batch, not per event::

    metrics.record_received(Counter((e.source, e.case_type) for e in batch))
    metrics.record_rejected(Counter({"UNDECODABLE": 3}))
    metrics.observe_batch("ingest", len(batch))
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from hub import __version__
from hub.address.municipalities import default_municipalities
from hub.contracts.enums import AlertStatus, CaseType, RejectReason, Source
from hub.engine.rules import KINDS as RULE_KINDS

if TYPE_CHECKING:
    from hub.health import MetricsServer, ReadinessCheck

OTHER = "OTHER"

# --- bounded label vocabularies -------------------------------------------------------------
SOURCES: frozenset[str] = frozenset(s.value for s in Source)
CASE_TYPES: frozenset[str] = frozenset(c.value for c in CaseType)
#: Rule kinds, from the rule registry: a new rule is a label value without an edit here.
KINDS: frozenset[str] = RULE_KINDS
ALERT_STATUSES: frozenset[str] = frozenset(s.value for s in AlertStatus)
#: Steering groups declared in the reference data the worker routes with (``HUB_REFERENCE_CONFIG``
#: or the packaged ``hub/config/reference.toml``), regional and unassigned groups included: a
#: group added there is counted as itself, not as OTHER.
STEERING_GROUPS: frozenset[str] = frozenset(default_municipalities().steering_groups)


def _reject_reasons() -> frozenset[str]:
    """Every dead-letter reason code (``RejectReason``, the one list), plus ``OTHER``.

    Derived from the enum, not copied, so a code added there is a label value here at once.
    """
    return frozenset({OTHER, *(reason.value for reason in RejectReason)})


#: Why an inbound record went to ``hub.dead-letter`` (bounded; anything else counts as OTHER).
REJECT_REASONS: frozenset[str] = _reject_reasons()
#: Pipeline stages that process batches.
STAGES: frozenset[str] = frozenset({"ingest", "correlate", "area", "release"})

# Operator-chosen identifiers (topic and table names, Kafka error names): a shape guard instead of
# a closed set. A run of 4+ digits or an "@" never passes, so postcodes/ids/e-mails cannot leak.
_IDENT_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
_ERROR_CODE_RE = re.compile(r"^_?[A-Z][A-Z0-9_]{0,63}$")
_DIGIT_RUN_RE = re.compile(r"[0-9]{4}")
_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+_-]{0,31}$")
MAX_PARTITION = 4095


def safe_label(value: object, allowed: frozenset[str]) -> str:
    """``value`` as a label if it is in the bounded vocabulary ``allowed``, else ``"OTHER"``."""
    text = value if isinstance(value, str) else str(value)  # StrEnum -> its value
    return text if text in allowed else OTHER


def safe_identifier(value: object) -> str:
    """A lower-case identifier (topic, table) as a label, else ``"OTHER"``."""
    text = str(value)
    if _IDENT_RE.match(text) and not _DIGIT_RUN_RE.search(text):
        return text
    return OTHER


def safe_error_code(value: object) -> str:
    """An upper-case error name (e.g. ``_MSG_TIMED_OUT``) as a label, else ``"OTHER"``."""
    text = str(value)
    if _ERROR_CODE_RE.match(text) and not _DIGIT_RUN_RE.search(text):
        return text
    return OTHER


def safe_partition(value: object) -> str:
    """A partition number 0..4095 as a label, else ``"OTHER"``."""
    try:
        number = int(str(value))
    except ValueError:
        return OTHER
    return str(number) if 0 <= number <= MAX_PARTITION else OTHER


# --- buckets ----------------------------------------------------------------------------------
#: Ingest -> emitted alert: a stream processor answers in ms..s; a minute means it is far behind.
PROCESSING_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: occurred_at -> emitted alert: agencies report minutes to days late; replays are months old.
EVENT_TIME_LATENCY_BUCKETS: tuple[float, ...] = (
    1.0,
    10.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
    12 * 3600.0,
    86400.0,
    2 * 86400.0,
    7 * 86400.0,
    30 * 86400.0,
)
BATCH_SIZE_BUCKETS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
)

# --- the metrics ------------------------------------------------------------------------------
# No ``*_created`` series: a third fewer series per scrape; rates do not need them.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_RECEIVED = Counter(
    "hub_events_received",
    "Inbound case events decoded, per source and case type.",
    ["source", "case_type"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "hub_events_rejected",
    "Inbound records sent to the dead-letter topic, by reason code.",
    ["reason"],
    registry=REGISTRY,
)
DUPLICATES_IGNORED = Counter(
    "hub_events_duplicates",
    "Events ignored as duplicates (event id already seen).",
    ["source"],
    registry=REGISTRY,
)
EVENTS_PARKED = Counter(
    "hub_events_parked",
    "Events parked until their address can be resolved.",
    ["source"],
    registry=REGISTRY,
)
EVENTS_RELEASED = Counter(
    "hub_events_released",
    "Events released from parking (address mapping learned).",
    ["source"],
    registry=REGISTRY,
)
PARKED_EVENTS = Gauge(
    "hub_parked_events",
    "Events currently parked, waiting for address resolution.",
    registry=REGISTRY,
)
SOURCE_LAST_RECEIVED = Gauge(
    "hub_source_last_received_timestamp_seconds",
    "Unix time an event of this source was last received (or watch_sources() was called).",
    ["source"],
    registry=REGISTRY,
)
SIGNALS_EMITTED = Counter(
    "hub_signals_emitted",
    "Alerts and signals emitted (transitions), by rule kind and status.",
    ["kind", "status", "steering_group"],
    registry=REGISTRY,
)
SIGNALS_FIRING = Gauge(
    "hub_signals_firing",
    "Signals currently firing in the partitions this worker holds.",
    ["kind", "steering_group"],
    registry=REGISTRY,
)
DOSSIERS = Gauge(
    "hub_dossiers",
    "Address dossiers held in the partitions this worker holds.",
    registry=REGISTRY,
)
PROCESSING_LATENCY = Histogram(
    "hub_processing_latency_seconds",
    "Seconds from ingest by the hub to the emitted alert.",
    ["kind"],
    buckets=PROCESSING_LATENCY_BUCKETS,
    registry=REGISTRY,
)
EVENT_TIME_LATENCY = Histogram(
    "hub_event_time_latency_seconds",
    "Seconds from the event's occurred_at to the emitted alert.",
    ["kind"],
    buckets=EVENT_TIME_LATENCY_BUCKETS,
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "hub_batch_size_events",
    "Events per processed batch.",
    ["stage"],
    buckets=BATCH_SIZE_BUCKETS,
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "hub_consumer_lag_messages",
    "Messages between the committed/consumed offset and the high watermark.",
    ["topic", "partition"],
    registry=REGISTRY,
)
TABLE_RECOVERY_PROGRESS = Gauge(
    "hub_table_recovery_progress_ratio",
    "Changelog recovery progress of a table, 0..1.",
    ["table"],
    registry=REGISTRY,
)
TABLE_RECOVERED = Gauge(
    "hub_table_recovered",
    "1 when the table has recovered its assigned partitions, else 0.",
    ["table"],
    registry=REGISTRY,
)
PRODUCER_ERRORS = Counter(
    "hub_producer_errors",
    "Records the producer failed to deliver.",
    ["topic", "error"],
    registry=REGISTRY,
)
WORKER_INFO = Info("hub_worker", "Version and role of this worker.", registry=REGISTRY)


def _init_label_sets() -> None:
    """Create the bounded series up front, so rates and absence rules see zeros, not gaps."""
    for source in SOURCES:
        for case_type in CASE_TYPES:
            EVENTS_RECEIVED.labels(source, case_type)
        DUPLICATES_IGNORED.labels(source)
        EVENTS_PARKED.labels(source)
        EVENTS_RELEASED.labels(source)
    for reason in REJECT_REASONS:
        EVENTS_REJECTED.labels(reason)
    for kind in KINDS:
        PROCESSING_LATENCY.labels(kind)
        EVENT_TIME_LATENCY.labels(kind)
        for group in STEERING_GROUPS:
            SIGNALS_FIRING.labels(kind, group)
            for status in ALERT_STATUSES:
                SIGNALS_EMITTED.labels(kind, status, group)
    for stage in STAGES:
        BATCH_SIZE.labels(stage)
    set_worker_info()


# --- hot-path helpers (one call per batch) ------------------------------------------------------
_children: dict[tuple[int, tuple[str, ...]], Any] = {}
_children_lock = threading.Lock()
_watched: set[tuple[str]] = set()


def _child(metric: Any, labels: tuple[str, ...]) -> Any:
    """Cached ``metric.labels(*labels)`` for sanitised (hence bounded) label tuples."""
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        with _children_lock:
            child = _children.setdefault(key, metric.labels(*labels))
    return child


def _as_tuple(key: Hashable, width: int) -> tuple[Any, ...]:
    if width == 1:
        return key if isinstance(key, tuple) else (key,)
    if not isinstance(key, tuple) or len(key) != width:
        raise ValueError(f"expected a {width}-tuple label key, got {type(key).__name__}")
    return key


def record_received(counts: Mapping[tuple[str, str], int], now: float | None = None) -> None:
    """Count inbound events per ``(source, case_type)``; stamp each source's last-seen time."""
    stamp = time.time() if now is None else now
    for key, n in counts.items():
        if n <= 0:
            continue
        source, case_type = _as_tuple(key, 2)
        labels = (safe_label(source, SOURCES), safe_label(case_type, CASE_TYPES))
        _child(EVENTS_RECEIVED, labels).inc(n)
        if labels[0] != OTHER:
            _watched.add(labels[:1])
            _child(SOURCE_LAST_RECEIVED, labels[:1]).set(stamp)


def watch_sources(sources: Iterable[str] | None = None, now: float | None = None) -> None:
    """Start the silence clock of each source (ingest stage, at start-up).

    Sets ``hub_source_last_received_timestamp_seconds`` to ``now`` for sources not seen yet, so
    the ``HubSourceSilent`` alert measures silence from start-up. Only processes that ingest
    should call this (the alert takes the max over all workers).
    """
    stamp = time.time() if now is None else now
    chosen = SOURCES - {Source.UNKNOWN.value} if sources is None else sources
    for source in chosen:
        label = safe_label(source, SOURCES)
        if label != OTHER and (label,) not in _watched:
            _watched.add((label,))
            _child(SOURCE_LAST_RECEIVED, (label,)).set(stamp)


def record_rejected(counts: Mapping[str, int]) -> None:
    """Count records sent to the dead-letter topic per reason code (see :data:`REJECT_REASONS`)."""
    for reason, n in counts.items():
        if n > 0:
            _child(EVENTS_REJECTED, (safe_label(reason, REJECT_REASONS),)).inc(n)


def _count_by_source(metric: Counter, counts: Mapping[str, int] | int) -> None:
    items = counts.items() if isinstance(counts, Mapping) else [(OTHER, counts)]
    for source, n in items:
        if n > 0:
            _child(metric, (safe_label(source, SOURCES),)).inc(n)


def record_duplicates(counts: Mapping[str, int] | int) -> None:
    """Count events ignored as duplicates, per source (an ``int`` counts under ``OTHER``)."""
    _count_by_source(DUPLICATES_IGNORED, counts)


def record_parked(counts: Mapping[str, int] | int) -> None:
    """Count events parked for address resolution, per source."""
    _count_by_source(EVENTS_PARKED, counts)


def record_released(counts: Mapping[str, int] | int) -> None:
    """Count events released from parking, per source."""
    _count_by_source(EVENTS_RELEASED, counts)


def set_parked(current: int) -> None:
    """Set the number of events currently parked."""
    PARKED_EVENTS.set(max(0, current))


def record_emitted(counts: Mapping[tuple[str, str, str], int]) -> None:
    """Count emitted alerts/signals per ``(kind, status, steering_group)``."""
    for key, n in counts.items():
        if n <= 0:
            continue
        kind, status, group = _as_tuple(key, 3)
        labels = (
            safe_label(kind, KINDS),
            safe_label(status, ALERT_STATUSES),
            safe_label(group, STEERING_GROUPS),
        )
        _child(SIGNALS_EMITTED, labels).inc(n)


def adjust_firing(deltas: Mapping[tuple[str, str], int]) -> None:
    """Add ``delta`` (+1 on FIRING, -1 on RESOLVED) to the firing gauge per ``(kind, group)``."""
    for key, delta in deltas.items():
        if delta:
            kind, group = _as_tuple(key, 2)
            labels = (safe_label(kind, KINDS), safe_label(group, STEERING_GROUPS))
            _child(SIGNALS_FIRING, labels).inc(delta)


def set_firing(counts: Mapping[tuple[str, str], int]) -> None:
    """Replace the firing gauge with absolute counts (e.g. after recovery or a rebalance).

    Combinations missing from ``counts`` are set to 0; each series is written once, so a
    concurrent scrape never sees a transient zero for an unchanged value.
    """
    totals: dict[tuple[str, str], int] = {(k, g): 0 for k in KINDS for g in STEERING_GROUPS}
    for key, n in counts.items():
        kind, group = _as_tuple(key, 2)
        labels = (safe_label(kind, KINDS), safe_label(group, STEERING_GROUPS))
        totals[labels] = totals.get(labels, 0) + n
    for labels, n in totals.items():
        _child(SIGNALS_FIRING, labels).set(n)


def set_dossiers(held: int) -> None:
    """Set the number of address dossiers this worker holds."""
    DOSSIERS.set(max(0, held))


def adjust_dossiers(delta: int) -> None:
    """Add ``delta`` newly created (or, negative, dropped) dossiers."""
    if delta:
        DOSSIERS.inc(delta)


def observe_alert_latency(
    kind: str, ingested_at_ms: int, occurred_at_ms: int, now_ms: int | None = None
) -> None:
    """Observe ingest->emit and occurred_at->emit latency of one emitted alert (negatives -> 0)."""
    now = time.time() * 1000.0 if now_ms is None else now_ms
    label = (safe_label(kind, KINDS),)
    if ingested_at_ms > 0:
        _child(PROCESSING_LATENCY, label).observe(max(0.0, (now - ingested_at_ms) / 1000.0))
    _child(EVENT_TIME_LATENCY, label).observe(max(0.0, (now - occurred_at_ms) / 1000.0))


def observe_batch(stage: str, size: int) -> None:
    """Observe the number of events in one processed batch of ``stage`` (see :data:`STAGES`)."""
    _child(BATCH_SIZE, (safe_label(stage, STAGES),)).observe(size)


def set_consumer_lag(topic: str, partition: int, lag: int) -> None:
    """Set the lag of one assigned topic-partition (negative lag, e.g. stale watermark, -> 0)."""
    CONSUMER_LAG.labels(safe_identifier(topic), safe_partition(partition)).set(max(0, lag))


def set_consumer_lags(lags: Mapping[tuple[str, int], int]) -> None:
    """Set the lag of several ``(topic, partition)`` pairs at once."""
    for (topic, partition), lag in lags.items():
        set_consumer_lag(topic, partition, lag)


def clear_consumer_lag(partitions: Iterable[tuple[str, int]]) -> None:
    """Drop the lag series of revoked ``(topic, partition)`` pairs."""
    for topic, partition in partitions:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(safe_identifier(topic), safe_partition(partition))


def set_table_recovery(table: str, progress: float, recovered: bool) -> None:
    """Set a table's recovery progress (clamped to 0..1) and whether it has recovered."""
    label = safe_identifier(table)
    TABLE_RECOVERY_PROGRESS.labels(label).set(1.0 if recovered else min(1.0, max(0.0, progress)))
    TABLE_RECOVERED.labels(label).set(1 if recovered else 0)


def record_producer_error(topic: str, error: str = OTHER, n: int = 1) -> None:
    """Count ``n`` records the producer failed to deliver to ``topic`` (error: Kafka error name)."""
    if n > 0:
        PRODUCER_ERRORS.labels(safe_identifier(topic), safe_error_code(error)).inc(n)


#: Producer error names exported at 0 for every hub topic (:func:`init_producer_errors`): the
#: usual librdkafka delivery failures. Other names still count (pattern-guarded) when they occur.
PRODUCER_ERROR_NAMES: tuple[str, ...] = (
    "_MSG_TIMED_OUT",
    "MSG_SIZE_TOO_LARGE",
    "UNKNOWN_TOPIC_OR_PART",
    "TOPIC_AUTHORIZATION_FAILED",
    "NOT_ENOUGH_REPLICAS",
    OTHER,
)


def init_producer_errors(topics: Iterable[str]) -> None:
    """Create ``hub_producer_errors_total`` at 0 for ``topics`` x :data:`PRODUCER_ERROR_NAMES`.

    Without this the series appears only with the first failure, so the dashboard panel is empty
    and ``rate()``/``increase()`` miss that first failure.
    """
    for topic in topics:
        for error in PRODUCER_ERROR_NAMES:
            PRODUCER_ERRORS.labels(safe_identifier(topic), safe_error_code(error))


def set_worker_info(role: str = "worker", version: str = __version__) -> None:
    """Publish ``hub_worker_info{version, role}`` (role e.g. ``ingest``, ``correlate``)."""
    safe_version = version if _VERSION_RE.match(version) else OTHER
    WORKER_INFO.info({"version": safe_version, "role": safe_identifier(role)})


_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def metric_names() -> frozenset[str]:
    """Every sample name the hub can expose (e.g. ``hub_events_received_total``)."""
    return frozenset(
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    )


def start_metrics_server(
    port: int,
    readiness: ReadinessCheck | None = None,
    host: str = "0.0.0.0",
) -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` (0: ephemeral) in a thread.

    See :func:`hub.health.start_metrics_server`.
    """
    from hub.health import start_metrics_server as _start

    return _start(port, readiness=readiness, host=host)


_init_label_sets()


# -- processing faults: retries of the same batch, ingest child restarts ---------------------
#: Exception kinds a processing retry is counted under (anything else is ``OTHER``).
RETRY_ERRORS: frozenset[str] = frozenset(
    {"DeliveryFailed", "KafkaException", "BufferError", "InjectedFault", OTHER}
)
PROCESSING_RETRIES = Counter(
    "hub_processing_retries",
    "Times a stage retried the same batch after an error (its input offset did not advance).",
    ["stage", "error"],
    registry=REGISTRY,
)
INPUT_GAPS = Counter(
    "hub_input_gap_messages",
    "Input messages the consumer skipped (committed, never processed) that a stage found missing "
    "from its stored input offset and processed late (hub.pipeline.gaps).",
    ["stage"],
    registry=REGISTRY,
)
INPUT_REPLAYS = Counter(
    "hub_input_replayed_messages",
    "Input messages delivered again below a stage's stored input offset (after a crash or a "
    "partition move) and skipped: the stage's state holds them already (hub.pipeline.gaps).",
    ["stage"],
    registry=REGISTRY,
)
INGEST_RESTARTS = Counter(
    "hub_ingest_restarts",
    "Times the worker restarted its ingest child process after it exited unasked.",
    registry=REGISTRY,
)
for _stage in STAGES:
    INPUT_GAPS.labels(_stage)
    INPUT_REPLAYS.labels(_stage)
    for _error in RETRY_ERRORS:
        PROCESSING_RETRIES.labels(_stage, _error)


def record_processing_retry(stage: str, error: str) -> None:
    """Count one retry of ``stage``'s current batch after an exception of kind ``error``."""
    _child(PROCESSING_RETRIES, (safe_label(stage, STAGES), safe_label(error, RETRY_ERRORS))).inc()


def record_input_gap(stage: str, messages: int) -> None:
    """Count ``messages`` skipped input messages ``stage`` found and processed late."""
    _child(INPUT_GAPS, (safe_label(stage, STAGES),)).inc(messages)


def record_input_replay(stage: str, messages: int) -> None:
    """Count ``messages`` replayed input messages ``stage`` skipped (its state holds them)."""
    _child(INPUT_REPLAYS, (safe_label(stage, STAGES),)).inc(messages)


def record_ingest_restart() -> None:
    INGEST_RESTARTS.inc()


# -- downstream delivery (issue 19): per subscription; the label is the subscription id, a slug
# (hub.delivery.subscription.check_id), never a URL; anything else is counted as OTHER
DELIVERY_OUTCOMES: frozenset[str] = frozenset(
    {"delivered", "http_error", "timeout", "network", "refused", OTHER}
)
DELIVERY_ATTEMPTS = Counter(
    "hub_delivery_attempts",
    "POSTs of Notificaties to subscribers, by subscription id and outcome.",
    ["subscription", "outcome"],
    registry=REGISTRY,
)
DELIVERY_DEAD_LETTERS = Counter(
    "hub_delivery_dead_letters",
    "Notificaties given up after the maximum attempts/age (to the subscription's dead letters).",
    ["subscription"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "hub_delivery_latency_seconds",
    "Seconds one POST to a subscriber took (answered or not).",
    ["subscription"],
    buckets=PROCESSING_LATENCY_BUCKETS,
    registry=REGISTRY,
)
DELIVERY_LAG = Gauge(
    "hub_delivery_lag_messages",
    "Alert records on the subscription's topic not yet delivered or dead-lettered.",
    ["subscription"],
    registry=REGISTRY,
)


def init_delivery(subscription: str) -> None:
    """Create a subscription's series at 0 (rates and absence rules see zeros, not gaps)."""
    label = safe_identifier(subscription)
    for outcome in DELIVERY_OUTCOMES:
        DELIVERY_ATTEMPTS.labels(label, outcome)
    DELIVERY_DEAD_LETTERS.labels(label)
    DELIVERY_LATENCY.labels(label)
    DELIVERY_LAG.labels(label)


def record_delivery_attempt(subscription: str, outcome: str, latency_s: float) -> None:
    label = safe_identifier(subscription)
    _child(DELIVERY_ATTEMPTS, (label, safe_label(outcome, DELIVERY_OUTCOMES))).inc()
    _child(DELIVERY_LATENCY, (label,)).observe(max(0.0, latency_s))


def record_delivery_dead_letter(subscription: str) -> None:
    _child(DELIVERY_DEAD_LETTERS, (safe_identifier(subscription),)).inc()


def set_delivery_lag(subscription: str, lag: int) -> None:
    DELIVERY_LAG.labels(safe_identifier(subscription)).set(max(0, lag))


def clear_delivery(subscription: str) -> None:
    """Drop a removed subscription's lag series (its counters stay: they are totals)."""
    with contextlib.suppress(KeyError):
        DELIVERY_LAG.remove(safe_identifier(subscription))
