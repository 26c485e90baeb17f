"""The web process's materialised view of the output topics: latest dossier per address, latest
record per alert fingerprint. Fed record by record by the follower (``hub.web.follow``); read by
the request handlers under a lock. Pure: decoded records in, no Kafka.

The rule for alerts is the one ``hub alerts`` uses: the highest ``version`` per fingerprint wins
(arrival order does not), so a redelivered old record cannot undo a newer one. Dossiers: a higher
or equal version replaces, a tombstone deletes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

FIRING = "FIRING"


@dataclass
class ViewState:
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> record
    dossiers: dict[str, dict[str, Any]] = field(default_factory=dict)  # address key -> record
    by_address: dict[str, set[str]] = field(default_factory=dict)  # address key -> fingerprints
    records_applied: int = 0
    caught_up: bool = False  # reached the high watermarks taken at start
    lock: threading.RLock = field(default_factory=threading.RLock)

    def apply_alert(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records_applied += 1
            fp = record["fingerprint"]
            held = self.alerts.get(fp)
            if held is not None and record["version"] < held["version"]:
                return
            self.alerts[fp] = record
            if record.get("address_key"):
                self.by_address.setdefault(record["address_key"], set()).add(fp)

    def apply_dossier(self, key: str, record: dict[str, Any] | None) -> None:
        with self.lock:
            self.records_applied += 1
            if record is None:
                self.dossiers.pop(key, None)
                return
            held = self.dossiers.get(key)
            if held is None or record["version"] >= held["version"]:
                self.dossiers[key] = record

    @contextmanager
    def reading(self) -> Iterator[ViewState]:
        with self.lock:
            yield self

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts.values() if a["status"] == FIRING]

    def address_alerts(self, key: str) -> list[dict[str, Any]]:
        return [self.alerts[fp] for fp in sorted(self.by_address.get(key, ()))]
