"""The fault suite's own single-node Kafka: never the shared broker at HUB_BROKER.

Scenarios stop and restart the broker, delete topics and push oversized messages; other people's
tests run on the shared broker meanwhile. So the suite runs the project's :class:`LocalKafka` with
its own address (default ``localhost:19192``, controller port + 1) and home
(``.local/kafka-faults``): its own data dir, pid file and log. The Kafka jars are shared through a
symlink ``.local/kafka-faults/libs -> ../kafka/libs`` (``make install`` fetched them).

A session holds an exclusive lock on ``.local/kafka-faults/suite.lock``, so two fault runs never
share (or stop) one broker. The broker starts from an empty data dir each session and is stopped
at the end only if this session started it, by the pid :class:`LocalKafka` recorded.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hub.settings import PROJECT_ROOT, Settings
from tools.local_kafka import LocalKafka, probe

DEFAULT_ADDRESS = "localhost:19192"
ADDRESS_ENV = "HUB_FAULTS_BROKER"
FAULTS_HOME = PROJECT_ROOT / ".local" / "kafka-faults"
SHARED_LIBS = PROJECT_ROOT / ".local" / "kafka" / "libs"


class FaultBrokerError(RuntimeError):
    """The fault broker could not be set up (port taken, jars missing, another run active)."""


@dataclass
class FaultBroker:
    address: str = field(default_factory=lambda: os.environ.get(ADDRESS_ENV, DEFAULT_ADDRESS))
    home: Path = FAULTS_HOME
    started_pid: int | None = None
    _lock: IO[str] | None = None

    @property
    def settings(self) -> Settings:
        return Settings(broker=self.address, kafka_home=self.home)

    @property
    def kafka(self) -> LocalKafka:
        return LocalKafka(self.settings)

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        libs = self.home / "libs"
        if not SHARED_LIBS.is_dir():
            raise FaultBrokerError(f"no Kafka jars in {SHARED_LIBS}: run `make install` first")
        if libs.is_symlink() or not libs.exists():
            if libs.is_symlink() and libs.resolve() == SHARED_LIBS.resolve():
                return
            libs.unlink(missing_ok=True)
            libs.symlink_to(os.path.relpath(SHARED_LIBS, self.home))

    def open(self) -> None:
        """Lock, then start a fresh broker (empty data dir)."""
        self._prepare_home()
        self._lock = (self.home / "suite.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise FaultBrokerError(
                f"another fault suite run holds {self.home / 'suite.lock'}"
            ) from exc
        kafka = self.kafka
        # A broker left running by an earlier, interrupted fault run (its pid file is in our
        # home and it runs kafka.Kafka): ours to stop. Anything else answering is not ours.
        if kafka.managed_pid() is not None:
            kafka.stop()
        if probe(self.address, timeout=3.0) is not None:
            raise FaultBrokerError(
                f"something else answers at {self.address}: set {ADDRESS_ENV} to a free port"
            )
        shutil.rmtree(kafka.data_dir, ignore_errors=True)
        self.start()

    def start(self) -> float:
        """Start (or restart) the fault broker; seconds it took to answer."""
        began = time.monotonic()
        kafka = self.kafka
        kafka.start(wait_s=120.0)
        self.started_pid = kafka.managed_pid()
        if self.started_pid is None:
            raise FaultBrokerError(f"the broker at {self.address} is not the suite's own")
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop the broker this suite started (by pid); never anything else."""
        kafka = self.kafka
        pid = kafka.managed_pid()
        if pid is None:
            return
        if pid != self.started_pid:
            raise FaultBrokerError(f"broker pid {pid} was not started by this session")
        kafka.stop()

    def close(self) -> None:
        try:
            if self.started_pid is not None and self.kafka.managed_pid() == self.started_pid:
                self.kafka.stop()
        finally:
            if self._lock is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None
