"""What one cached call carries through the coordinator: its function's binding to a cache,
the computation in flight, the reads it reports, and the counters.

A :class:`Binding` is one function object (or the direct ``Cache`` API) in one cache: its
own memory shelf (two function objects never share entries in memory; the cache holds a
function's binding only as long as the function lives), the tags every entry of it
carries, its exact counters, and the per-function shortcut that lets invalidations which
cannot reach the function cost its hits one comparison (see ``Cache.advance``).
"""

from __future__ import annotations

import datetime
import itertools
import threading
import weakref
from typing import TYPE_CHECKING, Any

from .. import flight
from .. import invalidation as inv
from ..envelope import Entry
from ..errors import ConfigurationError
from ..histogram import Histogram
from ..statistics import FunctionStats
from ..tiers.memory import Shelf

if TYPE_CHECKING:
    from collections.abc import Hashable

    from .facade import Cache
    from .freshness import Freshness

__all__ = ["Binding", "Meter", "Pending", "Tally"]


# The shelf of a binding without a memory tier: always empty (the fast path finds nothing
# and goes to the shared tiers); compared by identity, it is never stored into.
_EMPTY_SHELF: dict[Any, Any] = {}


class Tally:
    """An exact counter safe across threads without a lock (``itertools.count`` is atomic)."""

    __slots__ = ("add", "counter")

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.add = self.counter.__next__

    @property
    def value(self) -> int:
        return int(repr(self.counter)[6:-1])


def _ttl_seconds(ttl: Any, what: str) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, datetime.timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl != ttl or ttl < 0:
        raise ConfigurationError(
            f"{what} must be None, a number of seconds >= 0 or a datetime.timedelta, got {ttl!r}"
        )
    return float(ttl)


class Meter:
    """One function's counters in one cache: exact outcome tallies and latency histograms.

    ``hits`` counts every hit (the memory hits are those no shared tier answered);
    ``misses`` every lookup no tier served, ``coalesced`` those served by another caller's
    computation, ``errors`` the calls that raised (so the outcome "miss" is
    ``misses - errors - coalesced``); ``tier_hits[i]``: hits of shared tier ``i``.
    ``latency[0]``: sampled memory hits, ``latency[1 + i]``: hits of shared tier ``i``;
    ``compute``: every computation that returned. ``sample``: the next general-path memory
    hit is timed (set by every 64th hit). ``refreshes``: background refreshes run
    (``stale_ttl``, ``early_refresh``); ``refresh_errors``: recomputations that raised while
    a stale value stayed in place (failed background refreshes, ``stale_if_error`` retries).
    """

    __slots__ = (
        "coalesced",
        "compute",
        "errors",
        "hits",
        "latency",
        "misses",
        "refresh_errors",
        "refreshes",
        "sample",
        "stale",
        "tier_hits",
    )

    def __init__(self, tiers: int) -> None:
        self.hits = Tally()
        self.misses = Tally()
        self.errors = Tally()
        self.stale = Tally()
        self.coalesced = Tally()
        self.refreshes = Tally()
        self.refresh_errors = Tally()
        self.tier_hits = [Tally() for _ in range(tiers - 1)]
        self.compute = Histogram()
        self.latency = [Histogram() for _ in range(tiers)]
        self.sample = False

    def read(self, name: str, tier_names: list[str]) -> FunctionStats:
        """A snapshot of these counters; ``tier_names``: the memory tier's (or ``""``), then
        the shared tiers'."""
        errors = self.errors.value
        coalesced = self.coalesced.value
        shared = [tally.value for tally in self.tier_hits]
        # A shared tier's hit is counted there first, then as a hit (Cache.hit): one in flight
        # is a hit already, so that the memory tier's share is never negative.
        hits = max(self.hits.value, sum(shared))
        tier_hits = dict(zip(tier_names[1:], shared, strict=True))
        latency = {}
        for tier, histogram in zip(tier_names, self.latency, strict=True):
            if tier:
                latency[tier] = histogram.read()
        if tier_names[0]:
            tier_hits = {tier_names[0]: hits - sum(shared), **tier_hits}
        return FunctionStats(
            name=name or "<direct>",
            hits=hits,
            misses=max(self.misses.value - errors - coalesced, 0),
            stale=self.stale.value,
            coalesced=coalesced,
            errors=errors,
            refreshes=self.refreshes.value,
            refresh_errors=self.refresh_errors.value,
            tier_hits=tier_hits,
            compute=self.compute.read(),
            hit_latency=latency,
        )


class Binding:
    """One function (or the direct API) in one cache: its shelf, tags and counters."""

    __slots__ = (
        "__weakref__",
        "base_tags",
        "base_tags_fn",
        "cache",
        "calls",
        "fa_tag",
        "flights",
        "fn_tag",
        "fresh",
        "hits",
        "ident",
        "key_prefix",
        "local",
        "lock",
        "meter",
        "misses",
        "owner",
        "policy",
        "retries",
        "shelf",
        "signature",
        "skeys",
        "warned",
    )

    def __init__(
        self, cache: Cache, ident: str, shelf: Shelf | dict[Any, Any], base_tags: tuple[str, ...]
    ) -> None:
        self.cache = cache
        self.ident = ident
        self.shelf = shelf
        self.base_tags = base_tags
        self.base_tags_fn = lambda: base_tags
        self.skeys: dict[Any, str] = {}
        self.fn_tag = inv.fn_tag(cache.namespace, ident)
        self.fa_tag = inv.fn_any_tag(cache.namespace, ident)
        meter = self.meter = Meter(len(cache.tiering.lower) + 1)
        # The hit and miss counters are the meter's, named here for the hot paths.
        self.hits = meter.hits
        self.misses = meter.misses
        self.warned = False
        # True: the function stays in this process's memory (its key is not stable across
        # processes, e.g. a closure over an unkeyable value); the shared tiers are not used.
        self.local = False
        # Which invalidations can touch this function's entries: any tag in ``signature``
        # (its static tags, the families of its tag templates) or a key tag under
        # ``key_prefix``. ``None``: any invalidation may (direct API, captured dependencies).
        self.signature: frozenset[str] | None = None
        self.key_prefix = ""
        # [fresh_since, checked]: no invalidation in (fresh_since, checked] can touch this
        # function's entries. Read checked first, written last (see Cache.advance).
        self.fresh = [0, -1]
        self.lock = threading.Lock()
        # The function's freshness options (``cacheplug.cache.freshness``; None: none), and
        # when each key whose recomputation failed may be retried (bounded, see the flow).
        self.policy: Freshness | None = None
        self.retries: dict[Any, float] = {}
        # The function's own object (its decorator core), weakly; ``None`` for the direct API.
        self.owner: weakref.ref[Any] | None = None
        # While the cache learns usage: the arguments of calls whose key cannot be turned
        # back into them (see cacheplug.cache.learning), by memory key; else ``None``.
        self.calls: dict[Any, Any] | None = None
        # The computations of this function in flight, by key (cacheplug.cache.stampede).
        self.flights = flight.Flights() if flight.ENABLED else None


_capture_set = inv.CAPTURE.set
_capturing_add = inv.ACTIVE.append


class Pending:
    """A computation in flight: what it needs to be stored when it finishes.

    Creating it snapshots nothing but the epoch (``seq0``) and starts capturing the cached
    reads the computation makes (a context variable, so threads and tasks stay apart).
    """

    __slots__ = (
        "binding",
        "bucket",
        "fkey",
        "lease",
        "mark",
        "policy",
        "seq0",
        "skey",
        "start",
        "tags",
        "token",
        "ttl",
    )

    # ``start`` is the cache clock's reading when the computation began: its cost is measured
    # on the same clock as expiry (a fake clock in tests gives fake, consistent costs).

    def __init__(
        self,
        binding: Binding,
        fkey: Hashable,
        skey: str | None,
        tags: tuple[str, ...],
        ttl: float | None,
        seq0: int,
        start: float,
    ) -> None:
        self.binding = binding
        self.fkey = fkey
        self.skey = skey
        self.tags = tags
        self.ttl = ttl
        self.seq0 = seq0
        self.start = start
        # The flight this computation owns and its host lease (cacheplug.cache.stampede).
        self.mark: list[Any] | None = None
        self.lease: Any = None
        self.policy = binding.policy  # a direct call's own options replace it (the flow)
        # inv.capture_begin(), inlined: this runs on every miss.
        bucket: list[Any] = []
        self.bucket = bucket
        self.token = _capture_set(bucket)
        _capturing_add(None)


class _Read:
    """What a capturing computation records about one read: the entry and its cache."""

    __slots__ = ("cache", "entry")

    def __init__(self, cache: Cache, entry: Entry) -> None:
        self.cache = cache
        self.entry = entry
