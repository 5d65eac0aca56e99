"""Tiering: read-through, promotion and write-through over a cache's tiers.

A read looks in the function's memory shelf, then walks the shared tiers top-down; the
first entry the judge finds fresh wins and is copied into the tiers above it. For a compute
flow, an entry the judge finds servable late (``REFRESH``, ``STALE``, ``FALLBACK``) is
found too, with its verdict; every tier keeps an entry for its ttl plus its stale windows.
While the judge owes the host an invalidation (one that could not be recorded), the shared
tiers are not read: what other processes stored there may be stale. A store
writes the memory shelf at once (a fill never replaces a fresh entry stored meanwhile; a
refresh or ``set`` does) and then every shared tier, after the no-stale-set check: a value
whose computation raced an invalidation of anything it was computed from is not stored.

The shared-tier parts are generators that *yield* their I/O steps — ``(GET, tier, key)``,
``(SET, tier, key, entry)``, ``(DELETE, tier, key)`` — and receive the answers, so that one
text serves the sync driver and the async one (``cacheplug.cache.flow``), which awaits a
tier's async methods where it has them. The tiers are fault-tolerant proxies: a step never
raises, except a ``SerializationError`` from a store, which the driver hands back as the
answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Hashable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..envelope import MISS, Entry
from ..errors import SerializationError
from ..tiers.base import Tier
from ..tiers.capabilities import AsyncTier
from ..tiers.memory import MemoryTier
from .calls import _EMPTY_SHELF, Binding, Tally
from .judge import FALLBACK, FRESH, LATE, REFRESH, STALE, Judge, Verdict
from .steps import DELETE, GET, SET, sync_twin

if TYPE_CHECKING:
    from ..tiers.capabilities import KeyListing

__all__ = ["DELETE", "GET", "SET", "Step", "Steps", "Tiering"]

log = logging.getLogger("cacheplug")

# (kind, tier or handler, key or sub-flow, entry or op): see cacheplug.cache.flow.
Step = tuple[str, Any, Any, Any]
Steps = Generator[Step, Any, Any]


class Tiering:
    """Where a cache's entries are read from and written to.

    Each step generator ``x`` has a sync twin ``x_now`` with the same arguments (generated
    from its text by ``cacheplug.cache.steps.sync_twin``), which the sync paths call.
    """

    find_now: Callable[..., Any]
    read_now: Callable[..., Any]
    peek_now: Callable[..., Any]
    store_now: Callable[..., None]
    forget_now: Callable[..., None]

    def __init__(
        self,
        memory: MemoryTier | None,
        lower: Sequence[Tier],
        judge: Judge,
        timer: Callable[[], float],
        learning: bool = False,
    ) -> None:
        self.memory = memory
        if learning:  # a cache that learns usage counts each memory hit on its entry
            self.probe = self.counting_probe  # type: ignore[method-assign]
        self.lower = list(lower)
        # Whether the async driver has something to await when it reads (a tier with aget).
        self.asynchronous = any(isinstance(tier, AsyncTier) for tier in self.lower)
        self.judge = judge
        # What hit latencies are measured with (the binding's meter holds them).
        self.timer = timer
        self.stale_sets = Tally()
        self.unserializable = Tally()

    # -- reads ------------------------------------------------------------------------------

    def probe(self, binding: Binding, fkey: Hashable, now: float, late: list[Verdict] | None = None) -> Any:
        """The fresh memory entry for ``fkey``, or ``MISS`` (one the judge does not keep is dropped).

        ``late``: the caller acts on the judge's late verdicts (a compute flow): an entry
        judged ``REFRESH``, ``STALE`` or ``FALLBACK`` is returned with the verdict in
        ``late[0]``. Without it only a fresh value is returned (``REFRESH`` included) and a
        stale one stays for a caller that can refresh it.
        """
        shelf = binding.shelf
        entry = shelf.get(fkey)
        if entry is None:
            return MISS
        verdict = self.judge.verdict(entry, now)
        if verdict is FRESH:
            entry.ref = True
            return entry
        if verdict in LATE:
            if late is None and verdict is not REFRESH:
                return MISS
            if late is not None:
                late[0] = verdict
            entry.ref = True
            return entry
        if self.memory is not None and shelf is not _EMPTY_SHELF:
            self.memory.discard(shelf, fkey, entry)
        return MISS

    def counting_probe(
        self, binding: Binding, fkey: Hashable, now: float, late: list[Verdict] | None = None
    ) -> Any:
        """:meth:`probe`, also counting a hit on the entry (see ``cacheplug.cache.learning``)."""
        entry = Tiering.probe(self, binding, fkey, now, late)
        if entry is not MISS and entry.hits < 256:  # as the fast path: saturating (HITS_MAX)
            entry.hits += 1
        return entry

    def find(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        now: float,
        late: list[Verdict] | None = None,
    ) -> Steps:
        """The fresh entry from memory or, below it, from the shared tiers; or ``MISS``.

        ``late``: as for :meth:`probe`. An expired entry in memory (``STALE``, ``FALLBACK``)
        is served only if no shared tier holds a fresh one (another process refreshed it).
        """
        meter = binding.meter
        if meter.sample:  # every 64th hit asks for the next one to be timed
            meter.sample = False
            started = self.timer()
            entry = self.probe(binding, fkey, now, late)
            if entry is not MISS:
                meter.latency[0].record(self.timer() - started)
        else:
            entry = self.probe(binding, fkey, now, late)
        if self.lower and not binding.local:
            if entry is MISS:
                entry = yield from self.read(binding, fkey, skey_fn(), now, late)
            elif late is not None and (late[0] is STALE or late[0] is FALLBACK):
                mine, verdict = entry, late[0]
                late[0] = FRESH
                entry = yield from self.read(binding, fkey, skey_fn(), now, late)
                if entry is MISS:
                    entry, late[0] = mine, verdict
        return entry

    def read(
        self, binding: Binding, fkey: Hashable, skey: str, now: float, late: list[Verdict] | None = None
    ) -> Steps:
        """The fresh entry from the tiers below memory, promoted upward, or ``MISS``
        (``late``: as for :meth:`probe`; an entry the judge does not keep is deleted)."""
        if self.judge.owed:
            return MISS
        verdict, started = self.judge.verdict, self.timer()
        for i, tier in enumerate(self.lower):
            found = yield (GET, tier, skey, None)
            if found is MISS:
                continue
            judged = verdict(found, now, True)
            if judged is not FRESH and judged is not REFRESH:
                if judged not in LATE:
                    yield (DELETE, tier, skey, None)
                    continue
                if late is None:
                    continue  # kept for a caller that can refresh it
            else:
                meter = binding.meter
                meter.tier_hits[i].add()
                meter.latency[1 + i].record(self.timer() - started)
            if late is not None:
                late[0] = judged
            found.tier = tier.name
            if self.memory is not None:
                self._promote(binding, fkey, skey, found)
            if i:
                for above in self.lower[:i]:
                    yield (SET, above, skey, found)
            return found
        return MISS

    def _promote(self, binding: Binding, fkey: Hashable, skey: str, entry: Entry) -> None:
        if self.memory is not None and binding.shelf is not _EMPTY_SHELF:
            signature = binding.signature
            if signature is not None and not self.judge.covered(signature, entry.tags):
                # Computed elsewhere with captured dependencies: the shortcut can't judge it.
                self.judge.unshortcut(binding)
            self.memory.put(binding.shelf, fkey, entry.copy_for(skey))

    def peek(self, binding: Binding, fkey: Hashable, skey: str, now: float) -> Steps:
        """The fresh entry for a key without promoting it or counting a hit, or ``MISS``."""
        entry = binding.shelf.get(fkey)
        if entry is not None and self.judge.live(entry, now):
            return entry
        for tier in self.lower if not binding.local and not self.judge.owed else ():
            found = yield (GET, tier, skey, None)
            if found is not MISS and self.judge.live(found, now, True):
                return found
        return MISS

    # -- stores -----------------------------------------------------------------------------

    def admit(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        entry: Entry,
        force: bool,
        now: float,
    ) -> bool:
        """The in-process part of a store: the no-stale-set check, then the memory shelf.

        False when the entry raced an invalidation (or the versions could not be read), or
        when a fresh entry was stored meanwhile: a fill never replaces one (the first writer
        wins, in memory and below it); ``force`` (refresh, ``set``) does.
        """
        judge = self.judge
        seq0 = entry.seq
        skey = entry.skey
        if skey is None and (self.lower or judge.versions.keyed):
            skey = entry.skey = skey_fn()
        if judge.epoch[0] != seq0:
            # Something was invalidated while this computed: store only if none of it
            # touched what the value was computed from (the no-stale-set check).
            current = judge.sync()
            if current is None:
                return False
            if not judge.untouched_since(seq0, entry.tags, skey):
                self.stale_sets.add()
                return False
            entry.seq = current
        shelf = binding.shelf
        if self.memory is not None and shelf is not _EMPTY_SHELF:
            existing = shelf.get(fkey)
            # A fill never replaces a fresh entry stored meanwhile (the first writer wins, so
            # a slow computation cannot overwrite a newer one); refresh() and set() do.
            if not force and existing is not None and judge.live(existing, now):
                return False  # the fresh entry stays, here and in the shared tiers below
            # Memory entries derive their string key from the shelf when needed.
            keep = entry.copy_for() if self.lower else entry
            keep.skey = None
            self.memory.put(shelf, fkey, keep)
        return True

    def store(
        self,
        binding: Binding,
        fkey: Hashable,
        skey_fn: Callable[[], str],
        entry: Entry,
        force: bool,
        now: float,
    ) -> Steps:
        """Store a computed entry in memory and write it through, unless it raced an invalidation."""
        if not self.admit(binding, fkey, skey_fn, entry, force, now) or not self.lower or binding.local:
            return
        skey = entry.skey
        assert skey is not None
        entry.incarnation = self.judge.versions.incarnation
        # No storage-level expiry: expiry is judged on read by the cache's clock, and the
        # storage's own would only reclaim rows earlier at a cost on every store.
        for tier in self.lower:
            refused = yield (SET, tier, skey, entry)
            if isinstance(refused, SerializationError):
                self._unserializable(binding, tier, refused)
                return

    def _unserializable(self, binding: Binding, tier: Tier, exc: SerializationError) -> None:
        self.unserializable.add()
        if not binding.warned:
            binding.warned = True
            log.warning(
                "cacheplug: results of %s cannot be stored in the %s tier and stay in memory: %s",
                binding.ident or "Cache.set",
                tier.name,
                exc,
            )

    def forget(self, binding: Binding, fkey: Hashable, skeys: Sequence[str]) -> Steps:
        """Remove one key from memory and from every shared tier."""
        if self.memory is not None and binding.shelf is not _EMPTY_SHELF:
            self.memory.discard(binding.shelf, fkey)
        for skey in skeys:
            for tier in self.lower:
                yield (DELETE, tier, skey, None)

    # -- maintenance ------------------------------------------------------------------------

    def sweep(self, prefix: str, now: float, listing: Sequence[Tier]) -> int:
        """Remove the entries the judge does not keep (invalidated, or past their ttl and stale
        windows) from every tier. O(entries): off the call path."""
        removed = 0
        judge = self.judge
        if self.memory is not None:
            removed += self.memory.sweep(lambda e: judge.kept(e, now))
        for tier in listing:
            listed = cast("KeyListing", tier)
            for skey in listed.keys():  # noqa: SIM118 - a tier, not a dict
                if not skey.startswith(prefix):
                    continue
                found = tier.get(skey)
                if found is not MISS and not judge.kept(found, now, True) and tier.delete(skey):
                    removed += 1
        return removed


for _name in ("find", "read", "peek", "store", "forget"):
    setattr(Tiering, f"{_name}_now", sync_twin(getattr(Tiering, _name)))
