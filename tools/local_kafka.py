"""The embedded default broker: a single-node Apache Kafka (KRaft) run with the machine's Java.

The jars come from Maven Central through ``deploy/local-kafka/pom.xml`` (``make kafka-libs``).
Start is idempotent (a broker that already answers at ``HUB_BROKER`` is reused), stop only ever
signals the process this module started (by its pid file), and readiness means a real metadata
request succeeded, not just an open port.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from hub.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

TEMPLATE_DIR = PROJECT_ROOT / "deploy" / "local-kafka"
_JAR_VERSION = re.compile(r"^kafka_2\.13-(?P<version>[0-9][^-]*)\.jar$")


class KafkaError(RuntimeError):
    """The local broker could not be started, reached or stopped."""


@dataclass(frozen=True)
class BrokerStatus:
    address: str
    reachable: bool
    version: str | None
    cluster_id: str | None
    brokers: int
    topics: int
    managed_pid: int | None  # pid of the broker this module started, if running

    def describe(self) -> str:
        if not self.reachable:
            return f"broker {self.address}: not reachable"
        owner = f"local pid {self.managed_pid}" if self.managed_pid else "external"
        return (
            f"broker {self.address}: up, Apache Kafka {self.version or 'unknown version'}, "
            f"cluster {self.cluster_id}, {self.brokers} broker(s), {self.topics} topic(s), {owner}"
        )


class LocalKafka:
    """Lifecycle of the local broker under ``settings.kafka_home``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.kafka_home
        self.libs = self.home / "libs"
        self.pid_file = self.home / "kafka.pid"
        self.log_file = self.home / "server.log"
        self.properties = self.home / "server.properties"
        self.data_dir = self.home / "data"
        host, _, port = settings.broker.split(",")[0].rpartition(":")
        self.host = host or "localhost"
        self.port = int(port)

    # -- facts -------------------------------------------------------------------------
    def jar_version(self) -> str | None:
        if not self.libs.is_dir():
            return None
        for jar in self.libs.iterdir():
            match = _JAR_VERSION.match(jar.name)
            if match:
                return match.group("version")
        return None

    def managed_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        return pid if b"kafka.Kafka" in cmdline else None

    def status(self, timeout: float = 5.0) -> BrokerStatus:
        metadata = probe(self.settings.broker, timeout, self.client_security())
        pid = self.managed_pid()
        version = self._logged_version() if pid else None
        if metadata is None:
            return BrokerStatus(self.settings.broker, False, None, None, 0, 0, pid)
        cluster_id, brokers, topics = metadata
        return BrokerStatus(
            self.settings.broker,
            True,
            version or self.jar_version(),
            cluster_id,
            brokers,
            topics,
            pid,
        )

    def _logged_version(self) -> str | None:
        try:
            with self.log_file.open(errors="replace") as fh:
                for line in fh:
                    match = re.search(r"Kafka version: (\S+)", line)
                    if match:
                        return match.group(1)
        except FileNotFoundError:
            return None
        return None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, wait_s: float = 90.0) -> BrokerStatus:
        """Start the broker unless one already answers; return once it serves metadata."""
        current = self.status(timeout=2.0)
        if current.reachable:
            log.info("reusing running broker at %s", self.settings.broker)
            return current
        java = shutil.which("java")
        if java is None:
            raise KafkaError("java not found on PATH: install a Java 17 runtime")
        if self.jar_version() is None:
            raise KafkaError(f"no Kafka jars in {self.libs}: run `make kafka-libs` first")
        self.home.mkdir(parents=True, exist_ok=True)
        self._render_properties()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java)
        cmd = [java, *self._jvm_opts(), "kafka.Kafka", str(self.properties)]
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.home,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KafkaError(f"broker exited with code {proc.returncode}; see {self.log_file}")
            status = self.status(timeout=2.0)
            if status.reachable:
                return status
            time.sleep(0.5)
        self.stop()
        raise KafkaError(f"broker did not answer within {wait_s:.0f}s; see {self.log_file}")

    def stop(self, wait_s: float = 30.0) -> bool:
        """Stop the broker this module started; return False when there was none."""
        pid = self.managed_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def reset(self) -> None:
        """Stop and wipe the broker's data (topics, offsets): a clean slate."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------
    def client_security(self) -> dict[str, Any]:
        """librdkafka security settings for probing this broker (none: PLAINTEXT)."""
        return {}

    def _format_extra_args(self) -> list[str]:
        """More ``kafka-storage format`` arguments (the secure broker adds SCRAM users)."""
        return []

    def _classpath(self) -> str:
        return f"{self.libs}/*"

    def _jvm_opts(self) -> list[str]:
        heap = self.settings.kafka_heap
        return [
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={TEMPLATE_DIR / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
        ]

    def _render_properties(self) -> None:
        template = Template((TEMPLATE_DIR / "server.properties.template").read_text())
        self.properties.write_text(
            template.substitute(
                host=self.host,
                port=self.port,
                controller_host=self.host,
                controller_port=self.port + 1,
                log_dirs=self.data_dir,
            )
        )

    def _format_storage(self, java: str) -> None:
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: a leading "-" would be
            # read as an option by kafka-storage's argument parser (1 start in 64 failed)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        cmd = [
            java,
            *self._jvm_opts(),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(self.properties),
            *self._format_extra_args(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaError(f"formatting {self.data_dir} failed: {result.stderr[-2000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def probe(
    broker: str, timeout: float = 5.0, security: dict[str, Any] | None = None
) -> tuple[str | None, int, int] | None:
    """One metadata request: (cluster id, broker count, topic count), or None if unreachable.

    ``security``: librdkafka security settings (hub.security) for a secure listener.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": broker,
            "log_level": 0,
            "socket.timeout.ms": 2000,
            **(security or {}),
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # KafkaException on timeout/transport: unreachable is an answer here
        return None
    return metadata.cluster_id, len(metadata.brokers), len(metadata.topics)


# ------------------------------------------------------------------------------ cluster
# A local N-node cluster (``hub kafka start --brokers 3``): each node a combined broker +
# controller KRaft process with its own ports, home, data dir, pid file and log, under
# ``settings.kafka_cluster_home`` (never the single node's home or ports).

CLUSTER_TEMPLATE = TEMPLATE_DIR / "cluster-node.properties.template"
CONTROLLER_PORT_OFFSET = 100


class ClusterNode(LocalKafka):
    """One node of the local cluster: a :class:`LocalKafka` with the cluster's config.

    Lifecycle facts (pid file, stop by pid, version from its log) are the single node's; what
    differs is the rendered config (static controller quorum of all nodes, replication
    defaults) and the storage format (the cluster's shared id, no ``--standalone``).
    """

    def __init__(self, settings: Settings, cluster: LocalKafkaCluster, node_id: int) -> None:
        port = settings.kafka_cluster_port + node_id - 1
        super().__init__(
            settings.model_copy(
                update={
                    "broker": f"{cluster.host}:{port}",
                    "kafka_home": cluster.home / f"node-{node_id}",
                    "kafka_heap": settings.kafka_cluster_heap,
                }
            )
        )
        self.cluster = cluster
        self.node_id = node_id
        self.controller_port = port + CONTROLLER_PORT_OFFSET
        self.libs = cluster.libs  # the jars of `make kafka-libs`, shared by every node

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def launch(self, java: str) -> int:
        """Start this node's process (no wait: a lone node cannot serve before a quorum)."""
        if self.managed_pid() is not None:
            return self.managed_pid() or 0
        self.home.mkdir(parents=True, exist_ok=True)
        self._render_properties()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java)
        cmd = [java, *self._jvm_opts(), "kafka.Kafka", str(self.properties)]
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.home,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def running(self) -> bool:
        """Whether the process in this node's pid file is alive (whatever its cmdline says)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        return _alive(pid)

    def kill(self) -> int | None:
        """``kill -9`` of this node's process (by its pid file); the pid, or None if down."""
        pid = self.managed_pid()
        if pid is None:
            return None
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def _render_properties(self) -> None:
        self.properties.write_text(render_cluster_node(self.cluster, self.node_id, self.data_dir))

    def _format_storage(self, java: str) -> None:
        cmd = [
            java,
            *self._jvm_opts(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster.cluster_id(),
            "-c",
            str(self.properties),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaError(f"formatting {self.data_dir} failed: {result.stderr[-2000:]}")


def render_cluster_node(cluster: LocalKafkaCluster, node_id: int, data_dir: Path) -> str:
    """server.properties of node ``node_id`` (1-based) of ``cluster``."""
    nodes = cluster.nodes
    voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in nodes)
    node = nodes[node_id - 1]
    return Template(CLUSTER_TEMPLATE.read_text()).substitute(
        node_id=node_id,
        voters=voters,
        host=node.host,
        port=node.port,
        controller_port=node.controller_port,
        log_dirs=data_dir,
        replicas=min(3, len(nodes)),
        min_isr=cluster_min_isr(len(nodes)),
    )


def cluster_min_isr(brokers: int) -> int:
    """min.insync.replicas for a cluster of ``brokers``: a majority of three copies (2)."""
    return 1 if brokers < 3 else 2


@dataclass(frozen=True)
class ClusterStatus:
    bootstrap: str
    nodes: list[tuple[int, str, bool, int | None]]  # (node id, address, answers, local pid)
    cluster_id: str | None
    brokers_registered: int
    quorum: dict[str, str]  # from kafka-metadata-quorum describe --status
    voters: list[str]  # kafka-metadata-quorum describe --replication, one line per voter

    @property
    def healthy(self) -> bool:
        return all(up for _i, _a, up, _p in self.nodes) and bool(self.quorum.get("LeaderId"))

    def describe(self) -> str:
        lines = [
            f"cluster {self.cluster_id or '?'} at {self.bootstrap}: "
            f"{self.brokers_registered}/{len(self.nodes)} broker(s) registered"
        ]
        for node_id, address, up, pid in self.nodes:
            state = "up" if up else "DOWN"
            lines.append(
                f"  node {node_id} {address}: {state}, "
                + (f"local pid {pid}" if pid else "no local process")
            )
        if self.quorum:
            q = self.quorum
            lines.append(
                f"  controller quorum: leader {q.get('LeaderId', '?')} "
                f"(epoch {q.get('LeaderEpoch', '?')}), high watermark "
                f"{q.get('HighWatermark', '?')}, voters {voter_ids(q.get('CurrentVoters', ''))}"
            )
            lines.extend(f"    {v}" for v in self.voters)
        else:
            lines.append("  controller quorum: not answering")
        return "\n".join(lines)


def voter_ids(voters: str) -> list[int]:
    """Node ids in kafka-metadata-quorum's CurrentVoters JSON (``[{"id": 1, ...}, ...]``)."""
    return [int(i) for i in re.findall(r'"id": ?(\d+)', voters)]


class LocalKafkaCluster:
    """Lifecycle of the local N-node cluster under ``settings.kafka_cluster_home``."""

    def __init__(self, settings: Settings, brokers: int = 3) -> None:
        if brokers < 1:
            raise KafkaError(f"brokers must be at least 1, got {brokers}")
        self.settings = settings
        self.home = settings.kafka_cluster_home
        self.libs = settings.kafka_home / "libs"
        if not self.libs.is_dir():  # a kafka_home without jars: the project's own
            self.libs = PROJECT_ROOT / ".local" / "kafka" / "libs"
        self.host = "localhost"
        self.size_file = self.home / "brokers"
        self.nodes: list[ClusterNode] = []
        self.nodes = [ClusterNode(settings, self, i) for i in range(1, brokers + 1)]

    @classmethod
    def existing(cls, settings: Settings) -> LocalKafkaCluster:
        """The cluster as last started under the home (its size from the home), else 3 nodes."""
        try:
            brokers = int((settings.kafka_cluster_home / "brokers").read_text().strip())
        except (FileNotFoundError, ValueError):
            brokers = 3
        return cls(settings, brokers)

    @property
    def bootstrap(self) -> str:
        """HUB_BROKER for clients of this cluster: every node's address."""
        return ",".join(n.address for n in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id - 1]

    def cluster_id(self) -> str:
        """The id every node is formatted with (made once, kept in the home)."""
        path = self.home / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # see LocalKafka._format_storage
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        self.home.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id)
        return cluster_id

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, wait_s: float = 120.0) -> ClusterStatus:
        """Start every node not running; return once all are registered and serve metadata."""
        java = shutil.which("java")
        if java is None:
            raise KafkaError("java not found on PATH: install a Java 17 runtime")
        if not any(_JAR_VERSION.match(j.name) for j in self.libs.glob("kafka_2.13-*.jar")):
            raise KafkaError(f"no Kafka jars in {self.libs}: run `make kafka-libs` first")
        for node in self.nodes:
            if node.managed_pid() is None and probe(node.address, timeout=1.0) is not None:
                raise KafkaError(f"something else answers at {node.address}: not ours")
        self.home.mkdir(parents=True, exist_ok=True)
        self.size_file.write_text(str(len(self.nodes)))
        for node in self.nodes:
            node.launch(java)
        self.wait_ready(wait_s)
        return self.status()

    def start_node(self, node_id: int, wait_s: float = 120.0) -> float:
        """(Re)start one node; seconds until the cluster has all its brokers registered."""
        return self.start_nodes([node_id], wait_s)

    def start_nodes(self, node_ids: list[int], wait_s: float = 120.0) -> float:
        """(Re)start nodes together (two of three cannot wait for each other one by one)."""
        began = time.monotonic()
        java = shutil.which("java")
        if java is None:
            raise KafkaError("java not found on PATH")
        for node_id in node_ids:
            self.node(node_id).launch(java)
        self.wait_ready(wait_s)
        return time.monotonic() - began

    def wait_ready(self, wait_s: float) -> None:
        """Until every node runs and the cluster's metadata lists every broker."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for node in self.nodes:
                if not node.running():
                    raise KafkaError(f"node {node.node_id} exited; see {node.log_file}")
            metadata = probe(self.bootstrap, timeout=2.0)
            if metadata is not None and metadata[1] == len(self.nodes):
                return
            time.sleep(0.5)
        raise KafkaError(
            f"cluster not ready within {wait_s:.0f}s; see {self.home}/node-*/server.log"
        )

    def stop(self, wait_s: float = 60.0) -> list[int]:
        """Stop every node this cluster's pid files name (SIGTERM, then -9); the ids stopped."""
        stopped = []
        pids = {n.node_id: n.managed_pid() for n in self.nodes}
        for node in self.nodes:  # SIGTERM all first: a controlled shutdown needs the quorum
            pid = pids[node.node_id]
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        for node in self.nodes:
            if pids[node.node_id] is not None:
                node.stop(wait_s)  # waits (or kills); False when it had already exited
                stopped.append(node.node_id)
        return stopped

    def reset(self) -> None:
        """Stop every node and wipe the cluster's data (and its id): a clean slate."""
        self.stop()
        for node in self.nodes:
            shutil.rmtree(node.data_dir, ignore_errors=True)
        (self.home / "cluster.id").unlink(missing_ok=True)

    # -- facts -------------------------------------------------------------------------
    def status(self, timeout: float = 5.0) -> ClusterStatus:
        metadata = probe(self.bootstrap, timeout)
        nodes = [
            (n.node_id, n.address, probe(n.address, 2.0) is not None, n.managed_pid())
            for n in self.nodes
        ]
        quorum, voters = self.quorum() if metadata is not None else ({}, [])
        return ClusterStatus(
            self.bootstrap,
            nodes,
            metadata[0] if metadata else None,
            metadata[1] if metadata else 0,
            quorum,
            voters,
        )

    def quorum(self, timeout: float = 60.0) -> tuple[dict[str, str], list[str]]:
        """The controller quorum as ``kafka-metadata-quorum describe`` reports it."""
        java = shutil.which("java")
        if java is None:
            return {}, []
        base = [
            java,
            "-Xmx128m",
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={TEMPLATE_DIR / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            "org.apache.kafka.tools.MetadataQuorumCommand",
            "--bootstrap-server",
            self.bootstrap,
            "describe",
        ]
        try:
            status = subprocess.run(
                [*base, "--status"], capture_output=True, text=True, timeout=timeout, check=False
            )
            replication = subprocess.run(
                [*base, "--replication"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {}, []
        fields = {}
        for line in status.stdout.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        voters = [
            " ".join(line.split())
            for line in replication.stdout.splitlines()
            if line.strip() and ("Leader" in line or "Follower" in line or "NodeId" in line)
        ]
        return fields, voters

    def leaders(self, prefixes: tuple[str, ...] = ()) -> dict[int, int]:
        """Node id → how many partitions (of topics starting with ``prefixes``) it leads."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        counts = {n.node_id: 0 for n in self.nodes}
        for name, topic in admin.list_topics(timeout=10).topics.items():
            if prefixes and not name.startswith(prefixes):
                continue
            for part in topic.partitions.values():
                if part.leader in counts:
                    counts[part.leader] += 1
        return counts
