"""Freshness policies: what ``stale_ttl=``, ``stale_if_error=`` and ``early_refresh=`` stamp on entries.

A :class:`Freshness` is checked once, where the options are given (``@cached`` at
decoration time, ``Cache.get_or_compute`` per call: bad values raise
:class:`~cacheplug.errors.ConfigurationError`), and stamps each entry its computation
produces. The entry then carries its policy as moments on the cache's clock, so every tier
keeps it for its ttl plus its windows and any process judges it alike
(``cacheplug.cache.judge``; the shared tiers' codec stores the moments):

Each is a :class:`~cacheplug.envelope.PolicyEntry` (its expiry kept apart from its deadline):

* ``early_refresh=β`` (``True``: β = 1): ``deadline = refresh_from = expiry - 10·δ·β``, where
  δ is the computation's duration on the cache's clock. Before it a hit is a plain hit;
  past it the judge draws XFetch's ``now - δ·β·ln(rand()) >= expiry``.
* ``stale_ttl=s``: ``stale_until = expiry + s``: served while one background refresh runs.
* ``stale_if_error=s``: ``error_until = expiry + s``: served when recomputing it raises.

A recomputation that failed is retried no sooner than :func:`retry_gap` later: min(1 s, a
tenth of the window the entry is in), rather than on every call.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from ..envelope import Entry, PolicyEntry
from ..errors import ConfigurationError
from .judge import FALLBACK, REFRESH, STALE, Verdict

__all__ = ["RETRY_AT_MOST", "Freshness", "freshness", "retry_gap"]

RETRY_AT_MOST = 1.0  # seconds: the longest wait before a failed recomputation is retried


class Freshness:
    """One function's (or one direct call's) freshness options, checked."""

    __slots__ = ("beta", "stale_if_error", "stale_ttl")

    def __init__(self, stale_ttl: float, stale_if_error: float, beta: float) -> None:
        self.stale_ttl = stale_ttl
        self.stale_if_error = stale_if_error
        self.beta = beta  # 0.0: no early refresh

    def entry(
        self,
        value: Any,
        now: float,
        expires: float | None,
        seq: int,
        tags: tuple[str, ...],
        cost: float,
        skey: str | None,
    ) -> Entry:
        """The entry of a computation that took ``cost`` seconds and ended at ``now``."""
        if expires is None:  # never expires: nothing to refresh ahead of, never stale
            return Entry(value, now, expires, seq, tags, cost, skey)
        entry = PolicyEntry(value, now, expires, seq, tags, cost, skey)
        if self.beta:
            entry.deadline = min(expires, expires - 10.0 * max(cost, 0.0) * self.beta)
        if self.stale_ttl:
            entry.stale_until = expires + self.stale_ttl
        if self.stale_if_error:
            entry.error_until = expires + self.stale_if_error
        return entry

    def __repr__(self) -> str:
        return (
            f"Freshness(stale_ttl={self.stale_ttl}, stale_if_error={self.stale_if_error}, beta={self.beta})"
        )


def _seconds(value: Any, what: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ConfigurationError(
            f"{what} must be None or a finite number of seconds >= 0 (or a datetime.timedelta), got {value!r}"
        )
    return float(value)


def freshness(
    stale_ttl: Any, stale_if_error: Any, early_refresh: Any, ttl: float | None, what: str
) -> Freshness | None:
    """The checked policy of these options (``what``: who was given them, for the errors),
    or ``None`` when none is on."""
    stale = _seconds(stale_ttl, f"{what} stale_ttl")
    error = _seconds(stale_if_error, f"{what} stale_if_error")
    if early_refresh is None or isinstance(early_refresh, bool):
        beta = 1.0 if early_refresh else 0.0
    elif isinstance(early_refresh, (int, float)) and 0 <= early_refresh < math.inf:
        beta = float(early_refresh)  # 0: off
    else:
        raise ConfigurationError(
            f"{what} early_refresh must be True, False or a number β >= 0 (how early to "
            f"recompute: 1 is XFetch's default, larger is earlier), got {early_refresh!r}"
        )
    if not (stale or error or beta):
        return None
    if ttl == 0:
        raise ConfigurationError(
            f"{what} ttl=0 stores nothing, so there is nothing to serve stale or refresh early: "
            f"give a ttl > 0 or drop stale_ttl=, stale_if_error= and early_refresh="
        )
    return Freshness(stale, error, beta)


def retry_gap(entry: Entry, verdict: Verdict) -> float:
    """How long after a failed recomputation of ``entry`` (judged ``verdict``) the next may start:
    min(1 s, a tenth of the window the entry was in)."""
    expires = entry.expires
    if expires is None:
        return RETRY_AT_MOST
    if verdict is FALLBACK:
        window = entry.error_until - expires
    elif verdict is STALE:
        window = entry.stale_until - expires
    elif verdict is REFRESH:
        window = expires - entry.deadline
    else:
        return 0.0
    return max(0.0, min(RETRY_AT_MOST, window / 10))
