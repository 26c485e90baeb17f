"""The cluster suite's own three-node Kafka: never the shared broker, never `hub kafka start`'s.

:class:`tools.local_kafka.LocalKafkaCluster` with its own home (``.local/kafka-cluster-test``)
and ports (node i at 19492 + i - 1, controllers 100 above; ``HUB_CLUSTER_TEST_PORT`` moves
them). A session holds ``suite.lock`` in that home, starts the cluster from empty data dirs and
stops it at the end. Faults act on single nodes by the pids this session started: ``kill -9``
(:meth:`kill`), SIGTERM (:meth:`stop_nodes`), restart (:meth:`start_node`).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hub.settings import PROJECT_ROOT, Settings
from tools.local_kafka import LocalKafkaCluster, probe

DEFAULT_PORT = 19492
PORT_ENV = "HUB_CLUSTER_TEST_PORT"
CLUSTER_HOME = PROJECT_ROOT / ".local" / "kafka-cluster-test"
SHARED_LIBS = PROJECT_ROOT / ".local" / "kafka" / "libs"
BROKERS = 3


class ClusterBrokerError(RuntimeError):
    """The test cluster could not be set up (ports taken, jars missing, another run active)."""


@dataclass
class ClusterBroker:
    port: int = field(default_factory=lambda: int(os.environ.get(PORT_ENV, DEFAULT_PORT)))
    home: Path = CLUSTER_HOME
    started: dict[int, int] = field(default_factory=dict)  # node id -> pid this session started
    _lock: IO[str] | None = None

    @property
    def settings(self) -> Settings:
        return Settings(
            kafka_home=SHARED_LIBS.parent,
            kafka_cluster_home=self.home,
            kafka_cluster_port=self.port,
        )

    @property
    def cluster(self) -> LocalKafkaCluster:
        return LocalKafkaCluster(self.settings, BROKERS)

    @property
    def address(self) -> str:
        """Bootstrap servers: all three nodes."""
        return self.cluster.bootstrap

    def open(self) -> None:
        """Lock, then start a fresh cluster (empty data dirs, new cluster id)."""
        self.home.mkdir(parents=True, exist_ok=True)
        lock = (self.home / "suite.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise ClusterBrokerError(
                f"another cluster run holds {self.home / 'suite.lock'}"
            ) from exc
        # only now: close() stops the nodes when we hold the lock, and a run refused here
        # stopped the running suite's cluster (its test then waited on a dead cluster)
        self._lock = lock
        cluster = self.cluster
        cluster.reset()  # stops only nodes whose pid files are in our home and run kafka.Kafka
        for node in cluster.nodes:
            if probe(node.address, timeout=2.0) is not None:
                raise ClusterBrokerError(
                    f"something else answers at {node.address}: set {PORT_ENV} to a free range"
                )
        # started the way an operator does: the real command line
        result = self.hub_kafka("start", "--wait", "240")
        if result.returncode != 0:
            raise ClusterBrokerError(f"hub kafka start --brokers 3 failed:\n{result.stderr}")
        self._record_pids()

    def hub_kafka(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``hub kafka <args> --brokers 3`` against this cluster's home and ports."""
        env = {
            **os.environ,
            "HUB_KAFKA_HOME": str(SHARED_LIBS.parent),
            "HUB_KAFKA_CLUSTER_HOME": str(self.home),
            "HUB_KAFKA_CLUSTER_PORT": str(self.port),
        }
        cmd = [sys.executable, "-m", "hubctl", "kafka", *args, "--brokers", str(BROKERS)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    def _record_pids(self) -> None:
        for node in self.cluster.nodes:
            pid = node.managed_pid()
            if pid is not None:
                self.started[node.node_id] = pid

    def _own_pid(self, node_id: int) -> int | None:
        pid = self.cluster.node(node_id).managed_pid()
        if pid is not None and self.started.get(node_id) != pid:
            raise ClusterBrokerError(f"node {node_id} pid {pid} was not started by this session")
        return pid

    def leaders(self, prefixes: tuple[str, ...]) -> dict[int, int]:
        return self.cluster.leaders(prefixes)

    def kill(self, node_id: int) -> int:
        """``kill -9`` of node ``node_id`` (a pid this session started)."""
        pid = self._own_pid(node_id)
        if pid is None:
            raise ClusterBrokerError(f"node {node_id} is not running")
        self.cluster.node(node_id).kill()
        return pid

    def stop_nodes(self, node_ids: list[int], wait_s: float = 30.0) -> float:
        """SIGTERM to ``node_ids`` at once; -9 after ``wait_s`` (a controlled shutdown cannot
        finish without a controller quorum). Seconds until all are gone."""
        began = time.monotonic()
        pids = {i: self._own_pid(i) for i in node_ids}
        for pid in pids.values():
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        for i in node_ids:
            self.cluster.node(i).stop(wait_s)
        return time.monotonic() - began

    def start_nodes(self, node_ids: list[int]) -> float:
        """Start nodes again (together); seconds until all three are registered."""
        took = self.cluster.start_nodes(node_ids, wait_s=180.0)
        self._record_pids()
        return took

    def close(self) -> None:
        """Stop the nodes of our home (locked by this session: their pids are ours)."""
        try:
            if self._lock is not None:
                self.cluster.stop(30.0)
        finally:
            if self._lock is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None
