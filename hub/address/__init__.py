"""Addresses: normalisation, the address key, the register, municipalities and resolution.

Pure domain: imports the standard library, pydantic, ``hub.contracts`` and ``hub.settings``; no
Kafka or Faust client, no ``hub.pipeline``/``hub.agents``. The ingest stage calls
:class:`hub.address.resolve.Ingestor`. See ``docs/addresses.md`` for the key format and the
normalisation rules.
"""

from hub.address.key import address_key, area_of, make_key, parse_key
from hub.address.normalise import AddressError, AddressParts, normalise_address

__all__ = [
    "AddressError",
    "AddressParts",
    "address_key",
    "area_of",
    "make_key",
    "normalise_address",
    "parse_key",
]
