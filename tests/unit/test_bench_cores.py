"""The benchmark's cores-per-process figures (bench.harness): who used the shared cores.

Real processes, no broker: a busy child of a stand-in "worker" must show up under its role.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import (
    StealSampler,
    cores_between,
    cpu_by_role,
    machine_steal_seconds,
    run_queue_by_role,
)

_BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"
# a spawned multiprocessing child, as the worker's ingest stage is (bench.harness.process_role)
_WORKER = (
    "import multiprocessing as mp, time\n"
    "def spin():\n"
    f"    exec({_BUSY!r})\n"
    "if __name__ == '__main__':\n"
    "    child = mp.get_context('spawn').Process(target=spin)\n"
    "    child.start()\n"
    "    time.sleep(5)\n"
)


def test_cores_between_is_cpu_seconds_over_wall_seconds_per_role_with_a_total() -> None:
    before = {"worker": 10.0, "ingest": 4.0, "broker": 1.0}
    after = {"worker": 11.0, "ingest": 5.5, "broker": 1.5, "bench": 0.25}
    assert cores_between(before, after, 2.0) == {
        "worker": 0.5,
        "ingest": 0.75,
        "broker": 0.25,
        "bench": 0.12,  # appeared in between: counted from 0
        "total": 1.62,
    }
    assert cores_between(before, after, 0.0) == {}


def test_cpu_by_role_names_the_worker_its_spawned_child_this_process_and_the_broker(
    tmp_path: Path,
) -> None:
    script = tmp_path / "worker.py"  # spawn re-imports __main__ by path: not from ``-c``
    script.write_text(_WORKER)
    worker = subprocess.Popen([sys.executable, str(script)])
    stand_in_broker = subprocess.Popen([sys.executable, "-c", _BUSY])
    try:
        deadline = time.monotonic() + 20
        roles: dict[str, float] = {}
        while time.monotonic() < deadline:
            roles = cpu_by_role(worker.pid, stand_in_broker.pid)
            if roles.get("ingest", 0.0) >= 0.3 and roles.get("broker", 0.0) >= 0.3:
                break
            time.sleep(0.1)
        assert roles.get("ingest", 0.0) >= 0.3, roles  # the busy spawned child
        assert roles.get("broker", 0.0) >= 0.3, roles
        assert "worker" in roles
        assert roles["bench"] > 0  # this process: the load generator in a bench run
    finally:
        for proc in (worker, stand_in_broker):
            proc.kill()
            proc.wait()


# 0.8 s of its own CPU on core 0 only, then it sleeps (stays readable): two of them share core 0
_PINNED = (
    "import os, time\nos.sched_setaffinity(0, {0})\n"
    "end = time.process_time() + 0.8\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"
)


def test_run_queue_wait_counts_a_process_waiting_for_a_core_and_not_a_sleeping_one() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    time.sleep(0.3)  # its start-up (which may wait for a core on a busy machine) is over
    asleep_from = run_queue_by_role(sleeper.pid)["worker"]
    spinner = subprocess.Popen([sys.executable, "-c", _PINNED])
    rival = subprocess.Popen([sys.executable, "-c", _PINNED])  # the other one on core 0
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # both done spinning
            spent = cpu_by_role(spinner.pid, rival.pid)
            if spent.get("worker", 0.0) >= 0.8 and spent.get("broker", 0.0) >= 0.8:
                break
            time.sleep(0.1)
        waits = run_queue_by_role(spinner.pid, sleeper.pid)
        # sharing one core, each spinner waited for it while the other ran (~0.8 s, less
        # whatever start-up ran before the other began)
        assert waits["worker"] >= 0.3, waits
        assert waits["broker"] - asleep_from < 0.05, waits  # asleep: never waiting for a core
        assert waits["bench"] >= 0.0
    finally:
        for proc in (spinner, rival, sleeper):
            proc.kill()
            proc.wait()


def _scripted(values: list[float]) -> StealSampler:
    """A sampler whose clock and steal readings come from lists (one pair per ``sample()``)."""
    clock = [0.0]
    readings = iter(values)

    def tick() -> float:
        clock[0] += 0.5
        return clock[0]

    return StealSampler(interval=0.5, read=lambda: next(readings), clock=tick)


def test_steal_sampler_gives_the_mean_and_the_worst_interval_within_the_span() -> None:
    # steal 0.01 cores, then one interval with 0.4 s stolen in 0.5 s, then 0.01 again
    sampler = _scripted([100.0, 100.005, 100.01, 100.41, 100.415, 100.42, 150.0])
    for _ in range(7):
        sampler.sample()  # clock 0.5, 1.0, ... 3.5; the last reading (3.5 s) is outside
    steal = sampler.between(0.5, 3.0)
    assert steal is not None
    assert steal["worst_interval_cores"] == 0.8
    assert steal["mean_cores"] == round(0.42 / 2.5, 3)
    assert steal["interval_s"] == 0.5


def test_steal_sampler_says_nothing_without_two_samples_or_a_steal_column(tmp_path: Path) -> None:
    sampler = _scripted([1.0, 2.0])
    sampler.sample()
    assert sampler.between(0.0, 10.0) is None
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3 4\ncpu0 1 2 3 4\n")  # an old kernel: no steal column
    assert machine_steal_seconds(stat) is None
    stat.write_text("cpu  3108605 571 193355 3732930 13625 0 55974 145497 0 0\n")
    assert machine_steal_seconds(stat) == 145497 / os.sysconf("SC_CLK_TCK")


def test_steal_sampler_thread_samples_from_start_to_stop() -> None:
    readings = iter(float(i) for i in range(1000))
    with StealSampler(interval=0.01, read=lambda: next(readings)) as sampler:
        time.sleep(0.1)
    assert len(sampler.samples) >= 3
    times = [t for t, _ in sampler.samples]
    assert times == sorted(times)
    assert not sampler._thread.is_alive()
