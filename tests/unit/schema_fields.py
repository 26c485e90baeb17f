"""Field names of the shipped Avro records, so record-shape tests compare against the schema."""

from __future__ import annotations

import json
from typing import Any

from hub.contracts.avro import schema_dir


def _record(schema: Any) -> dict[str, Any] | None:
    if isinstance(schema, dict) and schema.get("type") == "record":
        return schema
    if isinstance(schema, dict) and schema.get("type") == "array":
        return _record(schema["items"])
    if isinstance(schema, list):
        return next((r for r in map(_record, schema) if r is not None), None)
    return None


def record_fields(name: str, *path: str) -> set[str]:
    """Fields of record ``name`` v1, or of the nested record reached through ``path``."""
    schema: Any = json.loads((schema_dir() / f"{name}.v1.avsc").read_text())
    for field in path:
        record = _record(schema)
        assert record is not None
        schema = next(f["type"] for f in record["fields"] if f["name"] == field)
    record = _record(schema)
    assert record is not None, (name, path)
    return {f["name"] for f in record["fields"]}
