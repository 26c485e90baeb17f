"""The read side: answers for operators, read from the topics (never from a worker's memory).

Every answer reads the topics it needs with a plain confluent-kafka consumer that has **no
consumer group**: it assigns the partitions from their low watermark, reads up to the high
watermarks taken when it started, and stops. Nothing is committed, so asking never moves a
worker's offsets and any machine that reaches the broker gets the same answer a worker would.

What is read where (see :mod:`hub.pipeline.topics`):

* alerts and signals: ``contact-routing`` + ``signals``; per fingerprint the record with the
  highest ``version`` is the current state (duplicates and stale records drop out);
* a dossier: the latest record for the address key on ``dossiers`` (compacted); only the key's
  partition (murmur2, as the hub's producers partition) is read, the whole topic when not found
  there; a nummeraanduiding id is resolved through the ``address-register`` facts;
* dead letters: ``dead-letter`` with the Connect-style headers of :mod:`hub.contracts.deadletter`;
  replayed ones are remembered on the compacted ``dlq-replayed`` topic (see :func:`replay`);
* status: metadata, committed offsets of the hub's consumer groups and the watermarks.

The functions return plain data (dicts, dataclasses); :mod:`hubctl.answers` renders them.
"""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from hub.address.key import is_key, make_key, parse_key
from hub.address.normalise import AddressError, normalise_address, normalise_nummeraanduiding_id
from hub.address.register import FACT_NUMMERAANDUIDING
from hub.contracts.codec import AvroCodec, DecodeError, get_codec
from hub.contracts.deadletter import DeadLetter, parse_dead_letter
from hub.pipeline.clients import consumer_config, murmur2_partition, producer_config
from hub.pipeline.topics import COMPACTED, Topics
from hub.settings import Settings

FIRING = "FIRING"
#: Suffix of the compacted topic that records replayed dead letters (key ``partition:offset``).
REPLAYED_SUFFIX = "dlq-replayed"
#: Header put on a replayed message: where it came from (``topic:partition:offset``).
H_REPLAYED_FROM = "hub.replay.from"
_QUIET = {"log_level": 0}  # the CLI reports broker errors itself; no librdkafka noise on stderr


class AnswerError(Exception):
    """An answer cannot be given (broker unreachable, topic missing, not found): the CLI exits 1."""


class TopicMissing(AnswerError):
    """A topic the answer needs does not exist (wrong ``HUB_TOPIC_PREFIX``, or never created)."""


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read; headers as (name, bytes) pairs like confluent-kafka gives them."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int


def _consumer(settings: Settings) -> Consumer:
    # confluent-kafka insists on a group.id, but with assign() and auto-commit off the group is
    # never joined and nothing is committed. EOF events end reads on compacted topics whose
    # last offsets were cleaned away (no message ever reaches high - 1 there).
    config = consumer_config(
        settings,
        f"{settings.app_id}-answers",
        **{"enable.partition.eof": True, "enable.auto.offset.store": False, **_QUIET},
    )
    return Consumer(config)


def _partitions(consumer: Consumer, topics: Sequence[str], timeout_s: float) -> dict[str, int]:
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise AnswerError(f"broker not reachable: {exc.args[0]}") from exc
    out: dict[str, int] = {}
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TopicMissing(f"topic {topic} does not exist")
        out[topic] = len(meta.partitions)
    return out


def read_to_end(
    settings: Settings,
    topics: Sequence[str],
    partitions: Mapping[str, Iterable[int]] | None = None,
    timeout_s: float = 60.0,
) -> Iterator[RawMessage]:
    """Every message of ``topics`` (or of the given partitions) from the start up to the high
    watermarks taken now, then stop. Raises :class:`AnswerError` when the broker does not
    answer or the read does not finish within ``timeout_s``."""
    consumer = _consumer(settings)
    try:
        counts = _partitions(consumer, topics, min(timeout_s, 15.0))
        ends: dict[tuple[str, int], int] = {}
        assignment: list[TopicPartition] = []
        for topic in topics:
            wanted = (
                range(counts[topic])
                if partitions is None or topic not in partitions
                else partitions[topic]
            )
            for p in wanted:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=min(timeout_s, 15.0)
                )
                if high > low:
                    ends[(topic, p)] = high
                    assignment.append(TopicPartition(topic, p, low))
        if not assignment:
            return
        consumer.assign(assignment)
        pending = set(ends)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise AnswerError(
                    f"reading {', '.join(topics)} did not reach the end in {timeout_s:.0f} s"
                )
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                tp = (msg.topic(), msg.partition())
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(tp)
                    elif err.fatal():
                        raise AnswerError(f"read failed: {err.str()}")
                    continue
                if tp not in pending:
                    continue
                offset = msg.offset()
                if offset >= ends[tp]:  # written after we started: not part of this answer
                    pending.discard(tp)
                    continue
                if offset + 1 >= ends[tp]:
                    pending.discard(tp)
                _, ts = msg.timestamp()
                yield RawMessage(
                    topic=tp[0],
                    partition=tp[1],
                    offset=offset,
                    key=msg.key(),
                    value=msg.value(),
                    headers=list(msg.headers() or ()),
                    timestamp_ms=ts,
                )
    finally:
        consumer.close()


def _existing_topics(settings: Settings, timeout_s: float = 10.0) -> dict[str, int]:
    """Topic name → partition count, or AnswerError when the broker does not answer."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.broker, **_QUIET})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise AnswerError(f"broker {settings.broker} not reachable: {exc.args[0]}") from exc
    return {
        name: len(meta.partitions) for name, meta in metadata.topics.items() if meta.error is None
    }


# ----------------------------------------------------------------------------- JSON helpers


def jsonable(value: Any) -> Any:
    """Decoded Avro → JSON: datetimes as ISO 8601 UTC, dates as ISO dates, bytes as base64."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------- alerts


@dataclass(slots=True)
class AlertsAnswer:
    """Current alerts/signals (latest version per fingerprint) and how much was unreadable."""

    alerts: list[dict[str, Any]]
    records_read: int = 0
    undecodable: int = 0


def latest_per_fingerprint(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep the highest ``version`` per fingerprint (later wins a tie): the current state.

    Version, not arrival order, decides: signals and alerts of one fingerprint may sit on
    different partitions after a re-key, and a redelivered old record must not win.
    """
    best: dict[str, dict[str, Any]] = {}
    for record in records:
        fp = record["fingerprint"]
        held = best.get(fp)
        if held is None or record["version"] >= held["version"]:
            best[fp] = dict(record)
    return sorted(
        best.values(),
        key=lambda r: (
            r["steering_group"],
            r["kind"],
            r.get("address_key") or "",
            r["fingerprint"],
        ),
    )


def filter_alerts(
    alerts: Iterable[dict[str, Any]],
    *,
    firing: bool = False,
    kind: str | None = None,
    steering_group: str | None = None,
    address_key: str | None = None,
) -> list[dict[str, Any]]:
    """Filters of ``hub alerts``; kind and steering group compare case-insensitively."""
    out = []
    for a in alerts:
        if firing and a["status"] != FIRING:
            continue
        if kind is not None and a["kind"].upper() != kind.upper():
            continue
        if (
            steering_group is not None
            and a["steering_group"].casefold() != steering_group.casefold()
        ):
            continue
        if address_key is not None and a.get("address_key") != address_key:
            continue
        out.append(a)
    return out


def _decode_alerts(
    messages: Iterable[RawMessage], codec: AvroCodec, answer: AlertsAnswer
) -> list[dict[str, Any]]:
    records = []
    for msg in messages:
        answer.records_read += 1
        if msg.value is None:
            continue
        try:
            records.append(codec.decode(msg.value, "Alert")[1])
        except DecodeError:
            answer.undecodable += 1
    return records


def read_alerts(
    settings: Settings,
    *,
    firing: bool = False,
    kind: str | None = None,
    steering_group: str | None = None,
    timeout_s: float = 120.0,
) -> AlertsAnswer:
    """``hub alerts``: latest version per fingerprint from contact-routing and signals."""
    topics = Topics.from_settings(settings)
    answer = AlertsAnswer(alerts=[])
    messages = read_to_end(settings, [topics.contact_routing, topics.signals], timeout_s=timeout_s)
    records = _decode_alerts(messages, get_codec(), answer)
    answer.alerts = filter_alerts(
        latest_per_fingerprint(records), firing=firing, kind=kind, steering_group=steering_group
    )
    return answer


def alert_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``hub alerts --json`` object: exactly the keys of the issue, in that order."""
    lead = record.get("lead")
    return {
        "kind": record["kind"],
        "fingerprint": record["fingerprint"],
        "status": record["status"],
        "version": record["version"],
        "address_key": record.get("address_key"),
        "area": record.get("area"),
        "steering_group": record["steering_group"],
        "lead": (
            {
                "source": lead["source"],
                "case_id": lead["case_id"],
                "contact_role": lead.get("contact_role"),
            }
            if lead
            else None
        ),
        "cases": [{"source": c["source"], "case_id": c["case_id"]} for c in record["cases"]],
    }


def alert_evidence(record: Mapping[str, Any]) -> dict[str, Any]:
    """An alert with its evidence for the dossier: rule, cases, event ids and detail."""
    return jsonable(
        {
            "kind": record["kind"],
            "category": record["category"],
            "fingerprint": record["fingerprint"],
            "status": record["status"],
            "version": record["version"],
            "steering_group": record["steering_group"],
            "starts_at": record["starts_at"],
            "lead": alert_line(record)["lead"],
            "cases": record["cases"],
            "event_ids": record["event_ids"],
            "detail": dict(sorted(record.get("detail", {}).items())),
            "config_version": record["config_version"],
        }
    )


# ----------------------------------------------------------------------------- addresses

_ID_RE = re.compile(r"\s*([0-9]{16})\s*")
_POSTCODE_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{3})[\s\-]*([A-Za-z]{2})(?![A-Za-z])")
_HOUSE_AT_END = re.compile(r"([0-9]+(?:[\s\-/]*[A-Za-z0-9]{1,4}){0,2})[\s,]*$")


@dataclass(frozen=True, slots=True)
class AddressQuery:
    """What ``hub dossier ADDRESS`` was given: an address key or a nummeraanduiding id."""

    text: str
    address_key: str | None = None
    nummeraanduiding_id: str | None = None


def parse_address_query(text: str) -> AddressQuery:
    """Any spelling of an address, or a 16-digit nummeraanduiding id, into a query.

    Accepted: a canonical key (``9711AB-12A-2``); postcode and house number in free text in
    either order (``9711 ab 12a``, ``9711AB 12A-2``, ``Vismarkt 12a, 9711 AB Groningen``; a
    city after the house number needs a comma); a 16-digit id. House-number text follows
    :func:`hub.address.normalise.parse_house_number`: ``12a`` is letter A, ``12-a`` toevoeging
    A. Raises :class:`AddressError` with a readable reason.
    """
    stripped = text.strip()
    m = _ID_RE.fullmatch(stripped)
    if m is not None:
        return AddressQuery(text, nummeraanduiding_id=normalise_nummeraanduiding_id(m.group(1)))
    if is_key(stripped):
        return AddressQuery(text, address_key=stripped)
    pc = _POSTCODE_IN_TEXT.search(stripped)
    if pc is None:
        raise AddressError(
            "address", f"{text!r} has no postcode (like 9711 AB) and is not a 16-digit id"
        )
    postcode = pc.group(1) + pc.group(2)
    after = stripped[pc.end() :].lstrip(" ,").split(",")[0].strip()
    if after[:1].isdigit():
        house = after
    else:
        before = _HOUSE_AT_END.search(stripped[: pc.start()])
        if before is None:
            raise AddressError("address", f"{text!r} has no house number")
        house = before.group(1).strip()
    return AddressQuery(text, address_key=make_key(normalise_address(postcode, house)))


def resolve_nummeraanduiding(settings: Settings, nummeraanduiding_id: str) -> str | None:
    """The address key the register facts give for an id (latest fact per Kafka key wins)."""
    topics = Topics.from_settings(settings)
    found: str | None = None
    wanted = f"nummeraanduiding:{nummeraanduiding_id}".encode()
    for msg in read_to_end(settings, [topics.address_register]):
        if msg.key is not None and msg.key != wanted:
            continue
        if msg.value is None:  # tombstone: the mapping was withdrawn
            if msg.key == wanted:
                found = None
            continue
        try:
            fact = orjson.loads(msg.value)
        except orjson.JSONDecodeError:
            continue
        if (
            isinstance(fact, dict)
            and fact.get("fact") == FACT_NUMMERAANDUIDING
            and fact.get("nummeraanduiding_id") == nummeraanduiding_id
        ):
            found = fact.get("address_key")
    return found


# ----------------------------------------------------------------------------- dossier


@dataclass(slots=True)
class DossierAnswer:
    """A dossier (decoded AddressDossier) and the FIRING alerts/signals of its address."""

    query: AddressQuery
    address_key: str
    dossier: dict[str, Any]
    alerts: list[dict[str, Any]] = field(default_factory=list)


class NotFound(AnswerError):
    """No dossier for the address; ``suggestions`` are keys of the same postcode and number."""

    def __init__(self, message: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.suggestions = list(suggestions)


def _key_partition(counts: Mapping[str, int], topic: str, key: str) -> dict[str, list[int]]:
    """The partition the hub's producers (murmur2) put ``key`` on."""
    if topic not in counts:
        raise TopicMissing(f"topic {topic} does not exist")
    return {topic: [murmur2_partition(key.encode(), counts[topic])]}


def _near(key: str, near: str) -> bool:
    """``key`` is ``near`` (postcode-number) with maybe another letter or toevoeging."""
    rest = key[len(near) :]
    return key.startswith(near) and (not rest or rest[0] == "-" or rest[0].isalpha())


def _latest_dossier(
    messages: Iterable[RawMessage], key: bytes, codec: AvroCodec, near: str | None = None
) -> tuple[dict[str, Any] | None, set[str]]:
    """Latest record for ``key`` (a tombstone deletes) and keys starting with ``near``."""
    latest: dict[str, Any] | None = None
    nearby: set[str] = set()
    for msg in messages:
        if near is not None and msg.key is not None and msg.value is not None:
            k = msg.key.decode("utf-8", "replace")
            if _near(k, near):
                nearby.add(k)
        if msg.key != key:
            continue
        if msg.value is None:
            latest = None
            continue
        try:
            record = codec.decode(msg.value, "AddressDossier")[1]
        except DecodeError:
            continue
        if latest is None or record["version"] >= latest["version"]:
            latest = record
    return latest, nearby


def read_dossier(settings: Settings, text: str, timeout_s: float = 120.0) -> DossierAnswer:
    """``hub dossier ADDRESS``: resolve, read the latest dossier, attach FIRING alerts/signals.

    Raises :class:`AddressError` for unreadable input and :class:`NotFound` when there is no
    mapping for an id or no dossier for the key.
    """
    query = parse_address_query(text)
    topics = Topics.from_settings(settings)
    codec = get_codec()
    key = query.address_key
    if key is None:
        assert query.nummeraanduiding_id is not None
        key = resolve_nummeraanduiding(settings, query.nummeraanduiding_id)
        if key is None:
            raise NotFound(
                f"nummeraanduiding {query.nummeraanduiding_id} is not in the address register"
            )
    raw_key = key.encode()
    counts = _existing_topics(settings)
    target = _key_partition(counts, topics.dossiers, key)
    dossier, _ = _latest_dossier(
        read_to_end(settings, [topics.dossiers], target, timeout_s), raw_key, codec
    )
    scanned_all = False
    if dossier is None:
        # Not on the key's partition: scan everything (a repartitioned topic, a foreign
        # producer) and collect near keys for a helpful "did you mean".
        scanned_all = True
        parts = parse_key(key)
        near = f"{parts.postcode}-{parts.huisnummer}"
        dossier, nearby = _latest_dossier(
            read_to_end(settings, [topics.dossiers], timeout_s=timeout_s), raw_key, codec, near
        )
        if dossier is None:
            raise NotFound(f"no dossier for {key}", sorted(nearby - {key}))
    answer = DossierAnswer(query=query, address_key=key, dossier=dossier)

    # Alerts are keyed by the address key, signals by the steering group: read those partitions.
    wanted: dict[str, list[int]] | None = None
    if not scanned_all:
        wanted = {
            **_key_partition(counts, topics.contact_routing, key),
            **_key_partition(counts, topics.signals, dossier["steering_group"]),
        }
    alerts_answer = AlertsAnswer(alerts=[])
    messages = read_to_end(settings, [topics.contact_routing, topics.signals], wanted, timeout_s)
    records = _decode_alerts(messages, codec, alerts_answer)
    answer.alerts = filter_alerts(latest_per_fingerprint(records), firing=True, address_key=key)
    return answer


def dossier_json(answer: DossierAnswer) -> dict[str, Any]:
    """``hub dossier --json``: the dossier, its lead contact and the FIRING findings."""
    d = answer.dossier
    lead_ref = d.get("lead")
    lead_case = None
    if lead_ref:
        lead_case = next(
            (
                c
                for c in d["cases"]
                if c["source"] == lead_ref["source"] and c["case_id"] == lead_ref["case_id"]
            ),
            None,
        )
    lead = None
    if lead_ref:
        lead = {"source": lead_ref["source"], "case_id": lead_ref["case_id"]}
        for k in ("case_type", "contact_role", "contact_name", "contact_phone", "contact_email"):
            lead[k] = lead_case.get(k) if lead_case else None
    cases = [
        {
            k: c.get(k)
            for k in (
                "source",
                "case_id",
                "case_type",
                "status",
                "active",
                "planned_start",
                "planned_end",
                "occurred_at",
                "contact_role",
                "amount_eur",
                "last_event_id",
            )
        }
        for c in d["cases"]
    ]
    return jsonable(
        {
            "address_key": answer.address_key,
            "nummeraanduiding_ids": d["nummeraanduiding_ids"],
            "pand_ids": d["pand_ids"],
            "gemeentecode": d.get("gemeentecode"),
            "steering_group": d["steering_group"],
            "version": d["version"],
            "updated_at": d["updated_at"],
            "lead": lead,
            "cases": cases,
            "alerts": [alert_evidence(a) for a in answer.alerts],
        }
    )


# ----------------------------------------------------------------------------- dead letters


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """A dead letter and where it sits on the dead-letter topic."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter

    @property
    def marker(self) -> str:
        """Its key on the replay-marker topic."""
        return f"{self.partition}:{self.offset}"


def read_dead_letters(
    settings: Settings, reason: str | None = None, timeout_s: float = 120.0
) -> list[DeadLetterEntry]:
    """Every dead letter (optionally of one reason code), oldest first."""
    topics = Topics.from_settings(settings)
    out = []
    for msg in read_to_end(settings, [topics.dead_letter], timeout_s=timeout_s):
        letter = parse_dead_letter(msg.headers, msg.value, msg.key)
        if reason is not None and letter.reason.upper() != reason.upper():
            continue
        out.append(DeadLetterEntry(msg.partition, msg.offset, msg.timestamp_ms, letter))
    out.sort(key=lambda e: (e.timestamp_ms, e.partition, e.offset))
    return out


def _bytes_json(raw: bytes | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}
    if all(ch.isprintable() or ch in "\n\r\t" for ch in text):
        return {"text": text}
    return {"base64": base64.b64encode(raw).decode()}


def dead_letter_json(entry: DeadLetterEntry, show_payload: bool = False) -> dict[str, Any]:
    """One ``hub dlq list --json`` line. Key and payload (maybe personal) only on request."""
    dl = entry.letter
    out: dict[str, Any] = {
        "partition": entry.partition,
        "offset": entry.offset,
        "reason": dl.reason,
        "field": dl.field,
        "message": dl.message,
        "stage": dl.stage,
        "origin": dl.origin,
        "topic": dl.topic,
        "original_partition": dl.partition,
        "original_offset": dl.offset,
        "location": dl.location,
        "rejected_at": (
            jsonable(datetime.fromtimestamp(dl.rejected_at_ms / 1000, UTC))
            if dl.rejected_at_ms
            else None
        ),
    }
    if show_payload:
        out["key"] = _bytes_json(dl.key)
        out["payload"] = _bytes_json(dl.payload)
    return out


def reason_counts(entries: Iterable[DeadLetterEntry]) -> dict[str, int]:
    """Dead letters per reason code, most frequent first."""
    return dict(Counter(e.letter.reason for e in entries).most_common())


@dataclass(slots=True)
class ReplayReport:
    """What ``hub dlq replay`` did (or would do with ``--dry-run``)."""

    matched: int = 0
    replayed: int = 0
    already_replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why → count
    by_topic: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False


def replayed_topic(settings: Settings) -> str:
    """The compacted topic of replay markers: key ``partition:offset`` of the dead letter."""
    return f"{settings.topic_prefix}{REPLAYED_SUFFIX}"


def _ensure_replayed_topic(settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = replayed_topic(settings)
    if name in _existing_topics(settings):
        return
    admin = AdminClient({"bootstrap.servers": settings.broker, **_QUIET})
    new = NewTopic(
        name, num_partitions=1, replication_factor=settings.replication_factor, config=COMPACTED
    )
    try:
        admin.create_topics([new], operation_timeout=30)[name].result(timeout=30)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise AnswerError(f"cannot create {name}: {exc.args[0]}") from exc


def read_replayed(settings: Settings) -> set[str]:
    """Markers of dead letters already replayed (latest per key; a tombstone re-arms one)."""
    name = replayed_topic(settings)
    if name not in _existing_topics(settings):
        return set()
    done: set[str] = set()
    for msg in read_to_end(settings, [name]):
        if msg.key is None:
            continue
        marker = msg.key.decode("utf-8", "replace")
        if msg.value is None:
            done.discard(marker)
        else:
            done.add(marker)
    return done


def replay_target(letter: DeadLetter, topics: Topics) -> str | None:
    """Where a dead letter goes back to, or None when it must not be replayed.

    The original topic from ``__connect.errors.topic``; without it (file/HTTP rejects) the
    inbound ``case-events``. Only the hub's own inbound topics are targets: a replay never
    writes into a foreign topic, and an internal batch (stage ``correlate``) is not input.
    """
    inbound = {topics.case_events, topics.notifications}
    if letter.topic is None:
        return topics.case_events if letter.stage != "correlate" else None
    return letter.topic if letter.topic in inbound else None


def replay(
    settings: Settings, reason: str | None = None, dry_run: bool = False, timeout_s: float = 120.0
) -> ReplayReport:
    """Re-submit dead letters (original key and bytes) to their original topic, once each.

    Bookkeeping: after the replayed messages are acknowledged (idempotent producer, acks=all),
    one marker per dead letter is written to the compacted ``<prefix>dlq-replayed`` topic, key
    ``partition:offset``; a later replay skips marked ones. A marker per letter (not a consumer
    group offset) because ``--reason`` replays a subset: offsets are not replayed in order.
    A crash between the two flushes can resend a letter on the next replay (at least once);
    the hub deduplicates events by ``event_id``.
    """
    topics = Topics.from_settings(settings)
    report = ReplayReport(dry_run=dry_run)
    entries = read_dead_letters(settings, reason, timeout_s)
    report.matched = len(entries)
    done = read_replayed(settings)
    todo: list[tuple[DeadLetterEntry, str]] = []
    skipped: Counter[str] = Counter()
    for entry in entries:
        if entry.marker in done:
            report.already_replayed += 1
            continue
        if entry.letter.payload is None:
            skipped["no payload"] += 1
            continue
        if entry.letter.payload_truncated:  # only the first bytes: the original is at its offset
            skipped["payload truncated"] += 1
            continue
        target = replay_target(entry.letter, topics)
        if target is None:
            skipped["not an inbound topic"] += 1
            continue
        todo.append((entry, target))
    report.skipped = dict(skipped)
    report.by_topic = dict(Counter(t for _, t in todo))
    if dry_run or not todo:
        report.replayed = len(todo)  # with --dry-run: would be replayed
        return report

    _ensure_replayed_topic(settings)
    producer = Producer(producer_config(settings, **_QUIET))
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(err.str())

    for entry, target in todo:
        origin = f"{topics.dead_letter}:{entry.partition}:{entry.offset}"
        producer.produce(
            target,
            key=entry.letter.key,
            value=entry.letter.payload,
            headers=[(H_REPLAYED_FROM, origin.encode())],
            on_delivery=on_delivery,
        )
        producer.poll(0)
    if producer.flush(timeout_s) > 0 or errors:
        raise AnswerError(f"replay not acknowledged: {errors[:3] or 'flush timed out'}")
    marker_topic = replayed_topic(settings)
    now = time.time_ns() // 1_000_000
    for entry, target in todo:
        producer.produce(
            marker_topic,
            key=entry.marker.encode(),
            value=orjson.dumps({"topic": target, "replayed_at_ms": now}),
            on_delivery=on_delivery,
        )
    if producer.flush(timeout_s) > 0 or errors:
        raise AnswerError(
            f"replayed {len(todo)} but could not record it: {errors[:3] or 'flush timed out'}"
        )
    report.replayed = len(todo)
    return report


# ----------------------------------------------------------------------------- status


def expected_topics(settings: Settings) -> dict[str, int]:
    """The hub's topics (name → partitions) as :meth:`Topics.specs` defines them."""
    specs = Topics.from_settings(settings).specs(settings.partitions)
    return {name: parts for name, (parts, _) in specs.items()}


def consumer_groups(settings: Settings) -> dict[str, list[str]]:
    """The hub's consumer groups and the hub topics they consume."""
    topics = Topics.from_settings(settings)
    return {
        f"{settings.app_id}-ingest": [topics.case_events],
        settings.app_id: [topics.normalised, topics.area_updates],  # the Faust app
    }


def status(settings: Settings, timeout_s: float = 10.0) -> dict[str, Any]:
    """``hub status``: reachability, topics, lag per group and topic, worker count.

    Lag of a partition = high watermark − committed offset (the whole partition when the group
    never committed). Workers = members of the ``<app_id>-ingest`` group (one per worker).
    A broker error after the first answer is reported in ``error`` with what was gathered.
    """
    out: dict[str, Any] = {"broker": settings.broker, "reachable": False}
    try:
        existing = _existing_topics(settings, timeout_s)
    except AnswerError as exc:
        out["error"] = str(exc)
        return out
    out["reachable"] = True
    out["topics"] = []
    out["lag"] = []
    out["workers"] = 0
    out["groups"] = {}
    try:
        _status_details(settings, existing, out, timeout_s)
    except KafkaException as exc:
        out["error"] = f"incomplete: {exc.args[0]}"
    return out


def _status_details(
    settings: Settings, existing: Mapping[str, int], out: dict[str, Any], timeout_s: float
) -> None:
    from confluent_kafka.admin import AdminClient, OffsetSpec

    out["topics"] = [
        {
            "name": name,
            "present": name in existing,
            "partitions": existing.get(name),
            "expected_partitions": parts,
        }
        for name, parts in expected_topics(settings).items()
    ]
    admin = AdminClient({"bootstrap.servers": settings.broker, **_QUIET})
    groups = consumer_groups(settings)
    tps = [
        TopicPartition(t, p)
        for ts in groups.values()
        for t in ts
        if t in existing
        for p in range(existing[t])
    ]
    ends: dict[tuple[str, int], int] = {}
    starts: dict[tuple[str, int], int] = {}
    if tps:
        for spec, store in ((OffsetSpec.latest(), ends), (OffsetSpec.earliest(), starts)):
            futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=timeout_s)
            for tp, fut in futures.items():
                store[(tp.topic, tp.partition)] = fut.result(timeout=timeout_s).offset
    lag_rows = []
    for group, group_topics in groups.items():
        present = [t for t in group_topics if t in existing]
        committed: dict[tuple[str, int], int] = {}
        if present:
            request = ConsumerGroupTopicPartitions(
                group, [TopicPartition(t, p) for t in present for p in range(existing[t])]
            )
            result = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)
            for tp in result[group].result(timeout=timeout_s).topic_partitions:
                committed[(tp.topic, tp.partition)] = tp.offset
        for topic in group_topics:
            if topic not in existing:
                lag_rows.append(
                    {
                        "group": group,
                        "topic": topic,
                        "missing": True,
                        "end_offsets": None,
                        "committed": False,
                        "lag": None,
                    }
                )
                continue
            lag = 0
            end_total = 0
            committed_any = False
            for p in range(existing[topic]):
                end = ends.get((topic, p), 0)
                pos = committed.get((topic, p), -1)
                end_total += end
                if pos >= 0:
                    committed_any = True
                    lag += max(0, end - pos)
                else:
                    lag += max(0, end - starts.get((topic, p), 0))
            lag_rows.append(
                {
                    "group": group,
                    "topic": topic,
                    "missing": False,
                    "end_offsets": end_total,
                    "committed": committed_any,
                    "lag": lag,
                }
            )
    out["lag"] = lag_rows
    workers: dict[str, Any] = {}
    ids = list(groups)
    for group, fut in admin.describe_consumer_groups(ids, request_timeout=timeout_s).items():
        try:
            desc = fut.result(timeout=timeout_s)
            workers[group] = {
                "state": desc.state.name if desc.state is not None else "UNKNOWN",
                "members": len(desc.members),
            }
        except KafkaException as exc:
            workers[group] = {"state": "UNKNOWN", "members": 0, "error": str(exc.args[0])}
    ingest = workers.get(f"{settings.app_id}-ingest", {})
    out["workers"] = ingest.get("members", 0)
    out["groups"] = workers
