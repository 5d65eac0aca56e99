"""The coordinator: read-through, promotion, write-through and invalidation over the tiers.

A read walks the tiers top-down; the first fresh entry wins and is copied into the tiers
above it with its remaining TTL. A computed value is written through to every tier. An
entry is fresh while it has not expired by the cache's clock and no tag it carries was
invalidated after it was checked (``cacheplug.versions``).

Faults: any exception from a tier during a read or a store is counted, logged and
skipped; the call is served from another tier or computed. Invalidations fail closed: if
the version store cannot record one, ``invalidate()`` raises.

No stale set: a computation snapshots the epoch before it starts and its result is stored
only if none of its tags (its own, its key's, and those of everything it read) was
invalidated since; readers compare against the same snapshot, so even a store that races
the check is never served.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from . import dependencies as deps
from . import invalidation as inv
from .calls import _EMPTY_SHELF, Binding, CacheStats, Pending, Tally, _Read, _ttl_seconds
from .envelope import MISS, Entry
from .errors import ConfigurationError, InvalidationError, SerializationError
from .middleware import Middleware, Op, compose
from .tiers.base import Tier
from .tiers.memory import MemoryTier, Shelf
from .versions import LocalVersions, Versions, VersionsUnavailable, fresh

__all__ = ["Cache", "CacheStats", "Tally", "open_caches"]

log = logging.getLogger("cacheplug")
T = TypeVar("T")

# A fault is logged at most once per this many seconds per (tier, operation, exception type);
# a cache that cannot read the host's invalidations tries again after as long.
FAULT_LOG_INTERVAL = 10.0
RETRY_INTERVAL = 10.0

_OPEN: weakref.WeakSet[Cache] = weakref.WeakSet()
_SHELF_SERIAL = itertools.count()


def _retire(cache_ref: Any, memory_ref: Any, shelf_name: Any, hits: Tally, misses: Tally) -> None:
    """A function object was garbage-collected: keep its counts, forget its memory shelf.

    Runs inside the garbage collector, in any thread: takes no lock that could be held.
    """
    cache = cache_ref()
    if cache is not None:
        cache._retired.append((hits.value, misses.value))
    memory = memory_ref() if memory_ref is not None else None
    if memory is not None:
        memory.forget(shelf_name)


_UNBIND_HOOKS: list[Callable[[Cache | None], None]] = []


def on_unbind(hook: Callable[[Cache | None], None]) -> None:
    """Call ``hook(cache)`` when ``cache`` stops serving fast paths (closed, swapped, disabled)."""
    _UNBIND_HOOKS.append(hook)


def notify_unbind(cache: Cache | None) -> None:
    for hook in _UNBIND_HOOKS:
        hook(cache)


def _after_fork_in_child() -> None:
    # Only the forking thread lives on in the child: a lock another thread held at the fork
    # would never be released there. The state each lock guards is consistent at any bytecode
    # boundary (the GIL), so fresh locks are enough.
    for cache in list(_OPEN):
        cache._lock = threading.Lock()
        cache._reopen_lock = threading.Lock()
        for binding in cache._all_bindings():
            binding.lock = threading.Lock()
        if cache._debouncer is not None:
            cache._debouncer.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def open_caches() -> list[Cache]:
    """Every open :class:`Cache` of this process."""
    return [c for c in list(_OPEN) if not c.closed]


class Cache:
    """The coordinator over an ordered list of tiers (fastest first).

    ``tiers`` defaults to the configured tiers (memory + disk unless ``CACHEPLUG_TIERS``
    says otherwise). ``default_ttl`` applies when a call gives no ttl (``None``: entries
    never expire). ``namespace`` separates caches sharing storage. ``clock`` (seconds,
    default ``time.time``) decides every expiry. ``middleware`` is composed once into the
    chain around every operation. ``debounce`` (seconds, off by default) coalesces bursts of
    invalidations at the price of serving invalidated entries until the window closes (see
    :class:`~cacheplug.invalidation.Debouncer`). ``secret`` (one str, comma-separated ones,
    or a sequence: the first signs, all verify) signs the entries of the disk tier the cache
    builds when ``tiers`` is not given (default: ``CACHEPLUG_SECRET``). Use as a context
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
    ) -> None:
        if not isinstance(namespace, str) or "|" in namespace or "\x00" in namespace:
            raise ConfigurationError(f"Cache namespace must be a str without '|' or NUL, got {namespace!r}")
        if clock is not None and not callable(clock):
            raise ConfigurationError("Cache clock must be a zero-argument callable returning seconds")
        self._owns_tiers = tiers is None
        if tiers is None:
            from .config import default_tiers

            tiers = default_tiers(secret)
        elif secret is not None:
            raise ConfigurationError(
                "Cache(secret=...) applies to the tiers the cache builds itself; for tiers you pass, "
                "give the secret to the tier: DiskTier(directory, secret=...)"
            )
        tiers = list(tiers)
        if not tiers:
            raise ConfigurationError("Cache needs at least one tier, e.g. Cache([MemoryTier()])")
        for tier in tiers:
            if not all(hasattr(tier, m) for m in ("get", "set", "delete", "clear")):
                raise ConfigurationError(f"{tier!r} is not a tier: it needs get/set/delete/clear")
        self.tiers: list[Tier] = tiers
        self.memory: MemoryTier | None = tiers[0] if isinstance(tiers[0], MemoryTier) else None
        self._lower: list[Tier] = tiers[1:] if self.memory is not None else tiers
        self.default_ttl = _ttl_seconds(default_ttl, "default_ttl")
        self.namespace = namespace
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        self._enabled = enabled
        self.middleware = tuple(middleware)
        self._chain = compose(self.middleware)
        self._lock = threading.Lock()
        self._reopen_lock = threading.Lock()
        self._faults: dict[str, int] = {}
        self._fault_logged: dict[tuple[str, str, str], float] = {}
        # Set (with the reason) while the host's invalidations cannot be read.
        self.degraded: str | None = None
        self._retry_at = 0.0
        # Entries created before this (cache clock) are stale in this process: set when an
        # invalidation could not be recorded for the other processes (see _invalidate_direct).
        self._cutoff = float("-inf")
        self.versions: Versions = self._open_versions()
        self.epoch = self.versions.epoch
        self.ns_tag = inv.ns_tag(namespace)
        self._prefix = namespace + "|"
        # Direct-API bindings by ident; function bindings by the function's object, weakly:
        # the cache never keeps a dropped function (nor its memory shelf) alive.
        self._bindings: dict[Any, Binding] = {}
        self._fn_bindings: weakref.WeakKeyDictionary[Any, Binding] = weakref.WeakKeyDictionary()
        self._retired: collections.deque[tuple[int, int]] = collections.deque()
        self._retired_counts = [0, 0]
        self._rules: list[inv.InvalidationRule] = []
        self._tier_hits = [Tally() for _ in self.tiers]
        self.stale_sets = Tally()
        self.unserializable = Tally()
        self.invalidations = Tally()
        self.closed = False
        self._debouncer = None if debounce is None else inv.Debouncer(debounce, self._apply_invalidation)
        self._direct = self.binding("", None)
        _OPEN.add(self)

    @property
    def enabled(self) -> bool:
        """False makes every ``@cached`` call on this cache a pass-through (invalidations still apply).

        Also False while the host's invalidations cannot be read (see :attr:`degraded`): then
        nothing cached may be served, so every call computes; reading is retried every
        ``RETRY_INTERVAL`` seconds.
        """
        return self._enabled and not self.blind()

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        notify_unbind(self)

    def blind(self) -> bool:
        """True while the host's invalidations cannot be read (retried every 10 s, here)."""
        if self.degraded is None:
            return False
        if time.monotonic() >= self._retry_at:
            self._retry_versions()
        return self.degraded is not None

    def _open_versions(self) -> Versions:
        """The version store, or a blind one (and ``degraded`` set) when it cannot be read."""
        try:
            store = self._pick_versions()
        except VersionsUnavailable as exc:
            if self.degraded is None:
                log.error(
                    "cacheplug: %s; serving nothing cached and computing every call until it can "
                    "be read (retried every %.0f s)",
                    exc,
                    RETRY_INTERVAL,
                )
            self.degraded = f"invalidations unreadable: {exc}"
            self._retry_at = time.monotonic() + RETRY_INTERVAL
            self._fault("versions", "open", exc)
            return LocalVersions()
        if self.degraded is not None:
            log.warning("cacheplug: the host's invalidations are readable again; serving cached values")
        self.degraded = None
        store.add_listener(self._on_versions_tick)
        return store

    def _retry_versions(self) -> None:
        with self._reopen_lock:
            if self.degraded is None or time.monotonic() < self._retry_at:
                return
            self._retry_at = time.monotonic() + RETRY_INTERVAL
            store = self._open_versions()
            if self.degraded is None:
                self.versions = store
                self._renew()

    def _on_versions_tick(self, reopened: bool) -> None:
        """The version store's watcher, about once a second: notice replaced storage.

        A deleted or replaced directory makes the store and the disk tier reopen; entries this
        process judged against the old store are then dropped from memory (see ``_renew``).
        """
        for tier in self._lower:
            check = getattr(tier, "check", None)
            if check is not None:
                try:
                    reopened = bool(check()) or reopened
                except Exception as exc:
                    self._fault(tier.name, "check", exc)
        if reopened:
            self._renew()

    def _renew(self) -> None:
        """Forget every judgement made against the version store as it was.

        Memory entries and per-function shortcuts were checked against an epoch that may have
        restarted (a rebuilt or reopened store): drop them, and send the fast paths through the
        general path once, so that they bind to the store's current epoch.
        """
        self.epoch = self.versions.epoch
        for binding in self._all_bindings():
            fresh = binding.fresh
            fresh[1] = -1  # "checked" first: a reader that sees it no longer trusts ``since``
            fresh[0] = 0
            if self.memory is not None and binding.shelf is not _EMPTY_SHELF:
                self.memory.drop(binding.shelf)
        notify_unbind(self)

    def _pick_versions(self) -> Versions:
        for tier in self._lower:
            versions = getattr(tier, "versions", None)
            if callable(versions):
                store: Versions = versions()
                return store
        if self.memory is not None:
            if self.memory._versions is None:
                self.memory._versions = LocalVersions()
            local: Versions = self.memory._versions
            return local
        return LocalVersions()

    # -- bindings -------------------------------------------------------------------------

    def binding(
        self, ident: str, meta: Any, static_tags: Iterable[str] = (), relevance: Iterable[str] | None = None
    ) -> Binding:
        """The binding of function ``ident`` (``""``: direct calls) in this cache.

        ``meta``: the function's own object (a decorator core: it has ``name``, ``local`` and
        ``skey_of_fkey(prefix)``), or ``None`` for the direct API. Each function object gets
        its own memory shelf, held only while the object lives. ``relevance``: the tags
        (besides the static ones) through which an invalidation can reach the function's
        entries; ``None`` means any invalidation may.
        """
        found = self._bindings.get(ident) if meta is None else self._fn_bindings.get(meta)
        if found is not None:
            return found
        with self._lock:
            found = self._bindings.get(ident) if meta is None else self._fn_bindings.get(meta)
            if found is not None:
                return found
            self._fold_retired()
            shelf: Shelf | dict[Any, Any] = _EMPTY_SHELF
            name: Any = (id(self.versions), self.namespace, ident)
            if meta is not None:
                name = ("fn", next(_SHELF_SERIAL))
            if self.memory is not None:
                skey_of = meta.skey_of_fkey(self._prefix) if meta is not None else None
                shelf = self.memory.shelf(name, skey_of)
            fn = inv.fn_tag(self.namespace, ident)
            base = (self.ns_tag, fn, *dict.fromkeys(static_tags))
            found = Binding(self, ident, shelf, base)
            if meta is not None and relevance is not None:
                found.signature = frozenset((*base, *relevance))
                found.key_prefix = inv.key_tag(f"{self._prefix}fn:{meta.name}(")
            if meta is None:
                self._bindings[ident] = found
                return found
            found.local = bool(getattr(meta, "local", False))
            self._fn_bindings[meta] = found
            done = weakref.finalize(
                meta,
                _retire,
                weakref.ref(self),
                weakref.ref(self.memory) if self.memory is not None else None,
                name,
                found.hits,
                found.misses,
            )
            done.atexit = False
            return found

    def _all_bindings(self) -> list[Binding]:
        return [*self._bindings.values(), *list(self._fn_bindings.values())]

    def _fold_retired(self) -> list[int]:
        """Hits and misses of garbage-collected functions, summed (kept for ``stats()``)."""
        retired, counts = self._retired, self._retired_counts
        while retired:
            gone_hits, gone_misses = retired.popleft()
            counts[0] += gone_hits
            counts[1] += gone_misses
        return counts

    def user_key(self, key: str) -> str:
        """The stored form of a direct ``get``/``set`` key."""
        if not isinstance(key, str):
            raise TypeError(f"Cache keys are str (build them with CacheKeys), got {type(key).__name__}")
        return self._prefix + "k:" + key

    def function_key(self, ident: str, body: str) -> str:
        """The stored form of a cached function's key."""
        return f"{self._prefix}fn:{ident}({body})"

    def _as_skey(self, key: str) -> str:
        return (
            key
            if key.startswith(self._prefix) and key[len(self._prefix) :].startswith(("fn:", "k:"))
            else self.user_key(key)
        )

    # -- freshness ------------------------------------------------------------------------

    def live(self, entry: Entry, now: float) -> bool:
        """Is ``entry`` unexpired and fresh? (Advances its ``seq`` when re-checked.)"""
        if entry.expires is not None and entry.expires <= now:
            return False
        if entry.created < self._cutoff:
            return False
        if entry.seq == self.epoch[0]:
            return True
        return self.recheck(entry)

    def live_shared(self, entry: Entry, now: float) -> bool:
        """:meth:`live` for an entry read from a shared tier: it must also have been judged
        against this incarnation of the version store (``read_lower`` inlines this)."""
        return entry.incarnation == self.versions.incarnation and self.live(entry, now)

    def _sync(self) -> int | None:
        """Catch up with the host's invalidations; ``None`` (a counted fault) if that fails."""
        try:
            return self.versions.sync()
        except Exception as exc:
            self._fault("versions", "sync", exc)
            return None

    def _untouched_since(self, seq: int, tags: Iterable[str], skey: str | None) -> bool:
        """No tag in ``tags`` nor the key ``skey`` was invalidated after ``seq``."""
        versions = self.versions
        mirror = versions.mirror  # before the floor: a fold raises the floor, then swaps the mirror
        if seq < versions.floor or not fresh(mirror, tags, seq):
            return False
        return skey is None or not versions.keyed or mirror.get(inv.key_tag(skey), 0) <= seq

    def recheck(self, entry: Entry) -> bool:
        """Is an unexpired entry still fresh although the epoch moved? (Advances its ``seq``.)"""
        current = self._sync()
        if current is None:
            return False
        seq = entry.seq
        versions = self.versions
        if seq < versions.floor:
            return False
        recent = versions.recent
        gap = current - seq
        if 0 < gap <= len(recent) and recent[-1][0] == current and recent[-gap][0] == seq + 1:
            # A few invalidations since the entry was checked: one set operation each.
            tags = entry.tags
            key = inv.key_tag(self._cached_skey(entry)) if versions.keyed else None
            for _, invalidated in recent[-gap:]:
                if not invalidated.isdisjoint(tags) or key in invalidated:
                    return False
            entry.seq = current
            return True
        if not self._untouched_since(seq, entry.tags, self._cached_skey(entry) if versions.keyed else None):
            return False
        entry.seq = current
        return True

    def recheck_in(self, binding: Binding, entry: Entry) -> bool:
        """The fast path's check after the epoch moved: advance the function's shortcut, then
        accept the entry if no relevant invalidation came after it, else check its tags."""
        current = self._sync()
        if current is None:
            return False
        fresh = binding.fresh
        if fresh[1] != current:
            self.advance(binding, current)
        if fresh[1] == current and entry.seq >= fresh[0]:
            entry.seq = current
            return True
        return self.recheck(entry)

    def advance(self, binding: Binding, current: int) -> None:
        """Look at the invalidations since the binding was last checked, once per epoch move.

        O(invalidations since) per function, not per entry: afterwards every entry of the
        function that no relevant invalidation reached is accepted by one comparison.
        """
        versions = self.versions
        with binding.lock:
            fresh = binding.fresh
            checked, since = fresh[1], fresh[0]
            if checked >= current:
                return
            recent = versions.recent
            signature = binding.signature
            if (
                signature is None
                or checked < 0
                or not recent
                or recent[-1][0] < current
                or recent[0][0] > checked + 1
            ):
                since = current  # cannot tell: every entry older than now gets its own check
            else:
                prefix = binding.key_prefix
                for seq, tags in recent:
                    if checked < seq <= current and (
                        not signature.isdisjoint(tags) or any(t.startswith(prefix) for t in tags)
                    ):
                        since = seq
            since = max(since, versions.floor)
            fresh[0] = since  # first: a reader that sees the new ``checked`` sees this too
            fresh[1] = current

    @staticmethod
    def _covered(signature: frozenset[str], tags: Iterable[str]) -> bool:
        """Can every invalidation that reaches ``tags`` be seen through ``signature``?"""
        for tag in tags:
            if tag in signature:
                continue
            if tag.startswith("\x00") or signature.isdisjoint(inv.families(tag)):
                return False
        return True

    def _unshortcut(self, binding: Binding) -> None:
        """The function's entries may now carry tags outside its signature (captured deps)."""
        with binding.lock:
            binding.signature = None
            binding.fresh[1] = -1

    def _cached_skey(self, entry: Entry) -> str:
        skey = entry.skey
        if skey is None:
            skey = entry.skey = self._entry_skey(entry) or ""
        return skey

    def _entry_skey(self, entry: Entry) -> str | None:
        if entry.skey is not None:
            return entry.skey
        fkey = entry.fkey
        if isinstance(fkey, str):
            return fkey
        if self.memory is None or entry.shelf is None:
            return None
        skey_of = self.memory.meta_of(entry.shelf)
        return skey_of(fkey) if skey_of is not None else None

    def entry_tags(self, entry: Entry) -> tuple[str, ...]:
        """The tags a computation that read ``entry`` depends on."""
        skey = self._entry_skey(entry)
        return (*entry.tags, inv.key_tag(skey)) if skey is not None else entry.tags

    # -- reads ----------------------------------------------------------------------------

    def lookup(self, binding: Binding, fkey: Hashable, skey_fn: Callable[[], str]) -> Entry | Any:
        """The fresh entry for a key from the fastest tier holding one, or ``MISS``."""
        if self._chain is not None:
            skey = skey_fn()
            op = Op(
                "get",
                skey,
                binding.ident or None,
                run=lambda: self._lookup(binding, fkey, lambda: skey),
            )
            result: Entry | Any = self._chain(op)
            return result
        return self._lookup(binding, fkey, skey_fn)

    def _lookup(self, binding: Binding, fkey: Hashable, skey_fn: Callable[[], str]) -> Entry | Any:
        now = self.clock()
        shelf = binding.shelf
        entry = shelf.get(fkey)
        if entry is not None:
            if self.live(entry, now):
                entry.ref = True
                return entry
            if self.memory is not None and shelf is not _EMPTY_SHELF:
                self.memory.discard(shelf, fkey, entry)
        if not self._lower or binding.local:
            return MISS
        return self.read_lower(binding, fkey, skey_fn(), now)

    def read_lower(self, binding: Binding, fkey: Hashable, skey: str, now: float) -> Entry | Any:
        """The fresh entry from the tiers below memory, promoted upward, or ``MISS``."""
        offset = len(self.tiers) - len(self._lower)
        epoch = self.epoch
        incarnation = self.versions.incarnation
        for i, tier in enumerate(self._lower):
            try:
                found = tier.get(skey)
            except Exception as exc:
                self._fault(tier.name, "get", exc)
                continue
            if found is MISS:
                continue
            # live(), inlined: this is every disk hit's path. An entry judged against another
            # incarnation of the version store (rebuilt since) is never fresh here.
            if (
                found.deadline <= now
                or found.incarnation != incarnation
                or found.created < self._cutoff
                or (found.seq != epoch[0] and not self.recheck(found))
            ):
                try:
                    tier.delete(skey)
                except Exception as exc:
                    self._fault(tier.name, "delete", exc)
                continue
            self._tier_hits[offset + i].add()
            if i or self.memory is not None:
                self._promote(binding, fkey, skey, found, now, self._lower[:i])
            return found
        return MISS

    def _promote(
        self,
        binding: Binding,
        fkey: Hashable,
        skey: str,
        entry: Entry,
        now: float,
        above: Sequence[Tier],
    ) -> None:
        if self.memory is not None and binding.shelf is not _EMPTY_SHELF:
            if binding.signature is not None and not self._covered(binding.signature, entry.tags):
                # Computed elsewhere with captured dependencies: the shortcut can't judge it.
                self._unshortcut(binding)
            self.memory.put(binding.shelf, fkey, entry.copy_for(skey))
        for tier in above:
            try:
                tier.set(skey, entry)
            except Exception as exc:
                self._fault(tier.name, "set", exc)

    # -- computations ---------------------------------------------------------------------

    def begin(
        self,
        binding: Binding,
        fkey: Hashable,
        skey: str | None,
        tags: tuple[str, ...],
        ttl: float | None,
        *,
        miss: bool = False,
    ) -> Pending:
        """Start a computation: snapshot the epoch and start capturing what it reads.

        ``miss``: count a miss (a call that found no fresh entry) for the binding. The
        caller runs the computation itself, so nothing of cacheplug's sits on the stack
        while it runs, and ends it with :meth:`finish` (or ``capture_end`` if it raised).
        """
        if miss:
            binding.misses.add()
        return Pending(binding, fkey, skey, tags, ttl, self.epoch[0], self.clock())

    async def afinish(
        self, pending: Pending, value: Any, store: bool, skey_fn: Callable[[], str], *, force: bool = False
    ) -> Entry:
        """:meth:`finish` for async callers: the shared tiers are written in a worker thread.

        A store may wait (boundedly) for a lock another process holds; the event loop goes on
        meanwhile. The memory tier is written at once, as in :meth:`finish`.
        """
        deferred: list[Callable[[], None]] = []
        entry = self.finish(pending, value, store, skey_fn, force=force, defer=deferred.append)
        for write in deferred:
            await asyncio.to_thread(write)
        return entry

    def finish(
        self,
        pending: Pending,
        value: Any,
        store: bool,
        skey_fn: Callable[[], str],
        *,
        force: bool = False,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> Entry:
        """End a computation: store its value if allowed and still fresh; report it upward.

        ``defer``: receives the shared-tier writes instead of running them (see :meth:`afinish`).
        """
        inv.capture_end(pending.token)
        bucket = pending.bucket
        if bucket:
            captured: dict[str, None] = dict.fromkeys(pending.tags)
            for read in bucket:
                captured.update(dict.fromkeys(read.cache.entry_tags(read.entry)))
            tags = tuple(captured)
            if pending.binding.signature is not None:
                self._unshortcut(pending.binding)
        else:
            tags = pending.tags  # shared by every entry of the function: no allocation
        now = self.clock()
        ttl = pending.ttl if pending.ttl is not None else self.default_ttl
        cost = now - pending.start
        entry = Entry(value, now, None if ttl is None else now + ttl, pending.seq0, tags, cost, pending.skey)
        if store and ttl != 0:
            if self._chain is None:
                self._store_direct(pending.binding, pending.fkey, skey_fn, entry, force, now, defer)
            else:
                self._store(pending.binding, pending.fkey, skey_fn, entry, force, now, defer)
        if inv.ACTIVE and inv.CAPTURE.get() is not None:
            if entry.skey is None:
                entry.skey = skey_fn()
            if inv.ACTIVE:
                inv.note(_Read(self, entry))
        return entry

    def _store(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        entry: Entry,
        force: bool,
        now: float,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        if self._chain is not None:
            skey = skey_fn()
            op = Op(
                "set",
                skey,
                binding.ident or None,
                frozenset(entry.tags),
                run=lambda: self._store_direct(binding, fkey, lambda: skey, entry, force, now, defer),
            )
            self._chain(op)
        else:
            self._store_direct(binding, fkey, skey_fn, entry, force, now, defer)

    def _store_direct(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        entry: Entry,
        force: bool,
        now: float,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        seq0 = entry.seq
        skey = entry.skey
        if skey is None and (self._lower or self.versions.keyed):
            skey = entry.skey = skey_fn()
        if self.epoch[0] != seq0:
            # Something was invalidated while this computed: store only if none of it
            # touched what the value was computed from (the no-stale-set check).
            current = self._sync()
            if current is None:
                return
            if not self._untouched_since(seq0, entry.tags, skey):
                self.stale_sets.add()
                return
            entry.seq = current
        shelf = binding.shelf
        if self.memory is not None and shelf is not _EMPTY_SHELF:
            existing = shelf.get(fkey)
            # A fill never replaces a fresh entry stored meanwhile (the first writer wins, so
            # a slow computation cannot overwrite a newer one); refresh() and set() do.
            if force or existing is None or not self.live(existing, now):
                # Memory entries derive their string key from the shelf when needed.
                keep = entry.copy_for() if self._lower else entry
                keep.skey = None
                self.memory.put(shelf, fkey, keep)
        if not self._lower or binding.local:
            return
        assert skey is not None
        entry.incarnation = self.versions.incarnation
        if defer is not None:
            defer(lambda: self._write_shared(binding, skey, entry))
        else:
            self._write_shared(binding, skey, entry)

    def _write_shared(self, binding: Binding, skey: str, entry: Entry) -> None:
        # No storage-level expiry: expiry is judged on read by the cache's clock, and the
        # storage's own would only reclaim rows earlier at a cost on every store.
        for tier in self._lower:
            try:
                tier.set(skey, entry)
            except SerializationError as exc:
                self.unserializable.add()
                if not binding.warned:
                    binding.warned = True
                    log.warning(
                        "cacheplug: results of %s cannot be stored in the %s tier and stay in memory: %s",
                        binding.ident or "Cache.set",
                        tier.name,
                        exc,
                    )
                return
            except Exception as exc:
                self._fault(tier.name, "set", exc)

    def call(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        func: Callable[[], T],
        tags_fn: Callable[[], tuple[str, ...]],
        ttl: float | None,
        keep: Callable[[Any], bool] | None = None,
    ) -> T:
        """Serve a call from the tiers or compute it (sync driver)."""
        entry = self.lookup(binding, fkey, skey_fn)
        if entry is not MISS:
            return self.hit(binding, entry)  # type: ignore[no-any-return]
        return self.fill(binding, fkey, skey_fn, func, tags_fn, ttl, keep)

    def fill(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        func: Callable[[], T],
        tags_fn: Callable[[], tuple[str, ...]],
        ttl: float | None,
        keep: Callable[[Any], bool] | None = None,
    ) -> T:
        """Compute a call that missed and store the result (sync driver)."""
        binding.misses.add()
        pending = Pending(binding, fkey, None, tags_fn(), ttl, self.epoch[0], self.clock())
        try:
            value: T = func() if self._chain is None else self._run_compute(binding, skey_fn, func)
        except BaseException:
            inv.capture_end(pending.token)
            raise
        self.finish(pending, value, keep is None or bool(keep(value)), skey_fn)
        return value

    async def acall(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        func: Callable[[], Awaitable[T]],
        tags_fn: Callable[[], tuple[str, ...]],
        ttl: float | None,
        keep: Callable[[Any], bool] | None = None,
    ) -> T:
        """Serve a call from the tiers or compute it (async driver: the same steps, awaited)."""
        entry = self.lookup(binding, fkey, skey_fn)
        if entry is not MISS:
            return self.hit(binding, entry)  # type: ignore[no-any-return]
        binding.misses.add()
        pending = Pending(binding, fkey, None, tags_fn(), ttl, self.epoch[0], self.clock())
        try:
            value: T = await self._run_compute(binding, skey_fn, func)
        except BaseException:
            inv.capture_end(pending.token)
            raise
        await self.afinish(pending, value, keep is None or bool(keep(value)), skey_fn)
        return value

    def hit(self, binding: Binding, entry: Entry) -> Any:
        """Count a hit, report the read to a capturing computation, return the value."""
        binding.hits.add()
        if inv.ACTIVE:
            inv.note(_Read(self, entry))
        return entry.value

    def _run_compute(self, binding: Binding, skey_fn: Callable[[], str], func: Callable[[], Any]) -> Any:
        if self._chain is None:
            return func()
        return self._chain(Op("compute", skey_fn(), binding.ident or None, run=func))

    # -- the direct API -------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value stored under ``key``, or ``default``."""
        skey = self.user_key(key)
        entry = MISS if self.blind() else self.lookup(self._direct, skey, lambda: skey)
        if entry is MISS:
            self._direct.misses.add()
            return default
        self._direct.hits.add()
        if inv.ACTIVE:
            inv.note(_Read(self, entry))
        return entry.value

    def set(
        self, key: str, value: Any, ttl: Any = None, tags: Iterable[str] = (), depends_on: Iterable[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` in every tier, with ``ttl`` seconds and ``tags``.

        ``depends_on``: keys of this cache ``value`` was derived from (see :meth:`add_dependency`).
        """
        skey = self.user_key(key)
        seconds = _ttl_seconds(ttl, "ttl")
        tag_tuple = self._direct.base_tags + _check_tags(tags)
        sources = _check_keys(depends_on)
        if self.blind():
            return  # nothing stored could be judged fresh (see ``degraded``)
        pending = self.begin(self._direct, skey, skey, tag_tuple, seconds)
        # Linked after the epoch snapshot, before the value is stored (see cacheplug.dependencies).
        linked = not sources or deps.link(self, skey, sources, seconds)
        self.finish(pending, value, linked, lambda: skey, force=True)

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], T],
        ttl: Any = None,
        tags: Iterable[str] = (),
        depends_on: Iterable[str] = (),
    ) -> T:
        """The value under ``key``; on a miss, ``compute()`` it and store it.

        ``depends_on``: keys of this cache the value is derived from (see :meth:`add_dependency`).
        """
        skey = self.user_key(key)
        seconds = _ttl_seconds(ttl, "ttl")
        tag_tuple = self._direct.base_tags + _check_tags(tags)
        sources = _check_keys(depends_on)
        if self.blind():
            return compute()
        keep = None
        if sources:
            compute, keep = deps.linking(self, skey, sources, seconds, compute)
        return self.call(self._direct, skey, lambda: skey, compute, lambda: tag_tuple, seconds, keep)

    def add_dependency(
        self, derived_key: str, sources: Iterable[str] = (), *, tags: Iterable[str] = (), ttl: Any = None
    ) -> None:
        """Make ``derived_key`` stale whenever one of ``sources`` (keys) or ``tags`` is invalidated.

        In every process of the host, and transitively: what depends on ``derived_key`` goes
        stale with it. Cycles are fine. The link lasts until ``derived_key`` is invalidated
        or ``ttl`` seconds pass (``None``: until then; with a custom ``clock``, always until
        then). Each later invalidation costs O(tags + dependents it reaches). Prefer
        ``set(..., depends_on=...)``, which links before it stores. Raises
        :class:`~cacheplug.errors.InvalidationError` when it cannot be recorded.
        """
        deps.add(self, derived_key, _check_keys(sources), _check_tags(tags), _ttl_seconds(ttl, "ttl"))

    def delete(self, key: str) -> bool:
        """Remove ``key`` from every tier (and from other processes' memory); True if it was there."""
        skey = self._as_skey(key)
        existed = self.peek(self._direct, skey, skey) is not MISS
        self.invalidate(keys=[skey])
        return existed

    def peek(self, binding: Binding, fkey: Hashable, skey: str) -> Entry | Any:
        """The fresh entry for a key without promoting it or counting a hit, or ``MISS``."""
        now = self.clock()
        entry = binding.shelf.get(fkey)
        if entry is not None and self.live(entry, now):
            return entry
        for tier in self._lower if not binding.local else ():
            try:
                found = tier.get(skey)
            except Exception as exc:
                self._fault(tier.name, "get", exc)
                continue
            if found is not MISS and self.live_shared(found, now):
                return found
        return MISS

    # -- invalidation ---------------------------------------------------------------------

    def invalidate(self, tags: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        """Make every entry carrying one of ``tags`` or stored under one of ``keys`` stale.

        Costs O(len(tags) + len(keys)) whatever the number of entries. Inside ``batch()``
        the invalidation is collected and applied when the block exits. Raises
        :class:`~cacheplug.errors.InvalidationError` when it cannot be recorded.
        """
        tag_set = set(_check_tags(tags))
        key_set = {self._as_skey(k) for k in _check_keys(keys)}
        if not tag_set and not key_set:
            return
        self._request(tag_set, key_set)

    def _request(self, tags: builtins.set[str], keys: builtins.set[str]) -> bool:
        """Apply an invalidation now, or hand it to the enclosing batch or the debouncer.

        Returns True when it was applied now.
        """
        bucket = inv.pending_for(self)
        if bucket is not None:
            bucket[0].update(tags)
            bucket[1].update(keys)
            return False
        if self._debouncer is not None:
            self._debouncer.add(tags, keys)
            return False
        self._apply_invalidation(tags, keys)
        return True

    @property
    def debounced(self) -> bool:
        """Whether invalidations of this cache wait for a debounce window."""
        return self._debouncer is not None

    def flush_invalidations(self) -> bool:
        """Apply debounced invalidations now (see ``Cache(debounce=...)``); True if any were pending."""
        return self._debouncer.flush() if self._debouncer is not None else False

    async def ainvalidate(self, tags: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        """Async twin of :meth:`invalidate`: recorded in a worker thread, never on the event loop.

        Recording may wait for another process's lock; the loop goes on meanwhile. The worker
        runs in a copy of the caller's context, so an enclosing ``batch()`` still collects it.
        """
        tags, keys = _check_tags(tags), _check_keys(keys)
        await asyncio.to_thread(self.invalidate, tags, keys)

    def _apply_invalidation(
        self, tags: builtins.set[str], keys: builtins.set[str], *, record: bool = True
    ) -> None:
        if self._chain is not None:
            op = Op(
                "invalidate",
                None,
                None,
                frozenset(tags | keys),
                run=lambda: self._invalidate_direct(tags, keys, record),
            )
            self._chain(op)
        else:
            self._invalidate_direct(tags, keys, record)

    def _invalidate_direct(self, tags: builtins.set[str], keys: builtins.set[str], record: bool) -> None:
        version_tags = inv.expand(tags)
        version_tags.update(inv.key_tag(k) for k in keys)
        if record:
            try:
                if self.degraded is not None:
                    raise InvalidationError(
                        f"cannot record an invalidation: {self.degraded}; other processes may still "
                        f"serve the old values — fix the cache directory, then invalidate again"
                    )
                self.versions.bump(version_tags)
            except InvalidationError:
                self._drop_locally(keys)
                raise
        self.invalidations.add()
        for skey in keys:
            if self.memory is not None:
                self.memory.discard(self._direct.shelf, skey)
            for tier in self._lower:
                try:
                    tier.delete(skey)
                except Exception as exc:
                    self._fault(tier.name, "delete", exc)
        from .signals import invalidated

        invalidated.send(self, tags=frozenset(tags), keys=frozenset(keys))

    def _drop_locally(self, keys: builtins.set[str]) -> None:
        """Fail closed in this process when an invalidation could not be recorded for the others.

        Nothing created before now is served here any more (memory is emptied; older entries
        read from a shared tier are stale): the caller's own process never serves the old value,
        and the ``InvalidationError`` it gets tells it the other processes may.
        """
        self._cutoff = self.clock()
        if self.memory is not None:
            for binding in self._all_bindings():
                if binding.shelf is not _EMPTY_SHELF:
                    self.memory.drop(binding.shelf)
        for skey in keys:
            for tier in self._lower:
                try:
                    tier.delete(skey)
                except Exception as exc:
                    self._fault(tier.name, "delete", exc)

    def add_rule(self, rule: inv.InvalidationRule) -> None:
        """Register a write rule for this cache (see :func:`cacheplug.invalidate_by_write`)."""
        if not isinstance(rule, inv.InvalidationRule):
            raise ConfigurationError("add_rule takes an InvalidationRule(entity, tags=...)")
        self._rules.append(rule)

    def write_tags(self, entity: str, id: Any = None) -> list[str]:
        """The tags a write of ``entity``/``id`` invalidates here (global rules included)."""
        from .api import global_rules

        return inv.write_tags(entity, id, [*global_rules(), *self._rules])

    def invalidate_by_write(self, entity: str, id: Any = None) -> None:
        """Invalidate what a write of ``entity`` (row ``id``) makes stale, by rule."""
        self.invalidate(tags=self.write_tags(entity, id))

    def clear(self) -> None:
        """Make every entry of this cache's namespace stale in every tier and process."""
        if self._request({self.ns_tag}, set()) and self.memory is not None:
            for binding in self._all_bindings():
                if binding.shelf is not _EMPTY_SHELF:
                    self.memory.drop(binding.shelf)

    def clear_binding(self, binding: Binding) -> None:
        """Drop every entry of one function in every tier and process (``cache_clear``)."""
        applied = self._request({binding.fn_tag, binding.fa_tag}, set())
        if applied and self.memory is not None and binding.shelf is not _EMPTY_SHELF:
            self.memory.drop(binding.shelf)

    def invalidate_call(self, binding: Binding, fkey: Hashable, skey: str) -> bool:
        """Invalidate one call's entry everywhere; True if a fresh one existed."""
        existed = self.peek(binding, fkey, skey) is not MISS
        # Inside batch() (or a debounce window) nothing is applied before it closes.
        applied = self._request({binding.fa_tag}, {skey})
        if applied and self.memory is not None and binding.shelf is not _EMPTY_SHELF:
            self.memory.discard(binding.shelf, fkey)
        return existed

    def sweep(self) -> int:
        """Remove expired and stale entries from every tier. O(entries): run it off the call path."""
        now = self.clock()
        removed = 0
        if self.memory is not None:
            removed += self.memory.sweep(lambda e: self.live(e, now))
        for tier in self._lower:
            keys = getattr(tier, "keys", None)
            if keys is None:
                continue
            try:
                stored = keys()
            except Exception as exc:
                self._fault(tier.name, "keys", exc)
                continue
            for skey in stored:
                if not skey.startswith(self._prefix):
                    continue
                with contextlib.suppress(Exception):
                    found = tier.get(skey)
                    if found is MISS:
                        continue
                    if not self.live_shared(found, now) and tier.delete(skey):
                        removed += 1
        return removed

    # -- bookkeeping ----------------------------------------------------------------------

    def _fault(self, where: str, op: str, exc: BaseException) -> None:
        """Count a tier fault; log it at most once per 10 s per (tier, operation, exception type)."""
        name = f"{where}.{op}"
        with self._lock:
            self._faults[name] = self._faults.get(name, 0) + 1
        now = time.monotonic()
        kind = (where, op, type(exc).__name__)
        if now - self._fault_logged.get(kind, -1e9) >= FAULT_LOG_INTERVAL:
            self._fault_logged[kind] = now
            log.warning(
                "cacheplug: %s failed in cache %r (%r); serving from another tier or computing "
                "(logged once per %.0f s)",
                name,
                self.namespace,
                exc,
                FAULT_LOG_INTERVAL,
            )

    def stats(self) -> CacheStats:
        """Counters: hits, misses, per-tier hits, faults, refused stale stores and more."""
        counts = self._fold_retired()
        bindings = self._all_bindings()
        hits = counts[0] + sum(b.hits.value for b in bindings)
        misses = counts[1] + sum(b.misses.value for b in bindings)
        return CacheStats(
            hits=hits,
            misses=misses,
            hit_rate=hits / (hits + misses) if hits + misses else 0.0,
            tier_hits=self._tier_hit_counts(hits),
            entries=len(self.memory) if self.memory is not None else 0,
            evictions=self.memory.evictions if self.memory is not None else 0,
            faults=dict(self._faults),
            stale_sets=self.stale_sets.value,
            degraded=self.degraded,
            unserializable=self.unserializable.value,
            corrupt=sum(getattr(t, "corrupt", 0) for t in self.tiers),
            tampered=sum(getattr(t, "tampered", 0) for t in self.tiers),
            foreign=sum(getattr(t, "foreign", 0) for t in self.tiers),
            invalidations=self.invalidations.value,
            epoch=self.epoch[0],
        )

    def _tier_hit_counts(self, hits: int) -> dict[str, int]:
        counts = {t.name: c.value for t, c in zip(self.tiers, self._tier_hits, strict=True)}
        if self.memory is not None:
            # Memory hits are not counted one by one (the fast path stays lean): they are
            # the hits no lower tier served.
            counts[self.memory.name] = hits - sum(counts.values())
        return counts

    def close(self) -> None:
        """Close the tiers this cache created and leave the registry of open caches."""
        if self.closed:
            return
        if self._debouncer is not None:
            self._debouncer.close()
        self.closed = True
        _OPEN.discard(self)
        notify_unbind(self)
        if self._owns_tiers:
            for tier in self.tiers:
                with contextlib.suppress(Exception):
                    tier.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", ".join(repr(t) for t in self.tiers)
        return f"Cache([{where}], namespace={self.namespace!r}, default_ttl={self.default_ttl})"


def _check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise ConfigurationError(
            f"tags must be a list of strings, not the string {tags!r}: write tags=[{tags!r}]"
        )
    out = tuple(tags)
    for tag in out:
        if not isinstance(tag, str) or not tag or tag.startswith("\x00"):
            raise ConfigurationError(f"a tag must be a non-empty str not starting with NUL, got {tag!r}")
    return out


def _check_keys(keys: Iterable[str]) -> tuple[str, ...]:
    if isinstance(keys, str):
        raise ConfigurationError(
            f"keys must be a list of strings, not the string {keys!r}: write keys=[{keys!r}]"
        )
    out = tuple(keys)
    for key in out:
        if not isinstance(key, str):
            raise ConfigurationError(f"a key must be a str, got {key!r}")
    return out
