"""Import layering (issue 14), checked on the source with ``ast`` (nothing is imported).

- ``hub`` imports none of ``connectors``, ``tools``, ``hubctl``, ``bench``, ``tests``.
- The domain packages (``hub.contracts``, ``hub.address``, ``hub.engine``) import no Kafka or
  Faust client and no Kafka wiring (``hub.pipeline``, ``hub.agents``). One allowance: the codec's
  Schema Registry adapter uses ``confluent_kafka.schema_registry`` (an HTTP client, no broker).
- ``connectors`` imports neither ``tools`` nor ``hubctl``; ``tools`` does not import ``hubctl``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("hub/contracts", "hub/address", "hub/engine")
# hub serve-web: the view models, SVG timeline, access rules and view state are pure (issue 18).
WEB_PURE = ("hub/web/views.py", "hub/web/gantt.py", "hub/web/access.py", "hub/web/state.py")
KAFKA = ("confluent_kafka", "aiokafka", "faust", "rocksdict", "hub.pipeline", "hub.agents")
# (file, imported module or package): allowed exceptions to the rules above, with the reason.
ALLOWED = {
    # Schema Registry HTTP client behind ConfluentSchemaRegistry (imported lazily), no broker.
    ("hub/contracts/codec.py", "confluent_kafka.schema_registry"),
}
RULES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("hub",), ("connectors", "tools", "hubctl", "bench", "tests")),
    (DOMAIN, KAFKA),
    (WEB_PURE, (*KAFKA, "aiohttp", "hub.answers")),
    (("connectors",), ("tools", "hubctl", "bench", "tests")),
    (("tools",), ("hubctl", "tests")),
    # delivery rules are pure: the Kafka/HTTP runtime is connectors/delivery (issue 19)
    (("hub/delivery",), (*KAFKA, "aiohttp", "httpx", "hub.answers")),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module the file at ``path`` imports."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: list[str]) -> set[str]:
    """Every module ``source`` imports, anywhere (functions and TYPE_CHECKING blocks too).

    ``package`` is the dotted path of the package the source lives in (for relative imports);
    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a module).
    """
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(rules: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[str]:
    """``path: imports module (forbidden for folder)`` for every broken rule."""
    found: list[str] = []
    for folders, forbidden in rules:
        for folder in folders:
            where = ROOT / folder
            for path in [where] if where.is_file() else sorted(where.rglob("*.py")):
                rel = path.relative_to(ROOT).as_posix()
                for module in sorted(imports_of(path)):
                    if any(rel == f and _within(module, m) for f, m in ALLOWED):
                        continue
                    for banned in forbidden:
                        if _within(module, banned):
                            found.append(f"{rel}: imports {module} (not allowed in {folder}/)")
    return found


def test_the_layering_rules_hold() -> None:
    assert violations(RULES) == []


def test_a_forbidden_import_is_reported() -> None:
    assert violations([(("tools",), ("hub",))])  # tools do import hub: the checker sees it


def test_a_forbidden_import_in_a_single_listed_file_is_reported() -> None:
    assert violations([(("hub/web/follow.py",), ("confluent_kafka",))])


@pytest.mark.parametrize("folder", ["hub", "connectors", "tools", "hubctl", "bench"])
def test_every_checked_folder_has_python_modules(folder: str) -> None:
    assert list((ROOT / folder).rglob("*.py")), folder


def test_the_checker_sees_imports_in_functions_and_relative_imports() -> None:
    source = "def f():\n    import faust\n    from ..pipeline import topics\n"
    found = imports_in(source, ["hub", "engine"])
    assert {"faust", "hub.pipeline", "hub.pipeline.topics"} <= found
    assert any(_within(module, "hub.pipeline") for module in found)
