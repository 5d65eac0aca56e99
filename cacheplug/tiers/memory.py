"""The in-process tier: values by reference, O(1) get and set, bounded by entries or bytes.

Entries live in *shelves*, one plain ``dict`` per (cache, function object), so that a
function's fast path looks its arguments up directly and ``cache_clear()`` drops one shelf.
When a function object is garbage-collected its shelf is forgotten (:meth:`MemoryTier.forget`),
entries and bookkeeping included, so decorating functions per call does not leak.

Thread safety: a read is one ``dict.get`` and a store one dict assignment plus one
``deque.append``, each atomic under the GIL (and internally locked on free-threaded builds),
so neither takes a lock. Eviction, deletes and byte accounting (``max_bytes``) take the
tier's lock; removals that race a store never drop the newer entry.

Eviction is LRU approximated by the CLOCK (second chance) algorithm: a hit sets the entry's
``ref`` bit (one attribute store, no lock, no reordering); when the tier is over its bound,
the oldest entries are examined in insertion order and an entry whose bit is set gets its
bit cleared and goes to the back instead of being evicted. Entries used since they were last
examined therefore survive, as in LRU, without making every hit write to a shared list.

Size estimate for ``max_bytes``: ``sys.getsizeof`` of the value plus, for lists, tuples,
sets, dicts, str and bytes one level of their items, plus 200 bytes of bookkeeping per
entry. It is an estimate, not an exact accounting of deep object graphs.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from ..envelope import MISS, Entry
from ..errors import ConfigurationError

__all__ = ["MemoryTier", "Shelf", "estimate_size"]

_OVERHEAD = 200


# The entries of one function (or of direct ``Cache`` calls) in one namespace. A plain dict:
# a dict subclass makes every ``get`` on the hit path measurably slower.
Shelf = dict[Hashable, Entry]


def estimate_size(value: Any) -> int:
    """The documented byte estimate used for ``max_bytes``."""
    size = sys.getsizeof(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        size += sum(sys.getsizeof(item) for item in value)
    elif isinstance(value, dict):
        size += sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in value.items())
    return size + _OVERHEAD


class MemoryTier:
    """In-process tier with CLOCK-approximated LRU eviction at ``max_entries``/``max_bytes``."""

    name = "memory"
    shared = False

    def __init__(self, max_entries: int = 10_000, max_bytes: int | None = None) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ConfigurationError(f"MemoryTier max_entries must be an int >= 1, got {max_entries!r}")
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1):
            raise ConfigurationError(f"MemoryTier max_bytes must be an int >= 1 or None, got {max_bytes!r}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._shelves: dict[Hashable, Shelf] = {}
        self._meta: dict[int, Any] = {}
        # Names of shelves whose owner is gone, waiting for the lock (see forget()), and the
        # number of entries dropped with them that may still sit in the eviction queue.
        self._forgotten: deque[Hashable] = deque()
        self._dropped = 0
        # Every stored entry is appended here; entries replaced or removed since are skipped
        # when they reach the front. Eviction walks it from the front.
        self._queue: deque[Entry] = deque()
        # Appends allowed before the next maintenance pass: the entry count cannot exceed
        # max_entries before the queue grows past this length.
        self._room = max_entries
        self._bytes = 0
        self._sizes: dict[Entry, int] = {}
        self._lock = threading.Lock()
        self.evictions = 0
        self._generic = self.shelf(("", "__direct__"), None)
        # The version store its entries are judged against (set by the first cache over it).
        self.judged_by: Any = None
        _TIERS.add(self)

    # -- shelves -----------------------------------------------------------------------

    def shelf(self, name: Hashable, meta: Any = None) -> Shelf:
        """The shelf called ``name``, created on first use."""
        found = self._shelves.get(name)
        if found is None:
            with self._lock:
                found = self._shelves.get(name)
                if found is None:
                    self._reap()
                    found = self._shelves[name] = {}
                    self._meta[id(found)] = meta
        return found

    def forget(self, name: Hashable) -> None:
        """Drop the shelf called ``name`` with its entries and metadata (its owner is gone).

        Called from garbage-collection finalizers, so it never blocks: if the lock is taken
        (possibly by this very thread, interrupted by the collector) the shelf is dropped at
        the next store that takes the lock or the next shelf created.
        """
        self._forgotten.append(name)
        if self._lock.acquire(blocking=False):
            try:
                self._reap()
            finally:
                self._lock.release()

    def _reap(self) -> None:
        """Drop the forgotten shelves. Called with the lock held."""
        forgotten = self._forgotten
        while forgotten:
            shelf = self._shelves.pop(forgotten.popleft(), None)
            if shelf is None:
                continue
            self._meta.pop(id(shelf), None)
            if self.max_bytes is not None:
                for entry in list(shelf.values()):
                    self._bytes -= self._sizes.pop(entry, 0)
            self._dropped += len(shelf)
            shelf.clear()
        # Their entries still sit in the eviction queue (holding their values) until it is
        # compacted: compact once they are a quarter of it, O(1) amortized per entry.
        if self._dropped > 64 + len(self._queue) // 4:
            self._compact()

    def _compact(self) -> None:
        """Drop queue items whose entry is no longer stored. Called with the lock held."""
        queue = self._queue
        # In place, so entries appended meanwhile by lock-free stores are kept.
        for _ in range(len(queue)):
            entry = queue.popleft()
            if entry.shelf.get(entry.fkey) is entry:
                queue.append(entry)
        self._dropped = 0

    def meta_of(self, shelf: Shelf) -> Any:
        """What the owner of ``shelf`` attached to it when creating it (or ``None``)."""
        return self._meta.get(id(shelf))

    def shelves(self) -> Iterator[Shelf]:
        return iter(list(self._shelves.values()))

    def put(self, shelf: Shelf, fkey: Hashable, entry: Entry) -> None:
        """Store ``entry`` under ``fkey`` in ``shelf`` and evict past the bounds.

        Without ``max_bytes`` a store takes no lock: the dict assignment and the queue
        append are each atomic, and the lock is taken only when the bound may be reached.
        """
        entry.shelf = shelf
        entry.fkey = fkey
        if self.max_bytes is not None:
            self._put_sized(shelf, fkey, entry)
            return
        shelf[fkey] = entry
        queue = self._queue
        queue.append(entry)
        if len(queue) > self._room:
            with self._lock:
                self._maintain()

    def _put_sized(self, shelf: Shelf, fkey: Hashable, entry: Entry) -> None:
        size = estimate_size(entry.value)
        with self._lock:
            old = shelf.get(fkey)
            shelf[fkey] = entry
            if old is not None:
                self._bytes -= self._sizes.pop(old, 0)
            self._sizes[entry] = size
            self._bytes += size
            self._queue.append(entry)
            self._maintain()

    def _remove(self, shelf: Shelf, fkey: Hashable, entry: Entry | None) -> Entry | None:
        """Remove ``fkey`` if it holds ``entry`` (any entry when ``None``); return what went."""
        current = shelf.pop(fkey, None)
        if current is None:
            return None
        if entry is not None and current is not entry:
            shelf.setdefault(fkey, current)  # a newer entry: put it back (unless newer still)
            return None
        if self.max_bytes is not None:
            self._bytes -= self._sizes.pop(current, 0)
        return current

    def discard(self, shelf: Shelf, fkey: Hashable, entry: Entry | None = None) -> bool:
        """Remove ``fkey`` from ``shelf`` (only if it still holds ``entry``, when given)."""
        with self._lock:
            return self._remove(shelf, fkey, entry) is not None

    def drop(self, shelf: Shelf) -> int:
        """Empty ``shelf`` in O(1) (its entries are reclaimed from the queue lazily)."""
        with self._lock:
            count = len(shelf)
            if self.max_bytes is not None:
                for entry in list(shelf.values()):
                    self._bytes -= self._sizes.pop(entry, 0)
            shelf.clear()
            return count

    def sweep(self, is_live: Callable[[Entry], bool]) -> int:
        """Remove every entry for which ``is_live`` is false. O(entries): call it off the hot path."""
        removed = 0
        for shelf in self.shelves():
            for fkey, entry in list(shelf.items()):
                if not is_live(entry) and self.discard(shelf, fkey, entry):
                    removed += 1
        return removed

    def _maintain(self) -> None:
        """Evict past the bounds and drop dead queue items. Called with the lock held."""
        queue = self._queue
        if self._forgotten:
            self._reap()
        # Shelves are created and dropped only under the lock: no copy of the dict needed.
        live = sum(map(len, self._shelves.values()))
        budget = 2 * len(queue) + 16  # second chances are bounded: then evict regardless
        # Evict a little below the bound (1/64 of it), so a full tier takes the lock once
        # per that many stores instead of on every store; small tiers evict exactly.
        max_entries = self.max_entries
        limit = max_entries - max_entries // 64 if live > max_entries else max_entries
        max_bytes = self.max_bytes
        popleft, append = queue.popleft, queue.append
        evicted = 0
        # The loop is this tier's inner loop (one pass per eviction): _remove() is inlined.
        while queue and (live > limit or (max_bytes is not None and self._bytes > max_bytes)):
            entry = popleft()
            shelf = entry.shelf
            fkey = entry.fkey
            if shelf.get(fkey) is not entry:
                continue  # replaced or removed since it was queued
            budget -= 1
            if entry.ref and budget > 0:
                entry.ref = False
                append(entry)
                continue
            current = shelf.pop(fkey, None)
            if current is not entry:
                # A lock-free store replaced it meanwhile: keep the newer entry.
                if current is not None:
                    shelf.setdefault(fkey, current)
                continue
            if max_bytes is not None:
                self._bytes -= self._sizes.pop(entry, 0)
            live -= 1
            evicted += 1
        self.evictions += evicted
        if len(queue) > 2 * live + 1024:
            self._compact()
        self._room = len(queue) + max(0, max_entries - live)

    # -- the Tier protocol, for direct string keys --------------------------------------

    def get(self, key: str) -> Entry | Any:
        entry = self._generic.get(key)
        return MISS if entry is None else entry

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self.put(self._generic, key, entry)

    def delete(self, key: str) -> bool:
        return self.discard(self._generic, key)

    def clear(self) -> None:
        with self._lock:
            for shelf in self._shelves.values():
                shelf.clear()
            self._queue.clear()
            self._dropped = 0
            self._sizes.clear()
            self._bytes = 0
            self._room = self.max_entries

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        """Live entries (O(number of shelves), i.e. of cached functions)."""
        return sum(len(shelf) for shelf in list(self._shelves.values()))

    def measure(self) -> tuple[int | None, int | None]:
        """``(entries, bytes)``; bytes are estimated only with ``max_bytes`` (else ``None``)."""
        return len(self), self._bytes if self.max_bytes is not None else None

    @property
    def bytes(self) -> int:
        """Estimated bytes held (tracked only when ``max_bytes`` is set, else 0)."""
        return self._bytes

    def __repr__(self) -> str:
        return f"MemoryTier(max_entries={self.max_entries}, max_bytes={self.max_bytes}, entries={len(self)})"


_TIERS: weakref.WeakSet[MemoryTier] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at the fork would never be released in the child.
    for tier in list(_TIERS):
        tier._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
