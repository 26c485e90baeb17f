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
