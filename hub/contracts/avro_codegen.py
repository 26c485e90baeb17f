"""What the generated Avro reader and writer share: one function per record type, as source.

:mod:`hub.contracts.avro_reader` and :mod:`hub.contracts.avro_writer` each emit the body of a
record's function (reading from bytes, or appending to a bytearray); naming, constants, the
record bookkeeping (each named record once, recursion refused) and compiling live here.
"""

from __future__ import annotations

from typing import Any


class Unsupported(Exception):
    """A schema construct the generated code leaves to fastavro."""


class CodeGenerator:
    """Collects the sources of record functions, then compiles them once."""

    filename = "<avro>"

    def __init__(self, named: dict[str, Any], constants: dict[str, Any]) -> None:
        self.named = named
        self.constants = dict(constants)
        self.functions: dict[str, str] = {}  # record full name -> function name
        self.sources: list[str] = []
        self.open: set[str] = set()
        self.counter = 0

    def build(self, schema: dict[str, Any]) -> Any:
        if schema.get("type") != "record":
            raise Unsupported("not a record")
        entry = self.record_function(schema)
        namespace = dict(self.constants)
        exec(compile("\n\n".join(self.sources), self.filename, "exec"), namespace)
        return namespace[entry]

    def const(self, value: Any) -> str:
        self.counter += 1
        name = f"_c{self.counter}"
        self.constants[name] = value
        return name

    def var(self) -> str:
        self.counter += 1
        return f"_v{self.counter}"

    def record_function(self, schema: dict[str, Any]) -> str:
        """The name of the function of record ``schema``, its source emitted once."""
        name = schema["name"]
        if name in self.functions:
            return self.functions[name]
        if name in self.open:
            raise Unsupported(f"recursive record {name}")
        self.open.add(name)
        self.counter += 1
        function = f"_record{self.counter}"
        self.sources.append("\n".join(self.record_lines(function, schema)))
        self.open.discard(name)
        self.functions[name] = function
        return function

    def record_lines(self, function: str, schema: dict[str, Any]) -> list[str]:
        """The source lines of ``def function(...)`` for record ``schema``."""
        raise NotImplementedError
