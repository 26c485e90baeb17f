"""Traffic simulator: realistic, deterministic CaseEvent traffic for the Groningen region.

``simulate(addresses, events, seed)`` builds a small world (the region's real municipalities,
plausible postcodes per former municipality, buildings holding one or many addresses, BAG ids whose
prefix is the *creating* municipality, often a pre-merger code), plans case lifecycles per source
with a known share of *planted* rule situations, and returns a :class:`Simulation`: an iterable of
events in the JSON form of :class:`hub.contracts.events.CaseEvent` (dicts; malformed non-JSON lines
are plain ``str``) plus a :class:`Manifest` of what was planted. Iterating twice, or calling again
with the same arguments, yields the same events byte for byte (``random.Random`` with fixed
seeds; no set/hash ordering ever drives generation).

Address forms follow the hub's resolver (``hub.address.resolve``): an event with *only* a
``pand_id`` is a *building* case (NCG strengthening of a whole building: pand + gemeentecode);
every other case is per address, and its postal-form events also carry the address's ``pand_id``
as a register fact (which teaches the register the building's addresses, so building cases reach
every address that had a case of its own). An event carrying only a ``nummeraanduiding_id`` is sent
only after that address was sent with postal fields and the id.

Ground truth: planted sets hold under the default rules config (``hub/config/rules.toml``) for the
*final* state of the stream. Background traffic is constrained so that it never makes a rule fire
at the end (transient firing along the way is realistic and allowed): no undecided damage claim
where strengthening is active at the end, at most one active case with a work window per address,
no active bottleneck above the mandate. See ``docs/simulator.md``.
"""

from __future__ import annotations

import bisect
import csv
import gc
import heapq
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import accumulate
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

Event = dict[str, Any]
Item = Event | str  # a str is a raw, non-JSON line (malformed NOT_JSON)

# Defaults of hub/config/rules.toml that the planted ground truth is built against.
SAMENLOOP_MUNICIPALITIES = ("GM1979", "GM0014", "GM1966", "GM1952", "GM1895")
WASTED_WORK_HORIZON_DAYS = 365
MIN_GAP_DAYS = 14
MANDATE_CENTS = 5_000_000
AREA_THRESHOLD = 5

# The stream runs from DEFAULT_START over DEFAULT_SPAN_DAYS, and case lifecycles (work windows,
# decisions, closings) run up to ~2.5 years past the span's end. Starting in 2016 keeps every
# occurred_at in the past (latest ~mid 2024) and after the contract's floor (2012-01-01): the hub
# refuses events more than a day in the future (docs/contracts.md, occurred_at plausibility).
DEFAULT_START = datetime(2016, 1, 1, tzinfo=UTC)
DEFAULT_SPAN_DAYS = 6 * 365

MUNICIPALITY_NAMES = {
    "GM1979": "Eemsdelta",
    "GM0014": "Groningen",
    "GM1966": "Het Hogeland",
    "GM1952": "Midden-Groningen",
    "GM1895": "Oldambt",
    "GM0765": "Pekela",
    "GM0037": "Stadskanaal",
    "GM0047": "Veendam",
    "GM1969": "Westerkwartier",
    "GM1950": "Westerwolde",
    "GM1680": "Aa en Hunze",
    "GM1730": "Tynaarlo",
    "GM1699": "Noordenveld",
    "GM0106": "Assen",
}


class _Area(NamedTuple):
    """A (former) municipality's territory: where addresses are generated."""

    gm: str  # current municipality
    name: str  # territory (former municipality or town)
    code: str  # creating code in BAG ids (pre-merger code where there was a merger)
    pc4: tuple[tuple[int, int], ...]  # inclusive 4-digit postcode ranges (rough)
    weight: float  # share of the region's addresses (rough)
    ncg: float  # share of buildings in the strengthening programme (rough; Eemsdelta highest)
    multi: float  # share of buildings with several addresses


# Rough table: postcode ranges are plausible, not authoritative; weights ~ housing stock.
AREAS: tuple[_Area, ...] = (
    _Area("GM0014", "Groningen (stad)", "0014", ((9711, 9749),), 30.0, 0.02, 0.35),
    _Area("GM0014", "Haren", "0017", ((9750, 9759),), 2.5, 0.01, 0.15),
    _Area("GM0014", "Ten Boer", "0009", ((9790, 9799),), 1.0, 0.12, 0.05),
    _Area("GM1979", "Appingedam", "0003", ((9900, 9903),), 1.5, 0.35, 0.12),
    _Area("GM1979", "Delfzijl", "0010", ((9930, 9949),), 3.5, 0.30, 0.15),
    _Area("GM1979", "Loppersum", "0024", ((9911, 9925), (9991, 9999)), 1.5, 0.45, 0.05),
    _Area("GM1966", "Bedum", "0005", ((9780, 9789),), 1.2, 0.12, 0.08),
    _Area("GM1966", "Winsum", "0053", ((9770, 9779), (9950, 9959)), 1.6, 0.10, 0.06),
    _Area("GM1966", "De Marne", "1663", ((9960, 9979),), 1.1, 0.05, 0.05),
    _Area("GM1966", "Eemsmond", "1651", ((9980, 9989),), 1.6, 0.12, 0.06),
    _Area("GM1952", "Hoogezand-Sappemeer", "0018", ((9600, 9613),), 3.9, 0.05, 0.12),
    _Area("GM1952", "Slochteren", "0040", ((9614, 9629),), 1.9, 0.12, 0.05),
    _Area("GM1952", "Menterwolde", "1987", ((9630, 9639), (9649, 9651)), 1.4, 0.04, 0.05),
    _Area("GM1895", "Oldambt", "1895", ((9670, 9694),), 4.5, 0.03, 0.08),
    _Area("GM0765", "Pekela", "0765", ((9660, 9665),), 1.4, 0.01, 0.06),
    _Area("GM0037", "Stadskanaal", "0037", ((9500, 9509), (9580, 9591)), 3.6, 0.005, 0.08),
    _Area("GM0047", "Veendam", "0047", ((9640, 9648),), 3.0, 0.01, 0.08),
    _Area("GM1969", "Zuidhorn", "0056", ((9800, 9849),), 2.3, 0.005, 0.06),
    _Area("GM1969", "Grootegast", "0015", ((9850, 9866),), 1.2, 0.003, 0.04),
    _Area("GM1969", "Leek", "0022", ((9350, 9359),), 1.9, 0.002, 0.08),
    _Area("GM1969", "Marum", "0025", ((9360, 9369),), 1.0, 0.002, 0.05),
    _Area("GM1950", "Westerwolde", "1950", ((9540, 9566), (9695, 9699)), 2.6, 0.002, 0.05),
    _Area("GM1680", "Aa en Hunze", "1680", ((9450, 9469),), 2.6, 0.002, 0.05),
    _Area("GM1730", "Tynaarlo", "1730", ((9470, 9489), (9760, 9769)), 3.4, 0.004, 0.08),
    _Area("GM1699", "Noordenveld", "1699", ((9300, 9339),), 3.3, 0.002, 0.08),
    _Area("GM0106", "Assen", "0106", ((9400, 9419),), 6.8, 0.001, 0.15),
)
# Current code used in BAG ids of objects created after a merger.
_POST_MERGER_CODE = {
    "GM1979": "1979",
    "GM0014": "0014",
    "GM1966": "1966",
    "GM1952": "1952",
    "GM1969": "1969",
}
_CORPORATIONS = (
    "Woonstichting Noord",
    "Woonborg-Oost",
    "Huisvesting Eemsland",
    "Wooncorporatie Stad",
    "Stichting Huurwoningen Ommeland",
)


def municipality_of_postcode(postcode: str) -> str | None:
    """The current GM code the simulator's postcode table assigns to a postcode (or None)."""
    try:
        pc4 = int(postcode[:4])
    except ValueError:
        return None
    for area in AREAS:
        if any(lo <= pc4 <= hi for lo, hi in area.pc4):
            return area.gm
    return None


class MalformedReason(StrEnum):
    """Why a planted malformed event must be rejected, and at which stage."""

    NOT_JSON = "NOT_JSON"  # decode: the line is not JSON
    MISSING_FIELD = "MISSING_FIELD"  # contract: a required field is absent
    UNKNOWN_ENUM = "UNKNOWN_ENUM"  # contract: source/case_type/status outside the enum
    BAD_DATE = "BAD_DATE"  # contract: unparseable date or occurred_at without offset
    WINDOW_REVERSED = "WINDOW_REVERSED"  # contract: planned_end before planned_start
    NEGATIVE_AMOUNT = "NEGATIVE_AMOUNT"  # contract: amount_eur < 0
    BAD_IDENTIFIER = "BAD_IDENTIFIER"  # contract: BAG id with the wrong type code
    BAD_POSTCODE = "BAD_POSTCODE"  # contract (postcode shape) and hub.address: not a postcode


#: Reasons rejected by ``CaseEvent.model_validate`` (NOT_JSON fails earlier, at decoding).
CONTRACT_REASONS = frozenset(MalformedReason) - {MalformedReason.NOT_JSON}


@dataclass(frozen=True)
class Shares:
    """Planted shares (of the address count) and stream imperfections (of the event count)."""

    samenloop: float = 0.03
    samenloop_near_miss: float = 0.005
    repair_before_strengthening: float = 0.01
    insulation_before_strengthening: float = 0.004
    plan_overlap: float = 0.015
    plan_overlap_near_miss: float = 0.003
    mandate_exceeded: float = 0.002
    mandate_near_miss: float = 0.001
    duplicates: float = 0.005  # exact re-sends (same event_id, same bytes)
    late: float = 0.003  # events held back and sent after newer ones
    nummeraanduiding_only: float = 0.25  # of events for an already-announced address
    planted_budget: float = 0.5  # planted cases use at most this share of the valid events


class AddressRef(NamedTuple):
    """One simulated address, with its canonical key (``hub.address.key`` format)."""

    key: str
    postcode: str
    huisnummer: int
    huisletter: str | None
    huisnummertoevoeging: str | None
    nummeraanduiding_id: str
    pand_id: str
    gemeentecode: str


CaseRef = tuple[str, str]  # (source, case_id)
PairRef = tuple[CaseRef, CaseRef]  # sorted


@dataclass
class Manifest:
    """What was planted and what must hold at the end of the stream (default rules config).

    Address sets hold canonical keys (``"9711AB-12A-2"``); ``addresses`` maps each key that appears
    in any set to its :class:`AddressRef`. ``*_near_miss`` sets are addresses built to *not* fire
    (boundary or wrong-condition cases). Pair sets name the two cases (sorted) of a pair signal.
    """

    seed: int
    address_count: int
    events: int
    valid_events: int
    cases: int
    duplicates: int
    late: int
    malformed: dict[str, int]
    malformed_event_ids: dict[str, str]  # event_id -> MalformedReason (NOT_JSON has no id)
    samenloop: frozenset[str]
    samenloop_near_miss: frozenset[str]
    repair_before_strengthening: frozenset[str]
    repair_before_strengthening_pairs: frozenset[PairRef]
    insulation_before_strengthening: frozenset[str]
    insulation_before_strengthening_pairs: frozenset[PairRef]
    before_strengthening_near_miss: frozenset[str]
    plan_overlap: frozenset[str]
    plan_overlap_pairs: frozenset[PairRef]
    plan_overlap_near_miss: frozenset[str]
    mandate_exceeded: frozenset[str]
    mandate_exceeded_cases: frozenset[CaseRef]
    mandate_near_miss: frozenset[str]
    area_clusters: dict[str, int]  # 4-digit postcode -> addresses with a firing rule 2-4 signal
    contact_routing: frozenset[str]  # expected CONTACT_ROUTING, register learned from the stream
    contact_routing_seeded: frozenset[str]  # ... register seeded with the BAG extract
    addresses: dict[str, AddressRef] = field(repr=False)
    shares: Shares = field(default_factory=Shares)

    def summary(self) -> dict[str, Any]:
        """Counts only (no personal data): for a CLI or the demo's notes."""
        return {
            "seed": self.seed,
            "addresses": self.address_count,
            "events": self.events,
            "valid_events": self.valid_events,
            "cases": self.cases,
            "duplicates": self.duplicates,
            "late": self.late,
            "malformed": dict(self.malformed),
            "samenloop": len(self.samenloop),
            "samenloop_near_miss": len(self.samenloop_near_miss),
            "repair_before_strengthening": len(self.repair_before_strengthening_pairs),
            "insulation_before_strengthening": len(self.insulation_before_strengthening_pairs),
            "before_strengthening_near_miss": len(self.before_strengthening_near_miss),
            "plan_overlap_pairs": len(self.plan_overlap_pairs),
            "plan_overlap_near_miss": len(self.plan_overlap_near_miss),
            "mandate_exceeded": len(self.mandate_exceeded_cases),
            "mandate_near_miss": len(self.mandate_near_miss),
            "area_clusters": len(self.area_clusters),
            "contact_routing": len(self.contact_routing),
            "contact_routing_seeded": len(self.contact_routing_seeded),
        }


class _Random(random.Random):
    """``random.Random`` with cheaper ``randint``/``randrange``/``choice``/``choices``.

    Each draws from ``random()`` once (a C call) instead of the stdlib's pure-Python rejection
    sampling: a few times faster, deterministic everywhere, uniform to within 2**-53.
    """

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:  # type: ignore[override]
        if stop is None:
            return int(self.random() * start)
        return start + int(self.random() * (stop - start))

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]

    def choices(  # type: ignore[override]
        self, population: Any, weights: Any = None, *, cum_weights: Any = None, k: int = 1
    ) -> list[Any]:
        if cum_weights is None:
            cum_weights = list(accumulate(weights))
        total, last = cum_weights[-1], len(cum_weights) - 1
        rnd = self.random
        return [
            population[min(bisect.bisect_right(cum_weights, rnd() * total), last)] for _ in range(k)
        ]


# --- the world: addresses and buildings --------------------------------------------------------

_LETTER_PAIRS = tuple(
    a + b
    for a in "ABCDEFGHJKLMNPRSTVWXZ"
    for b in "ABCDEFGHJKLMNPRSTVWXZ"
    if a + b not in ("SA", "SD", "SS")
)
_TOEVOEGINGEN_SINGLE = ("BIS", "1", "A", "HS", "I")


class _World:
    """Parallel lists (compact for a few hundred thousand addresses)."""

    def __init__(self) -> None:
        self.pc: list[str] = []
        self.num: list[int] = []
        self.let: list[str | None] = []
        self.add: list[str | None] = []
        self.na: list[str] = []
        self.bld: list[int] = []
        self.gm: list[str] = []
        self.b_pand: list[str] = []
        self.b_first: list[int] = []
        self.b_n: list[int] = []
        self.b_area: list[int] = []
        self.b_rental: list[bool] = []

    def key(self, a: int) -> str:
        out = f"{self.pc[a]}-{self.num[a]}"
        if self.let[a] is not None:
            out += self.let[a]  # type: ignore[operator]
        if self.add[a] is not None:
            out += "-" + self.add[a]  # type: ignore[operator]
        return out

    def ref(self, a: int) -> AddressRef:
        return AddressRef(
            self.key(a),
            self.pc[a],
            self.num[a],
            self.let[a],
            self.add[a],
            self.na[a],
            self.b_pand[self.bld[a]],
            self.gm[a],
        )


def _build_world(n: int, rng: random.Random) -> _World:
    w = _World()
    total_w = sum(a.weight for a in AREAS)
    quotas = [int(n * a.weight / total_w) for a in AREAS]
    quotas[0] += n - sum(quotas)
    na_ctr: dict[str, int] = {}
    pand_ctr: dict[str, int] = {}
    used_pc: set[str] = set()
    rand, randint, choice = rng.random, rng.randint, rng.choice

    def next_id(ctr: dict[str, int], code: str, typ: str) -> str:
        v = ctr.get(code)
        if v is None:
            v = randint(1_000, 400_000)
        v += randint(1, 4)
        ctr[code] = v
        return f"{code}{typ}{v:010d}"

    for ai, (area, quota) in enumerate(zip(AREAS, quotas, strict=True)):
        pc4s = [p for lo, hi in area.pc4 for p in range(lo, hi + 1)]
        made = 0
        pc, pc_left, number = "", 0, 1
        while made < quota:
            if pc_left <= 0:
                while True:
                    pc = f"{choice(pc4s)}{choice(_LETTER_PAIRS)}"
                    if pc not in used_pc:
                        used_pc.add(pc)
                        break
                pc_left, number = randint(8, 45), randint(1, 120)
            code = area.code
            if (
                area.gm in _POST_MERGER_CODE
                and code != _POST_MERGER_CODE[area.gm]
                and rand() < 0.06
            ):
                code = _POST_MERGER_CODE[area.gm]  # built after the merger
            # units of this building: (number, letter, toevoeging)
            if rand() < area.multi:
                r = rand()
                size = randint(2, 4) if r < 0.5 else randint(6, 24) if r < 0.9 else randint(30, 60)
                style = rand()
                if size <= 4 and style < 0.4:
                    units = [
                        (number, None if i == 0 else "ABCDEF"[i - 1], None) for i in range(size)
                    ]
                    number += 2
                elif style < 0.7:
                    units = [(number, None, str(i + 1)) for i in range(size)]
                    number += 2
                elif style < 0.9 or size > 20:
                    units = [(number + 2 * i, None, None) for i in range(size)]
                    number += 2 * size
                else:
                    units = [(number, "ABCDEFGHJK"[i // 2], str(i % 2 + 1)) for i in range(size)]
                    number += 2
            else:
                r = rand()
                if r < 0.04:
                    units = [(number, "A", None)]
                    number += 2
                elif r < 0.055:
                    units = [(number, None, choice(_TOEVOEGINGEN_SINGLE))]
                    number += 2
                else:
                    units = [(number, None, None)]
                    number += choice((1, 2, 2, 2))
            units = units[: quota - made]
            b = len(w.b_pand)
            w.b_pand.append(next_id(pand_ctr, code, "10"))
            w.b_first.append(len(w.pc))
            w.b_n.append(len(units))
            w.b_area.append(ai)
            w.b_rental.append(rand() < (0.7 if len(units) > 1 else 0.25))
            for num, let, add in units:
                w.pc.append(pc)
                w.num.append(num)
                w.let.append(let)
                w.add.append(add)
                w.na.append(next_id(na_ctr, code, "20"))
                w.bld.append(b)
                w.gm.append(area.gm)
            made += len(units)
            pc_left -= len(units)
    return w


# --- lifecycles --------------------------------------------------------------------------------

OPENED, ON_HOLD, DECIDED, PLANNED = "OPENED", "ON_HOLD", "DECIDED", "PLANNED"
IN_PROGRESS, CLOSED, CANCELLED = "IN_PROGRESS", "CLOSED", "CANCELLED"
_INACTIVE = (CLOSED, CANCELLED)
_UNDECIDED = (OPENED, ON_HOLD)
_WINDOWED = (PLANNED, IN_PROGRESS)

NCG, IMG, MUN, HC = "NCG", "IMG", "MUNICIPALITY", "HOUSING_CORPORATION"
_SRC_BIT = {NCG: 1, IMG: 2, MUN: 4, HC: 8}
_ORG = {NCG: "Nationaal Coördinator Groningen", IMG: "Instituut Mijnbouwschade Groningen"}

STR, DMG, AOS = "STRENGTHENING", "DAMAGE", "ACUTE_UNSAFE"
PERMIT, WORKS, PSY = "PERMIT", "PUBLIC_WORKS", "PSYCHOSOCIAL_SUPPORT"
INS, BOT, REN, MNT = "INSULATION", "BOTTLENECK", "RENOVATION", "MAINTENANCE"

_PATHS: dict[str, tuple[str, ...]] = {
    STR: (OPENED, OPENED, DECIDED, PLANNED, IN_PROGRESS, CLOSED),
    "STR_OP_NORM": (OPENED, OPENED, DECIDED, CLOSED),
    "DMG_REPAIR": (OPENED, DECIDED, PLANNED, IN_PROGRESS, CLOSED),
    "DMG_PAY": (OPENED, DECIDED, CLOSED),
    AOS: (OPENED, IN_PROGRESS, CLOSED),
    PERMIT: (OPENED, DECIDED, CLOSED),
    WORKS: (PLANNED, IN_PROGRESS, CLOSED),
    PSY: (OPENED, IN_PROGRESS, CLOSED),
    INS: (OPENED, DECIDED, PLANNED, IN_PROGRESS, CLOSED),
    BOT: (OPENED, DECIDED, CLOSED),
    REN: (OPENED, PLANNED, IN_PROGRESS, CLOSED),
    MNT: (PLANNED, IN_PROGRESS, CLOSED),
}
# Window length in days (min, max) per type; strengthening is heavy (4+ months).
_WIN_LEN = {
    STR: (120, 540),
    DMG: (5, 60),
    WORKS: (14, 120),
    INS: (3, 30),
    REN: (30, 180),
    MNT: (1, 14),
}
_PROGRAMME = {
    PERMIT: "omgevingsvergunning",
    WORKS: "openbare_ruimte",
    PSY: "welzijn",
    INS: "isolatie",
    BOT: "knelpuntenbudget",
}
_NCG_FASE = {0: "2", 1: "3", 2: "4", 3: "5", 4: "5", 5: "6"}


class _Case:
    __slots__ = (
        "addr",
        "amount",
        "amount_from",
        "attrs",
        "bld",
        "cid",
        "contact",
        "ctype",
        "org",
        "seq",
        "src",
        "t0",
        "utc",
        "we",
        "wins",
        "ws",
    )

    def __init__(
        self,
        src: str,
        org: str,
        ctype: str,
        cid: str,
        addr: int,
        bld: int,
        seq: tuple[str, ...],
        wins: tuple[tuple[int, int] | None, ...],
        ws: int | None,
        we: int | None,
        amount: str | None,
        amount_from: int,
        contact: dict[str, str] | None,
        attrs: tuple[dict[str, str], ...],
        t0: int,
    ) -> None:
        self.src, self.org, self.ctype, self.cid = src, org, ctype, cid
        self.addr, self.bld, self.seq, self.wins, self.ws, self.we = addr, bld, seq, wins, ws, we
        self.amount, self.amount_from, self.contact, self.attrs = (
            amount,
            amount_from,
            contact,
            attrs,
        )
        self.t0 = t0
        self.utc = src in (IMG, HC)  # these two send UTC timestamps, the others local time


def _pair(a: CaseRef, b: CaseRef) -> PairRef:
    return (a, b) if a <= b else (b, a)


def _eur(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class _Planner:
    """Plans every case (the world's history) with its final state; tracks the end state."""

    def __init__(
        self, world: _World, n_valid: int, seed: int, shares: Shares, span_days: int
    ) -> None:
        self.w = world
        self.rng = _Random(seed * 1_000_003 + 2)
        self.budget = n_valid
        self.used = 0
        self.shares = shares
        self.span = span_days
        self.cases: list[_Case] = []
        n = len(world.pc)
        self.s_act = [False] * n  # active strengthening at the end (building cases: every address)
        self.undec = [False] * n  # undecided damage claim at the end
        self.slot = [0] * n  # active cases with a work window at the end
        self.reserved = [False] * n  # part of a planted situation: background keeps off
        self.mask_seeded = [0] * n  # sources with an active case (building cases: every address)
        self.mask_learned = [0] * n  # ... address-level cases only (building cases: manifest())
        self.has_case = bytearray(n)  # address has an address-level case: the register learns it
        self.b_bits = [0] * len(world.b_pand)  # sources of active building cases per building
        self.b_str = [False] * len(world.b_pand)  # building has a strengthening case
        self.ctr: Counter[str] = Counter()
        self.contacts: dict[tuple[str, int], dict[str, str]] = {}
        self.attr_cache: dict[tuple[str, tuple[str, ...], str], tuple[dict[str, str], ...]] = {}
        self.sets: dict[str, list[Any]] = {
            k: []
            for k in (
                "samenloop",
                "samenloop_near_miss",
                "rbs",
                "rbs_pairs",
                "ibs",
                "ibs_pairs",
                "bs_near_miss",
                "overlap",
                "overlap_pairs",
                "overlap_near_miss",
                "mandate",
                "mandate_cases",
                "mandate_near_miss",
            )
        }

    # -- helpers --------------------------------------------------------------------------------

    def _cid(self, src: str, ctype: str, gm: str, t0: int) -> str:
        year = DEFAULT_START.year + t0 // (365 * 86400)
        if src == NCG:
            prefix = f"NCG-{'KN' if ctype == BOT else 'V'}-{year}"
        elif src == IMG:
            prefix = f"IMG-{'AOS' if ctype == AOS else 'S'}-{year}"
        elif src == MUN:
            prefix = f"{gm}-{ctype[:3]}"
        else:
            prefix = "WC"
        self.ctr[prefix] += 1
        return f"{prefix}-{self.ctr[prefix]:06d}"

    def _contact(self, src: str, ctype: str, gm: str) -> dict[str, str] | None:
        rng = self.rng
        if rng.random() < 0.04:
            return None  # "none known": operations must be able to find these
        if src == NCG:
            label, role, n = "Bewonersbegeleider", "RESIDENT_COUNSELLOR", rng.randint(1, 400)
            if ctype == STR and rng.random() < 0.1:
                label, role = "Coordinator", "COORDINATOR"
        elif src == IMG:
            label, role, n = "Zaakbegeleider", "CASE_COUNSELLOR", rng.randint(1, 600)
        elif src == MUN:
            label = "Wijkcoach" if ctype == PSY else "Medewerker " + MUNICIPALITY_NAMES[gm]
            role, n = "OTHER", rng.randint(1, 60)
        else:
            label, role, n = "Huurdersconsulent", "OTHER", rng.randint(1, 150)
        ck = (label, n)
        c = self.contacts.get(ck)
        if c is None:
            slug = label.lower().replace(" ", ".").replace("-", "")
            c = {
                "name": f"{label} {n}",
                "role": role,
                "phone": f"06-0000{n:04d}",
                "email": f"{slug}.{n}@example.nl",
            }
            if n % 11 == 0:
                del c["phone"]
            self.contacts[ck] = c
        return c

    def _attrs(self, ctype: str, seq: tuple[str, ...], extra: str) -> tuple[dict[str, str], ...]:
        ck = (ctype, seq, extra)
        out = self.attr_cache.get(ck)
        if out is not None:
            return out
        res: list[dict[str, str]] = []
        opened = 0
        for st in seq:
            if ctype == STR:
                i = {OPENED: opened, DECIDED: 2, PLANNED: 3, IN_PROGRESS: 4, CLOSED: 5}.get(st, 2)
                if st == OPENED:
                    opened += 1
                d = {"programma": "versterking", "fase": _NCG_FASE[min(i, 5)]}
                if st in (DECIDED, CLOSED) and extra == "op_norm":
                    d["advies"] = "op_norm"
                    d["fase"] = "4" if st == DECIDED else "6"
                elif st not in (OPENED, CANCELLED):
                    d["advies"] = extra or "versterken"
                res.append(d)
            elif ctype == DMG:
                res.append({"route": extra, "regeling": "fysieke_schade"})
            elif ctype == AOS:
                res.append({"veiligheid": "acuut_onveilig"})
            elif ctype in _PROGRAMME:
                res.append({"programma": _PROGRAMME[ctype]})
            else:
                res.append({"huurwoning": "ja", "complex": extra})
        out = tuple(res)
        self.attr_cache[ck] = out
        return out

    def _day_of(self, t: int) -> int:
        return t // 86400

    def _window(self, ctype: str, t0: int, lead: tuple[int, int] = (40, 300)) -> tuple[int, int]:
        lo, hi = _WIN_LEN[ctype]
        ws = self._day_of(t0) + self.rng.randint(*lead)
        return ws, ws + self.rng.randint(lo, hi)

    def add(
        self,
        src: str,
        ctype: str,
        addr: int,
        seq: tuple[str, ...],
        win: tuple[int, int] | None = None,
        *,
        building: bool = False,
        amount_cents: int | None = None,
        extra: str = "",
        t0: int | None = None,
        reschedule: bool | None = None,
    ) -> _Case:
        """Record a case (address-level, or building-level with ``addr`` its hoofdadres)."""
        rng, w = self.rng, self.w
        gm = w.gm[addr]
        if t0 is None:
            if win is None:
                t0 = rng.randrange(self.span * 86400)
            else:  # the case starts months before its work window (not before the stream)
                t0 = (win[0] - rng.randint(60, 400)) * 86400 + rng.randrange(86400)
                if t0 < 0:
                    t0 = rng.randrange(max(30, win[0]) * 86400)
        has_win = win is not None and (PLANNED in seq or IN_PROGRESS in seq)
        wins: tuple[tuple[int, int] | None, ...]
        if has_win:
            assert win is not None
            if reschedule is None:
                reschedule = rng.random() < 0.1 and self.used + len(seq) < self.budget
            if reschedule:  # a first plan, later moved: the last PLANNED carries the final window
                i = seq.index(PLANNED)
                shift = rng.choice((-1, 1)) * rng.randint(20, 120)
                seq = (*seq[:i], PLANNED, *seq[i:])
                win0 = (win[0] + shift, win[1] + shift)
                wins = tuple(
                    None if s not in _WINDOWED and s != CLOSED else win0 if k == i else win
                    for k, s in enumerate(seq)
                )
            else:
                wins = tuple(win if s in _WINDOWED or s == CLOSED else None for s in seq)
        else:
            wins = (None,) * len(seq)
            win = None
        amount = _eur(amount_cents) if amount_cents is not None else None
        amount_from = 0 if ctype == BOT else seq.index(DECIDED) if DECIDED in seq else len(seq)
        org = _ORG.get(src) or (
            f"Gemeente {MUNICIPALITY_NAMES[gm]}"
            if src == MUN
            else _CORPORATIONS[int(w.na[addr][-3:]) % len(_CORPORATIONS)]
        )
        bld = w.bld[addr] if building else -1
        case = _Case(
            src,
            org,
            ctype,
            self._cid(src, ctype, gm, t0),
            addr,
            bld,
            seq,
            wins,
            win[0] if win else None,
            win[1] if win else None,
            amount,
            amount_from,
            self._contact(src, ctype, gm),
            self._attrs(ctype, seq, extra),
            t0,
        )
        self.cases.append(case)
        self.used += len(seq)
        if not building:
            self.has_case[addr] = 1
        # end state
        final = seq[-1]
        if final in _INACTIVE:
            return case
        bit = _SRC_BIT[src]
        if building:
            self.b_bits[bld] |= bit
            self.b_str[bld] = True
            first = w.b_first[bld]
            targets: range | tuple[int, ...] = range(first, first + w.b_n[bld])
        else:
            self.mask_learned[addr] |= bit
            targets = (addr,)
        windowed = has_win and final in _WINDOWED
        for a in targets:
            self.mask_seeded[a] |= bit
            if ctype == STR:
                self.s_act[a] = True
            if windowed:
                self.slot[a] += 1
            if ctype == DMG and final in _UNDECIDED:
                self.undec[a] = True
        return case

    def ref(self, case: _Case) -> CaseRef:
        return (case.src, case.cid)

    # -- candidate picking ----------------------------------------------------------------------

    def _sampler(self, gms: tuple[str, ...] | None, weight: str) -> tuple[list[int], list[float]]:
        w = self.w
        blds: list[int] = []
        cum: list[float] = []
        total = 0.0
        for b, ai in enumerate(w.b_area):
            area = AREAS[ai]
            if gms is not None and area.gm not in gms:
                continue
            total += area.ncg if weight == "ncg" else 1.0
            blds.append(b)
            cum.append(total)
        return blds, cum

    def _free_building(
        self, sampler: tuple[list[int], list[float]], single: bool = False
    ) -> int | None:
        blds, cum = sampler
        if not blds:
            return None
        w = self.w
        for _ in range(60):
            b = self.rng.choices(blds, cum_weights=cum)[0]
            first, cnt = w.b_first[b], w.b_n[b]
            if single and cnt != 1:
                continue
            if self.b_str[b] or any(self.reserved[first : first + cnt]):
                continue
            return b
        return None

    def _reserve_building(self, b: int) -> None:
        first = self.w.b_first[b]
        for a in range(first, first + self.w.b_n[b]):
            self.reserved[a] = True

    def _str_seq(self, final: str) -> tuple[str, ...]:
        path = _PATHS[STR]
        if final == OPENED:
            return path[: self.rng.randint(1, 2)]
        return path[: path.index(final) + 1]

    def _dmg_undecided(self) -> tuple[str, ...]:
        r = self.rng.random()
        return (
            (OPENED,) if r < 0.5 else (OPENED, ON_HOLD) if r < 0.85 else (OPENED, ON_HOLD, OPENED)
        )

    # -- planted situations ---------------------------------------------------------------------

    def plant(self) -> None:
        sh, n = self.shares, len(self.w.pc)
        cap = int(self.budget * sh.planted_budget)

        def target(share: float) -> int:
            return max(1, round(share * n)) if share > 0 else 0

        plans = [
            (self._plant_samenloop, target(sh.samenloop)),
            (self._plant_samenloop_near_miss, target(sh.samenloop_near_miss)),
            (lambda: self._plant_before(DMG), target(sh.repair_before_strengthening)),
            (lambda: self._plant_before(INS), target(sh.insulation_before_strengthening)),
            (self._plant_overlap, target(sh.plan_overlap)),
            (self._plant_overlap_near_miss, target(sh.plan_overlap_near_miss)),
            (self._plant_mandate, target(sh.mandate_exceeded)),
            (self._plant_mandate_near_miss, target(sh.mandate_near_miss)),
        ]
        # interleave the situations so that a tight budget shrinks them all alike
        done = [0] * len(plans)
        failures = [0] * len(plans)
        active = True
        while active:
            active = False
            for i, (fn, want) in enumerate(plans):
                if (
                    done[i] >= want
                    or failures[i] > 20
                    or self.used >= cap
                    or self.budget - self.used < 20
                ):
                    continue
                active = True
                if fn():
                    done[i] += 1
                else:
                    failures[i] += 1

    def _plant_samenloop(self) -> bool:
        if not hasattr(self, "_s_sl"):
            self._s_sl = self._sampler(SAMENLOOP_MUNICIPALITIES, "ncg")
        b = self._free_building(self._s_sl)
        if b is None:
            return False
        w, rng = self.w, self.rng
        hoofd = w.b_first[b]
        final = rng.choice((OPENED, DECIDED, PLANNED, IN_PROGRESS))
        win = self._window(STR, rng.randrange(self.span * 86400))
        self.add(NCG, STR, hoofd, self._str_seq(final), win, building=True)
        self.add(
            IMG,
            DMG,
            hoofd,
            self._dmg_undecided(),
            extra=rng.choice(("vaste_vergoeding", "deskundige")),
        )
        self._reserve_building(b)
        self.sets["samenloop"].append(hoofd)
        return True

    def _plant_samenloop_near_miss(self) -> bool:
        rng = self.rng
        kind = rng.randrange(3)
        if kind == 0:  # outside the AMvB municipalities
            if not hasattr(self, "_s_out"):
                outside = tuple(g for g in MUNICIPALITY_NAMES if g not in SAMENLOOP_MUNICIPALITIES)
                self._s_out = self._sampler(outside, "ncg")
            b = self._free_building(self._s_out)
        else:
            if not hasattr(self, "_s_sl"):
                self._s_sl = self._sampler(SAMENLOOP_MUNICIPALITIES, "ncg")
            b = self._free_building(self._s_sl)
        if b is None:
            return False
        hoofd = self.w.b_first[b]
        win = self._window(STR, rng.randrange(self.span * 86400))
        if kind == 2:  # strengthening finished or cancelled, claim still undecided
            seq = rng.choice((_PATHS[STR], _PATHS["STR_OP_NORM"], (OPENED, DECIDED, CANCELLED)))
            self.add(
                NCG, STR, hoofd, seq, win, building=True, extra="op_norm" if len(seq) == 4 else ""
            )
            self.add(IMG, DMG, hoofd, self._dmg_undecided(), extra="deskundige")
        else:
            self.add(
                NCG, STR, hoofd, self._str_seq(rng.choice((OPENED, DECIDED))), win, building=True
            )
            dmg = (
                self._dmg_undecided()
                if kind == 0
                else rng.choice(((OPENED, DECIDED), (OPENED, ON_HOLD, DECIDED)))
            )
            self.add(IMG, DMG, hoofd, dmg, extra="vaste_vergoeding", amount_cents=500_000)
        self._reserve_building(b)
        self.sets["samenloop_near_miss"].append(hoofd)
        return True

    def _plant_before(self, work_type: str) -> bool:
        """Repair (DAMAGE) or INSULATION window ending 1..365 days before strengthening starts."""
        if not hasattr(self, "_s_ncg"):
            self._s_ncg = self._sampler(None, "ncg")
        b = self._free_building(self._s_ncg)
        if b is None:
            return False
        rng, w = self.rng, self.w
        hoofd = w.b_first[b]
        near_miss = rng.random() < 0.12
        r = rng.random()
        if near_miss:
            gap = rng.randint(WASTED_WORK_HORIZON_DAYS + 1, WASTED_WORK_HORIZON_DAYS + 200)
        else:
            gap = (
                WASTED_WORK_HORIZON_DAYS
                if r < 0.05
                else rng.randint(1, MIN_GAP_DAYS - 1)
                if r < 0.15
                else rng.randint(MIN_GAP_DAYS, WASTED_WORK_HORIZON_DAYS)
            )
        t_s = rng.randrange(self.span * 86400)
        s_win = self._window(STR, t_s, (400, 800))
        lo, hi = _WIN_LEN[work_type]
        w_end = s_win[0] - gap
        w_win = (w_end - rng.randint(lo, hi), w_end)
        s_case = self.add(
            NCG, STR, hoofd, self._str_seq(rng.choice(_WINDOWED)), s_win, building=True
        )
        if work_type == DMG:
            seq = _PATHS["DMG_REPAIR"][: rng.choice((3, 4))]
            w_case = self.add(
                IMG,
                DMG,
                hoofd,
                seq,
                w_win,
                extra="deskundige",
                amount_cents=rng.randint(200_000, 4_000_000),
            )
        else:
            seq = _PATHS[INS][: rng.choice((3, 4))]
            w_case = self.add(MUN, INS, hoofd, seq, w_win)
        self._reserve_building(b)
        if near_miss:
            self.sets["bs_near_miss"].append(hoofd)
        else:
            kind = "rbs" if work_type == DMG else "ibs"
            self.sets[kind].append(hoofd)
            self.sets[kind + "_pairs"].append(_pair(self.ref(w_case), self.ref(s_case)))
        return True

    # pairs of (source, type) that collide by PLAN_OVERLAP only (never rule 3)
    _OVERLAP_PAIRS = (
        ((HC, REN), (MUN, WORKS)),
        ((NCG, STR), (MUN, WORKS)),
        ((IMG, DMG), (HC, MNT)),
        ((NCG, STR), (HC, REN)),
        ((MUN, INS), (HC, MNT)),
        ((IMG, DMG), (MUN, WORKS)),
        ((NCG, STR), (HC, MNT)),
        ((IMG, DMG), (HC, REN)),
    )

    def _windowed_case(self, src: str, ctype: str, addr: int, win: tuple[int, int]) -> _Case:
        rng = self.rng
        final = rng.choice(_WINDOWED)
        if ctype == STR:
            return self.add(src, ctype, addr, self._str_seq(final), win)
        path = _PATHS["DMG_REPAIR" if ctype == DMG else ctype]
        seq = path[: path.index(final) + 1]
        if ctype == DMG:
            return self.add(
                src,
                ctype,
                addr,
                seq,
                win,
                extra="deskundige",
                amount_cents=rng.randint(100_000, 3_000_000),
            )
        return self.add(src, ctype, addr, seq, win, extra=f"C{addr % 997:03d}")

    def _free_address(self) -> int | None:
        if not hasattr(self, "_s_any"):
            self._s_any = self._sampler(None, "any")
        b = self._free_building(self._s_any)
        if b is None:
            return None
        first = self.w.b_first[b]
        a = first + self.rng.randrange(self.w.b_n[b])
        self.reserved[a] = True
        self.b_str[b] = True  # no building-level strengthening over a planted address
        return a

    def _overlap_windows(self, kind_a: str, kind_b: str, gap: int) -> tuple[tuple[int, int], ...]:
        """Two windows with ``later start - earlier end == gap`` (negative: overlapping)."""
        rng = self.rng
        la = rng.randint(*_WIN_LEN[kind_a])
        lb = rng.randint(*_WIN_LEN[kind_b])
        start_a = rng.randrange(120, self.span + 200)
        wa = (start_a, start_a + la)
        if gap < 0:
            gap = max(gap, -(la + lb) // 2, -la)
        sb = wa[1] + gap
        wb = (sb, sb + lb)
        if rng.random() < 0.5:
            return wa, wb
        # mirrored: b first, then a
        wb2 = (start_a, start_a + lb)
        sa = wb2[1] + gap
        return (sa, sa + la), wb2

    def _plant_overlap(self) -> bool:
        a = self._free_address()
        if a is None:
            return False
        rng = self.rng
        (sa, ta), (sb, tb) = rng.choice(self._OVERLAP_PAIRS)
        r = rng.random()
        gap = 0 if r < 0.1 else MIN_GAP_DAYS - 1 if r < 0.2 else rng.randint(-60, MIN_GAP_DAYS - 1)
        wa, wb = self._overlap_windows(ta, tb, gap)
        ca = self._windowed_case(sa, ta, a, wa)
        cb = self._windowed_case(sb, tb, a, wb)
        self.sets["overlap"].append(a)
        self.sets["overlap_pairs"].append(_pair(self.ref(ca), self.ref(cb)))
        return True

    def _plant_overlap_near_miss(self) -> bool:
        a = self._free_address()
        if a is None:
            return False
        rng = self.rng
        if rng.random() < 0.5:  # exactly min_gap days apart: not a collision
            (sa, ta), (sb, tb) = rng.choice(self._OVERLAP_PAIRS)
            gap = MIN_GAP_DAYS
        else:  # same source overlapping: not a collision (rule 4 needs different sources)
            (sa, ta), (sb, tb) = rng.choice((((MUN, WORKS), (MUN, INS)), ((HC, REN), (HC, MNT))))
            gap = rng.randint(-20, 5)
        wa, wb = self._overlap_windows(ta, tb, gap)
        self._windowed_case(sa, ta, a, wa)
        self._windowed_case(sb, tb, a, wb)
        self.sets["overlap_near_miss"].append(a)
        return True

    def _bottleneck(self, a: int, cents: int, final_active: bool) -> _Case:
        rng = self.rng
        src = NCG if rng.random() < 0.3 else MUN
        seq = rng.choice(((OPENED,), (OPENED, DECIDED))) if final_active else _PATHS[BOT]
        return self.add(src, BOT, a, seq, amount_cents=cents)

    def _plant_mandate(self) -> bool:
        if not hasattr(self, "_s_any"):
            self._s_any = self._sampler(None, "any")
        b = self._free_building(self._s_any)
        if b is None:
            return False
        a = self.w.b_first[b] + self.rng.randrange(self.w.b_n[b])
        r = self.rng.random()
        cents = MANDATE_CENTS + 1 if r < 0.1 else self.rng.randint(MANDATE_CENTS + 1, 25_000_000)
        case = self._bottleneck(a, cents, True)
        self.sets["mandate"].append(a)
        self.sets["mandate_cases"].append(self.ref(case))
        return True

    def _plant_mandate_near_miss(self) -> bool:
        if not hasattr(self, "_s_any"):
            self._s_any = self._sampler(None, "any")
        b = self._free_building(self._s_any)
        if b is None:
            return False
        a = self.w.b_first[b] + self.rng.randrange(self.w.b_n[b])
        if self.rng.random() < 0.5:
            self._bottleneck(a, MANDATE_CENTS, True)  # exactly the mandate: not above it
        else:
            self._bottleneck(a, self.rng.randint(MANDATE_CENTS + 1, 20_000_000), False)  # closed
        self.sets["mandate_near_miss"].append(a)
        return True

    # -- background -----------------------------------------------------------------------------

    def background(self) -> None:
        rng, w = self.rng, self.w
        # strengthening of whole buildings first (it constrains everything else at the address)
        str_cap = self.used + (self.budget - self.used) // 4
        order = list(range(len(w.b_pand)))
        rng.shuffle(order)
        for b in order:
            if self.used >= str_cap or self.budget - self.used < 10:
                break
            if self.b_str[b] or rng.random() >= AREAS[w.b_area[b]].ncg:
                continue
            first, cnt = w.b_first[b], w.b_n[b]
            if any(self.reserved[first : first + cnt]):
                continue
            self._background_strengthening(b)
        addrs = list(range(len(w.pc)))
        rng.shuffle(addrs)
        while self.used < self.budget and addrs:
            for a in addrs:
                left = self.budget - self.used
                if left <= 0:
                    break
                if rng.random() < 0.35:
                    continue
                if left <= 3:
                    self._filler(a, left)
                else:
                    self._background_case(a)

    def _background_strengthening(self, b: int) -> None:
        rng = self.rng
        hoofd = self.w.b_first[b]
        r = rng.random()
        win = self._window(STR, rng.randrange(self.span * 86400), (200, 700))
        if r < 0.3:
            path = _PATHS["STR_OP_NORM"]
            seq = path[: rng.choices((1, 2, 3, 4), (0.2, 0.2, 0.15, 0.45))[0]]
            self.add(NCG, STR, hoofd, seq, win, building=True, extra="op_norm")
        elif r < 0.35:
            seq = (*_PATHS[STR][: rng.randint(1, 3)], CANCELLED)
            self.add(NCG, STR, hoofd, seq, win, building=True)
        else:
            seq = _PATHS[STR][: rng.choices(range(1, 7), (0.1, 0.12, 0.13, 0.13, 0.13, 0.39))[0]]
            self.add(
                NCG,
                STR,
                hoofd,
                seq,
                win,
                building=True,
                extra="versterken" if rng.random() < 0.85 else "sloop_nieuwbouw",
            )

    def _filler(self, a: int, n: int) -> None:
        """A short case without window that never makes a signal fire (exact event count)."""
        ctype = PERMIT if self.rng.random() < 0.7 else PSY
        self.add(MUN, ctype, a, _PATHS[ctype][:n])

    def _background_case(self, a: int) -> None:
        rng, w = self.rng, self.w
        b = w.bld[a]
        r = rng.random()
        ncg_area = AREAS[w.b_area[b]].ncg
        p_dmg = 0.35 + min(ncg_area, 0.3)
        if r < p_dmg:
            ctype = DMG
        elif r < p_dmg + 0.01:
            ctype = AOS
        else:
            r2 = rng.random()
            if w.b_rental[b] and r2 < 0.35:
                ctype = REN if r2 < 0.12 else MNT
            else:
                ctype = rng.choices((PERMIT, WORKS, PSY, INS, BOT), (0.3, 0.2, 0.1, 0.3, 0.1))[0]
        windows_ok = self.slot[a] == 0 and not self.reserved[a]
        left = self.budget - self.used
        if ctype == DMG:
            repair = rng.random() < 0.35
            path = _PATHS["DMG_REPAIR" if repair else "DMG_PAY"]
            weights = (0.22, 0.13, 0.1, 0.1, 0.45) if repair else (0.25, 0.2, 0.55)
            k = rng.choices(range(1, len(path) + 1), weights)[0]
            seq = path[:k]
            if rng.random() < 0.2:
                seq = (OPENED, ON_HOLD, *seq[1:])
            final = seq[-1]
            if final in _UNDECIDED and (self.s_act[a] or self.reserved[a]):
                seq = path  # strengthening here: the claim is decided and done by the end
            elif final in _WINDOWED and not windows_ok:
                seq = path
            win = self._window(DMG, rng.randrange(self.span * 86400)) if repair else None
            cents = 500_000 if rng.random() < 0.55 else rng.randint(50_000, 6_000_000)
            if len(seq) > left:
                self._filler(a, min(3, left))
                return
            self.add(
                IMG,
                DMG,
                a,
                seq,
                win,
                amount_cents=cents,
                extra="deskundige" if cents != 500_000 else "vaste_vergoeding",
            )
            return
        path = _PATHS[ctype]
        k = rng.choices(range(1, len(path) + 1), [0.5 / (len(path) - 1)] * (len(path) - 1) + [0.5])[
            0
        ]
        seq = path[:k]
        if rng.random() < 0.03:
            seq = (path[0], CANCELLED)  # withdrawn
        if seq[-1] in _WINDOWED and not windows_ok:
            seq = path
        if len(seq) > left:
            self._filler(a, min(3, left))
            return
        src = {AOS: IMG, REN: HC, MNT: HC}.get(ctype, MUN)
        win = self._window(ctype, rng.randrange(self.span * 86400)) if ctype in _WIN_LEN else None
        cents = None
        if ctype == BOT:
            cents = rng.randint(50_000, MANDATE_CENTS)
            if seq[-1] in _INACTIVE and rng.random() < 0.1:
                cents = rng.randint(MANDATE_CENTS + 1, 15_000_000)  # escalated, since closed
            if rng.random() < 0.3:
                src = NCG
        self.add(
            src,
            ctype,
            a,
            seq,
            win,
            amount_cents=cents,
            extra=f"C{b % 997:03d}" if src == HC else "",
        )

    # -- manifest -------------------------------------------------------------------------------

    def manifest(
        self,
        seed: int,
        events: int,
        n_valid: int,
        n_dup: int,
        n_late: int,
        malformed: dict[str, int],
        malformed_ids: dict[str, str],
        shares: Shares,
    ) -> Manifest:
        w, s = self.w, self.sets
        refs: dict[str, AddressRef] = {}

        def keys(name: str) -> frozenset[str]:
            out = []
            for a in s[name]:
                r = w.ref(a)
                refs[r.key] = r
                out.append(r.key)
            return frozenset(out)

        samenloop = keys("samenloop")
        rbs, ibs, overlap = keys("rbs"), keys("ibs"), keys("overlap")
        areas: Counter[str] = Counter(k[:4] for k in samenloop | rbs | ibs | overlap)
        # register learned from the stream: a building case reaches the building's addresses that
        # had an address-level case (their postal events carry the pand id)
        learned = list(self.mask_learned)
        for b, bits in enumerate(self.b_bits):
            if bits:
                first = w.b_first[b]
                for a in range(first, first + w.b_n[b]):
                    if self.has_case[a]:
                        learned[a] |= bits
        cr_learned = frozenset(w.key(a) for a, m in enumerate(learned) if m & (m - 1))
        cr_seeded = frozenset(w.key(a) for a, m in enumerate(self.mask_seeded) if m & (m - 1))
        return Manifest(
            seed=seed,
            address_count=len(w.pc),
            events=events,
            valid_events=n_valid,
            cases=len(self.cases),
            duplicates=n_dup,
            late=n_late,
            malformed=malformed,
            malformed_event_ids=malformed_ids,
            samenloop=samenloop,
            samenloop_near_miss=keys("samenloop_near_miss"),
            repair_before_strengthening=rbs,
            repair_before_strengthening_pairs=frozenset(s["rbs_pairs"]),
            insulation_before_strengthening=ibs,
            insulation_before_strengthening_pairs=frozenset(s["ibs_pairs"]),
            before_strengthening_near_miss=keys("bs_near_miss"),
            plan_overlap=overlap,
            plan_overlap_pairs=frozenset(s["overlap_pairs"]),
            plan_overlap_near_miss=keys("overlap_near_miss"),
            mandate_exceeded=keys("mandate"),
            mandate_exceeded_cases=frozenset(s["mandate_cases"]),
            mandate_near_miss=keys("mandate_near_miss"),
            area_clusters={k: v for k, v in sorted(areas.items()) if v >= AREA_THRESHOLD},
            contact_routing=cr_learned,
            contact_routing_seeded=cr_seeded,
            addresses=refs,
            shares=shares,
        )


# --- time ----------------------------------------------------------------------------------------

_EPOCH_NAIVE = datetime(1970, 1, 1)


def _last_sunday(year: int, month: int) -> date:
    d = date(year, month, 31)
    return d - timedelta(days=(d.weekday() + 1) % 7)


def _dst_transitions() -> list[int]:
    """EU summer time (Europe/Amsterdam): last Sunday of March/October, 01:00 UTC."""
    out = []
    for y in range(1980, 2101):
        for m in (3, 10):
            d = _last_sunday(y, m)
            out.append(int((datetime(d.year, d.month, d.day, 1) - _EPOCH_NAIVE).total_seconds()))
    return out


_DST = _dst_transitions()


def _iso_local(ts: int) -> str:
    """Epoch seconds -> '2024-05-01T10:00:00+02:00' (Dutch local time; fixed rule, no tzdata)."""
    if bisect.bisect_right(_DST, ts) & 1:
        return (_EPOCH_NAIVE + timedelta(seconds=ts + 7200)).isoformat() + "+02:00"
    return (_EPOCH_NAIVE + timedelta(seconds=ts + 3600)).isoformat() + "+01:00"


def _iso_utc(ts: int) -> str:
    return (_EPOCH_NAIVE + timedelta(seconds=ts)).isoformat() + "Z"


# --- the simulation ------------------------------------------------------------------------------

_BAD_POSTCODES = ("0123AB", "{}SS", "{}SA", "{}sd", "{} ss", "12345A", "97111AB", "ABCD12")


class Simulation:
    """Deterministic event stream + the :class:`Manifest` of what was planted.

    Iterating yields :data:`Item` s (CaseEvent JSON dicts, or raw ``str`` lines); each iteration
    regenerates the same stream from the plan, so memory holds the plan, not the events.
    """

    def __init__(
        self,
        world: _World,
        planner: _Planner,
        manifest: Manifest,
        seed: int,
        start: datetime,
        n_valid: int,
        late: dict[int, int],
        dups: dict[int, int],
        malformed_after: dict[int, list[Item]],
    ) -> None:
        self._w = world
        self._cases = planner.cases
        self.manifest = manifest
        self._seed = seed
        self._s0 = int((start.astimezone(UTC).replace(tzinfo=None) - _EPOCH_NAIVE).total_seconds())
        self._start_day = start.date()
        self._n_valid = n_valid
        self._late = late
        self._dups = dups
        self._malformed_after = malformed_after

    def __len__(self) -> int:
        return self.manifest.events

    def address(self, key: str) -> AddressRef | None:
        """The simulated address with this canonical key (linear search: tests and demos)."""
        ref = self.manifest.addresses.get(key)
        if ref is not None:
            return ref
        w = self._w
        for a in range(len(w.pc)):
            if w.key(a) == key:
                return w.ref(a)
        return None

    def register_rows(self) -> Iterator[dict[str, str]]:
        """The world as a BAG extract (``hub.address.register`` CSV columns), to seed a register."""
        w = self._w
        for a in range(len(w.pc)):
            yield {
                "nummeraanduiding_id": w.na[a],
                "postcode": w.pc[a],
                "huisnummer": str(w.num[a]),
                "huisletter": w.let[a] or "",
                "huisnummertoevoeging": w.add[a] or "",
                "pand_id": w.b_pand[w.bld[a]],
                "gemeentecode": w.gm[a],
            }

    def __iter__(self) -> Iterator[Item]:
        return self._generate()

    # -- generation (hot path) --------------------------------------------------------------------

    def _generate(self) -> Iterator[Item]:
        w, cases = self._w, self._cases
        rng = _Random(self._seed * 1_000_003 + 3)
        rnd, getrandbits = rng.random, rng.getrandbits
        w_pc, w_num, w_let, w_add, w_na, w_gm = w.pc, w.num, w.let, w.add, w.na, w.gm
        w_bld = w.bld
        b_pand = w.b_pand
        s0 = self._s0
        start_ord = self._start_day.toordinal()
        day_iso: dict[int, str] = {}
        na_only_share = self.manifest.shares.nummeraanduiding_only
        learned = bytearray(len(w_pc))  # address sent with postal fields + nummeraanduiding id
        late, dups, mal_after = self._late, self._dups, self._malformed_after
        pending: list[tuple[int, int, Item, int]] = []  # (release at, seq, item, learns address)
        pseq = 0
        heappush, heappop = heapq.heappush, heapq.heappop
        iso_local, iso_utc = _iso_local, _iso_utc
        fromordinal = date.fromordinal

        def day(d: int) -> str:
            s = day_iso.get(d)
            if s is None:
                s = day_iso[d] = fromordinal(start_ord + d).isoformat()
            return s

        def event_id() -> str:
            h = f"{getrandbits(128) | (1 << 127):032x}"
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

        def postal(a: int, d: dict[str, Any]) -> None:
            pc = w_pc[a]
            r = rnd()
            if r < 0.6:
                d["postcode"] = pc
            elif r < 0.8:
                d["postcode"] = f"{pc[:4]} {pc[4:]}"
            elif r < 0.92:
                d["postcode"] = pc.lower()
            else:
                d["postcode"] = f"{pc[:4]} {pc[4:].lower()}"
            num, let, add = w_num[a], w_let[a], w_add[a]
            r = rnd()
            if let is not None and add is None and r < 0.2:
                d["huisnummer"] = f"{num}{let if r < 0.1 else let.lower()}"
            elif add is not None and let is None and r < 0.15:
                d["huisnummer"] = f"{num}-{add.lower() if r < 0.05 else add}"
            else:
                d["huisnummer"] = str(num) if r > 0.9 else num
                if let is not None:
                    d["huisletter"] = let.lower() if r > 0.7 else let
                if add is not None:
                    d["huisnummertoevoeging"] = add.lower() if r > 0.75 else add

        def address(c: _Case, step: int) -> tuple[dict[str, Any], int]:
            a = c.addr
            if c.bld >= 0:  # building case: the pand alone (an address would make it per address)
                return {"pand_id": b_pand[c.bld], "gemeentecode": w_gm[a]}, -1
            if learned[a] and rnd() < na_only_share:
                d = {"nummeraanduiding_id": w_na[a]}
                if rnd() < 0.5:
                    d["gemeentecode"] = w_gm[a]
                return d, -1
            d = {}
            r = rnd()
            with_id = r < 0.85
            if with_id:
                d["nummeraanduiding_id"] = w_na[a]
            postal(a, d)
            d["pand_id"] = b_pand[w_bld[a]]  # register fact: the building this address is in
            if r > 0.7 or not with_id:  # municipality always derivable (code or id prefix)
                d["gemeentecode"] = w_gm[a]
            return d, a if with_id else -1

        def build(c: _Case, step: int, t: int) -> tuple[Event, int]:
            addr, learns = address(c, step)
            ev: Event = {
                "event_id": event_id(),
                "source": c.src,
                "source_org": c.org,
                "case_id": c.cid,
                "case_type": c.ctype,
                "status": c.seq[step],
                "occurred_at": iso_utc(s0 + t) if c.utc else iso_local(s0 + t),
                "address": addr,
            }
            win = c.wins[step]
            if win is not None:
                ev["planned_start"] = day(win[0])
                ev["planned_end"] = day(win[1])
            if c.contact is not None:
                ev["contact"] = dict(c.contact)
            if c.amount is not None and step >= c.amount_from:
                ev["amount_eur"] = c.amount
            ev["attributes"] = dict(c.attrs[step])
            return ev, learns

        def next_time(c: _Case, step: int, t: int) -> int:
            """Time of ``step`` (> 0): work steps follow the window, others weeks apart."""
            status = c.seq[step]
            if c.ws is not None:
                if status == PLANNED:
                    target = (c.ws - 14 - int(rnd() * 100)) * 86400 + 30_000
                elif status == IN_PROGRESS:
                    target = c.ws * 86400 + 25_000 + int(rnd() * 30_000)
                elif status == CLOSED and c.seq[step - 1] == IN_PROGRESS:
                    target = (c.we + 1 + int(rnd() * 20)) * 86400 + 30_000
                else:
                    target = 0
                if target > t:
                    return target
            return t + 3_600 + int(rnd() * 90 * 86400)

        heap = [(c.t0 + 28_800 + int(c.t0 % 37_000), i, 0) for i, c in enumerate(cases)]
        heapq.heapify(heap)
        n = 0
        while heap:
            t, ci, step = heappop(heap)
            c = cases[ci]
            ev, learns = build(c, step, t)
            if step + 1 < len(c.seq):
                heappush(heap, (next_time(c, step + 1, t), ci, step + 1))
            n += 1
            delay = late.get(n)
            if delay is not None:
                pseq += 1
                heappush(pending, (n + delay, pseq, ev, learns))
            else:
                if learns >= 0:
                    learned[learns] = 1
                yield ev
                delay = dups.get(n)
                if delay is not None:
                    pseq += 1
                    heappush(pending, (n + delay, pseq, _clone(ev), -1))
            for item in mal_after.get(n, ()):
                yield item if type(item) is str else orjson.loads(orjson.dumps(item))
            while pending and pending[0][0] <= n:
                _, _, item, learns = heappop(pending)
                if learns >= 0:
                    learned[learns] = 1
                yield item
        while pending:
            _, _, item, learns = heappop(pending)
            if learns >= 0:
                learned[learns] = 1
            yield item


def _clone(ev: Event) -> Event:
    out = dict(ev)
    out["address"] = dict(ev["address"])
    if "contact" in ev:
        out["contact"] = dict(ev["contact"])
    out["attributes"] = dict(ev["attributes"])
    return out


def _malformed(reason: str, rng: random.Random, w: _World, ts: int) -> Item:
    """One malformed item of the given reason (its event_id, if any, is in the manifest)."""
    rnd, choice = rng.random, rng.choice
    a = rng.randrange(len(w.pc))
    h = f"{rng.getrandbits(128) | (1 << 127):032x}"
    eid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-b{h[17:20]}-{h[20:]}"
    ev: Event = {
        "event_id": eid,
        "source": "IMG",
        "source_org": _ORG[IMG],
        "case_id": f"IMG-S-X{rng.getrandbits(24):07d}",
        "case_type": "DAMAGE",
        "status": "OPENED",
        "occurred_at": _iso_utc(ts),
        "address": {
            "nummeraanduiding_id": w.na[a],
            "postcode": w.pc[a],
            "huisnummer": w.num[a],
            "gemeentecode": w.gm[a],
        },
        "attributes": {"route": "deskundige"},
    }
    if reason == MalformedReason.NOT_JSON:
        body = orjson.dumps(ev).decode()
        return choice(
            (
                body[: max(10, int(len(body) * rnd()))],  # truncated upload
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                body.replace('"', "'"),
                "\x00\x01\x02 not json \ufffd",
                "event_id;source;case_id\n",
            )
        )
    if reason == MalformedReason.MISSING_FIELD:
        victim = choice(
            ("event_id", "source", "case_id", "case_type", "status", "occurred_at", "address")
        )
        if victim == "event_id":
            del ev["event_id"]
            return ev
        del ev[victim]
        if victim == "address" and rnd() < 0.5:
            ev["address"] = {"gemeentecode": w.gm[a]}  # nothing that identifies a place
    elif reason == MalformedReason.UNKNOWN_ENUM:
        field_, value = choice(
            (
                ("source", "NAM"),
                ("source", "UNKNOWN"),
                ("case_type", "DEMOLITION"),
                ("status", "DONE"),
                ("status", "opened?"),
            )
        )
        ev[field_] = value
    elif reason == MalformedReason.BAD_DATE:
        v = choice(("occurred_at", "occurred_at_naive", "planned_start", "planned_end"))
        if v == "occurred_at":
            ev["occurred_at"] = choice(("2024-13-45T10:00:00+01:00", "gisteren", "31-02-2024"))
        elif v == "occurred_at_naive":
            ev["occurred_at"] = ev["occurred_at"][:-1]  # no offset
        else:
            ev["status"] = "PLANNED"
            ev["planned_start"] = "2024-03-01"
            ev["planned_end"] = "2024-06-01"
            ev[v] = choice(("2024-02-30", "2024/06/01", "next week"))
    elif reason == MalformedReason.WINDOW_REVERSED:
        ev["status"] = "PLANNED"
        ev["planned_start"] = "2024-06-01"
        ev["planned_end"] = choice(("2024-05-31", "2023-06-01"))
    elif reason == MalformedReason.NEGATIVE_AMOUNT:
        ev["status"] = "DECIDED"
        ev["amount_eur"] = choice(("-1250.00", "-0.01", "-50000.00"))
    elif reason == MalformedReason.BAD_IDENTIFIER:
        if rnd() < 0.5:
            ev["address"]["nummeraanduiding_id"] = w.na[a][:4] + "10" + w.na[a][6:]
        else:
            ev["address"]["pand_id"] = w.na[a]  # a nummeraanduiding id where a pand id belongs
    elif reason == MalformedReason.BAD_POSTCODE:
        pc = choice(_BAD_POSTCODES).format(w.pc[a][:4])
        ev["address"] = {"postcode": pc, "huisnummer": w.num[a], "gemeentecode": w.gm[a]}
    return ev


_MALFORMED_MIX = (
    (MalformedReason.NOT_JSON, 0.12),
    (MalformedReason.MISSING_FIELD, 0.18),
    (MalformedReason.UNKNOWN_ENUM, 0.15),
    (MalformedReason.BAD_DATE, 0.15),
    (MalformedReason.WINDOW_REVERSED, 0.1),
    (MalformedReason.NEGATIVE_AMOUNT, 0.08),
    (MalformedReason.BAD_IDENTIFIER, 0.07),
    (MalformedReason.BAD_POSTCODE, 0.15),
)


def simulate(
    addresses: int,
    events: int,
    seed: int,
    malformed_share: float = 0.01,
    start: datetime = DEFAULT_START,
    *,
    span_days: int = DEFAULT_SPAN_DAYS,
    shares: Shares | None = None,
) -> Simulation:
    """Plan ``events`` events (exactly) over ``addresses`` addresses; deterministic per ``seed``.

    ``events`` = valid case events + exact duplicates + malformed items. Planning (world and case
    plan) happens here; events are produced lazily when the :class:`Simulation` is iterated.
    """
    if addresses < 1 or events < 0:
        raise ValueError("addresses must be >= 1 and events >= 0")
    if not 0 <= malformed_share <= 0.5:
        raise ValueError("malformed_share must be within 0..0.5")
    shares = shares or Shares()
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    n_mal = round(events * malformed_share)
    n_dup = round(events * shares.duplicates)
    n_valid = events - n_mal - n_dup
    if n_valid < 0:
        raise ValueError("malformed + duplicate shares exceed the event count")
    gc_was_enabled = gc.isenabled()
    gc.disable()  # planning allocates ~1 object per event, all long-lived: skip futile collections
    try:
        world = _build_world(addresses, _Random(seed * 1_000_003 + 1))
        planner = _Planner(world, n_valid, seed, shares, span_days)
        planner.plant()
        planner.background()
    finally:
        if gc_was_enabled:
            gc.enable()
    n_valid = planner.used  # == requested unless there is nothing to put events on
    rng = _Random(seed * 1_000_003 + 4)
    n_late = min(round(events * shares.late), n_valid)
    late_idx = rng.sample(range(1, n_valid + 1), n_late) if n_valid else []
    late = {i: rng.randint(100, 30_000) for i in late_idx}
    non_late = n_valid - n_late
    n_dup = min(n_dup, non_late)
    dups: dict[int, int] = {}
    while len(dups) < n_dup:
        i = rng.randint(1, n_valid)
        if i not in late and i not in dups:
            dups[i] = rng.randint(1, 3_000)
    reasons = [r for r, _ in _MALFORMED_MIX]
    weights = [p for _, p in _MALFORMED_MIX]
    malformed_after: dict[int, list[Item]] = {}
    counts: Counter[str] = Counter()
    mal_ids: dict[str, str] = {}
    s0 = int((start.astimezone(UTC).replace(tzinfo=None) - _EPOCH_NAIVE).total_seconds())
    for _ in range(n_mal if n_valid else 0):
        reason = rng.choices(reasons, weights)[0]
        at = rng.randint(1, n_valid)
        ts = s0 + int(span_days * 86400 * at / n_valid)  # roughly where the stream then is
        item = _malformed(reason, rng, world, ts)
        counts[reason] += 1
        if isinstance(item, dict) and isinstance(item.get("event_id"), str):
            mal_ids[item["event_id"]] = reason.value
        malformed_after.setdefault(at, []).append(item)
    total = n_valid + n_dup + sum(counts.values())
    manifest = planner.manifest(
        seed,
        total,
        n_valid,
        n_dup,
        n_late,
        {r.value: counts.get(r, 0) for r in MalformedReason},
        mal_ids,
        shares,
    )
    sim = Simulation(world, planner, manifest, seed, start, n_valid, late, dups, malformed_after)
    return sim


def _dump(item: Item) -> bytes:
    if isinstance(item, str):
        return item.replace("\n", " ").encode() + b"\n"
    return orjson.dumps(item) + b"\n"


def write_jsonl(target: Path | str | IO[bytes], sim: Simulation) -> int:
    """Write the stream as JSON Lines (malformed raw lines as they are); returns the line count."""
    if isinstance(target, (str, Path)):
        with Path(target).open("wb") as fh:
            return write_jsonl(fh, sim)
    n = 0
    buf: list[bytes] = []
    for item in sim:
        buf.append(_dump(item))
        n += 1
        if len(buf) >= 4096:
            target.write(b"".join(buf))
            buf.clear()
    target.write(b"".join(buf))
    return n


def write_register_csv(path: Path | str, sim: Simulation) -> int:
    """Write the simulated BAG extract for ``AddressRegister.load_csv``; returns the row count."""
    n = 0
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = None
        for row in sim.register_rows():
            if writer is None:
                writer = csv.DictWriter(fh, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            n += 1
    return n


def run_simulate_cli(
    addresses: int,
    events: int,
    seed: int,
    out: Path | None = None,
    malformed_share: float = 0.01,
    manifest_out: Path | None = None,
) -> Manifest:
    """``hub simulate``: JSON Lines to ``out`` (or stdout), a count summary on stderr.

    ``manifest_out`` (optional) receives the manifest as JSON (keys and case refs, no contacts).
    """
    began = time.perf_counter()
    sim = simulate(addresses, events, seed, malformed_share)
    if out is None:
        n = write_jsonl(sys.stdout.buffer, sim)
        sys.stdout.buffer.flush()
    else:
        n = write_jsonl(out, sim)
    elapsed = time.perf_counter() - began
    m = sim.manifest
    if manifest_out is not None:
        Path(manifest_out).write_bytes(
            orjson.dumps(manifest_to_dict(m), option=orjson.OPT_INDENT_2)
        )
    summary = m.summary() | {
        "lines": n,
        "seconds": round(elapsed, 2),
        "events_per_second": round(n / elapsed) if elapsed else None,
    }
    sys.stderr.write(orjson.dumps(summary).decode() + "\n")
    return m


def manifest_to_dict(m: Manifest) -> dict[str, Any]:
    """A JSON-ready form of the manifest (sorted lists)."""
    out: dict[str, Any] = {}
    for name, value in vars(m).items():
        if name == "addresses":
            out[name] = {k: v._asdict() for k, v in sorted(value.items())}
        elif name == "shares":
            out[name] = vars(value)
        elif isinstance(value, frozenset):
            out[name] = sorted(value)
        else:
            out[name] = value
    return out


__all__ = [
    "AREAS",
    "CONTRACT_REASONS",
    "SAMENLOOP_MUNICIPALITIES",
    "AddressRef",
    "Item",
    "MalformedReason",
    "Manifest",
    "Shares",
    "Simulation",
    "manifest_to_dict",
    "municipality_of_postcode",
    "run_simulate_cli",
    "simulate",
    "write_jsonl",
    "write_register_csv",
]
