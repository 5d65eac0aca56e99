"""Usage learning of one cache: which entries are hot, and refreshing them ahead of expiry.

Opt-in (``Cache(learn=True)`` or ``CACHEPLUG_LEARN=true``). While it is on:

* **the hit path only counts**: every memory hit bumps its entry's ``hits`` (the generated
  fast path of a learning cache is built with that one statement more; the general path's
  probe adds it too). Nothing else happens on a call.
* **a tick runs in the background** (a job of ``cache.background``, every ``period``
  seconds, submitted by the learner's own thread): it reads and zeroes the counters of every
  entry in memory and feeds them to a :class:`~cacheplug.hotkeys.HotKeys` (a count-min
  sketch and a top-k with exponential decay: bounded memory, however many keys are seen).
  A tick is O(entries in memory), off the call path.
* **refresh-ahead**: a hot key (a decayed score of at least ``hot`` hits, among the top
  ``capacity``) whose entry expires within ``lead`` seconds is recomputed by a background
  job (the function's refresh flow: no-stale-set check, replaces the entry in every tier),
  so its callers keep hitting. ``lead`` is the largest of twice the period, a tenth of the
  entry's ttl and twice its compute time. An invalidated entry is not refreshed ahead: its
  next caller computes it, as always.
* **the arguments are kept** to recompute a key: a fast-path key *is* the argument tuple,
  and a key built from plain values is turned back into them; for the other calls (methods,
  ``key=``, ``ignore=``, arguments without a fast key) each general-path call stores its
  ``(args, kwargs)`` by memory key in its binding (``binding.calls``), pruned at each tick
  to the keys still in memory and never more than ``max_entries`` per function. That is
  the memory cost of learning: one reference to the call's arguments per such entry (an
  instance in ``args`` stays alive while its entry is in memory).
* **the learned set** (the hot calls whose arguments are plain scalars) is saved beside the
  disk tier every ``save_every`` seconds and when the cache closes
  (:mod:`cacheplug.cache.history`), for ``cacheplug.warm_from_history()`` in the next process.

Only ``@cached`` functions are learned; keys of the direct API (``Cache.get``/``set``) are
counted but never refreshed ahead (their computation is not known to the cache).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..hotkeys import HotKeys
from ..settings import learn_from_env
from . import history

if TYPE_CHECKING:
    from .calls import Binding
    from .facade import Cache

__all__ = ["Learner", "learner_for"]

log = logging.getLogger("cacheplug")

_NEVER = math.inf


def learner_for(cache: Cache, learn: Any) -> Learner | None:
    """The learner of a cache built with ``learn=`` (``None``: ``CACHEPLUG_LEARN``), or ``None``."""
    if learn is None:
        learn = learn_from_env()
    if not isinstance(learn, bool):
        raise ConfigurationError(f"Cache(learn=...) takes True or False, got {learn!r}")
    if not learn:
        return None
    if cache.memory is None:
        raise ConfigurationError(
            "Cache(learn=True) counts hits in the memory tier, and this cache has none: put a "
            "MemoryTier first in its tiers, or leave learn off"
        )
    return Learner(cache)


class Learner:
    """What one cache learns about its usage, and the refreshes ahead of expiry it starts."""

    def __init__(
        self,
        cache: Cache,
        *,
        period: float = 1.0,
        capacity: int = 1024,
        half_life: float = 60.0,
        hot: float = 2.0,
        save_every: float = 60.0,
    ) -> None:
        self.cache = cache
        self.period, self.hot, self.save_every = period, hot, save_every
        self.keys: HotKeys[tuple[Binding, Hashable]] = HotKeys(
            capacity, half_life=half_life, now=cache.clock()
        )
        assert cache.memory is not None
        # At most this many kept calls per function (the memory tier's bound).
        self.stash_limit = cache.memory.max_entries
        self.ticks = self.refreshes = self.saves = 0
        self._lock = threading.Lock()
        self._saved = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the ticker ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the ticker thread (the cache does, once built)."""
        self._thread = threading.Thread(
            target=_tick_every,
            args=(weakref.ref(self), self._stop, self.period),
            name="cacheplug-learner",
            daemon=True,
        )
        self._thread.start()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock, and a ticker thread of its own (the parent's is not there)."""
        self._lock = threading.Lock()
        if self._thread is not None and not self._stop.is_set():
            self._stop = threading.Event()  # the parent's may hold a waiter of a thread not here
            self.start()

    def close(self) -> None:
        """Stop the ticker (joined) and save the learned set a last time."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10.0)
        self.save()

    # -- the hit path's one companion: keeping the arguments of a call -----------------------

    def remember(
        self, binding: Binding, fkey: Hashable, call: tuple[tuple[Any, ...], dict[str, Any]]
    ) -> None:
        """Keep the arguments of the general-path call stored under ``fkey`` (bounded)."""
        calls = binding.calls
        if calls is not None and (len(calls) < self.stash_limit or fkey in calls):
            calls[fkey] = call

    # -- the tick -----------------------------------------------------------------------------

    def tick(self) -> int:
        """Read the hit counters, update what is hot, start the refreshes due; how many started.

        O(entries in memory): it runs in the background (``cache.background``), never on a call.
        """
        cache = self.cache
        with self._lock:
            now = cache.clock()
            keys = self.keys
            keys.advance(now)
            for binding in cache.bindings.all():
                if binding.owner is None or binding.owner() is None:
                    continue  # the direct API, or a function that is gone
                shelf = binding.shelf
                try:
                    items = list(shelf.items())
                except RuntimeError:  # resized meanwhile (free-threaded builds): next tick
                    continue
                for fkey, entry in items:
                    hits = entry.hits
                    if hits:
                        entry.hits = 0
                        keys.add((binding, fkey), hits)
                calls = binding.calls
                if calls:
                    for fkey in list(calls):  # a copy: callers add to it meanwhile
                        if fkey not in shelf:
                            calls.pop(fkey, None)
            keys.discard(lambda key: key[0].owner is not None and key[0].owner() is not None)
            started = sum(
                self._refresh_ahead(binding, fkey, now) for (binding, fkey), _ in keys.hot(self.hot)
            )
            self.ticks += 1
            self.refreshes += started
        if time.monotonic() - self._saved >= self.save_every:
            self.save()
        return started

    def _refresh_ahead(self, binding: Binding, fkey: Hashable, now: float) -> bool:
        entry = binding.shelf.get(fkey)
        if entry is None or entry.deadline == _NEVER:
            return False
        lead = max(2 * self.period, 0.1 * (entry.deadline - entry.created), 2 * entry.cost_seconds)
        if entry.deadline - now > lead or not self.cache.live(entry, now):
            return False
        meta = binding.owner() if binding.owner is not None else None
        call = meta.recall(binding, fkey) if meta is not None else None
        if meta is None or call is None:
            return False
        recompute, cache = meta.recompute, self.cache
        return cache.background.submit(("refresh-ahead", id(binding), fkey), lambda: recompute(cache, call))

    # -- the learned set ----------------------------------------------------------------------

    def learned(self) -> list[history.Learned]:
        """The hot calls whose arguments JSON carries exactly, hottest first."""
        out = []
        with self._lock:
            hot = self.keys.hot(self.hot)
        for (binding, fkey), score in hot:
            meta = binding.owner() if binding.owner is not None else None
            call = meta.recall(binding, fkey) if meta is not None else None
            if call is not None and history.jsonable(*call):
                out.append(history.Learned(binding.ident, call[0], call[1], round(score, 3)))
        return out

    def save(self) -> str | None:
        """Write the learned set beside the disk tier (a fault is counted and logged); its path."""
        self._saved = time.monotonic()
        try:
            path = history.write(self.cache, self.learned())
        except Exception as exc:
            self.cache.faults.report("learning", "save", exc)
            return None
        if path is not None:
            self.saves += 1
        return path

    def __repr__(self) -> str:
        return f"Learner(hot={len(self.keys)}, ticks={self.ticks}, refreshes={self.refreshes})"


def _tick_every(ref: weakref.ref[Learner], stop: threading.Event, period: float) -> None:
    """The ticker thread: submit a tick every ``period`` seconds until stopped (or the learner is gone)."""
    while not stop.wait(period):
        learner = ref()
        if learner is None or learner.cache.closed:
            return
        learner.cache.background.submit(("cacheplug-learn", id(learner)), learner.tick)
        del learner
