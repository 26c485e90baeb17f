"""The simulated region: municipalities and their former territories, postcodes, buildings and
addresses with BAG ids, and the simulator's fast deterministic random source."""

from __future__ import annotations

import bisect
import random
from itertools import accumulate
from typing import Any, NamedTuple

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
            units: list[tuple[int, str | None, str | None]]
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
