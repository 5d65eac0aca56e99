"""The Cache: a thin facade over the judge, tiering, the compute flow, bindings and stats.

``Cache(tiers)`` wraps every shared tier in a :class:`~cacheplug.tiers.proxy.FaultTolerant`
proxy (a fault is counted, logged and answered as a miss; the caller is served from another
tier or computes), links the cache to its version store (``cacheplug.cache.health``), and
composes the middleware chains once per operation kind. The parts:

* :class:`~cacheplug.cache.judge.Judge` — may this entry be served (one verdict);
* :class:`~cacheplug.cache.tiering.Tiering` — read-through, promotion, write-through;
* :mod:`cacheplug.cache.flow` — ``get_or_compute`` written once, a sync and an async driver;
* :class:`~cacheplug.cache.invalidating.Invalidator` — record, fail closed, drop, signal;
* :class:`~cacheplug.cache.bindings.Bindings` and :mod:`cacheplug.cache.stats`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from .. import invalidation as inv
from ..envelope import MISS, Entry
from ..errors import ConfigurationError
from ..faults import FaultLedger
from ..middleware import Chains, Middleware
from ..tiers.base import Tier
from ..tiers.capabilities import KeyListing
from ..tiers.memory import MemoryTier
from ..tiers.proxy import FaultTolerant
from ..versions import Versions
from . import lifecycle, stats
from .bindings import Bindings
from .calls import Binding, CacheStats, Pending, _Read, _ttl_seconds
from .flow import call_flow, finish_flow, run, with_run
from .health import Health
from .invalidating import Invalidator, check_keys, check_tags
from .judge import Judge
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
    tier's, else a new in-process one). Use as a context manager to close it.
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
    ) -> None:
        if not isinstance(namespace, str) or "|" in namespace or "\x00" in namespace:
            raise ConfigurationError(f"Cache namespace must be a str without '|' or NUL, got {namespace!r}")
        if clock is not None and not callable(clock):
            raise ConfigurationError("Cache clock must be a zero-argument callable returning seconds")
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
        self._enabled = enabled
        self.middleware = tuple(middleware)
        self.chains = Chains(self.middleware)
        self.faults = FaultLedger(namespace)
        self.closed = False
        shared = [FaultTolerant(t, self.faults) for t in self.tiers[1 if self.memory is not None else 0 :]]
        self.health = Health(self, versions)
        self.tiering = Tiering(self.memory, shared, None, len(self.tiers))  # type: ignore[arg-type]
        self.judge = self.tiering.judge = Judge(self.health.open(), names.cached_skey, self.faults.report)
        self.bindings = Bindings(self, self.memory)
        self.invalidator = Invalidator(self, debounce)
        self.direct = self.binding("", None)
        lifecycle.opened(self)

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

    def blind(self) -> bool:
        """True while the host's invalidations cannot be read (nothing cached is served)."""
        return self.health.blind()

    def unbind_fast_paths(self) -> None:
        """Send the fast paths of this cache's functions through the general path once."""
        lifecycle.notify_unbind(self)

    # -- keys and bindings ------------------------------------------------------------------

    def binding(
        self, ident: str, meta: Any, static_tags: Iterable[str] = (), relevance: Iterable[str] | None = None
    ) -> Binding:
        """The binding of function ``ident`` (``""``: direct calls) in this cache.

        ``meta``: the function's own object (a decorator core: ``name``, ``local`` and
        ``skey_of_fkey(prefix)``), or ``None`` for the direct API. ``relevance``: the tags
        (besides the static ones) through which an invalidation can reach the function's
        entries; ``None`` means any invalidation may.
        """
        return self.bindings.get(ident, meta, static_tags, relevance)

    # -- reads and stores (the parts the decorator's fast path calls) -----------------------

    def live(self, entry: Entry, now: float) -> bool:
        """Is a memory ``entry`` fresh at ``now``? (The judge's verdict.)"""
        return self.judge.live(entry, now)

    def lookup(self, binding: Binding, fkey: Hashable, skey_fn: Callable[[], str]) -> Entry | Any:
        """The fresh entry for a key from the fastest tier holding one, or ``MISS``."""
        find = self.tiering.find(binding, fkey, skey_fn, self.clock())
        chain = self.chains.get
        if chain is None:
            return run(find)
        return chain(with_run(self.describe("get", binding, skey_fn()), lambda: run(find)))

    def read_lower(self, binding: Binding, fkey: Hashable, skey: str, now: float) -> Entry | Any:
        """The fresh entry from the tiers below memory, promoted upward, or ``MISS``."""
        return run(self.tiering.read(binding, fkey, skey, now))

    def hit(self, binding: Binding, entry: Entry) -> Any:
        """Count a hit, report the read to a capturing computation, return the value."""
        binding.hits.add()
        if inv.ACTIVE:
            inv.note(_Read(self, entry))
        return entry.value

    def finish(
        self, pending: Pending, value: Any, store: bool, skey_fn: Callable[[], str], *, force: bool = False
    ) -> Entry:
        """End a computation started outside the flow (the fast path's miss, a refresh)."""
        entry: Entry = run(finish_flow(self, pending, value, store, skey_fn, force))
        return entry

    # -- the direct API ---------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value stored under ``key``, or ``default``."""
        skey = self.user_key(key)
        entry = MISS if self.blind() else self.lookup(self.direct, skey, lambda: skey)
        if entry is MISS:
            self.direct.misses.add()
            return default
        return self.hit(self.direct, entry)

    def set(self, key: str, value: Any, ttl: Any = None, tags: Iterable[str] = ()) -> None:
        """Store ``value`` under ``key`` in every tier, with ``ttl`` seconds and ``tags``."""
        skey = self.user_key(key)
        seconds = _ttl_seconds(ttl, "ttl")
        tag_tuple = self.direct.base_tags + check_tags(tags)
        if self.blind():
            return  # nothing stored could be judged fresh (see ``degraded``)
        pending = Pending(self.direct, skey, skey, tag_tuple, seconds, self.epoch[0], self.clock())
        self.finish(pending, value, True, lambda: skey, force=True)

    def get_or_compute(
        self, key: str, compute: Callable[[], T], ttl: Any = None, tags: Iterable[str] = ()
    ) -> T:
        """The value under ``key``; on a miss, ``compute()`` it and store it."""
        skey = self.user_key(key)
        seconds = _ttl_seconds(ttl, "ttl")
        tag_tuple = self.direct.base_tags + check_tags(tags)
        if self.blind():
            return compute()
        flow = call_flow(self, self.direct, skey, lambda: skey, lambda: tag_tuple, seconds)
        value: T = run(flow, compute)
        return value

    def delete(self, key: str) -> bool:
        """Remove ``key`` from every tier (and from other processes' memory); True if it was there."""
        skey = self.user_key(key)
        existed = self.peek(self.direct, skey, skey) is not MISS
        self.invalidate(keys=[skey])
        return existed

    def peek(self, binding: Binding, fkey: Hashable, skey: str) -> Entry | Any:
        """The fresh entry for a key without promoting it or counting a hit, or ``MISS``."""
        return run(self.tiering.peek(binding, fkey, skey, self.clock()))

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
        """Async twin of :meth:`invalidate`: recorded in a worker thread, never on the event loop.

        The worker runs in a copy of the caller's context, so an enclosing ``batch()`` still
        collects it.
        """
        tags, keys = check_tags(tags), check_keys(keys)
        await asyncio.to_thread(self.invalidate, tags, keys)

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
        """Invalidate what a write of ``entity`` (row ``id``) makes stale, by rule."""
        self.invalidate(tags=self.write_tags(entity, id))

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

    def close(self) -> None:
        """Close the tiers this cache created and leave the registry of open caches."""
        if self.closed:
            return
        if self.invalidator.debouncer is not None:
            self.invalidator.debouncer.close()
        self.closed = True
        lifecycle.closed(self)
        if self._owns_tiers:
            lifecycle.close_tiers(self.tiers)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", ".join(repr(t) for t in self.tiers)
        return f"Cache([{where}], namespace={self.namespace!r}, default_ttl={self.default_ttl})"
