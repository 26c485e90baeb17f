"""The Containerfile's build stage works: its build context makes a wheel that installs and runs.

No container runtime or base image can be pulled here, so this replays the Containerfile's steps
without one: copy exactly what its COPY lines copy into an empty directory, build the wheel there
(``pip wheel``, as stage 1 does), install that wheel alone into an empty target directory (as
stage 2 does, dependencies aside: they come from this venv), and run ``hub`` from it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"

pytestmark = pytest.mark.slow


def copy_sources() -> list[str]:
    """Sources of the build stage's ``COPY`` lines (the final stage copies nothing from here)."""
    sources: list[str] = []
    for line in CONTAINERFILE.read_text().splitlines():
        if match := re.match(r"COPY\s+(?!--from)(.+)$", line.strip()):
            *srcs, _dest = match.group(1).split()
            sources.extend(srcs)
    return sources


def test_containerfile_copies_every_package_the_wheel_must_contain() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        p.name
        for p in ROOT.iterdir()
        if (p / "__init__.py").exists()
        and any(re.fullmatch(x.replace("*", ".*"), p.name) for x in patterns)
    }
    sources = copy_sources()
    assert packages <= set(sources), f"not copied: {packages - set(sources)}"
    assert {"pyproject.toml", "README.md"} <= set(sources)
    assert all((ROOT / s).exists() for s in sources)
    text = CONTAINERFILE.read_text()
    assert re.search(r"^USER\s+(?!0\b|root\b)\S+", text, re.M), "the image must not run as root"
    assert 'ENTRYPOINT ["hub"]' in text


def test_wheel_built_from_the_containerfile_context_installs_and_runs(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in copy_sources():
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(
                src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(src, context / source)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), "."],
        cwd=context,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("hub-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "hub = hubctl.main:app" in zf.read(entry_points).decode()
    assert any(n.startswith("hub/config/") and n.endswith(".toml") for n in names)
    assert {"hubctl/main.py", "connectors/cli_http.py", "hub/deploy_manifests.py"} <= names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import hub, hubctl; print(hub.__file__); print(hubctl.__file__)"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert all(line.startswith(str(site)) for line in where.stdout.split()), where.stdout
    # the commands the manifests run, from the installed wheel (package data included)
    for args in (["worker", "--help"], ["serve-http", "--help"], ["manifests", "topics"]):
        result = subprocess.run(
            [sys.executable, "-m", "hubctl", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"hub {' '.join(args)}: {result.stderr}"
    load_packaged_rules = (
        "from hub.engine.config import DEFAULT_RULES_PATH, load_config; "
        "load_config(DEFAULT_RULES_PATH); print(DEFAULT_RULES_PATH)"
    )
    rules = subprocess.run(
        [sys.executable, "-c", load_packaged_rules],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rules.returncode == 0, rules.stderr
    assert rules.stdout.startswith(str(site))
