"""py-spy on a running worker, and a summary of its raw (collapsed-stack) output.

``py-spy record --nonblocking --threads --subprocesses -f raw`` samples without pausing the worker
and its ingest child; stacks start with the process (``process pid:"cmdline"``) and the thread
(``thread (tid): name``). The summary aggregates per function (``func (file)``,
line numbers dropped): *own* = samples where it is the leaf, *cumulative* = samples where it is
anywhere on the stack (counted once per stack; ``cumulative_hub`` keeps only the hub's own code,
which the thread/asyncio/typer frames at the top of every stack would otherwise crowd out), plus
the share of each thread. Percentages are of all samples (idle threads are not sampled).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[1]) + "/"  # the checkout (any worktree)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy_binary() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, out: Path, rate: int = 100) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` into ``out`` (raw format); None when py-spy is not installed."""
    binary = py_spy_binary()
    if binary is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log").open("wb")
    cmd = [binary, "record", "--nonblocking", "--threads", "--subprocesses", "-r", str(rate)]
    cmd += ["-f", "raw"]
    return subprocess.Popen(
        [*cmd, "-o", str(out), "-p", str(pid)], stdout=log, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Ctrl-C: py-spy writes its output and exits."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", _ROOT, "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def _process_name(frame: str) -> str:
    """``process 123:"python -m hubctl worker"`` -> ``worker``; the spawned child -> ingest."""
    if "multiprocessing" in frame or "spawn_main" in frame:
        return "ingest child"
    return "worker" if "hubctl" in frame else frame[:60]


def summarise(raw: Path, top: int = 25) -> dict[str, Any]:
    """Top functions by own and cumulative samples, and samples per thread."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    cumulative_hub: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = stack.split(";")
        process = None
        while frames and frames[0].startswith("process "):  # parent;child for the child
            process = frames.pop(0)
        if process is not None:
            processes[_process_name(process)] += count
        if frames and frames[0].startswith("thread ("):
            thread = frames.pop(0)
            threads[thread.split(": ", 1)[-1] if ": " in thread else thread] += count
        if not frames:
            continue
        names = [_short(f) for f in frames]
        own[names[-1]] += count
        for name in set(names):
            cumulative[name] += count
            if "(hub/" in name:
                cumulative_hub[name] += count

    def pct(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": n, "pct": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "processes": pct(processes),
        "threads": pct(threads),
        "own": pct(own),
        "cumulative": pct(cumulative),
        "cumulative_hub": pct(cumulative_hub),
    }
