"""Faust codecs for the hub's Avro records (kept out of ``hub.contracts``, which is Faust-free).

``register_codecs()`` registers, in Faust's global codec registry:

* ``hub_avro``: decodes any hub record in either framing (the first byte tells); encodes a
  mapping by recognising its record type from a field only that type has (``event_id`` ->
  CaseEvent, ``fingerprint`` -> Alert, ``nummeraanduiding_ids`` -> AddressDossier,
  ``exception_class`` -> DeadLetter).
* ``hub_avro_<name>`` (``hub_avro_caseevent``, ``hub_avro_alert``, ``hub_avro_addressdossier``,
  ``hub_avro_deadletter``): encode/decode exactly that record; decoding anything else raises.

Use e.g. ``app.topic("hub.signals", value_type=Alert, value_serializer="hub_avro_alert")``.
Faust adds a ``__faust`` metadata key to model representations; fastavro ignores unknown keys.
Decode errors raise :class:`hub.contracts.codec.DecodeError`: agents that consume external data
should read raw bytes and use ``hub.contracts.decode`` (which never raises) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.serializers import codecs

from hub.contracts.avro import ADDRESS_DOSSIER, ALERT, CASE_EVENT, DEAD_LETTER
from hub.contracts.codec import AvroCodec, EncodeError, get_codec

CODEC_NAME = "hub_avro"
_MARKERS: tuple[tuple[str, str], ...] = (
    ("event_id", CASE_EVENT),
    ("fingerprint", ALERT),
    ("nummeraanduiding_ids", ADDRESS_DOSSIER),
    ("exception_class", DEAD_LETTER),
)


def record_name_of(obj: Mapping[str, Any]) -> str:
    """Which hub record a mapping is, from a field unique to that record."""
    for marker, name in _MARKERS:
        if marker in obj:
            return name
    raise EncodeError(f"cannot tell which hub record this is (fields: {sorted(obj)[:8]})")


class HubAvroCodec(codecs.Codec):
    """Avro codec for Faust; ``record`` pins the record type, None recognises it per value."""

    def __init__(self, record: str | None = None, avro: AvroCodec | None = None, **kw: Any) -> None:
        super().__init__(record=record, avro=avro, **kw)
        self._record = record
        self._avro = avro

    @property
    def avro(self) -> AvroCodec:
        return self._avro or get_codec()

    def _dumps(self, obj: Any) -> bytes:
        if hasattr(obj, "to_representation"):
            obj = obj.to_representation()
        if not isinstance(obj, Mapping):
            raise EncodeError(f"expected a mapping, got {type(obj).__name__}")
        name = self._record or record_name_of(obj)
        return self.avro.encode(name, obj)

    def _loads(self, s: bytes) -> Any:
        return self.avro.decode(s, self._record)[1]


def register_codecs(avro: AvroCodec | None = None) -> None:
    """Register ``hub_avro`` and one ``hub_avro_<name>`` per record (idempotent)."""
    codecs.register(CODEC_NAME, HubAvroCodec(None, avro))
    for name in (CASE_EVENT, ALERT, ADDRESS_DOSSIER, DEAD_LETTER):
        codecs.register(f"{CODEC_NAME}_{name.lower()}", HubAvroCodec(name, avro))


register_codecs()
