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

One module per answer: ``alerts``, ``addresses`` (address queries), ``dossier``,
``dead_letters``, ``cluster_status``, on top of ``reading`` (read a topic to its end); the one write
path, re-submitting dead letters, is ``dlq_replay``. The functions return plain data (dicts,
dataclasses); :mod:`hubctl.answers` renders them. Imports ``hub`` (contracts, address, the
pipeline's topic and client configs) and confluent-kafka; nothing in ``hub`` imports it.
"""

from hub.answers.addresses import (
    AddressQuery,
    parse_address_query,
    resolve_nummeraanduiding,
)
from hub.answers.alerts import (
    FIRING,
    AlertsAnswer,
    alert_evidence,
    alert_line,
    filter_alerts,
    latest_per_fingerprint,
    read_alerts,
)
from hub.answers.cluster_status import (
    consumer_groups,
    expected_topics,
    status,
)
from hub.answers.dead_letters import (
    DeadLetterEntry,
    dead_letter_json,
    read_dead_letters,
    reason_counts,
)
from hub.answers.dlq_replay import (
    H_REPLAYED_FROM,
    REPLAYED_SUFFIX,
    ReplayReport,
    read_replayed,
    replay,
    replay_target,
    replayed_topic,
)
from hub.answers.dossier import (
    DossierAnswer,
    NotFound,
    dossier_json,
    read_dossier,
)
from hub.answers.reading import (
    AnswerError,
    RawMessage,
    TopicMissing,
    jsonable,
    read_to_end,
)

__all__ = [
    "FIRING",
    "H_REPLAYED_FROM",
    "REPLAYED_SUFFIX",
    "AddressQuery",
    "AlertsAnswer",
    "AnswerError",
    "DeadLetterEntry",
    "DossierAnswer",
    "NotFound",
    "RawMessage",
    "ReplayReport",
    "TopicMissing",
    "alert_evidence",
    "alert_line",
    "consumer_groups",
    "dead_letter_json",
    "dossier_json",
    "expected_topics",
    "filter_alerts",
    "jsonable",
    "latest_per_fingerprint",
    "parse_address_query",
    "read_alerts",
    "read_dead_letters",
    "read_dossier",
    "read_replayed",
    "read_to_end",
    "reason_counts",
    "replay",
    "replay_target",
    "replayed_topic",
    "resolve_nummeraanduiding",
    "status",
]
