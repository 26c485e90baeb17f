"""The event stream: :func:`simulate` plans a region's history and returns a :class:`Simulation`,
which generates its events lazily in time order, with late events, exact duplicates and malformed
items mixed in."""

from __future__ import annotations

import bisect
import gc
import heapq
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from connectors.simulator.planner import (
    _ORG,
    CLOSED,
    DEFAULT_SPAN_DAYS,
    DEFAULT_START,
    IMG,
    IN_PROGRESS,
    PLANNED,
    Manifest,
    Shares,
    _Case,
    _Planner,
)
from connectors.simulator.world import AddressRef, _build_world, _Random, _World
from hub.engine import RulesConfig, default_config

Event = dict[str, Any]
Item = Event | str  # a str is a raw, non-JSON line (malformed NOT_JSON)


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
                    target = (c.we + 1 + int(rnd() * 20)) * 86400 + 30_000  # type: ignore[operator]
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
    config: RulesConfig | None = None,
) -> Simulation:
    """Plan ``events`` events (exactly) over ``addresses`` addresses; deterministic per ``seed``.

    Planted situations follow the thresholds of ``config`` (default: ``default_config()``).

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
        planner = _Planner(world, n_valid, seed, shares, span_days, config or default_config())
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
