"""Isolated hub workers for the benchmark: own topic prefix, app id, data dirs and metrics port.

Adapted from ``tests/integration/pipeline_harness.py`` (the tests keep their copy: the benchmark
must not depend on the test tree). Workers are real ``python -m hubctl worker`` processes; the
benchmark observes them only from outside (broker lag, ``/metrics``, ``/readyz``, ``/proc``), so
what it measures is what production runs.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from hub.pipeline.clients import consumer_config
from hub.pipeline.lag import group_lag, pipeline_lag
from hub.pipeline.topics import Topics, ensure_topics
from hub.settings import Settings

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})?\s+(?P<v>\S+)$")


def local_broker_pid() -> int | None:
    """The pid of the broker ``hub kafka start`` runs on this machine (None: not ours/none)."""
    from tools.local_kafka import LocalKafka

    return LocalKafka(Settings()).managed_pid()


def free_port() -> int:
    """A currently free TCP port (tiny race with other processes; good enough for a bench)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the worker runs its ingest stage in a child process)."""
    out = [pid]
    for current in out:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                out.extend(int(c) for c in children if int(c) not in out)
    return out


def read_proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM etc. in bytes, summed over ``pid`` and its descendants (empty when gone).

    A sum of per-process peaks (VmHWM) is an upper bound of the tree's peak.
    """
    out: dict[str, int] = {}
    for member in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/status") as fh:
            for line in fh:
                if line.startswith("Vm") and line.rstrip().endswith("kB"):
                    name, value = line.split(":", 1)
                    out[name] = out.get(name, 0) + int(value.split()[0]) * 1024
    return out


def process_role(pid: int, root: int) -> str:
    """``worker`` for the Faust process, ``ingest`` for its ingest child, else the command."""
    if pid == root:
        return "worker"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"pid {pid}"
    if "resource_tracker" in cmdline:
        return "resource-tracker"
    if "multiprocessing" in cmdline:
        return "ingest"  # the worker's only spawned multiprocessing child
    return cmdline[:60]


def memory_by_process(pid: int) -> dict[str, dict[str, int]]:
    """VmHWM/VmRSS in bytes per member of ``pid``'s tree, keyed by role (see process_role).

    The honest peak of a worker is the sum over its processes: each one's peak is its own
    VmHWM, and the sum is an upper bound of the tree's simultaneous peak.
    """
    out: dict[str, dict[str, int]] = {}
    for member in process_tree(pid):
        status = read_proc_status_one(member)
        if status:
            role = process_role(member, pid)
            if role in out:  # a restarted child: keep the larger peak
                role = f"{role} ({member})"
            out[role] = {k: status[k] for k in ("VmHWM", "VmRSS") if k in status}
    return out


def read_proc_status_one(pid: int) -> dict[str, int]:
    """The Vm* lines of one process's /proc status in bytes (empty when gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Vm") and line.rstrip().endswith("kB"):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds so far of ``pid`` and its live descendants (all threads)."""
    total = None
    for member in process_tree(pid):
        seconds = process_cpu_seconds(member)
        if seconds is not None:
            total = (total or 0.0) + seconds
    return total


def cpu_by_role(pid: int, broker_pid: int | None = None) -> dict[str, float]:
    """CPU seconds so far per process: the worker tree by role (see :func:`process_role`),
    the local broker and this benchmark process (load generator and output consumer).

    The 2-core machine is shared: a phase's cores per process say who used them (issue 17: at
    1,000 events/s the broker alone used ~0.7 of a core, the worker ~0.55).
    """
    return _sum_by_role(pid, broker_pid, process_cpu_seconds)


def cores_between(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Cores busy per role between two :func:`cpu_by_role` samples ``seconds`` apart, and the
    total. A process that appeared in between counts from 0; one that went away is left out."""
    if seconds <= 0:
        return {}
    cores = {
        role: round((spent - before.get(role, 0.0)) / seconds, 2) for role, spent in after.items()
    }
    cores["total"] = round(sum(cores.values()), 2)
    return cores


def run_queue_by_role(pid: int, broker_pid: int | None = None) -> dict[str, float]:
    """Seconds spent *waiting for a core* so far per process, keyed as :func:`cpu_by_role`.

    From ``/proc/<pid>/task/<tid>/schedstat`` (run ns, run-queue wait ns, slices), summed over
    the live threads. Beside :func:`cpu_by_role` it tells a slow stage from a starved one: on
    this 2-core machine at 5,000 events/s the worker's main thread ran 0.55 s a second and
    waited 0.44 s for a core (issue 17, stop 41), so its backlog was the box's, not its code's.
    Threads that ended between two samples take their wait with them (a lower bound).
    """
    return _sum_by_role(pid, broker_pid, process_run_queue_seconds)


def _sum_by_role(
    pid: int, broker_pid: int | None, read: Callable[[int], float | None]
) -> dict[str, float]:
    """``read(member)`` summed per role over the worker tree, this process and the broker."""
    out: dict[str, float] = {}
    members = [(m, process_role(m, pid)) for m in process_tree(pid)]
    members.append((os.getpid(), "bench"))
    if broker_pid is not None:
        members.append((broker_pid, "broker"))
    for member, role in members:
        seconds = read(member)
        if seconds is not None:
            out[role] = out.get(role, 0.0) + seconds
    return out


def process_run_queue_seconds(pid: int) -> float | None:
    """Run-queue wait seconds of one process's live threads; None when gone or unsupported."""
    total = None
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue
        total = (total or 0.0) + int(fields[1]) / 1e9
    return total


def machine_steal_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """Steal seconds of the whole machine so far (all vCPUs): the ``steal`` column of the
    ``cpu`` line of ``/proc/stat``; None where there is none."""
    try:
        fields = stat.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


class StealSampler:
    """The VM's steal time, sampled every ``interval`` seconds in a thread during a phase.

    Steal is time a vCPU had work but the hypervisor ran someone else's: no process here used
    it, yet it shows as latency and as run-queue wait. Stop 42's latency runs each had one with
    the whole pipeline stalled (inbound p99 0.2-0.36 s) while every process's CPU looked
    normal; :meth:`between` gives a phase's mean and its worst interval, so a stall of the
    machine can be told from one of the hub.
    """

    def __init__(
        self,
        interval: float = 0.5,
        read: Callable[[], float | None] = machine_steal_seconds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.read = read
        self.clock = clock
        self.samples: list[tuple[float, float]] = []  # (clock, steal seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steal-sampler", daemon=True)

    def __enter__(self) -> StealSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        self.sample()
        while not self._stop.wait(self.interval):
            self.sample()
        self.sample()

    def sample(self) -> None:
        value = self.read()
        if value is not None:
            self.samples.append((self.clock(), value))

    def between(self, start: float, end: float) -> dict[str, float] | None:
        """Steal in cores over the samples in [start, end] (clock values): the mean and the
        worst interval; None with fewer than two samples (or no steal column)."""
        inside = [(t, s) for t, s in self.samples if start <= t <= end]
        pairs = itertools.pairwise(inside)
        rates = [(s1 - s0) / (t1 - t0) for (t0, s0), (t1, s1) in pairs if t1 > t0]
        if not rates:
            return None
        (t_first, s_first), (t_last, s_last) = inside[0], inside[-1]
        return {
            "mean_cores": round((s_last - s_first) / (t_last - t_first), 3),
            "worst_interval_cores": round(max(rates), 2),
            "interval_s": self.interval,
        }


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (all its threads); None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: The series the benchmark's phases read while a worker runs (``/metrics?name[]=``): the whole
#: registry took the worker ~20 ms of CPU per scrape on the 2-core bench machine, about 8% of its
#: samples at the throughput phase's 4 polls a second (issue 17's profile).
POLLED_SERIES = (
    "hub_batch_size_events_sum",
    "hub_batch_size_events_count",
    "hub_table_recovered",
)


def scrape(port: int, timeout: float = 2.0, names: tuple[str, ...] = ()) -> dict[str, float]:
    """The worker's ``/metrics`` as ``{'name{labels}': value}`` (empty if unreachable); with
    ``names``, only those series."""
    query = "?" + "&".join(f"name[]={n}" for n in names) if names else ""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics{query}", timeout=timeout
        ) as r:
            text = r.read().decode()
    except (OSError, urllib.error.URLError):
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if m:
            samples[m["name"] + (m["labels"] or "")] = float(m["v"])
    return samples


def is_ready(port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def delete_topics(broker: str, prefixes: tuple[str, ...]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes``; returns the names."""
    admin = AdminClient({"bootstrap.servers": broker})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(prefixes)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)
    return names


#: What every bench run's topics start with (hub, peers, Quix internals, recovery, memory row).
RUN_TOPIC_PREFIXES = (
    "bench.",
    "bench-",
    "benchrec.",
    "benchrec-",
    "repartition__bench-",
    "changelog__bench-",
)


def leftover_topics(broker: str) -> list[str]:
    """Topics of earlier bench runs still on the broker (``--keep`` runs, or a killed run).

    They are not idle for the broker, which shares the 2 cores with the contenders: issue 17
    found 304 of them on the local broker, and every run measured beside them slower.
    """
    admin = AdminClient({"bootstrap.servers": broker})
    names = admin.list_topics(timeout=10).topics
    return sorted(n for n in names if n.startswith(RUN_TOPIC_PREFIXES))


def delete_groups(broker: str, prefixes: tuple[str, ...]) -> None:
    """Best effort: drop the run's consumer groups so the broker does not keep their offsets."""
    admin = AdminClient({"bootstrap.servers": broker})
    with contextlib.suppress(Exception):
        listed = admin.list_consumer_groups(request_timeout=10).result(10)
        names = [g.group_id for g in listed.valid if g.group_id.startswith(prefixes)]
        if names:
            for future in admin.delete_consumer_groups(names, request_timeout=10).values():
                with contextlib.suppress(Exception):
                    future.result(10)


def topic_size(broker: str, topic: str) -> int:
    """Messages in ``topic`` now (high − low watermark, summed over partitions)."""
    consumer = Consumer(consumer_config(Settings(broker=broker), "bench-topic-size"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    port: int
    started: float  # time.monotonic() just before Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{tail}")

    def metrics(self) -> dict[str, float]:
        """The series the phases poll (:data:`POLLED_SERIES`), not the whole registry."""
        return scrape(self.port, names=POLLED_SERIES)

    def memory(self) -> dict[str, int]:
        return read_proc_status(self.pid)

    def memory_by_process(self) -> dict[str, dict[str, int]]:
        return memory_by_process(self.pid)

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid)

    def cpu_by_role(self) -> dict[str, float]:
        """:func:`cpu_by_role` of this worker, with the local broker when this machine runs it."""
        return cpu_by_role(self.pid, local_broker_pid())

    def run_queue_by_role(self) -> dict[str, float]:
        """:func:`run_queue_by_role` of this worker, with the local broker as for the CPU."""
        return run_queue_by_role(self.pid, local_broker_pid())

    def wait_ready(self, timeout: float = 180.0, interval: float = 0.1) -> float:
        """Seconds from process start until ``/readyz`` answers 200 (tables recovered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if is_ready(self.port):
                return time.monotonic() - self.started
            time.sleep(interval)
        raise TimeoutError(f"worker not ready after {timeout:.0f}s; see {self.log}")

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


@dataclass
class BenchHub:
    """One isolated hub on the live broker."""

    base: Settings
    root: Path
    run: str
    partitions: int = 8
    workers: list[Worker] = field(default_factory=list)
    namespace: str = "bench"  # first part of the topic prefix and app id

    @property
    def settings(self) -> Settings:
        return self.base.model_copy(
            update={
                "topic_prefix": f"{self.namespace}.{self.run}.",
                "app_id": f"{self.namespace}-{self.run}-hub",
                "partitions": self.partitions,
                "data_dir": self.root / "hub-data0",
                "metrics_port": 0,
            }
        )

    @property
    def topics(self) -> Topics:
        return Topics.from_settings(self.settings)

    def create_topics(self) -> None:
        ensure_topics(self.settings)

    def start_worker(
        self, data_dir: str = "hub-data0", log_level: str = "WARNING", json_logs: bool = False
    ) -> Worker:
        s = self.settings
        port = free_port()
        log = self.root / f"{data_dir}.worker.log"
        env = {
            **os.environ,
            "HUB_BROKER": s.broker,
            "HUB_TOPIC_PREFIX": s.topic_prefix,
            "HUB_APP_ID": s.app_id,
            "HUB_PARTITIONS": str(s.partitions),
            "HUB_DATA_DIR": str(self.root / data_dir),
            "HUB_METRICS_PORT": str(port),
            "HUB_LOG_LEVEL": log_level,
            "HUB_LOG_JSON": "true" if json_logs else "false",
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubctl", "worker"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        worker = Worker(proc, port, started, log)
        self.workers.append(worker)
        return worker

    def lag(self) -> int:
        return pipeline_lag(self.settings)

    def ingest_lag(self) -> int:
        s = self.settings
        return sum(group_lag(s, f"{s.app_id}-ingest", [self.topics.case_events]).values())

    def wipe(self, data_dir: str) -> None:
        shutil.rmtree(self.root / data_dir, ignore_errors=True)

    def close(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(30)
        s = self.settings
        delete_topics(s.broker, (s.topic_prefix, s.app_id))
        delete_groups(s.broker, (s.app_id,))
