"""The local cluster's configuration (no processes started): distinct ports and dirs per node, one
static controller quorum, replicated defaults; and the min-ISR setting on every hub topic."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.pipeline.topics import CHANGELOG_CONFIG, with_min_isr
from hub.settings import Settings
from tools.local_kafka import LocalKafkaCluster, render_cluster_node, voter_ids


def props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def cluster(tmp_path: Path, brokers: int = 3) -> LocalKafkaCluster:
    settings = Settings(kafka_cluster_home=tmp_path / "c", kafka_cluster_port=20000)
    return LocalKafkaCluster(settings, brokers)


def test_three_nodes_get_their_own_ports_dirs_and_one_quorum(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    rendered = [props(render_cluster_node(c, n.node_id, n.data_dir)) for n in c.nodes]
    assert [r["node.id"] for r in rendered] == ["1", "2", "3"]
    listeners = {r["listeners"] for r in rendered}
    assert listeners == {
        f"PLAINTEXT://localhost:{p},CONTROLLER://localhost:{p + 100}" for p in (20000, 20001, 20002)
    }
    assert len({r["log.dirs"] for r in rendered}) == 3
    assert {r["controller.quorum.voters"] for r in rendered} == {
        "1@localhost:20100,2@localhost:20101,3@localhost:20102"
    }
    assert c.bootstrap == "localhost:20000,localhost:20001,localhost:20002"
    assert all(str(tmp_path / "c") in r["log.dirs"] for r in rendered)


def test_cluster_replicates_three_ways_and_needs_two_in_sync(tmp_path: Path) -> None:
    r = props(render_cluster_node(cluster(tmp_path), 1, tmp_path / "d"))
    assert r["default.replication.factor"] == "3"
    assert r["min.insync.replicas"] == "2"
    assert r["offsets.topic.replication.factor"] == "3"
    assert r["transaction.state.log.min.isr"] == "2"
    assert r["unclean.leader.election.enable"] == "false"


def test_cluster_never_uses_the_single_node_home_or_port(tmp_path: Path) -> None:
    c = LocalKafkaCluster(Settings(), 3)
    assert Settings().kafka_home not in c.home.parents and c.home != Settings().kafka_home
    single_port = int(Settings().broker.rpartition(":")[2])
    assert single_port not in {n.port for n in c.nodes} | {n.controller_port for n in c.nodes}


def test_min_isr_is_added_to_every_topic_config_only_when_set() -> None:
    assert with_min_isr(Settings(), CHANGELOG_CONFIG) == CHANGELOG_CONFIG
    s = Settings(replication_factor=3, min_insync_replicas=2)
    assert with_min_isr(s, CHANGELOG_CONFIG) == {**CHANGELOG_CONFIG, "min.insync.replicas": "2"}


def test_min_isr_above_the_replication_factor_is_refused_naming_both() -> None:
    with pytest.raises(ValidationError, match=r"min_insync_replicas \(3\) exceeds replication"):
        Settings(replication_factor=2, min_insync_replicas=3)


def test_voter_ids_read_from_the_quorum_tool_output() -> None:
    text = '[{"id": 1, "endpoints": ["CONTROLLER://localhost:19392"]}, {"id": 3, "endpoints": []}]'
    assert voter_ids(text) == [1, 3]
