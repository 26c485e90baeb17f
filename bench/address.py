"""Micro-benchmarks of the address hot path: ``python -m bench.address [n]``.

Reports addresses normalised per second on one core: ``normalise_address`` + ``make_key`` on n
distinct messy inputs (no whole-input cache), and the cached ``address_key`` (what the Ingestor
calls) cold (every input new) and on a replay-like mix (30k distinct addresses repeating); then the
register's memory for n addresses.
"""

from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc

from hub.address.key import address_key, clear_address_key_cache, make_key
from hub.address.normalise import normalise_address, normalise_postcode
from hub.address.register import AddressRegister

_LETTERS = "ABCEFGHJKLMNPRTVWXZ"
Inputs = list[tuple[str, str | int, str | None, str | None]]


def messy_inputs(n: int, seed: int = 7) -> Inputs:
    """n distinct-ish addresses spelled the way agencies send them."""
    rnd = random.Random(seed)
    out: Inputs = []
    for _ in range(n):
        pc = f"{rnd.randint(9000, 9999)}{rnd.choice(_LETTERS)}{rnd.choice(_LETTERS)}"
        number = rnd.randint(1, 400)
        style = rnd.randrange(6)
        if style == 0:
            out.append((pc, number, None, None))
        elif style == 1:
            out.append((f"{pc[:4]} {pc[4:].lower()}", str(number), None, None))
        elif style == 2:
            out.append((f" {pc[:4]}-{pc[4:]} ", f"{number}a", None, None))
        elif style == 3:
            out.append((pc, f"{number:04d}", "b", "2"))
        elif style == 4:
            out.append((pc.lower(), f"{number}A-2", None, None))
        else:
            out.append((pc, f"{number} bis", None, None))
    return out


def bench_normalise(inputs: Inputs) -> float:
    """Uncached normalisations (parts and key) per second over ``inputs``."""
    start = time.perf_counter()
    for pc, hn, hl, toev in inputs:
        make_key(normalise_address(pc, hn, hl, toev))
    return len(inputs) / (time.perf_counter() - start)


def bench_address_key(inputs: Inputs) -> float:
    """Cached ``address_key`` calls per second over ``inputs``."""
    start = time.perf_counter()
    for pc, hn, hl, toev in inputs:
        address_key(pc, hn, hl, toev)
    return len(inputs) / (time.perf_counter() - start)


def register_memory(n: int) -> tuple[int, float]:
    """Bytes traced for a register of n addresses (1.3 addresses per building) and seconds."""
    gc.collect()
    tracemalloc.start()  # before building the strings: the register keeps them
    rnd = random.Random(11)
    rows = []
    for i in range(n):
        pc = f"{9000 + i // 400 % 1000}{_LETTERS[i % 19]}{_LETTERS[i // 19 % 19]}"
        key = f"{pc}-{i % 400 + 1}"
        gm = "GM" + rnd.choice(["0014", "1979", "1966"])
        rows.append((key, f"0014200{i:09d}", f"0014100{int(i / 1.3):09d}", gm))
    start = time.perf_counter()
    register = AddressRegister()
    for key, nid, pand, gm in rows:
        register.learn(key, nummeraanduiding_id=nid, pand_id=pand, gemeentecode=gm)
    elapsed = time.perf_counter() - start
    del rows
    gc.collect()
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(register) > 0
    return size, elapsed


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 300_000
    inputs = messy_inputs(n)
    normalise_postcode.cache_clear()
    plain = bench_normalise(inputs)
    clear_address_key_cache()
    cold = bench_address_key(inputs)
    rnd = random.Random(3)
    distinct = inputs[:30_000]
    mix = [rnd.choice(distinct) for _ in range(n)]
    clear_address_key_cache()
    replay = bench_address_key(mix)
    print(f"normalise_address+make_key, {n:,} distinct inputs: {plain:,.0f} addresses/s")
    print(f"address_key (cached), {n:,} distinct inputs:      {cold:,.0f} addresses/s")
    print(f"address_key (cached), replay mix of 30k:          {replay:,.0f} addresses/s")
    size, elapsed = register_memory(n)
    print(
        f"register: {n:,} addresses in {elapsed:.2f}s, {size / 1e6:.1f} MB, "
        f"{size / n:.0f} B/address"
    )


if __name__ == "__main__":
    main(sys.argv)
