"""Addresses: normalisation, the address key, the register, municipalities and resolution.

Pure Python (no Kafka): the ingest stage calls :class:`hub.address.resolve.Ingestor`.
See ``docs/addresses.md`` for the key format and the normalisation rules.
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
