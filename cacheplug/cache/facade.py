"""The Cache: a thin facade over the judge, tiering, the compute flow, bindings and stats.

``Cache(tiers)`` wraps every shared tier in a :class:`~cacheplug.tiers.proxy.FaultTolerant`
proxy (a fault is counted, logged and answered as a miss; the caller is served from another
tier or computes), links the cache to its version store (``cacheplug.cache.health``), and
composes the middleware chains once per operation kind. Each part is a module of this
package; docs/architecture.md maps them.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from .. import invalidation as inv
from ..envelope import MISS, Entry
from ..errors import ConfigurationError
from ..faults import FaultLedger
from ..middleware import Chains, Middleware
from ..statistics import CacheStats
from ..tiers.base import Tier
from ..tiers.capabilities import KeyListing
from ..tiers.memory import MemoryTier
from ..tiers.proxy import FaultTolerant
from ..versions import Versions
from . import dependencies as deps
from . import direct, lifecycle, stampede, stats
from .background import Background
from .bindings import Bindings
from .calls import Binding, Pending, _Read, _ttl_seconds
from .flow import checked_entry, finish_now, with_run
from .health import Health
from .invalidating import Invalidator, check_keys, check_tags
from .judge import Judge
from .learning import learner_for
from .naming import Names
from .tiering import Tiering

__all__ = ["Cache"]

T = TypeVar("T")


class Cache:
    """The coordinator over an ordered list of tiers (fastest first).

    ``tiers`` defaults to the configured tiers (memory + disk unless ``CACHEPLUG_TIERS``
    says otherwise). ``default_ttl`` applies when a call gives no ttl (``None``: entries
    never expire). ``namespace`` separates caches sharing storage. ``clock`` (seconds,
    default ``time.time``) decides every expiry. ``middleware`` is composed once into one
    chain per operation kind. ``debounce`` (seconds, off by default) coalesces bursts of
    invalidations at the price of serving invalidated entries until the window closes (see
    :class:`~cacheplug.invalidation.Debouncer`). ``secret`` (one str, comma-separated ones,
    or a sequence: the first signs, all verify) signs the entries of the disk tier the cache
    builds when ``tiers`` is not given (default: ``CACHEPLUG_SECRET``). ``versions``: the
    version store to judge entries against (default: the shared tier's, else the memory
    tier's, else a new in-process one). ``tracing=True`` appends a
    :class:`~cacheplug.otel.OpenTelemetryMiddleware` on the global OpenTelemetry providers.
    ``random`` (default ``random.random``): the floats in [0, 1) of ``early_refresh``'s
    draw; pass a seeded ``random.Random(seed).random`` for a reproducible run.
    ``learn=True`` (default: ``CACHEPLUG_LEARN``) learns which entries are hot and refreshes
    them ahead of expiry (see the Warming guide); it needs a memory tier, and ``learner`` is
    then the cache's learner (``learner.tick()`` runs one tick now). Use as a context
    manager to close it.
    """

    def __init__(
        self,
        tiers: Sequence[Tier] | None = None,
        *,
        default_ttl: float | Any = None,
        namespace: str = "",
        clock: Callable[[], float] | None = None,
        middleware: Sequence[Middleware] = (),
        enabled: bool = True,
        debounce: float | None = None,
        secret: str | Sequence[str] | None = None,
        versions: Versions | None = None,
        tracing: bool = False,
        learn: bool | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        lifecycle.check_arguments(namespace, clock, versions)
        if random is not None and not callable(random):
            raise ConfigurationError(
                "Cache random must be a zero-argument callable returning floats in [0, 1), "
                f"such as random.Random(seed).random; got {random!r}"
            )
        if tracing:
            from ..otel import with_tracing  # deferred: opentelemetry is imported only when asked

            middleware = with_tracing(middleware)
        self._owns_tiers = tiers is None
        self.tiers: list[Tier] = lifecycle.resolve_tiers(tiers, secret)
        self.memory: MemoryTier | None = self.tiers[0] if isinstance(self.tiers[0], MemoryTier) else None
        self.default_ttl = _ttl_seconds(default_ttl, "default_ttl")
        self.namespace = namespace
        self.ns_tag = inv.ns_tag(namespace)
        names = self.names = Names(namespace, self.memory)
        self.user_key, self.function_key, self.user_facing = (
            names.user_key,
            names.function_key,
            names.user_facing,
        )
        self.describe, self.entry_tags = names.describe, names.entry_tags
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        # What latencies are measured with: the cache's clock when one is given (tests script
        # durations with it), else time.perf_counter.
        self.timer: Callable[[], float] = clock if clock is not None else time.perf_counter
        self._on_close: list[Callable[[], None]] = []
        self._enabled = enabled
        self.chains = Chains(middleware)
        self.middleware = tuple(middleware)
        self.faults = FaultLedger(namespace)
        # Refreshes, early recomputations and warming run here (threads start on first use).
        self.background = Background(on_error=lambda key, exc: self.faults.report("background", "job", exc))
        self.closed = False
        # Usage learning (opt-in): hit counts, refresh-ahead of hot keys, the learned set.
        self.learner = learner_for(self, learn)
        if self.learner is not None:
            self.on_close(self.learner.close)
        shared = [FaultTolerant(t, self.faults) for t in self.tiers[1 if self.memory is not None else 0 :]]
        self.health = Health(self, versions, shared)
        draws = random or _random.random
        self.judge = Judge(self.health.open(), names.cached_skey, self.faults.report, draws)
        self.tiering = Tiering(self.memory, shared, self.judge, self.timer, self.learner is not None)
        self.bindings = Bindings(self, self.memory)
        # Where lock="host" leases keys among the host's processes (None: no disk tier).
        self.leases = stampede.host_leases(self.tiers)
        # The parts' own methods, as the cache's: the binding of a function, the judge's
        # verdict on a memory entry, whether the host's invalidations are unreadable.
        self.binding, self.live, self.blind = self.bindings.get, self.judge.live, self.health.blind
        self.invalidator = Invalidator(self, debounce)
        self.direct = self.binding("", None)
        lifecycle.opened(self)
        if self.learner is not None:
            self.learner.start()
        for item in self.middleware:
            attach = getattr(item, "attach", None)
            if callable(attach):
                attach(self)  # a middleware that reads the cache (its stats, say) is told which

    # -- state ------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False makes every ``@cached`` call on this cache a pass-through (invalidations still apply).

        Also False while the host's invalidations cannot be read (see :attr:`degraded`): then
        nothing cached may be served, so every call computes; reading is retried every 10 s.
        """
        return self._enabled and not self.health.blind()

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        self.unbind_fast_paths()

    @property
    def degraded(self) -> str | None:
        """Why the host's invalidations cannot be read right now (``None``: they can)."""
        return self.health.degraded

    @property
    def versions(self) -> Versions:
        """The version store this cache's entries are judged against."""
        return self.judge.versions

    @property
    def epoch(self) -> list[int]:
        """``[seq]``: the version store's current sequence number (shared with the store)."""
        return self.judge.epoch

    def unbind_fast_paths(self) -> None:
        """Send the fast paths of this cache's functions through the general path once."""
        lifecycle.notify_unbind(self)

    # -- reads and stores (the parts the decorator's fast path calls) -----------------------

    def lookup(self, binding: Binding, fkey: Hashable, skey_fn: Callable[[], str]) -> Entry | Any:
        """The fresh entry for a key from the fastest tier holding one, or ``MISS``."""
        find, now, chain = self.tiering.find_now, self.clock(), self.chains.get
        if chain is None:
            return find(binding, fkey, skey_fn, now)
        op = self.describe("get", binding, skey_fn())
        return checked_entry(chain(with_run(op, lambda: find(binding, fkey, skey_fn, now))))

    def read_lower(self, binding: Binding, fkey: Hashable, skey: str, now: float) -> Entry | Any:
        """The fresh entry from the tiers below memory, promoted upward, or ``MISS``."""
        return self.tiering.read_now(binding, fkey, skey, now)

    def hit(self, binding: Binding, entry: Entry) -> Any:
        """Count a hit, report the read to a capturing computation, return the value."""
        if not binding.hits.add() & 63:
            binding.meter.sample = True  # time the next memory hit of this function
        if inv.ACTIVE:
            inv.note(_Read(self, entry))
        return entry.value

    def stale(self, binding: Binding, entry: Entry) -> Any:
        """Count a stale value served (``stale_ttl``, ``stale_if_error``), report the read, return it."""
        binding.meter.stale.add()
        if inv.ACTIVE:
            inv.note(_Read(self, entry))
        return entry.value

    def finish(
        self, pending: Pending, value: Any, store: bool, skey_fn: Callable[[], str], *, force: bool = False
    ) -> Entry:
        """End a computation started outside the flow (the fast path's miss, a refresh)."""
        return finish_now(self, pending, value, store, skey_fn, force)

    # -- the direct API ---------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value stored under ``key``, or ``default``."""
        return direct.get(self, key, default)

    def set(
        self, key: str, value: Any, ttl: Any = None, tags: Iterable[str] = (), depends_on: Iterable[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` in every tier, with ``ttl`` seconds and ``tags``.

        ``depends_on``: keys of this cache ``value`` was derived from (see :meth:`add_dependency`).
        """
        direct.store(self, key, value, ttl, tags, depends_on)

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], T],
        ttl: Any = None,
        tags: Iterable[str] = (),
        depends_on: Any = (),
        *,
        lock: str | None = None,
        lock_timeout: float = stampede.DEFAULT_LOCK_TIMEOUT,
        stale_ttl: float | Any = None,
        stale_if_error: float | Any = None,
        early_refresh: bool | float = False,
    ) -> T:
        """The value under ``key``; on a miss, ``compute()`` it and store it (``depends_on``: as for set).

        Concurrent misses of one key wait for one computation; ``lock="host"``: in every
        process of the host (needs a disk tier); ``lock_timeout``: seconds before a waiter
        takes over (see ``@cached``). ``stale_ttl``, ``stale_if_error`` and
        ``early_refresh``: as for ``@cached`` (see docs/guide/freshness.md); a background
        refresh calls ``compute`` on the cache's background threads.
        """
        guard = stampede.guard_of(lock, lock_timeout, "Cache.get_or_compute")
        if guard.host:
            stampede.require_leases(self, "Cache.get_or_compute")
        return direct.get_or_compute(
            self, key, compute, ttl, tags, depends_on, guard, (stale_ttl, stale_if_error, early_refresh)
        )

    def add_dependency(
        self, derived_key: str, sources: Iterable[str] = (), *, tags: Iterable[str] = (), ttl: Any = None
    ) -> None:
        """Make ``derived_key`` stale whenever one of ``sources`` (keys) or ``tags`` is invalidated.

        In every process of the host, and transitively; cycles are fine. The link lasts until
        ``derived_key`` is invalidated or ``ttl`` seconds pass. Each later invalidation costs
        O(tags + dependents it reaches). Raises ``InvalidationError`` when it cannot be recorded.
        """
        (derived,) = check_keys([derived_key], "derived_key")
        deps.add(self, derived, check_keys(sources, "sources"), check_tags(tags), _ttl_seconds(ttl, "ttl"))

    def delete(self, key: str) -> bool:
        """Remove ``key`` from every tier (and from other processes' memory); True if it was there."""
        skey = self.user_key(key)
        existed = self.peek(self.direct, skey, skey) is not MISS
        self.invalidate(keys=[skey])
        return existed

    def peek(self, binding: Binding, fkey: Hashable, skey: str) -> Entry | Any:
        """The fresh entry for a key without promoting it or counting a hit, or ``MISS``."""
        return self.tiering.peek_now(binding, fkey, skey, self.clock())

    # -- invalidation -----------------------------------------------------------------------

    def invalidate(self, tags: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        """Make every entry carrying one of ``tags`` or stored under one of ``keys`` stale.

        Costs O(len(tags) + len(keys)) whatever the number of entries. Inside ``batch()``
        the invalidation is collected and applied when the block exits. Raises
        :class:`~cacheplug.errors.InvalidationError` when it cannot be recorded.
        """
        tag_set = set(check_tags(tags))
        key_set = {self.names.stored(k) for k in check_keys(keys)}
        if tag_set or key_set:
            self.invalidator.request(tag_set, key_set)

    async def ainvalidate(self, tags: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        """Async twin of :meth:`invalidate`: the async driver records it (and removes the keys)
        in worker threads, never on the event loop; an enclosing ``batch()`` still collects it."""
        tag_set = set(check_tags(tags))
        key_set = {self.names.stored(k) for k in check_keys(keys)}
        if tag_set or key_set:
            await self.invalidator.arequest(tag_set, key_set)

    @property
    def debounced(self) -> bool:
        """Whether invalidations of this cache wait for a debounce window."""
        return self.invalidator.debouncer is not None

    def flush_invalidations(self) -> bool:
        """Apply debounced invalidations now (see ``Cache(debounce=...)``); True if any were pending."""
        debouncer = self.invalidator.debouncer
        return debouncer.flush() if debouncer is not None else False

    def add_rule(self, rule: inv.InvalidationRule) -> None:
        """Register a write rule for this cache (see :func:`cacheplug.invalidate_by_write`)."""
        self.invalidator.add_rule(rule)

    def write_tags(self, entity: str, id: Any = None) -> list[str]:
        """The tags a write of ``entity``/``id`` invalidates here (global rules included)."""
        return self.invalidator.write_tags(entity, id)

    def invalidate_by_write(self, entity: str, id: Any = None) -> None:
        """Invalidate what a write of ``entity`` (row ``id``) makes stale, by rule.

        With ``id=None`` (a write of the whole table: a bulk update, a Core statement) every
        entry tagged with one of its rows (``f"{entity}:{id}"`` for any id) goes stale too.
        """
        tags = self.write_tags(entity, id)
        check_tags([t for t in tags if not t.startswith(inv.ROWS)])  # the rules' tags are the user's
        self.invalidator.request(set(tags), set())

    def clear(self) -> None:
        """Make every entry of this cache's namespace stale in every tier and process."""
        if self.invalidator.request({self.ns_tag}, set()):
            self.bindings.drop_shelves()

    def sweep(self) -> int:
        """Remove expired and stale entries from every tier. O(entries): run it off the call path."""
        listing = [t for t in self.tiering.lower if isinstance(t, KeyListing)]
        return self.tiering.sweep(self.names.prefix, self.clock(), listing)

    # -- bookkeeping ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Counters: hits, misses, per-tier hits, faults, refused stale stores and more."""
        return stats.snapshot(self)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when this cache closes (a monitor stops its thread so)."""
        self._on_close.append(callback)

    def close(self) -> None:
        """Stop what runs on behalf of this cache, close the tiers it created and leave the
        registry of open caches."""
        if self.closed:
            return
        while self._on_close:
            self._on_close.pop()()
        self.background.close()
        if self.invalidator.debouncer is not None:
            self.invalidator.debouncer.close()
        self.closed = True
        lifecycle.closed(self)
        lifecycle.release_versions(self.judge.versions)
        if self._owns_tiers:
            lifecycle.close_tiers(self.tiers)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", ".join(repr(t) for t in self.tiers)
        return f"Cache([{where}], namespace={self.namespace!r}, default_ttl={self.default_ttl})"
