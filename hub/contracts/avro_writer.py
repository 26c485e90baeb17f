"""Avro binary writers generated once per schema: the hub's hot-path encoder for its own records.

fastavro's ``schemaless_writer`` interprets the schema for every record (a dict look-up and a
call per field, and for each ``["null", X]`` union a validation of the value against the
branches), which made the Avro encode of changed dossiers and alerts about a quarter of the
correlate step's CPU (issue 17). :func:`compile_writer` walks a *parsed* schema once and
generates one plain Python function per record type, with every field's encoding inlined (a
``["null", X]`` union is one ``is None`` test, a short string one ``append`` of its length).

The output is byte for byte fastavro's (``tests/unit/test_avro_writer.py`` compares both over
generated records). A schema with a construct not handled here (a union that is not
``["null", X]``, a recursive record) gets ``None`` from :func:`compile_writer`: the codec then
keeps using fastavro for it. Bad values raise ``TypeError``, ``ValueError``, ``AttributeError``,
``KeyError`` or ``OverflowError`` (the codec turns them into ``EncodeError``) as with fastavro;
the messages differ. The generated source contains only names derived from the schema (field
names are passed as constants, never pasted into code).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from fastavro.write import LOGICAL_WRITERS

from hub.contracts.avro_codegen import CodeGenerator, Unsupported

Writer = Callable[[bytearray, Any], None]

_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


def write_long(out: bytearray, n: int) -> None:
    """Zig-zag varint, as fastavro writes ``int`` and ``long``."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def compile_writer(schema: dict[str, Any], positional: bool = False) -> Writer | None:
    """A writer for a fastavro-parsed record schema, or None if fastavro must write it.

    ``positional``: every record (the top one and nested ones) is given as a sequence of its
    field values in schema order (a tuple) instead of a mapping, so a caller that holds the
    values need not build a dict per record only for the writer to look each key up again
    (the dossier of every changed address, issue 17). Same bytes; a short or long row is a
    ``ValueError``.
    """
    try:
        generator = _Generator(dict(schema.get("__named_schemas", {})), positional)
        compiled: Writer = generator.build(schema)
        return compiled
    except Unsupported:
        return None


def record_fields(schema: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Field names, in order, of every record type in a parsed schema, by short name.

    What a positional row (see :func:`compile_writer`) must follow: a caller compares this with
    the layout it builds its rows in, and writes mappings when they differ.
    """
    found: dict[str, tuple[str, ...]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind == "record":
                short = str(node["name"]).rsplit(".", 1)[-1]
                if short in found:
                    return
                found[short] = tuple(f["name"] for f in node["fields"])
                for f in node["fields"]:
                    walk(f["type"])
            elif kind == "array":
                walk(node["items"])
            elif kind == "map":
                walk(node["values"])

    walk(schema)
    return found


class _Generator(CodeGenerator):
    """Emits the source of one function per record type, then runs it once."""

    filename = "<avro-writer>"

    def __init__(self, named: dict[str, Any], positional: bool = False) -> None:
        super().__init__(
            named,
            {
                "write_long": write_long,
                "pack_double": struct.Struct("<d").pack,
                "pack_float": struct.Struct("<f").pack,
            },
        )
        self.positional = positional

    def record_lines(self, function: str, schema: dict[str, Any]) -> list[str]:
        if self.positional:
            values = [self.var() for _ in schema["fields"]]
            if not values:
                return [f"def {function}(out, record):", "    () = record"]
            lines = [f"def {function}(out, record):", f"    ({', '.join(values)},) = record"]
            for field, value in zip(schema["fields"], values, strict=True):
                lines.extend(self.emit(field["type"], value, "    "))
            return lines
        lines = [f"def {function}(out, record):", "    get = record.get"]
        for field in schema["fields"]:
            value = self.var()
            key, default = self.const(field["name"]), self.const(field.get("default"))
            lines.append(f"    {value} = get({key}, {default})")
            lines.extend(self.emit(field["type"], value, "    "))
        return lines

    def emit(self, schema: Any, value: str, indent: str) -> list[str]:
        """Lines that append the encoding of the variable ``value`` of type ``schema``."""
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self.primitive(schema, value, indent)
            if schema in self.named:
                return self.emit(self.named[schema], value, indent)
            raise Unsupported(f"unknown type {schema!r}")
        if isinstance(schema, list):
            if len(schema) != 2 or schema[0] != "null":
                raise Unsupported("only [null, X] unions")
            return [
                f"{indent}if {value} is None:",
                f"{indent}    out.append(0)",
                f"{indent}else:",
                f"{indent}    out.append(2)",  # branch 1, zig-zag encoded
                *self.emit(schema[1], value, indent + "    "),
            ]
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            return self.logical(schema, kind, logical, value, indent)
        if kind == "record":
            return [f"{indent}{self.record_function(schema)}(out, {value})"]
        if kind == "array":
            item = self.var()
            return [
                *self.block_count(value, indent),
                f"{indent}    for {item} in {value}:",
                *self.emit(schema["items"], item, indent + "        "),
                f"{indent}out.append(0)",
            ]
        if kind == "map":
            key, item = self.var(), self.var()
            return [
                *self.block_count(value, indent),
                f"{indent}    for {key}, {item} in {value}.items():",
                *self.primitive("string", key, indent + "        "),
                *self.emit(schema["values"], item, indent + "        "),
                f"{indent}out.append(0)",
            ]
        if kind == "enum":
            index = self.const({s: i for i, s in enumerate(schema["symbols"])})
            return [f"{indent}write_long(out, {index}[{value}])"]
        if kind == "fixed":
            return [f"{indent}out += {value}"]
        if kind in _PRIMITIVES:
            return self.primitive(kind, value, indent)
        raise Unsupported(f"type {kind!r}")

    def primitive(self, kind: str, value: str, indent: str) -> list[str]:
        if kind == "null":
            return []
        if kind == "boolean":
            return [f"{indent}out.append(1 if {value} else 0)"]
        if kind in ("int", "long"):
            # one byte for 0..63 (zig-zag 0..126); a non-number fails the comparison
            return [
                f"{indent}if 0 <= {value} < 64:",
                f"{indent}    out.append({value} << 1)",
                f"{indent}else:",
                f"{indent}    write_long(out, {value})",
            ]
        if kind == "double":
            return [f"{indent}out += pack_double({value})"]
        if kind == "float":
            return [f"{indent}out += pack_float({value})"]
        data, size = self.var(), self.var()
        lines = (
            [f"{indent}{data} = {value}.encode()"]
            if kind == "string"
            else [f"{indent}{data} = {value}"]
        )
        return [
            *lines,
            f"{indent}{size} = len({data})",
            f"{indent}if {size} < 64:",
            f"{indent}    out.append({size} << 1)",
            f"{indent}else:",
            f"{indent}    write_long(out, {size})",
            f"{indent}out += {data}",
        ]

    def block_count(self, value: str, indent: str) -> list[str]:
        """``if`` the array/map ``value`` is not empty: its item count (one block), then the
        loop the caller adds one level deeper; a count below 64 is one byte."""
        size = self.var()
        return [
            f"{indent}{size} = len({value})",
            f"{indent}if {size} > 0:",
            f"{indent}    if {size} < 64:",
            f"{indent}        out.append({size} << 1)",
            f"{indent}    else:",
            f"{indent}        write_long(out, {size})",
        ]

    def logical(
        self, schema: dict[str, Any], kind: str, logical: str, value: str, indent: str
    ) -> list[str]:
        prepare = LOGICAL_WRITERS.get(f"{kind}-{logical}")
        base: Any = {k: v for k, v in schema.items() if k != "logicalType"}
        if len(base) == 1:
            base = kind
        if prepare is None:  # fastavro ignores logical types it does not know
            return self.emit(base, value, indent)
        prepared = self.var()
        call = f"{self.const(prepare)}({value}, {self.const(schema)})"
        if kind in ("int", "long"):  # fastavro's preparers pass ints through as they are
            line = f"{indent}{prepared} = {value} if {value}.__class__ is int else {call}"
        else:
            line = f"{indent}{prepared} = {call}"
        return [line, *self.emit(base, prepared, indent)]
