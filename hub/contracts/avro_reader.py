"""Avro binary readers generated once per writer schema: the ingest stage's hot-path decoder.

fastavro's ``schemaless_reader`` reads through a file object, one ``read`` call per value, which
made the decode of an inbound CaseEvent about a fifth of the ingest stage's CPU (issue 17).
:func:`compile_reader` generates one plain Python function per record type that reads straight
from the bytes with an offset, fields inlined (a one-byte length or number is one index).

Only a fast path, never a second opinion: the generated reader is stricter than fastavro (it
raises on anything unusual: a negative enum index, a boolean byte other than 0/1, a varint over
64 bits, a count larger than the record), and the codec reads every record it raises on, or
that does not end at the last byte, with fastavro again, so errors and their messages are
fastavro's. Values are fastavro's: the same logical-type readers are called
(``tests/unit/test_avro_reader.py`` compares both over generated and corrupted records).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from fastavro.read import LOGICAL_READERS

from hub.contracts.avro_codegen import CodeGenerator, Unsupported

#: (bytes, offset of the body) -> (record, offset after it)
Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]


class Malformed(ValueError):
    """Something the generated reader does not take: fastavro reads the record instead."""


def read_long(raw: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos`` (at most 10 bytes, 64 bits) and the offset after it."""
    b = raw[pos]
    n = b & 0x7F
    shift = 7
    pos += 1
    while b & 0x80:
        if shift > 63:
            raise Malformed("varint too long")
        b = raw[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if n > 0xFFFFFFFFFFFFFFFF:
        raise Malformed("varint over 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def compile_reader(schema: dict[str, Any]) -> Reader | None:
    """A reader for a fastavro-parsed record schema, or None if only fastavro reads it."""
    try:
        compiled: Reader = _Generator(dict(schema.get("__named_schemas", {}))).build(schema)
        return compiled
    except Unsupported:
        return None


class _Generator(CodeGenerator):
    filename = "<avro-reader>"

    def __init__(self, named: dict[str, Any]) -> None:
        super().__init__(
            named,
            {
                "read_long": read_long,
                "Malformed": Malformed,
                "unpack_double": struct.Struct("<d").unpack_from,
                "unpack_float": struct.Struct("<f").unpack_from,
            },
        )

    def record_lines(self, function: str, schema: dict[str, Any]) -> list[str]:
        lines = [f"def {function}(raw, pos):", "    size = len(raw)"]
        items = []
        for field in schema["fields"]:
            value = self.var()
            lines.extend(self.emit(field["type"], value, "    "))
            items.append(f"{self.const(field['name'])}: {value}")
        lines.append(f"    return {{{', '.join(items)}}}, pos")
        return lines

    def long(self, target: str, indent: str) -> list[str]:
        byte = self.var()
        return [
            f"{indent}{byte} = raw[pos]",
            f"{indent}if {byte} < 128:",
            f"{indent}    {target} = ({byte} >> 1) ^ -({byte} & 1)",
            f"{indent}    pos += 1",
            f"{indent}else:",
            f"{indent}    {target}, pos = read_long(raw, pos)",
        ]

    def emit(self, schema: Any, target: str, indent: str) -> list[str]:
        """Lines that read a value of ``schema`` at ``pos`` into the variable ``target``."""
        if isinstance(schema, str):
            if schema in _PRIMITIVE_KINDS:
                return self.primitive(schema, target, indent)
            if schema in self.named:
                return self.emit(self.named[schema], target, indent)
            raise Unsupported(f"unknown type {schema!r}")
        if isinstance(schema, list):
            index = self.var()
            lines = self.long(index, indent)
            for i, branch in enumerate(schema):
                lines.append(f"{indent}{'if' if i == 0 else 'elif'} {index} == {i}:")
                lines.extend(self.emit(branch, target, indent + "    ") or [f"{indent}    pass"])
            lines += [f"{indent}else:", f"{indent}    raise Malformed('union index')"]
            return lines
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            reader = LOGICAL_READERS.get(f"{kind}-{logical}")
            base: Any = {k: v for k, v in schema.items() if k != "logicalType"}
            lines = self.emit(base if len(base) > 1 else kind, target, indent)
            if reader is not None:  # fastavro's own conversion, same arguments
                lines.append(
                    f"{indent}{target} = {self.const(reader)}({target}, {self.const(schema)}, None)"
                )
            return lines
        if kind == "record":
            return [f"{indent}{target}, pos = {self.record_function(schema)}(raw, pos)"]
        if kind in ("array", "map"):
            return self.blocks(schema, kind, target, indent)
        if kind == "enum":
            index = self.var()
            symbols = self.const(tuple(schema["symbols"]))
            return [
                *self.long(index, indent),
                f"{indent}if {index} < 0:",
                f"{indent}    raise Malformed('enum index')",
                f"{indent}{target} = {symbols}[{index}]",
            ]
        if kind == "fixed":
            return [
                f"{indent}if pos + {int(schema['size'])} > size:",
                f"{indent}    raise Malformed('short')",
                f"{indent}{target} = raw[pos:pos + {int(schema['size'])}]",
                f"{indent}pos += {int(schema['size'])}",
            ]
        if kind in _PRIMITIVE_KINDS:
            return self.primitive(kind, target, indent)
        raise Unsupported(f"type {kind!r}")

    def blocks(self, schema: dict[str, Any], kind: str, target: str, indent: str) -> list[str]:
        count, item, key, ignored = self.var(), self.var(), self.var(), self.var()
        inner = indent + "        "
        lines = [
            f"{indent}{target} = {'[]' if kind == 'array' else '{}'}",
            f"{indent}while True:",
            *self.long(count, indent + "    "),
            f"{indent}    if {count} == 0:",
            f"{indent}        break",
            f"{indent}    if {count} < 0:",
            f"{indent}        {count} = -{count}",
            *self.long(ignored, indent + "        "),
            f"{indent}    if {count} > size:",
            f"{indent}        raise Malformed('count')",
            f"{indent}    for _ in range({count}):",
        ]
        if kind == "array":
            lines += self.emit(schema["items"], item, inner)
            lines.append(f"{inner}{target}.append({item})")
        else:
            lines += self.primitive("string", key, inner)
            lines += self.emit(schema["values"], item, inner)
            lines.append(f"{inner}{target}[{key}] = {item}")
        return lines

    def primitive(self, kind: str, target: str, indent: str) -> list[str]:
        if kind == "null":
            return [f"{indent}{target} = None"]
        if kind == "boolean":
            return [
                f"{indent}{target} = raw[pos]",
                f"{indent}if {target} > 1:",
                f"{indent}    raise Malformed('boolean')",
                f"{indent}{target} = {target} == 1",
                f"{indent}pos += 1",
            ]
        if kind in ("int", "long"):
            return self.long(target, indent)
        if kind in ("float", "double"):
            width = 4 if kind == "float" else 8
            return [
                f"{indent}if pos + {width} > size:",
                f"{indent}    raise Malformed('short')",
                f"{indent}{target} = unpack_{kind}(raw, pos)[0]",
                f"{indent}pos += {width}",
            ]
        length, end = self.var(), self.var()
        value = f"raw[pos:{end}].decode()" if kind == "string" else f"raw[pos:{end}]"
        return [
            *self.long(length, indent),
            f"{indent}{end} = pos + {length}",
            f"{indent}if {length} < 0 or {end} > size:",
            f"{indent}    raise Malformed('length')",
            f"{indent}{target} = {value}",
            f"{indent}pos = {end}",
        ]


_PRIMITIVE_KINDS = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
