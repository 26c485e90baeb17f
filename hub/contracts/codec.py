"""Avro binary codec: bytes in, bytes out, in two framings told apart by the first byte.

* **Single-object encoding** (Avro specification, the default): ``C3 01`` + the writer schema's
  8-byte CRC-64-AVRO fingerprint (little endian) + the Avro body. The fingerprint is looked up
  among the released schemas in ``schemas/avro/``; data from an older version is resolved to the
  current version of that record.
* **Confluent Schema Registry framing** (when a registry is configured): ``00`` + 4-byte big-endian
  schema id + the Avro body. The id is resolved through the registry once and cached.

Hot-path notes: every (writer, reader) pair is parsed once and kept in a dict keyed by the raw
fingerprint bytes or the schema id, so a decode is one dict lookup plus
``fastavro.schemaless_reader`` with pre-parsed schemas. When the writer is the current schema no
reader schema is passed at all (no resolution work). ``encode`` with a current schema runs a
writer generated once for it (:mod:`hub.contracts.avro_writer`, same bytes as fastavro, about a
third of the CPU); a schema the generator does not handle is written by fastavro. Likewise a
decode without resolution first tries a reader generated for the writer schema
(:mod:`hub.contracts.avro_reader`, same values); a record it cannot read, or that does not end at
the last byte, is read by fastavro, so errors are fastavro's.

What ``decode`` returns: plain dicts as fastavro produces them: ``timestamp-millis`` as an aware
``datetime`` in UTC, ``date`` as ``datetime.date``, ``decimal`` as ``Decimal`` with the schema's
scale. ``encode`` accepts ints (epoch ms, days) as well as ``datetime``/``date``; a naive
``datetime`` is taken as UTC by fastavro, so write aware datetimes or ints.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from io import BytesIO
from typing import Any, Literal, Protocol, cast

from fastavro import schemaless_reader, schemaless_writer

from hub.contracts.avro import SchemaSet, SchemaVersion, default_schema_set, load_schema_version
from hub.contracts.avro_reader import Reader, compile_reader
from hub.contracts.avro_writer import Writer, compile_writer, record_fields
from hub.contracts.enums import RejectReason

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SO_HEADER_LEN = 10  # C3 01 + 8-byte fingerprint
_CF_HEADER_LEN = 5  # 00 + 4-byte schema id
_NOT_COMPILED: Any = object()

Framing = Literal["single_object", "confluent"]

# Reason codes of decode failures: members of the one RejectReason list, so they cannot drift.
UNDECODABLE = RejectReason.UNDECODABLE
UNKNOWN_SCHEMA = RejectReason.UNKNOWN_SCHEMA
INCOMPATIBLE_SCHEMA = RejectReason.INCOMPATIBLE_SCHEMA
WRONG_RECORD_TYPE = RejectReason.WRONG_RECORD_TYPE


class DecodeError(Exception):
    """The bytes are not a record we can read. Carries a reason code; never a transient fault."""

    def __init__(self, reason: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.cause = cause

    @property
    def exception_class(self) -> str:
        cause = self.cause or self
        return f"{type(cause).__module__}.{type(cause).__qualname__}"


class EncodeError(ValueError):
    """A record does not fit its schema (a bug in the producer, not bad input)."""


class SchemaRegistryUnavailable(Exception):
    """The registry could not be asked (network, auth). Transient: retry, do not dead-letter."""


class SchemaRegistry(Protocol):
    """What the codec needs from a registry; ``get_schema_str`` raises KeyError if unknown."""

    def register(self, subject: str, schema_str: str) -> int: ...

    def get_schema_str(self, schema_id: int) -> str: ...


class InMemorySchemaRegistry:
    """A registry in a dict: tests and offline tools. Same ids for the same schema text."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, str] = {}
        self._subjects: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def register(self, subject: str, schema_str: str) -> int:
        with self._lock:
            schema_id = self._ids.get(schema_str)
            if schema_id is None:
                schema_id = len(self._schemas) + 1
                self._ids[schema_str] = schema_id
                self._schemas[schema_id] = schema_str
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def get_schema_str(self, schema_id: int) -> str:
        return self._schemas[schema_id]


class ConfluentSchemaRegistry:
    """Adapter over ``confluent_kafka.schema_registry``'s client (imported lazily).

    ``url`` may be ``mock://<scope>`` for the library's in-process mock. Needs the
    ``confluent-kafka[schemaregistry]`` extra (authlib, attrs, cachetools, httpx).
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str, **conf: Any) -> ConfluentSchemaRegistry:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        # new_client returns the in-process MockSchemaRegistryClient for mock:// URLs.
        return cls(SchemaRegistryClient.new_client({"url": url, **conf}))

    def register(self, subject: str, schema_str: str) -> int:
        from confluent_kafka.schema_registry import Schema

        try:
            return int(self._client.register_schema(subject, Schema(schema_str, "AVRO")))
        except Exception as exc:
            raise SchemaRegistryUnavailable(f"cannot register {subject}: {exc}") from exc

    def get_schema_str(self, schema_id: int) -> str:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise KeyError(schema_id) from exc
            raise SchemaRegistryUnavailable(f"schema id {schema_id}: {exc}") from exc
        except Exception as exc:
            raise SchemaRegistryUnavailable(f"schema id {schema_id}: {exc}") from exc
        if schema is None:  # the mock returns None for unknown ids in some versions
            raise KeyError(schema_id)
        return str(schema.schema_str)


def record_name_subject(fullname: str) -> str:
    """Confluent RecordNameStrategy: the subject is the record's full name.

    The codec does not know the topic, and one record type may travel on several topics
    (Alert on hub.contact-routing and hub.signals), so the record name is the natural subject.
    """
    return fullname


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How to read one writer schema: pre-parsed writer and (if different) reader schema."""

    name: str  # short record name of the reader, e.g. "CaseEvent"
    writer: dict[str, Any]
    reader: dict[str, Any] | None  # None: writer is the current schema, no resolution
    writer_version: int | None  # None for a registry schema that is not a released version
    # generated reader of ``writer`` when no resolution is needed (hub.contracts.avro_reader)
    fast: Reader | None = field(default=None, compare=False)


class AvroCodec:
    """Encode/decode hub records. Thread-safe for decoding; caches grow only with new schemas."""

    def __init__(
        self,
        schemas: SchemaSet | None = None,
        registry: SchemaRegistry | None = None,
        framing: Framing | None = None,
        subject_for: Callable[[str], str] = record_name_subject,
    ) -> None:
        self.schemas = schemas or default_schema_set()
        self.registry = registry
        self.framing: Framing = framing or (
            "confluent" if registry is not None else "single_object"
        )
        if self.framing == "confluent" and registry is None:
            raise ValueError("confluent framing needs a schema registry")
        self._subject_for = subject_for
        self._fp_plans: dict[bytes, ReadPlan] = {}
        for sv in self.schemas:
            self._fp_plans[sv.fingerprint] = self._plan_for(sv)
        self._id_plans: dict[int, ReadPlan] = {}
        self._ids: dict[str, int] = {}  # short name -> registered schema id of the current version
        self._headers: dict[str, bytes] = {
            name: SINGLE_OBJECT_MAGIC + self.schemas.current(name).fingerprint
            for name in self.schemas.names
        }
        self._writers: dict[str, dict[str, Any]] = {
            name: self.schemas.current(name).parsed for name in self.schemas.names
        }
        # generated writers of the current schemas, made on first use (None: fastavro writes)
        self._compiled: dict[str, Writer | None] = {}

    def _plan_for(self, writer: SchemaVersion) -> ReadPlan:
        current = self.schemas.current(writer.name)
        reader = None if current.canonical == writer.canonical else current.parsed
        fast = compile_reader(writer.parsed) if reader is None else None
        return ReadPlan(writer.name, writer.parsed, reader, writer.version, fast)

    # ---------------------------------------------------------------- encode

    def encode(self, name: str, record: Mapping[str, Any], framing: Framing | None = None) -> bytes:
        """Encode ``record`` with the current schema of ``name`` (short record name)."""
        try:
            schema = self._writers[name]
        except KeyError:
            raise EncodeError(f"unknown record {name!r}") from None
        framing = framing or self.framing
        if framing == "single_object":
            header = self._headers[name]
        else:
            header = CONFLUENT_MAGIC + self._schema_id(name).to_bytes(4, "big")
        writer = self._compiled.get(name, _NOT_COMPILED)
        if writer is _NOT_COMPILED:
            writer = self._compiled[name] = compile_writer(schema)
        if writer is not None:  # generated for this schema (hub.contracts.avro_writer)
            return _write(name, writer, header, record)
        out = BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, schema, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{name}: {exc}") from exc
        return out.getvalue()

    def row_encoder(
        self, name: str, layout: Mapping[str, Sequence[str]]
    ) -> Callable[[Sequence[Any]], bytes] | None:
        """``encode`` for records given as rows (tuples of field values in schema order), or
        None when that does not apply.

        ``layout`` is the caller's row layout: short record name -> field names, for the record
        and every record nested in it. The encoder exists only when the current schema of
        ``name`` has exactly those records and fields in that order and the generated writer
        handles it; otherwise (an evolved schema, an unsupported construct) the caller keeps
        building mappings for :meth:`encode`. Same bytes and framing as :meth:`encode`; a value
        that does not fit is an :class:`EncodeError`. Saves the dict per record and its key
        look-ups (the dossier of every changed address, issue 17).
        """
        schema = self._writers.get(name)
        if schema is None:
            return None
        if record_fields(schema) != {k: tuple(v) for k, v in layout.items()}:
            return None
        writer = compile_writer(schema, positional=True)
        if writer is None:
            return None
        single_object = self.framing == "single_object"
        header = self._headers[name]

        def encode_row(row: Sequence[Any]) -> bytes:
            framed = (
                header
                if single_object
                else CONFLUENT_MAGIC + self._schema_id(name).to_bytes(4, "big")
            )
            return _write(name, writer, framed, row)

        return encode_row

    def encode_with(
        self, writer: SchemaVersion, record: Mapping[str, Any], framing: Framing | None = None
    ) -> bytes:
        """Encode with a specific (e.g. older) schema version: tests and replay tools."""
        framing = framing or self.framing
        out = BytesIO()
        if framing == "single_object":
            out.write(SINGLE_OBJECT_MAGIC + writer.fingerprint)
        else:
            if self.registry is None:
                raise ValueError("confluent framing needs a schema registry")
            subject = self._subject_for(writer.fullname)
            out.write(CONFLUENT_MAGIC)
            out.write(self.registry.register(subject, writer.schema_str).to_bytes(4, "big"))
        try:
            schemaless_writer(out, writer.parsed, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{writer.name} v{writer.version}: {exc}") from exc
        return out.getvalue()

    def _schema_id(self, name: str) -> int:
        schema_id = self._ids.get(name)
        if schema_id is None:
            assert self.registry is not None
            current = self.schemas.current(name)
            schema_id = self.registry.register(
                self._subject_for(current.fullname), current.schema_str
            )
            self._ids[name] = schema_id
            self._id_plans.setdefault(schema_id, self._plan_for(current))
        return schema_id

    # ---------------------------------------------------------------- decode

    def plan(self, raw: bytes) -> tuple[ReadPlan, int]:
        """The read plan for ``raw`` and the offset of the Avro body. Raises DecodeError."""
        if len(raw) >= _SO_HEADER_LEN and raw[0] == 0xC3 and raw[1] == 0x01:
            plan = self._fp_plans.get(raw[2:10])
            if plan is None:
                raise DecodeError(
                    UNKNOWN_SCHEMA,
                    f"writer schema fingerprint {raw[2:10].hex()} is not a released schema "
                    "(a newer version? ship its .avsc, then hub dlq replay --reason "
                    "UNKNOWN_SCHEMA)",
                )
            return plan, _SO_HEADER_LEN
        if len(raw) >= _CF_HEADER_LEN and raw[0] == 0x00:
            schema_id = int.from_bytes(raw[1:5], "big")
            plan = self._id_plans.get(schema_id)
            if plan is None:
                plan = self._plan_for_id(schema_id)
            return plan, _CF_HEADER_LEN
        if not raw:
            raise DecodeError(UNDECODABLE, "empty value")
        raise DecodeError(
            UNDECODABLE,
            f"unknown framing (first bytes {bytes(raw[:2]).hex()}; "
            "expected c301 single-object or 00 schema-registry)",
        )

    def _plan_for_id(self, schema_id: int) -> ReadPlan:
        if self.registry is None:
            raise DecodeError(
                UNKNOWN_SCHEMA,
                f"schema-registry framing (schema id {schema_id}) but no registry is configured",
            )
        try:
            schema_str = self.registry.get_schema_str(schema_id)
        except KeyError:
            raise DecodeError(
                UNKNOWN_SCHEMA, f"schema id {schema_id} unknown to the registry"
            ) from None
        try:
            writer = load_schema_version(json.loads(schema_str), 0)
        except Exception as exc:  # a registry may hold anything
            raise DecodeError(
                UNKNOWN_SCHEMA, f"schema id {schema_id}: unreadable schema", exc
            ) from exc
        released = self.schemas.by_fingerprint(writer.fingerprint)
        if released is not None:
            plan = self._fp_plans[released.fingerprint]
        elif writer.name in self.schemas.names:
            current = self.schemas.current(writer.name)
            plan = ReadPlan(writer.name, writer.parsed, current.parsed, None)
        else:
            raise DecodeError(
                UNKNOWN_SCHEMA, f"schema id {schema_id} is a {writer.fullname}, not a hub record"
            )
        self._id_plans[schema_id] = plan
        return plan

    def decode(self, raw: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode one value into (short record name, dict). Raises :class:`DecodeError` only."""
        plan, offset = self.plan(raw)
        if expected is not None and plan.name != expected:
            raise DecodeError(WRONG_RECORD_TYPE, f"expected a {expected}, got a {plan.name}")
        return plan.name, _read(raw, offset, plan)

    def decode_batch(
        self, raws: Sequence[bytes], expected: str | None = None
    ) -> list[dict[str, Any] | DecodeError]:
        """Decode many values; a failure becomes a DecodeError in its slot, never raised.

        With ``expected`` set, every success is a record of that type.
        """
        out: list[dict[str, Any] | DecodeError] = []
        append = out.append
        fp_plans = self._fp_plans
        for raw in raws:
            try:
                # Inline fast path for the common case: single-object, released schema.
                if len(raw) >= _SO_HEADER_LEN and raw[0] == 0xC3 and raw[1] == 0x01:
                    plan = fp_plans.get(raw[2:10])
                    if plan is None:
                        plan, offset = self.plan(raw)
                    else:
                        offset = _SO_HEADER_LEN
                else:
                    plan, offset = self.plan(raw)
                if expected is not None and plan.name != expected:
                    raise DecodeError(
                        WRONG_RECORD_TYPE, f"expected a {expected}, got a {plan.name}"
                    )
                append(_read(raw, offset, plan))
            except DecodeError as exc:
                append(_as_value(exc))
        return out

    def iter_decode(
        self, raws: Iterable[bytes], expected: str | None = None
    ) -> Iterable[dict[str, Any] | DecodeError]:
        for raw in raws:
            try:
                yield self.decode(raw, expected)[1]
            except DecodeError as exc:
                yield _as_value(exc)


def _as_value(exc: DecodeError) -> DecodeError:
    """A decode error returned as a value, without the tracebacks of it and its causes.

    A traceback holds the frames up to the batch call, and with them the batch's lists, which
    hold the error: a reference cycle. One bad record in a poll batch then left every object
    of the batch (decoded records, events, models) to the cyclic GC instead of reference
    counting (issue 17). Type, reason and message stay; nothing reads the traceback.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        error.__traceback__ = None
        for linked in (getattr(error, "cause", None), error.__cause__, error.__context__):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return exc


def _read(raw: bytes, offset: int, plan: ReadPlan) -> dict[str, Any]:
    fast = plan.fast
    if fast is not None:
        try:
            fast_record, end = fast(raw, offset)
        except Exception:  # fastavro reads it below and names the error
            pass
        else:
            if end == len(raw):
                return fast_record
    buf = BytesIO(raw)
    buf.seek(offset)
    try:
        record = schemaless_reader(buf, plan.writer, plan.reader)
    except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ...
        name = type(exc).__name__
        if name == "SchemaResolutionError":
            raise DecodeError(INCOMPATIBLE_SCHEMA, f"{plan.name}: {exc}", exc) from exc
        raise DecodeError(UNDECODABLE, f"{plan.name}: corrupt Avro body ({name})", exc) from exc
    if buf.tell() != len(raw):
        raise DecodeError(UNDECODABLE, f"{plan.name}: {len(raw) - buf.tell()} trailing bytes")
    return cast(dict[str, Any], record)  # the reader schema is a record


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_epoch_ms(value: int | datetime) -> int:
    """A decoded timestamp-millis (aware datetime) or an int -> epoch milliseconds, exactly."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


@lru_cache(maxsize=1)
def get_codec() -> AvroCodec:
    """The process-wide codec from settings: registry framing iff ``HUB_SCHEMA_REGISTRY_URL``."""
    from hub.settings import get_settings

    url = get_settings().schema_registry_url
    if url:
        return AvroCodec(registry=ConfluentSchemaRegistry.from_url(url), framing="confluent")
    return AvroCodec()


def _write(
    name: str, writer: Callable[[bytearray, Any], None], header: bytes, record: Any
) -> bytes:
    """``header`` + a generated writer's bytes for ``record``; a bad value is an EncodeError."""
    buf = bytearray(header)
    try:
        writer(buf, record)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, struct.error) as exc:
        raise EncodeError(f"{name}: {exc}") from exc
    return bytes(buf)
