"""The bindings of one cache: which functions it serves, their shelves and counters.

A :class:`~cacheplug.cache.calls.Binding` is one function object (or the direct ``Cache``
API) in one cache. Its memory shelf is named by what it stores — the namespace and the
function object (or the direct API) — not by the cache, so two caches over one
``MemoryTier`` with the same namespace see the same entries (a tier is plain storage). The
cache holds a function's binding only as long as the function lives; when it is collected
its counts are kept for ``stats()`` and its shelf is forgotten.
"""

from __future__ import annotations

import collections
import itertools
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import invalidation as inv
from ..statistics import FunctionStats
from ..tiers.memory import MemoryTier, Shelf
from .calls import _EMPTY_SHELF, Binding, Meter
from .judge import Judge
from .stats import tier_names

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["Bindings"]

# Each function object gets a serial the first time a cache binds it: its shelves are named
# by it (a function redefined under the same name is another object with other entries).
_SERIALS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_SERIAL = itertools.count()
_SERIAL_LOCK = threading.Lock()


def _serial(meta: Any) -> int:
    found = _SERIALS.get(meta)
    if found is None:
        with _SERIAL_LOCK:
            found = _SERIALS.get(meta)
            if found is None:
                found = _SERIALS[meta] = next(_SERIAL)
    return found


# The bindings (of several caches) over each memory shelf: a shelf shared by caches over one
# MemoryTier. The per-function shortcut is a judgement about the whole shelf, and each cache
# keeps its own, so a shared shelf is judged without it (every binding over it has none).
_SHARERS: weakref.WeakKeyDictionary[MemoryTier, dict[Any, list[weakref.ref[Binding]]]] = (
    weakref.WeakKeyDictionary()
)


def _share(memory: MemoryTier, name: Any, binding: Binding) -> None:
    with _SERIAL_LOCK:
        sharers = _SHARERS.setdefault(memory, {}).setdefault(name, [])
        sharers[:] = [ref for ref in sharers if ref() is not None]
        sharers.append(weakref.ref(binding))
        shared = [b for b in (ref() for ref in sharers) if b is not None] if len(sharers) > 1 else []
    for other in shared:
        Judge.unshortcut(other)


def _retire(owner_ref: Any, ident: str, meter: Meter) -> None:
    """A function object was garbage-collected: keep its counts.

    Runs inside the garbage collector, in any thread: takes no lock that could be held.
    """
    owner = owner_ref()
    if owner is not None:
        owner.retired.append((ident, meter))


def _forget_shelf(memory_ref: Any, name: Any) -> None:
    """The function object is gone: so are its shelf and the record of who shares it.

    Runs inside the garbage collector: takes no lock (``dict.pop`` is atomic).
    """
    memory = memory_ref()
    if memory is not None:
        memory.forget(name)
        sharers = _SHARERS.get(memory)
        if sharers is not None:
            sharers.pop(name, None)


class Bindings:
    """Every binding of one cache, created on first use and held weakly for functions."""

    def __init__(self, cache: Cache, memory: MemoryTier | None) -> None:
        self._cache = cache
        self._memory = memory
        self._lock = threading.Lock()
        # Direct-API bindings by ident; function bindings by the function's object, weakly:
        # the cache never keeps a dropped function (nor its memory shelf) alive.
        self._direct: dict[str, Binding] = {}
        self._functions: weakref.WeakKeyDictionary[Any, Binding] = weakref.WeakKeyDictionary()
        self.retired: collections.deque[tuple[str, Meter]] = collections.deque()
        # The counters of garbage-collected functions, folded by function (see stats).
        self.gone: dict[str, FunctionStats] = {}
        self._fold_lock = threading.Lock()

    def get(
        self, ident: str, meta: Any, static_tags: Iterable[str] = (), relevance: Iterable[str] | None = None
    ) -> Binding:
        """The binding of function ``ident`` (``""``: direct calls) in this cache.

        ``meta``: the function's own object (a decorator core: ``name``, ``local`` and
        ``skey_of_fkey(prefix)``), or ``None`` for the direct API. ``relevance``: the tags
        (besides the static ones) through which an invalidation can reach the function's
        entries; ``None`` means any invalidation may.
        """
        found = self._direct.get(ident) if meta is None else self._functions.get(meta)
        if found is not None:
            return found
        if self.retired:  # fold the counters of collected functions: their meters can go
            self.fold_retired(tier_names(self._cache))
        with self._lock:
            found = self._direct.get(ident) if meta is None else self._functions.get(meta)
            if found is not None:
                return found
            return self._make(ident, meta, static_tags, relevance)

    def _make(
        self, ident: str, meta: Any, static_tags: Iterable[str], relevance: Iterable[str] | None
    ) -> Binding:
        cache = self._cache
        namespace = cache.namespace
        name: Any = (namespace, ident) if meta is None else ("fn", namespace, _serial(meta))
        shelf: Shelf | dict[Any, Any] = _EMPTY_SHELF
        if self._memory is not None:
            skey_of = meta.skey_of_fkey(namespace + "|") if meta is not None else None
            shelf = self._memory.shelf(name, skey_of)
        base = (cache.ns_tag, inv.fn_tag(namespace, ident), *dict.fromkeys(static_tags))
        found = Binding(cache, ident, shelf, base)
        if meta is not None and relevance is not None:
            found.signature = frozenset((*base, *relevance))
            found.key_prefix = inv.key_tag(f"{namespace}|fn:{meta.name}(")
        if meta is None:
            self._direct[ident] = found
            return found
        found.local = bool(meta.local)
        found.policy = getattr(meta, "freshness", None)
        found.owner = weakref.ref(meta)
        if cache.learner is not None:
            found.calls = {}
        self._functions[meta] = found
        weakref.finalize(meta, _retire, weakref.ref(self), ident, found.meter).atexit = False
        if self._memory is not None:
            weakref.finalize(meta, _forget_shelf, weakref.ref(self._memory), name).atexit = False
            _share(self._memory, name, found)
        return found

    def all(self) -> list[Binding]:
        return [*self._direct.values(), *list(self._functions.values())]

    def fold_retired(self, tier_names: list[str]) -> dict[str, FunctionStats]:
        """The counters of garbage-collected functions, summed per function ident."""
        with self._fold_lock:
            retired, gone = self.retired, self.gone
            while retired:
                ident, meter = retired.popleft()
                reading = meter.read(ident, tier_names)
                folded = gone.get(ident)
                gone[ident] = reading if folded is None else folded.plus(reading)
            return dict(gone)

    def drop_shelves(self) -> None:
        """Empty the memory shelf of every binding (O(bindings))."""
        if self._memory is None:
            return
        for binding in self.all():
            if binding.shelf is not _EMPTY_SHELF:
                self._memory.drop(binding.shelf)

    def after_fork(self) -> None:
        """Fresh locks in a forked child (a lock held at the fork is never released there)."""
        self._lock = threading.Lock()
        for binding in self.all():
            binding.lock = threading.Lock()
            if binding.flights is not None:
                binding.flights.after_fork()
