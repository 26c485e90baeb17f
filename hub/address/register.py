"""The address register: nummeraanduiding ids, address keys, buildings (pand) and municipalities.

Correlation needs the building-to-address relation (strengthening works per building, damage per
address) and events often carry only an id. The register learns from every event that carries
more than one identifier and can be seeded from a BAG extract (CSV).

Everything it knows is expressible as small, idempotent *facts* (JSON-able ``dict[str, str]``):

* ``{"fact": "nummeraanduiding", "nummeraanduiding_id": ..., "address_key": ...}``
* ``{"fact": "pand", "pand_id": ..., "address_key": ...}``  (the address lies in that building)
* ``{"fact": "gemeente", "address_key": ..., "gemeentecode": ...}``  (current municipality)

:meth:`AddressRegister.learn` returns the facts that were new, so the pipeline can publish them
to the compacted ``hub.address-register`` topic (Kafka key: :func:`fact_key`) and other workers
can :meth:`AddressRegister.apply_fact` them. Each fact stands alone, so applying them in any order
across keys converges; per fact key the latest wins (which compaction preserves).

Memory (issue 17: a worker must hold 1M addresses in well under 1 GiB): one dict key -> the
address packed into one int (one 16-digit id, one pand, a municipality index; see ``_Packed``) or,
for any other shape, a small slotted entry; one dict id -> key, one dict pand -> key(s); key
strings are shared between the three. BAG ids (16 digits) are held as ints and a field with one
value holds it bare: about 0.26 kB per address (0.5 before). Callers still see strings and tuples.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hub.address.key import make_key, parse_key
from hub.address.normalise import (
    AddressError,
    normalise_address,
    normalise_gemeentecode,
    normalise_nummeraanduiding_id,
    normalise_pand_id,
)

log = logging.getLogger(__name__)

Fact = dict[str, str]

FACT_NUMMERAANDUIDING = "nummeraanduiding"
FACT_PAND = "pand"
FACT_GEMEENTE = "gemeente"

CSV_COLUMNS = (
    "nummeraanduiding_id",
    "postcode",
    "huisnummer",
    "huisletter",
    "huisnummertoevoeging",
    "pand_id",
    "gemeentecode",
)
MAX_BAD_ROWS_KEPT = 1000


def nummeraanduiding_fact(nummeraanduiding_id: str, address_key: str) -> Fact:
    return {
        "fact": FACT_NUMMERAANDUIDING,
        "nummeraanduiding_id": nummeraanduiding_id,
        "address_key": address_key,
    }


def pand_fact(pand_id: str, address_key: str) -> Fact:
    return {"fact": FACT_PAND, "pand_id": pand_id, "address_key": address_key}


def gemeente_fact(address_key: str, gemeentecode: str) -> Fact:
    return {"fact": FACT_GEMEENTE, "address_key": address_key, "gemeentecode": gemeentecode}


def fact_key(fact: Fact) -> str:
    """The Kafka key of a fact on the compacted topic: compaction keeps the latest per key."""
    kind = fact["fact"]
    if kind == FACT_NUMMERAANDUIDING:
        return f"nummeraanduiding:{fact['nummeraanduiding_id']}"
    if kind == FACT_PAND:
        return f"pand:{fact['pand_id']}:{fact['address_key']}"
    if kind == FACT_GEMEENTE:
        return f"gemeente:{fact['address_key']}"
    raise ValueError(f"unknown fact kind {kind!r}")


# A BAG id as stored: an int for the normal 16-digit id (leading zeros restored on the way out),
# the string itself for anything else (learn() trusts its caller; nothing is ever lost).
_Id = int | str
# One field of an entry: None (no value), one value bare, or a tuple of two or more in order.
_Many = _Id | tuple[_Id, ...] | None


def _pack(bag_id: str) -> _Id:
    if len(bag_id) == 16 and bag_id.isascii() and bag_id.isdigit():
        return int(bag_id)
    return bag_id


def _unpack(stored: _Id) -> str:
    return f"{stored:016d}" if type(stored) is int else stored  # type: ignore[return-value]


def _values(field_: _Many) -> tuple[_Id, ...]:
    if field_ is None:
        return ()
    if type(field_) is tuple:
        return field_
    return (field_,)  # type: ignore[return-value]


def _with(field_: _Many, value: _Id) -> _Many:
    if field_ is None:
        return value
    if type(field_) is tuple:
        return (*field_, value)
    return (field_, value)  # type: ignore[return-value]


def _without(field_: _Many, value: _Id) -> _Many:
    kept = tuple(v for v in _values(field_) if v != value)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else kept


class _Entry:
    """The rare shapes of an address (several ids or pands, an id that is not 16 digits):
    slotted, ~80 bytes with its GC header. Common addresses are a packed int (see _Packed)."""

    __slots__ = ("gemeentecode", "ids", "key", "pands")

    def __init__(self, key: str) -> None:
        self.key = key  # the shared key object (dict values reuse it)
        self.ids: _Many = None  # usually one; BAG keys are not always unique
        self.pands: _Many = None  # usually one; a dwelling can span buildings
        self.gemeentecode: str | None = None  # current municipality (interned)


# The common address, one id and one pand (each a 16-digit BAG id, or absent) and a municipality,
# packed into one int (48 bytes, no GC header) instead of an _Entry plus a pand int (~110 bytes):
#   bits 0-53: id + 1, bits 54-107: pand + 1 (0: none; 10**16 < 2**54), bits 108+: municipality
#   index + 1 into the register's table of codes (0: none).
_Packed = int
_BITS = 54
_MASK = (1 << _BITS) - 1
_GM_SHIFT = 2 * _BITS


def _fits(packed: int, nid: _Id | None, pand: _Id | None) -> bool:
    """Whether ``packed`` can take this id and pand and stay packed: each given one is a 16-digit
    id (an int) and the field holds nothing yet or that same id."""
    if nid is not None:
        if type(nid) is not int:
            return False
        held = packed & _MASK
        if held and held != nid + 1:
            return False
    if pand is not None:
        if type(pand) is not int:
            return False
        held = (packed >> _BITS) & _MASK
        if held and held != pand + 1:
            return False
    return True


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int  # 1-based physical line in the file (header is line 1)
    field: str
    reason: str


@dataclass(slots=True)
class LoadReport:
    """Outcome of :meth:`AddressRegister.load_csv`: loaded rows and the rows refused."""

    rows: int = 0
    loaded: int = 0
    bad_count: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)  # first MAX_BAD_ROWS_KEPT only

    @property
    def ok(self) -> bool:
        return self.bad_count == 0


class AddressRegister:
    """In-memory register; single-threaded (one per ingest worker), rebuilt from facts."""

    def __init__(self) -> None:
        # key -> packed int (one 16-digit id and pand at most) or _Entry (any other shape)
        self._by_key: dict[str, _Packed | _Entry] = {}
        self._key_by_id: dict[_Id, str] = {}
        # one key bare (most buildings hold one address here), else a list in the order learned
        self._keys_by_pand: dict[_Id, str | list[str]] = {}
        self._gm_codes: list[str] = []  # municipality index - 1 -> code (interned)
        self._gm_index: dict[str, int] = {}  # code -> index + 1 as packed

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of address keys known."""
        return len(self._by_key)

    def __contains__(self, address_key: object) -> bool:
        return address_key in self._by_key

    @property
    def building_count(self) -> int:
        return len(self._keys_by_pand)

    def key_for_id(self, nummeraanduiding_id: str) -> str | None:
        """The address key of a nummeraanduiding id, or None when not (yet) known."""
        return self._key_by_id.get(_pack(nummeraanduiding_id))

    def ids_of(self, address_key: str) -> tuple[str, ...]:
        """The nummeraanduiding ids known for a key (usually one)."""
        entry = self._by_key.get(address_key)
        if type(entry) is int:
            nid = entry & _MASK
            return (f"{nid - 1:016d}",) if nid else ()
        return tuple(map(_unpack, _values(entry.ids))) if entry is not None else ()  # type: ignore[union-attr]

    def keys_in_building(self, pand_id: str) -> tuple[str, ...]:
        """Every address key known in a building, in the order learned."""
        keys = self._keys_by_pand.get(_pack(pand_id))
        if keys is None:
            return ()
        return (keys,) if type(keys) is str else tuple(keys)

    def buildings_of(self, address_key: str) -> tuple[str, ...]:
        """The pand ids an address lies in (usually one)."""
        entry = self._by_key.get(address_key)
        if type(entry) is int:
            pand = (entry >> _BITS) & _MASK
            return (f"{pand - 1:016d}",) if pand else ()
        return tuple(map(_unpack, _values(entry.pands))) if entry is not None else ()  # type: ignore[union-attr]

    def municipality_of(self, address_key: str) -> str | None:
        """The current gemeentecode of a key as learned, or None."""
        entry = self._by_key.get(address_key)
        if type(entry) is int:
            gm = entry >> _GM_SHIFT
            return self._gm_codes[gm - 1] if gm else None
        return entry.gemeentecode if entry is not None else None  # type: ignore[union-attr]

    # -- learning ---------------------------------------------------------------------------

    def learn(
        self,
        address_key: str,
        *,
        nummeraanduiding_id: str | None = None,
        pand_id: str | None = None,
        gemeentecode: str | None = None,
    ) -> list[Fact]:
        """Record what an event says about ``address_key``; return only the facts that are new.

        Inputs must be normalised (key from :mod:`hub.address.key`, ids validated, gemeentecode
        already the *current* code). A nummeraanduiding id that moves to another key leaves the
        old one (BAG renumbering); a pand is only ever added; the municipality is last-writer-wins.
        """
        if nummeraanduiding_id is None and pand_id is None and gemeentecode is None:
            return []
        nid = _pack(nummeraanduiding_id) if nummeraanduiding_id is not None else None
        pand = _pack(pand_id) if pand_id is not None else None
        entry = self._by_key.get(address_key)
        if type(entry) is int:
            # the hot path, an event about a known address: usually nothing new
            if (nid is None or (type(nid) is int and entry & _MASK == nid + 1)) and (
                pand is None or (type(pand) is int and (entry >> _BITS) & _MASK == pand + 1)
            ):
                if gemeentecode is None:
                    return []
                gm = self._gm_index.get(gemeentecode)
                if gm is not None and entry >> _GM_SHIFT == gm:
                    return []
                return self._learn_packed(address_key, entry, None, None, None, None, gemeentecode)
        elif entry is None:
            if (nid is None or type(nid) is int) and (pand is None or type(pand) is int):
                entry = self._by_key[address_key] = 0
            else:
                entry = self._by_key[address_key] = _Entry(address_key)
        if type(entry) is int:
            if _fits(entry, nid, pand):
                return self._learn_packed(
                    address_key,
                    entry,
                    nid,  # type: ignore[arg-type]
                    nummeraanduiding_id,
                    pand,  # type: ignore[arg-type]
                    pand_id,
                    gemeentecode,
                )
            entry = self._unpacked(address_key, entry)
        return self._learn_entry(
            entry,  # type: ignore[arg-type]
            nummeraanduiding_id,
            nid,
            pand_id,
            pand,
            gemeentecode,
        )

    def _learn_packed(
        self,
        address_key: str,
        packed: int,
        nid: int | None,
        nummeraanduiding_id: str | None,
        pand: int | None,
        pand_id: str | None,
        gemeentecode: str | None,
    ) -> list[Fact]:
        """An address that stays packed: each given field is absent so far or the same."""
        key = self._canonical(address_key, packed) if packed else address_key
        facts: list[Fact] = []
        if nid is not None and packed & _MASK != nid + 1:
            old = self._key_by_id.get(nid)
            if old is not None:
                self._drop_id(old, nid)
            self._key_by_id[nid] = key
            packed |= nid + 1
            facts.append(nummeraanduiding_fact(nummeraanduiding_id, key))  # type: ignore[arg-type]
        if pand is not None and (packed >> _BITS) & _MASK != pand + 1:
            self._add_to_pand(pand, key)
            packed |= (pand + 1) << _BITS
            facts.append(pand_fact(pand_id, key))  # type: ignore[arg-type]
        if gemeentecode is not None:
            gm = self._gm_index.get(gemeentecode)
            if gm is None or packed >> _GM_SHIFT != gm:
                if gm is None:
                    gm = self._gm_number(gemeentecode)
                packed = (packed & ((1 << _GM_SHIFT) - 1)) | gm << _GM_SHIFT
                facts.append(gemeente_fact(key, gemeentecode))
        self._by_key[key] = packed
        return facts

    def _learn_entry(
        self,
        entry: _Entry,
        nummeraanduiding_id: str | None,
        nid: _Id | None,
        pand_id: str | None,
        pand: _Id | None,
        gemeentecode: str | None,
    ) -> list[Fact]:
        """The rare shapes, as an _Entry (the layout before packing)."""
        key = entry.key
        facts: list[Fact] = []
        if nummeraanduiding_id is not None:
            assert nid is not None
            old = self._key_by_id.get(nid)
            if old != key:
                if old is not None:
                    self._drop_id(old, nid)
                self._key_by_id[nid] = key
                entry.ids = _with(entry.ids, nid)
                facts.append(nummeraanduiding_fact(nummeraanduiding_id, key))
        if pand_id is not None:
            assert pand is not None
            if pand not in _values(entry.pands):
                self._add_to_pand(pand, key)
                entry.pands = _with(entry.pands, pand)
                facts.append(pand_fact(pand_id, key))
        if gemeentecode is not None and entry.gemeentecode != gemeentecode:
            entry.gemeentecode = sys.intern(gemeentecode)
            facts.append(gemeente_fact(key, gemeentecode))
        return facts

    def _drop_id(self, old_key: str, nid: _Id) -> None:
        """An id moved away from ``old_key`` (the caller maps it to its new key)."""
        old = self._by_key[old_key]
        if type(old) is int:
            self._by_key[old_key] = old & ~_MASK  # its one id was this one
        else:
            old.ids = _without(old.ids, nid)  # type: ignore[union-attr]

    def _add_to_pand(self, pand: _Id, key: str) -> None:
        keys = self._keys_by_pand.get(pand)
        if keys is None:
            self._keys_by_pand[pand] = key
        elif type(keys) is str:
            self._keys_by_pand[pand] = [keys, key]
        else:
            keys.append(key)  # type: ignore[union-attr]

    def _gm_number(self, gemeentecode: str) -> int:
        code = sys.intern(gemeentecode)
        self._gm_codes.append(code)
        number = self._gm_index[code] = len(self._gm_codes)
        return number

    def _canonical(self, address_key: str, packed: int) -> str:
        """The key object the register already holds for a packed address (so the id and pand
        maps share one string), found through its id or pand; ``address_key`` if neither."""
        nid = packed & _MASK
        if nid:
            return self._key_by_id.get(nid - 1, address_key)
        pand = (packed >> _BITS) & _MASK
        if pand:
            keys = self._keys_by_pand.get(pand - 1)
            if type(keys) is str:
                return keys if keys == address_key else address_key
            for key in keys or ():
                if key == address_key:
                    return key
        return address_key

    def _unpacked(self, address_key: str, packed: int) -> _Entry:
        """Turn a packed address into an _Entry (it takes a second id or pand, or an odd one)."""
        key = self._canonical(address_key, packed)
        entry = _Entry(key)
        nid, pand, gm = packed & _MASK, (packed >> _BITS) & _MASK, packed >> _GM_SHIFT
        entry.ids = nid - 1 if nid else None
        entry.pands = pand - 1 if pand else None
        entry.gemeentecode = self._gm_codes[gm - 1] if gm else None
        self._by_key[key] = entry
        return entry

    def apply_fact(self, fact: Fact) -> list[Fact]:
        """Apply a fact another worker published; return it in a list when it changed something.

        Validates the fact (it crossed a topic). An unknown ``fact`` kind is ignored so an older
        worker survives a newer one's facts; a malformed known fact raises ValueError.
        """
        try:
            kind = fact["fact"]
            if kind == FACT_NUMMERAANDUIDING:
                key = _checked_key(fact["address_key"])
                nid = normalise_nummeraanduiding_id(fact["nummeraanduiding_id"])
                return self.learn(key, nummeraanduiding_id=nid)
            if kind == FACT_PAND:
                key = _checked_key(fact["address_key"])
                return self.learn(key, pand_id=normalise_pand_id(fact["pand_id"]))
            if kind == FACT_GEMEENTE:
                key = _checked_key(fact["address_key"])
                code = normalise_gemeentecode(fact["gemeentecode"])
                return self.learn(key, gemeentecode=code)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed register fact: missing or bad {exc}") from exc
        log.debug("ignoring register fact of unknown kind %r", kind)
        return []

    def to_facts(self, address_key: str) -> list[Fact]:
        """Every fact about one key (to republish or inspect an address)."""
        entry = self._by_key.get(address_key)
        if entry is None:
            return []
        if type(entry) is int:
            key = self._canonical(address_key, entry)
            nid, pand, gm = entry & _MASK, (entry >> _BITS) & _MASK, entry >> _GM_SHIFT
            facts = [nummeraanduiding_fact(f"{nid - 1:016d}", key)] if nid else []
            if pand:
                facts.append(pand_fact(f"{pand - 1:016d}", key))
            if gm:
                facts.append(gemeente_fact(key, self._gm_codes[gm - 1]))
            return facts
        assert isinstance(entry, _Entry)
        facts = [nummeraanduiding_fact(_unpack(i), entry.key) for i in _values(entry.ids)]
        facts.extend(pand_fact(_unpack(p), entry.key) for p in _values(entry.pands))
        if entry.gemeentecode is not None:
            facts.append(gemeente_fact(entry.key, entry.gemeentecode))
        return facts

    def iter_facts(self) -> Iterator[Fact]:
        """Every fact in the register (a snapshot that :meth:`apply_fact` rebuilds exactly)."""
        for key in self._by_key:
            yield from self.to_facts(key)

    # -- seeding ----------------------------------------------------------------------------

    def load_csv(
        self,
        path: Path,
        *,
        map_gemeentecode: Callable[[str], str | None] | None = None,
        delimiter: str | None = None,
    ) -> LoadReport:
        """Seed from a BAG extract with the columns of :data:`CSV_COLUMNS` (extra ones ignored).

        Bad rows are reported with their line number and skipped; one bad row never aborts the
        load. A dwelling spanning buildings appears as several rows with the same id. The
        delimiter (``,`` or ``;``) is detected from the header unless given; ``map_gemeentecode``
        maps a code to the current one (e.g. ``Municipalities.current_code``). Facts are not
        returned (hundreds of thousands); every worker seeds from the same file.
        """
        report = LoadReport()
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = fh.readline()
            if delimiter is None:
                delimiter = ";" if header.count(";") > header.count(",") else ","
            columns = [c.strip().lower() for c in next(csv.reader([header], delimiter=delimiter))]
            missing = [c for c in CSV_COLUMNS if c not in columns]
            if missing:
                raise ValueError(f"{path}: header lacks column(s) {', '.join(missing)}")
            idx = [columns.index(c) for c in CSV_COLUMNS]
            width = max(idx) + 1
            reader = csv.reader(fh, delimiter=delimiter)
            for row in reader:
                line = reader.line_num + 1  # +1: the header was read before the reader
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                report.rows += 1
                if len(row) < width:
                    _bad(report, line, "row", f"{len(row)} columns, expected {len(columns)}")
                    continue
                nid, pc, hn, hl, toev, pand, gm = (row[i] for i in idx)
                try:
                    nid = normalise_nummeraanduiding_id(nid)
                    key = make_key(normalise_address(pc, hn, hl or None, toev or None))
                    pand_id = normalise_pand_id(pand) if pand.strip() else None
                    code = normalise_gemeentecode(gm) if gm.strip() else None
                    if code is not None and map_gemeentecode is not None:
                        code = map_gemeentecode(code)
                except AddressError as exc:
                    _bad(report, line, exc.field, exc.reason)
                    continue
                self.learn(key, nummeraanduiding_id=nid, pand_id=pand_id, gemeentecode=code)
                report.loaded += 1
        log.info(
            "address register seeded: %d rows, %d loaded, %d refused; %d addresses, %d buildings",
            report.rows,
            report.loaded,
            report.bad_count,
            len(self._by_key),
            len(self._keys_by_pand),
        )
        return report


def _checked_key(value: str) -> str:
    try:
        parse_key(value)
    except AddressError as exc:
        raise ValueError(f"malformed register fact: {exc}") from exc
    return value


def _bad(report: LoadReport, line: int, field_name: str, reason: str) -> None:
    report.bad_count += 1
    if len(report.bad_rows) < MAX_BAD_ROWS_KEPT:
        report.bad_rows.append(BadRow(line, field_name, reason))
    log.debug("address CSV line %d refused: %s: %s", line, field_name, reason)
