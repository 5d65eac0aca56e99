"""The watcher of a host version store: its thread, its listeners, and fork.

* A deleted or replaced store directory is noticed by an owned daemon thread (one per store
  and process, every ``cacheplug.versions._WATCH_INTERVAL`` seconds, read at every round):
  it reopens the store (:meth:`check`), repairs an epoch a killed process left behind its
  journal, and calls every listener with ``reopened``.
* Listeners are held weakly; their exceptions are logged (at most once per 10 s per kind),
  and they are never called under the store's lock (a listener may call back into it).
* The thread holds the store only weakly: a collected store's watcher ends.
* **Fork**: in the child the store gets new locks, its own epoch file description (so
  ``flock`` excludes parent and child), no inherited SQLite connection, a new
  ``generation``, and its own watcher if the parent had one.
"""

from __future__ import annotations

import inspect
import logging
import mmap
import os
import threading
import weakref
from collections.abc import Callable

from .versions_epoch import EpochFile, Listener, _fd_identity, _release

__all__ = ["Watching"]

log = logging.getLogger("cacheplug")


class Watching(EpochFile):
    """The watcher and listeners of a host store; see the module docstring."""

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(reopened)`` from the watcher on every tick, and with True right
        after a reopen that :meth:`bump` or :meth:`sync` triggered.

        Held weakly (a bound method through :class:`weakref.WeakMethod`): keep the callback
        alive for as long as it should be called. Exceptions it raises are logged.
        """
        ref: Callable[[], Listener | None]
        try:
            ref = weakref.WeakMethod(callback) if inspect.ismethod(callback) else weakref.ref(callback)
        except TypeError:  # not weakly referenceable (a builtin): held for the store's life

            def ref() -> Listener:
                return callback

        with self._lock:
            self._listeners.append(ref)
            if self._watcher is None:
                self._watch()

    def _notify(self, reopened: bool) -> None:
        """Tell the listeners (never under ``_lock``: a listener may call back into the store)."""
        alive = []
        for ref in list(self._listeners):
            callback = ref()
            if callback is None:
                continue
            alive.append(ref)
            try:
                callback(reopened)
            except Exception as exc:
                self._log_once(f"listener {getattr(callback, '__qualname__', callback)!r}", exc)
        if len(alive) != len(self._listeners):
            with self._lock:
                self._listeners = [r for r in self._listeners if r() is not None]

    def _tick(self) -> None:
        """One watcher round: notice a deleted or replaced store, repair a lagging epoch."""
        reopened = False
        with self._lock:
            try:
                reopened = self._check_locked(trust=True)
                if self.writable and self._broken is None:
                    self._repair_behind()
            except Exception as exc:
                self._log_once("watch", exc)
            reopened, self._pending = reopened or self._pending, False
        self._notify(reopened)

    def _watch(self) -> None:
        """Start this store's watcher thread (once per process; the caller holds ``_lock``
        or is the constructor)."""
        if self._stop.is_set():
            return
        thread = threading.Thread(
            target=_watch_loop,
            args=(weakref.ref(self), self._stop, self._watch_interval),
            name=f"cacheplug-versions-watcher:{self.directory}",
            daemon=True,
        )
        self._watcher = thread
        thread.start()

    # -- fork ---------------------------------------------------------------------------------

    def _after_fork_child(self) -> None:
        """In a forked child: own locks, own epoch file description, no inherited SQLite."""
        self._lock = threading.RLock()
        self._flocks = {}
        watching = self._watcher is not None and not self._stop.is_set()
        self._stop = threading.Event()
        self._watcher = None
        self._journal.abandon()
        try:
            fd = os.open(
                self._epoch_path, (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_CLOEXEC | os.O_NOFOLLOW
            )
        except OSError:
            fd = -1  # gone: the first check() reopens everything
        if fd >= 0:
            self._fds.append(fd)
            if self._ids is not None and _fd_identity(fd) == self._ids[0]:
                access = mmap.ACCESS_WRITE if self.writable else mmap.ACCESS_READ
                mm = mmap.mmap(fd, len(self._mmap), access=access)
                self._maps.append((self._mmap, self.epoch))  # fast paths may still read the old one
                self._fd, self._mmap, self.epoch = fd, mm, memoryview(mm).cast("q")
        self.generation += 1
        self._pending = True
        weakref.finalize(self, _release, self._fds, self._stop)
        if watching:
            self._watch()


def _watch_loop(
    ref: Callable[[], Watching | None], stop: threading.Event, interval: Callable[[], float]
) -> None:
    while not stop.wait(interval()):
        store = ref()
        if store is None:
            return  # the store was garbage-collected
        try:
            store._tick()
        except Exception as exc:  # never dies of one bad round
            log.warning("cacheplug: version store watcher: %r", exc)
        del store
