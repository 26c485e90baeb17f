"""Contact details out of published records (issue 15, ``HUB_PUBLISH_CONTACT_DETAILS=false``).

Dossiers and alerts carry the lead case's contact (name, phone, e-mail: personal data) so that
operations can route a resident to one counsellor. Readers that only route (which agency, which
role leads) do not need them. With the option off, every published ``AddressDossier`` and
``Alert`` record has these three fields null; role, source, case and routing stay. The worker's
own state (the dossier table and its changelog, readable by ``hub-worker`` only) keeps them, so
turning the option on again republishes them on the next change of a dossier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CONTACT_FIELDS = ("contact_name", "contact_phone", "contact_email")


def _blank(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: (None if k in CONTACT_FIELDS else v) for k, v in item.items()}
    return item


def without_contact_details(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of an ``AddressDossier`` or ``Alert`` record with name/phone/e-mail set to None
    wherever they occur (the record itself, ``lead``, each of ``cases``)."""
    out: dict[str, Any] = _blank(record)
    for name in ("lead", "cases"):
        value = out.get(name)
        if isinstance(value, list):
            out[name] = [_blank(v) for v in value]
        elif isinstance(value, dict):
            out[name] = _blank(value)
    return out


def redacting(
    encode: Callable[[str, dict[str, Any]], bytes],
) -> Callable[[str, dict[str, Any]], bytes]:
    """``encode`` that drops contact details from every record first."""

    def encode_redacted(schema: str, record: dict[str, Any]) -> bytes:
        return encode(schema, without_contact_details(record))

    return encode_redacted
