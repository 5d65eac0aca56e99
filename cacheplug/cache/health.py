"""The cache's link to the host's invalidations: which version store, and what if it breaks.

The version store is ``Cache(versions=...)``, or the one a shared tier declares
(:class:`~cacheplug.tiers.base.HasVersions`), or the one the memory tier is already judged
against, or a new in-process store. Caches that share a tier share its store: building a
cache that would judge a tier's entries against another store is a ``ConfigurationError``.

Degraded modes. While the store cannot be read, nothing cached may be served (``blind()``;
``degraded`` says why) and opening it is retried every ``RETRY_INTERVAL`` seconds. While an
invalidation that could not be recorded is owed, the watcher retries it as often
(``cacheplug.cache.invalidating``). The store's
watcher ticks about once a second: a deleted or replaced directory makes the store and the
disk tier reopen, and the entries this process judged against the old store are dropped
from memory (:meth:`Health.renew`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..tiers.base import Tier
from ..tiers.capabilities import HasVersions, SelfChecking
from ..tiers.memory import MemoryTier
from ..versions import HostVersions, LocalVersions, Versions, VersionsUnavailable

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["RETRY_INTERVAL", "Health", "pick_versions"]

log = logging.getLogger("cacheplug")

# A cache that cannot read the host's invalidations tries again after this many seconds.
RETRY_INTERVAL = 10.0


def pick_versions(memory: MemoryTier | None, lower: Sequence[Tier], given: Versions | None) -> Versions:
    """The version store a cache over these tiers judges its entries against.

    Raises ``VersionsUnavailable`` when a shared tier's store cannot be read, and
    ``ConfigurationError`` when the tiers would be judged against different stores.
    """
    stores = [tier.versions() for tier in lower if isinstance(tier, HasVersions)]
    declared = stores[0] if stores else None
    if any(not _same(store, declared) for store in stores[1:]):
        raise ConfigurationError(
            "the shared tiers of one Cache declare different version stores (e.g. two DiskTiers "
            "over different directories); give a Cache one shared tier, or tiers over one directory"
        )
    if given is not None and declared is not None and not _same(given, declared):
        raise ConfigurationError(
            "Cache(versions=...) differs from the version store of its shared tier; drop versions= "
            "(the tier's store records the host's invalidations) or use another tier"
        )
    store = given if given is not None else declared
    if memory is not None:
        bound = memory.judged_by
        if store is None:
            store = bound if bound is not None else LocalVersions()
        elif bound is not None and not _same(bound, store):
            raise ConfigurationError(
                "this MemoryTier is already used by a cache judged against another version store "
                "(a memory-only cache, or one over another directory); give this Cache its own "
                "MemoryTier, or build every cache over this MemoryTier with the same shared tier"
            )
        memory.judged_by = store
    return store if store is not None else LocalVersions()


def _same(a: Versions | None, b: Versions | None) -> bool:
    """One store: the same object, or host stores of one directory and incarnation (say,
    reopened after ``cacheplug.state.reset()``)."""
    if a is b:
        return True
    return (
        isinstance(a, HostVersions)
        and isinstance(b, HostVersions)
        and a.directory == b.directory
        and a.incarnation == b.incarnation
    )


class Health:
    """The version store of one cache, with its degraded modes."""

    def __init__(self, cache: Cache, given: Versions | None, shared: Sequence[Tier]) -> None:
        self._cache = cache
        self._given = given
        self._shared = list(shared)  # the cache's shared tiers (fault-tolerant proxies)
        self._lock = threading.Lock()
        # Set (with the reason) while the host's invalidations cannot be read.
        self.degraded: str | None = None
        self._retry_at = 0.0
        self._settle_at = 0.0  # when the watcher next retries the owed invalidations

    def open(self) -> Versions:
        """The version store, or a blind one (and ``degraded`` set) when it cannot be read."""
        cache = self._cache
        try:
            store = pick_versions(cache.memory, self._shared, self._given)
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
            cache.faults.report("versions", "open", exc)
            return LocalVersions()
        if self.degraded is not None:
            log.warning("cacheplug: the host's invalidations are readable again; serving cached values")
        self.degraded = None
        store.add_listener(self.on_tick)
        return store

    def blind(self) -> bool:
        """True while the host's invalidations cannot be read (retried every 10 s, here)."""
        if self.degraded is None:
            return False
        if time.monotonic() >= self._retry_at:
            self._retry()
        return self.degraded is not None

    def _retry(self) -> None:
        with self._lock:
            if self.degraded is None or time.monotonic() < self._retry_at:
                return
            self._retry_at = time.monotonic() + RETRY_INTERVAL
            store = self.open()
            if self.degraded is None:
                self._cache.judge.rebase(store)
                self.renew()

    def on_tick(self, reopened: bool) -> None:
        """The version store's watcher, about once a second: notice replaced storage, and
        retry recording the invalidations this process owes the host (every ``RETRY_INTERVAL``)."""
        for tier in self._shared:
            if isinstance(tier, SelfChecking):
                reopened = bool(tier.check()) or reopened
        if reopened:
            self.renew()
        cache = self._cache
        if cache.judge.owed and time.monotonic() >= self._settle_at:
            self._settle_at = time.monotonic() + RETRY_INTERVAL
            cache.invalidator.settle()

    def renew(self) -> None:
        """Forget every judgement made against the version store as it was.

        Memory entries and per-function shortcuts were checked against an epoch that may have
        restarted (a rebuilt or reopened store): drop them, and send the fast paths through the
        general path once, so that they bind to the store's current epoch.
        """
        cache = self._cache
        judge = cache.judge
        judge.rebase(judge.versions)
        for binding in cache.bindings.all():
            judge.forget(binding)
        cache.bindings.drop_shelves()
        cache.unbind_fast_paths()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
