"""Status: broker metadata, the hub's topics, consumer groups, committed offsets and lag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from hub.answers.reading import QUIET, AnswerError, existing_topics
from hub.pipeline.lag import committed_offsets
from hub.pipeline.topics import Topics
from hub.settings import Settings


def expected_topics(settings: Settings) -> dict[str, int]:
    """The hub's topics (name → partitions) as :meth:`Topics.specs` defines them."""
    specs = Topics.from_settings(settings).specs(settings.partitions)
    return {name: parts for name, (parts, _) in specs.items()}


def consumer_groups(settings: Settings) -> dict[str, list[str]]:
    """The hub's consumer groups and the hub topics they consume."""
    topics = Topics.from_settings(settings)
    return {
        f"{settings.app_id}-ingest": topics.inbound(settings.shared_inbound),
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
        existing = existing_topics(settings, timeout_s)
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

    from hub.pipeline.clients import admin_config

    out["topics"] = [
        {
            "name": name,
            "present": name in existing,
            "partitions": existing.get(name),
            "expected_partitions": parts,
        }
        for name, parts in expected_topics(settings).items()
    ]
    admin = AdminClient(admin_config(settings, **QUIET))
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
            # not AdminClient.list_consumer_group_offsets: it crashed (SIGSEGV) on a starting
            # broker; see hub.pipeline.lag.group_lag
            committed = committed_offsets(
                settings,
                group,
                [TopicPartition(t, p) for t in present for p in range(existing[t])],
                timeout_s,
            )
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
