"""Avro schemas of the hub: loading, fingerprints, the set of released versions, compatibility.

Every released version of every record lives in ``schemas/avro/<Name>.v<N>.avsc`` and is never
edited after release: a reader must be able to resolve data written with any of them. The highest
version of a record is its *current* schema, the one the hub writes and reads into.

Fingerprints are CRC-64-AVRO (Rabin) over the Parsing Canonical Form, as the Avro specification
prescribes for single-object encoding; :attr:`SchemaVersion.fingerprint` holds the 8 bytes in the
little-endian order in which they appear on the wire, so the codec can look them up without
converting.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

NAMESPACE = "nl.groningen.hub"
SCHEMA_DIR_ENV = "HUB_SCHEMA_DIR"
_FILE_PATTERN = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")

#: Short names of the records the hub ships (``schemas/avro/<name>.v<N>.avsc``).
CASE_EVENT = "CaseEvent"
ALERT = "Alert"
ADDRESS_DOSSIER = "AddressDossier"
DEAD_LETTER = "DeadLetter"


class SchemaError(Exception):
    """A schema file is missing, malformed or inconsistent with its file name."""


def schema_dir() -> Path:
    """Where the ``.avsc`` files are.

    ``$HUB_SCHEMA_DIR`` wins; otherwise ``schemas/avro`` at the project root, found from this file
    (``hub/contracts/avro.py`` -> ``../../schemas/avro``). That works for the editable install we
    use (the package is imported from the source tree) and for a checkout on ``PYTHONPATH``.
    """
    override = os.environ.get(SCHEMA_DIR_ENV)
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "schemas" / "avro", here.parent / "schemas" / "avro"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise SchemaError(
        f"no schemas/avro directory found (looked in {', '.join(map(str, candidates))}); "
        f"set {SCHEMA_DIR_ENV}"
    )


def crc64_fingerprint(schema: Mapping[str, Any] | str | list[Any]) -> bytes:
    """CRC-64-AVRO fingerprint of a schema's Parsing Canonical Form, 8 bytes little-endian.

    That byte order is what single-object encoding puts after ``C3 01``.
    """
    if isinstance(schema, str):
        schema = json.loads(schema) if schema.lstrip().startswith(("{", "[", '"')) else schema
    # fastavro's stub wants a dict; it only reads the mapping
    canonical = to_parsing_canonical_form(
        parse_schema(cast("dict[str, Any] | str | list[Any]", schema))
    )
    # fastavro returns the hex of the little-endian bytes (Avro spec: "null" -> 8a8f25cce724dd63).
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One released version of one record, parsed once."""

    name: str  # short record name, e.g. "CaseEvent"
    fullname: str  # e.g. "nl.groningen.hub.CaseEvent"
    version: int
    raw: dict[str, Any] = field(repr=False, compare=False)  # the JSON as in the file
    parsed: dict[str, Any] = field(repr=False, compare=False)  # fastavro-parsed (cached)
    canonical: str = field(repr=False)
    fingerprint: bytes = field(repr=False)  # CRC-64-AVRO, 8 bytes little-endian
    path: Path | None = field(default=None, compare=False)

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @property
    def schema_str(self) -> str:
        """Compact JSON of the schema as released (what a schema registry is given)."""
        return json.dumps(self.raw, separators=(",", ":"), sort_keys=False)


def load_schema_version(
    raw: Mapping[str, Any], version: int, path: Path | None = None
) -> SchemaVersion:
    """Parse one schema document into a :class:`SchemaVersion`."""
    raw_dict = json.loads(json.dumps(raw))  # deep copy: fastavro annotates what it parses
    try:
        parsed = parse_schema(json.loads(json.dumps(raw_dict)))
    except Exception as exc:  # fastavro raises several types; all mean "bad schema"
        raise SchemaError(f"{path or 'schema'}: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaError(f"{path or 'schema'}: top-level type must be a record")
    fullname: str = parsed["name"]
    canonical = to_parsing_canonical_form(parsed)
    fp = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
    return SchemaVersion(
        name=fullname.rsplit(".", 1)[-1],
        fullname=fullname,
        version=version,
        raw=raw_dict,
        parsed=parsed,
        canonical=canonical,
        fingerprint=fp,
        path=path,
    )


def load_schema_file(path: Path) -> SchemaVersion:
    """Load ``<Name>.v<N>.avsc``; the record name inside must equal ``<Name>``."""
    match = _FILE_PATTERN.match(path.name)
    if not match:
        raise SchemaError(f"{path}: file name must be <RecordName>.v<N>.avsc")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: {exc}") from exc
    sv = load_schema_version(raw, int(match["version"]), path)
    if sv.name != match["name"]:
        raise SchemaError(f"{path}: record is named {sv.name!r}, file says {match['name']!r}")
    return sv


class SchemaSet:
    """All released versions, by fingerprint and by (name, version); the current one per name."""

    def __init__(
        self, versions: Iterable[SchemaVersion], pinned: Mapping[str, int] | None = None
    ) -> None:
        """``pinned`` fixes the current (reader) version of some records, e.g. a deployment
        that knows v2 as a writer schema but still reads into v1."""
        self._pinned = dict(pinned or {})
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for sv in versions:
            per_name = self._by_name.setdefault(sv.name, {})
            if sv.version in per_name:
                raise SchemaError(f"{sv.name} v{sv.version} defined twice")
            per_name[sv.version] = sv
        for name, per_name in self._by_name.items():
            for version in sorted(per_name):
                sv = per_name[version]
                # Identical canonical forms encode identically; the later version wins, which
                # is harmless because a writer schema is only used for its binary layout.
                self._by_fingerprint[sv.fingerprint] = sv
            fullnames = {sv.fullname for sv in per_name.values()}
            if len(fullnames) != 1:
                raise SchemaError(f"{name}: versions disagree on the full name: {fullnames}")
        for name, version in self._pinned.items():
            if version not in self._by_name.get(name, {}):
                raise SchemaError(f"pinned {name} v{version} is not loaded")

    @classmethod
    def from_dir(cls, directory: Path | None = None) -> SchemaSet:
        directory = directory or schema_dir()
        files = sorted(directory.glob("*.avsc"))
        if not files:
            raise SchemaError(f"no .avsc files in {directory}")
        return cls(load_schema_file(p) for p in files)

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def current(self, name: str) -> SchemaVersion:
        """The highest released version of a record (short or full name)."""
        per_name = self._by_name.get(name.rsplit(".", 1)[-1])
        if not per_name:
            raise KeyError(f"unknown record {name!r}")
        return per_name[self._pinned.get(name.rsplit(".", 1)[-1], max(per_name))]

    def get(self, name: str, version: int) -> SchemaVersion:
        return self._by_name[name.rsplit(".", 1)[-1]][version]

    def versions(self, name: str) -> list[SchemaVersion]:
        per_name = self._by_name.get(name.rsplit(".", 1)[-1], {})
        return [per_name[v] for v in sorted(per_name)]

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)

    def __iter__(self) -> Any:
        for name in self.names:
            yield from self.versions(name)

    def with_versions(
        self, extra: Iterable[SchemaVersion], pinned: Mapping[str, int] | None = None
    ) -> SchemaSet:
        """A new set with more versions (tests: a test-only v2 next to the released v1)."""
        return SchemaSet([*self, *extra], pinned)


@lru_cache(maxsize=1)
def default_schema_set() -> SchemaSet:
    """The shipped schemas, loaded and parsed once per process."""
    return SchemaSet.from_dir()


# --------------------------------------------------------------------------------------------
# Compatibility (Avro schema resolution rules, plus: logical types must not change meaning)
# --------------------------------------------------------------------------------------------

_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _as_json(schema: Mapping[str, Any] | SchemaVersion | str) -> Any:
    if isinstance(schema, SchemaVersion):
        return schema.raw
    if isinstance(schema, str):
        return json.loads(schema)
    return schema


def check_compatible(
    writer: Mapping[str, Any] | SchemaVersion | str,
    reader: Mapping[str, Any] | SchemaVersion | str,
) -> list[str]:
    """Problems a ``reader`` schema would have reading data written with ``writer``.

    Empty list = compatible. Implements the Avro specification's resolution rules (fields matched
    by name or alias, defaults for missing fields, numeric/string promotions, enum defaults,
    union branch resolution) and additionally flags a changed logical type or decimal scale,
    which would resolve but silently change meaning. Use ``check_compatible(old, new)`` for
    BACKWARD (new readers read old data) and ``check_compatible(new, old)`` for FORWARD.
    """
    problems: list[str] = []
    w_json, r_json = _as_json(writer), _as_json(reader)
    w_named: dict[str, Any] = {}
    r_named: dict[str, Any] = {}
    _collect_named(w_json, None, w_named)
    _collect_named(r_json, None, r_named)
    _check(w_json, r_json, "", None, None, w_named, r_named, problems, set())
    return problems


def check_release(schemas: SchemaSet) -> list[str]:
    """Release policy: every version of a record is FULL-compatible with every earlier one
    (new readers read old data and old readers read new data). Empty list = releasable."""
    problems: list[str] = []
    for name in schemas.names:
        versions = schemas.versions(name)
        for i, new in enumerate(versions):
            for old in versions[:i]:
                for p in check_compatible(old, new):
                    problems.append(f"{name} v{new.version} cannot read v{old.version}: {p}")
                for p in check_compatible(new, old):
                    problems.append(f"{name} v{old.version} cannot read v{new.version}: {p}")
    return problems


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _collect_named(schema: Any, namespace: str | None, out: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_named(branch, namespace, out)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        ns = schema.get("namespace", namespace)
        full = _fullname(schema["name"], ns)
        out[full] = schema
        ns = full.rsplit(".", 1)[0] if "." in full else ns
        for f in schema.get("fields", ()):
            _collect_named(f["type"], ns, out)
    elif kind == "array":
        _collect_named(schema["items"], namespace, out)
    elif kind == "map":
        _collect_named(schema["values"], namespace, out)
    elif isinstance(kind, (dict, list)):
        _collect_named(kind, namespace, out)


def _resolve_ref(schema: Any, namespace: str | None, named: dict[str, Any]) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return named.get(_fullname(schema, namespace), named.get(schema, schema))
    if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
        return schema["type"]
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = schema.get("type")
    return kind if isinstance(kind, str) else "union"


def _logical(schema: Any) -> tuple[Any, ...] | None:
    if isinstance(schema, dict) and "logicalType" in schema:
        lt = schema["logicalType"]
        if lt == "decimal":
            return (lt, schema.get("scale", 0))
        return (lt,)
    return None


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _check(
    w: Any,
    r: Any,
    path: str,
    w_ns: str | None,
    r_ns: str | None,
    w_named: dict[str, Any],
    r_named: dict[str, Any],
    problems: list[str],
    seen: set[tuple[str, str]],
) -> None:
    w = _resolve_ref(w, w_ns, w_named)
    r = _resolve_ref(r, r_ns, r_named)
    where = path or "<root>"
    wk, rk = _kind(w), _kind(r)

    if wk == "union":
        # Every branch the writer may have used must be readable.
        for branch in w:
            sub: list[str] = []
            _check(branch, r, path, w_ns, r_ns, w_named, r_named, sub, seen)
            problems.extend(sub)
        return
    if rk == "union":
        for branch in r:
            sub = []
            _check(w, branch, path, w_ns, r_ns, w_named, r_named, sub, seen)
            if not sub:
                return
        problems.append(f"{where}: writer type {wk} matches no branch of the reader union")
        return

    if wk in _PRIMITIVES or rk in _PRIMITIVES:
        if wk != rk and rk not in _PROMOTIONS.get(wk, frozenset()):
            problems.append(f"{where}: type changed from {wk} to {rk}")
            return
        if _logical(w) != _logical(r):
            problems.append(f"{where}: logical type changed from {_logical(w)} to {_logical(r)}")
        return

    if wk != rk:
        problems.append(f"{where}: type changed from {wk} to {rk}")
        return

    if wk in ("record", "error"):
        w_full = _fullname(w["name"], w.get("namespace", w_ns))
        r_full = _fullname(r["name"], r.get("namespace", r_ns))
        if _short(w_full) != _short(r_full) and _short(w_full) not in {
            _short(a) for a in r.get("aliases", ())
        }:
            problems.append(f"{where}: record name changed from {w_full} to {r_full}")
            return
        if (w_full, r_full) in seen:  # recursive types
            return
        seen = seen | {(w_full, r_full)}
        w_child_ns = w_full.rsplit(".", 1)[0] if "." in w_full else None
        r_child_ns = r_full.rsplit(".", 1)[0] if "." in r_full else None
        w_fields = {f["name"]: f for f in w["fields"]}
        for rf in r["fields"]:
            names = [rf["name"], *rf.get("aliases", ())]
            wf = next((w_fields[n] for n in names if n in w_fields), None)
            sub_path = f"{path}.{rf['name']}" if path else rf["name"]
            if wf is None:
                if "default" not in rf:
                    problems.append(
                        f"{sub_path}: reader field is missing in the writer and has no default"
                    )
                continue
            _check(
                wf["type"],
                rf["type"],
                sub_path,
                w_child_ns,
                r_child_ns,
                w_named,
                r_named,
                problems,
                seen,
            )
        return

    if wk == "enum":
        if _short(w["name"]) != _short(r["name"]):
            problems.append(f"{where}: enum name changed from {w['name']} to {r['name']}")
            return
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            problems.append(
                f"{where}: reader enum lacks symbols {missing} and has no default symbol"
            )
        return

    if wk == "fixed":
        if _short(w["name"]) != _short(r["name"]) or w["size"] != r["size"]:
            problems.append(f"{where}: fixed name or size changed")
        elif _logical(w) != _logical(r):
            problems.append(f"{where}: logical type changed from {_logical(w)} to {_logical(r)}")
        return

    if wk == "array":
        _check(w["items"], r["items"], f"{path}[]", w_ns, r_ns, w_named, r_named, problems, seen)
        return
    if wk == "map":
        _check(
            w["values"], r["values"], f"{path}{{}}", w_ns, r_ns, w_named, r_named, problems, seen
        )
        return
    problems.append(f"{where}: unsupported schema kind {wk}")  # pragma: no cover
