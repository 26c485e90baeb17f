"""Checks every way in runs before it says "accepted", and log-safe field names.

Two jobs, shared by the HTTP ingress and the file import:

- :func:`check_case_event`: the contract (``parse_case_event_json``) *and* the pure address
  normalisation the ingest stage runs next (:class:`hub.address.resolve.Ingestor`, without a
  register). Without the second step an event with a huisletter ``"AB"`` was answered 202 and
  dead-lettered later, where the sender never looks; now it is a 422 / a reject line naming
  the field. A throwaway ``Ingestor`` per event keeps the check identical to the stage's (same
  code, same order) and stateless here; it costs about a microsecond.
- :func:`log_safe_fields`: a field path from a rejection may be a key the sender invented (an
  unknown field is reported under its own name), so it can carry a newline that forges a log
  line, or a name. Only paths that exist in the contract model are logged; the rest are
  counted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import BaseModel

from hub.address.resolve import Ingestor
from hub.contracts.decode import Rejection, parse_case_event_json
from hub.contracts.events import CaseEvent

#: The reason code and stage the ingest stage gives an address it cannot normalise.
ADDRESS_REASON = "INVALID_ADDRESS"
ADDRESS_STAGE = "resolve"
#: Map-valued fields: their keys are the sender's, so only the field itself is a known path.
_MAP_FIELDS = ("attributes", "kenmerken")


def _model_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        names = {name} | ({info.alias} if info.alias else set())
        for field in names:
            path = f"{prefix}{field}"
            out.add(path)
            for arg in (info.annotation, *get_args(info.annotation)):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    out |= _model_paths(arg, f"{path}.")
    return out


@functools.cache
def known_field_paths(model: type[BaseModel] = CaseEvent) -> frozenset[str]:
    """Every dotted field path of ``model`` (aliases included), from the model itself so a new
    contract field is known without touching this module."""
    return frozenset(_model_paths(model))


def log_safe_fields(fields: Iterable[str | None], model: type[BaseModel] = CaseEvent) -> str:
    """Known field paths, sorted and comma-joined, plus ``<n unknown fields>`` for the rest.

    ``attributes.<key>`` is logged as ``attributes`` (the key is the sender's text).
    """
    known = known_field_paths(model)
    shown: set[str] = set()
    unknown = 0
    for field in fields:
        if field is None:
            continue
        head = next((m for m in _MAP_FIELDS if field.startswith(f"{m}.")), None)
        if head is not None and head in known:
            shown.add(head)
        elif field in known:
            shown.add(field)
        else:
            unknown += 1
    parts = sorted(shown)
    if unknown:
        parts.append(f"<{unknown} unknown field{'s' if unknown > 1 else ''}>")
    return ",".join(parts)


def check_address(event: CaseEvent) -> Rejection | None:
    """The ingest stage's pure address normalisation (no register lookup): a Rejection in the
    shape of the stage's dead letter, or None when the address would be accepted."""
    error = Ingestor().ingest(event, 0).error
    if error is None:
        return None
    return Rejection(
        reason_code=ADDRESS_REASON,
        field=error.field,
        message=str(error),
        stage=ADDRESS_STAGE,
        exception_class="hub.address.normalise.AddressError",
        details=(str(error),),
    )


def _integral_huisnummer(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``"huisnummer": 12.0`` is the JSON number 12 (JSON Schema's ``integer`` includes it, and
    JSON encoders may write it so): pass it on as the integer the contract expects."""
    address = data.get("address")
    number = address.get("huisnummer") if isinstance(address, Mapping) else None
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        assert isinstance(address, Mapping)
        return {**data, "address": {**address, "huisnummer": int(number)}}
    return data


def check_case_event(data: bytes | str | Mapping[str, Any]) -> CaseEvent | Rejection:
    """Contract validation, then address normalisation: what the hub will accept later."""
    if isinstance(data, Mapping):
        data = _integral_huisnummer(data)
    result = parse_case_event_json(data)
    if isinstance(result, Rejection):
        return result
    return check_address(result) or result
