"""The ingest stage's own state records, recognised when it reads them back.

Every ingest child follows the global state topics (address register, building cases) to learn
what the other children learned, and so reads its own records back as well. Its memory took
each of them in when it produced it, so applying one again changes nothing, yet costs a JSON
decode, a validation and a lookup: at the bench's full size (250k addresses) about 5-7 % of the
child's CPU during a backfill, where the child and the Faust process share the two cores, so
every microsecond either saves is throughput (issue 17).

An own record read back (an *echo*) is skipped when no record from elsewhere about the same key
was read since the child produced it: then nothing can have come between, and the memory holds
that record's content or the child's own newer state for the key. Otherwise it is applied as
before, in topic order, so the memory still ends as a restore from the topics would build it:
another child's record read in between may have replaced it (building cases keep the latest
version, a municipality code the last fact), and the echo puts it back where the topic says.

Only records in flight are held: produced, not yet read back (a few cycles' worth). A restarted
child holds none and applies everything it reads, as a restore does.
"""

from __future__ import annotations

from collections import deque


class Echoes:
    """Own state records in flight, per (topic, key), in the order they were produced."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, bytes], deque[bytes]] = {}
        self._crossed: set[tuple[str, bytes]] = set()  # a foreign record came in between

    def __len__(self) -> int:
        return sum(len(values) for values in self._pending.values())

    def produced(self, topic: str, key: bytes, value: bytes) -> None:
        """Remember a record this stage has just produced to a followed topic."""
        pending = self._pending.get((topic, key))
        if pending is None:
            self._pending[(topic, key)] = deque((value,))
        else:
            pending.append(value)

    def skip(self, topic: str, key: bytes, value: bytes) -> bool:
        """Whether a record read from a followed topic is an own echo that need not be applied.

        Records of one key come back in the order they were produced (one producer, one
        partition); a record that is not the next one expected counts as foreign.
        """
        slot = (topic, key)
        pending = self._pending.get(slot)
        if pending is None:
            return False
        if pending[0] != value:
            self._crossed.add(slot)
            return False
        pending.popleft()
        crossed = slot in self._crossed
        if not pending:
            del self._pending[slot]
            self._crossed.discard(slot)
        return not crossed
