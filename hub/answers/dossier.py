"""One address's dossier: the latest record for its key on ``dossiers``, shaped for display."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.address.key import parse_key
from hub.answers.addresses import AddressQuery, parse_address_query, resolve_nummeraanduiding
from hub.answers.alerts import (
    AlertsAnswer,
    alert_evidence,
    decode_alerts,
    filter_alerts,
    latest_per_fingerprint,
)
from hub.answers.reading import (
    AnswerError,
    RawMessage,
    TopicMissing,
    existing_topics,
    jsonable,
    read_to_end,
)
from hub.contracts.codec import AvroCodec, DecodeError, get_codec
from hub.pipeline.clients import murmur2_partition
from hub.pipeline.topics import Topics
from hub.settings import Settings


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
    counts = existing_topics(settings)
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
    records = decode_alerts(messages, codec, alerts_answer)
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
