"""Case planning: every case's lifecycle and final state, the planted rule situations (built
against the thresholds of a rules config, by default ``hub/config/rules.toml``) and the
:class:`Manifest` of what was planted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.simulator.world import (
    _CORPORATIONS,
    AREAS,
    MUNICIPALITY_NAMES,
    AddressRef,
    _Random,
    _World,
)
from hub.engine import RulesConfig

# The stream runs from DEFAULT_START over DEFAULT_SPAN_DAYS, and case lifecycles (work windows,
# decisions, closings) run up to ~2.5 years past the span's end. Starting in 2016 keeps every
# occurred_at in the past (latest ~mid 2024) and after the contract's floor (2012-01-01): the hub
# refuses events more than a day in the future (docs/contracts.md, occurred_at plausibility).
DEFAULT_START = datetime(2016, 1, 1, tzinfo=UTC)
DEFAULT_SPAN_DAYS = 6 * 365


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


CaseRef = tuple[str, str]  # (source, case_id)
PairRef = tuple[CaseRef, CaseRef]  # sorted


@dataclass
class Manifest:
    """What was planted and what must hold at the end of the stream (under the planner's config).

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
        self,
        world: _World,
        n_valid: int,
        seed: int,
        shares: Shares,
        span_days: int,
        config: RulesConfig,
    ) -> None:
        self.w = world
        # Thresholds of the rules config the planted truth is built against (one source of truth).
        self.samenloop_gms = tuple(sorted(config.samenloop_municipalities))
        self.horizon_days = config.wasted_work_horizon_days
        self.min_gap_days = config.min_gap_days
        self.mandate_cents = config.mandate_cents
        self.area_threshold = config.area_threshold
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
            self._s_sl = self._sampler(self.samenloop_gms, "ncg")
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
                outside = tuple(g for g in MUNICIPALITY_NAMES if g not in self.samenloop_gms)
                self._s_out = self._sampler(outside, "ncg")
            b = self._free_building(self._s_out)
        else:
            if not hasattr(self, "_s_sl"):
                self._s_sl = self._sampler(self.samenloop_gms, "ncg")
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
            gap = rng.randint(self.horizon_days + 1, self.horizon_days + 200)
        else:
            gap = (
                self.horizon_days
                if r < 0.05
                else rng.randint(1, self.min_gap_days - 1)
                if r < 0.15
                else rng.randint(self.min_gap_days, self.horizon_days)
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
        gap = (
            0
            if r < 0.1
            else self.min_gap_days - 1
            if r < 0.2
            else rng.randint(-60, self.min_gap_days - 1)
        )
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
            gap = self.min_gap_days
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
        cents = (
            self.mandate_cents + 1
            if r < 0.1
            else self.rng.randint(self.mandate_cents + 1, 25_000_000)
        )
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
            self._bottleneck(a, self.mandate_cents, True)  # exactly the mandate: not above it
        else:
            self._bottleneck(
                a, self.rng.randint(self.mandate_cents + 1, 20_000_000), False
            )  # closed
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
            cents: int | None = 500_000 if rng.random() < 0.55 else rng.randint(50_000, 6_000_000)
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
            cents = rng.randint(50_000, self.mandate_cents)
            if seq[-1] in _INACTIVE and rng.random() < 0.1:
                cents = rng.randint(self.mandate_cents + 1, 15_000_000)  # escalated, since closed
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
            area_clusters={k: v for k, v in sorted(areas.items()) if v >= self.area_threshold},
            contact_routing=cr_learned,
            contact_routing_seeded=cr_seeded,
            addresses=refs,
            shares=shares,
        )
