"""A clock a test moves by hand: what ``Cache(clock=...)`` and the ``cacheplug_clock`` fixture use."""

from __future__ import annotations

import math
import threading

from ..errors import ConfigurationError

__all__ = ["FakeClock"]


class FakeClock:
    """A clock for tests: ``clock()`` returns seconds, ``clock.advance(s)`` moves it forward.

    Give it to a cache (``Cache(tiers, clock=clock)``) and every expiry of that cache (TTLs,
    the monitor's times, measured latencies) follows it instead of the wall clock, so a test
    expires an entry with ``clock.advance(ttl)`` instead of sleeping. It starts at ``start``
    (a recent Unix time by default, so entries written to a disk tier carry plausible
    times). Safe to read and advance from several threads.
    """

    __slots__ = ("_lock", "now")

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = _seconds(start, "FakeClock(start=...)")
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward (a finite number >= 0); returns the new time."""
        step = _seconds(seconds, "FakeClock.advance(seconds)")
        if step < 0:
            raise ConfigurationError(
                f"FakeClock.advance(seconds) moves time forward only, got {seconds!r}: a cache never "
                f"sees time go back; build a new FakeClock to start over"
            )
        with self._lock:
            self.now += step
            return self.now

    def __repr__(self) -> str:
        return f"FakeClock({self.now})"


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{what} takes a finite number of seconds, got {value!r}")
    return float(value)
