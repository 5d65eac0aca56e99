"""The fault ledger: counts every tier fault and logs each kind sparingly.

A broken disk or a dead server must not flood the log, yet every fault must be visible:
each fault is counted under ``"<tier>.<operation>"`` (``stats()["faults"]``), and logged at
most once per :data:`FAULT_LOG_INTERVAL` seconds per (tier, operation, exception type).
One ledger belongs to one owner (a cache, named by its namespace in the log line); it is
thread-safe and its clock is injectable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["FAULT_LOG_INTERVAL", "FaultLedger"]

log = logging.getLogger("cacheplug")

# A fault is logged at most once per this many seconds per (tier, operation, exception type).
# Read on every report, so that a test may change it.
FAULT_LOG_INTERVAL = 10.0


class FaultLedger:
    """Counts and logs the faults met by the tiers of one owner (a cache's ``namespace``).

    ``clock``: monotonic seconds, for the log interval.
    """

    def __init__(self, owner: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.owner = owner
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._logged: dict[tuple[str, str, str], float] = {}

    def report(self, where: str, op: str, exc: BaseException) -> None:
        """Count a fault of operation ``op`` on tier ``where``; log it unless its kind was just logged."""
        name = f"{where}.{op}"
        kind = (where, op, type(exc).__name__)
        now = self._clock()
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            due = now - self._logged.get(kind, -float("inf")) >= FAULT_LOG_INTERVAL
            if due:
                self._logged[kind] = now
        if due:
            log.warning(
                "cacheplug: %s failed in cache %r (%r); serving from another tier or computing "
                "(logged once per %.0f s)",
                name,
                self.owner,
                exc,
                FAULT_LOG_INTERVAL,
            )

    def counts(self) -> dict[str, int]:
        """A copy of the fault counts, by ``"<tier>.<operation>"``."""
        with self._lock:
            return dict(self._counts)

    def __repr__(self) -> str:
        return f"FaultLedger({self.owner!r}, faults={sum(self.counts().values())})"
