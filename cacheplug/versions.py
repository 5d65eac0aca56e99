"""Tag versions: what makes invalidation O(tags) and reads never stale.

Every invalidation takes the next number of a sequence (the *epoch*) and records, for each
tag it invalidates, that number as the tag's version. An entry remembers ``seq``, the epoch
as of which it is known fresh; it is fresh while every tag it carries has a version not
above ``seq`` and ``seq`` is not below the store's ``floor``. Nothing is scanned.

The hit path reads one integer, ``epoch[0]``: when it still equals the entry's ``seq``
nothing at all was invalidated since the entry was checked, so no tag is looked at.

A bump also bumps the tags that depend on its tags (:meth:`Versions.depend`,
:mod:`cacheplug.versions_deps`): O(tags + dependents reached). A store's mirror holds at
most ``_MIRROR_MAX`` versions; older ones fold into ``floor`` (see :func:`_fold`).

Two stores share this contract:

* :class:`LocalVersions`: one process (memory-only caches);
* :class:`HostVersions`: every process of a host. The epoch is an 8-byte counter in a
  memory-mapped file; each invalidation is committed to a journal
  (:mod:`cacheplug.journal`, plain JSON, never pickles) *before* the epoch is published,
  under an exclusive file lock, so a record exists for every number up to the epoch. The
  record holds the tags reached through the journal's dependency edges, so every process
  replays the same bump.

What a host store guarantees besides:

* **A kill at any point of a bump leaves it working**: the next number is
  ``max(epoch, journal high) + 1``, and an epoch found behind the journal is raised.
* **Faults**: a store that cannot be read raises :class:`VersionsUnavailable`; one that can
  be read but not written opens read-only (``writable`` False, :meth:`bump` fails closed); a
  corrupt journal is moved aside and rebuilt with a new ``incarnation`` and a ``floor`` above
  every entry stored before. Everything it creates is owner-only whatever the umask.
* **Fork**: locks are taken around ``fork``; the child gets its own epoch file description
  (so ``flock`` excludes parent and child), new SQLite connections and new locks.
* **A deleted or replaced directory** is noticed by an owned watcher thread (at least every
  second) and by every bump: the store reopens, ``generation`` moves and listeners are told.

The host store is one class split by job: :mod:`cacheplug.versions_epoch` (its state, the
epoch file, its lock and mapping), :mod:`cacheplug.versions_watch` (the watcher thread,
listeners, fork) and :mod:`cacheplug.versions_recovery` (catching up, reopening,
quarantine). This module completes it with recording (:meth:`HostVersions.bump`) and keeps
the process's registry of host stores (:func:`host_versions`, the fork handlers) and the
tunables and test hooks (``_SNAPSHOT_EVERY``, ``_RECENT``, ``_MIRROR_MAX``, ``_NOW``,
``_WATCH_INTERVAL``, ``_STEP``): the parts read them from here, so a test sets them here.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from . import state
from .versions_deps import MemoryEdges, checked_edges
from .versions_epoch import Listener, VersionsUnavailable, _release
from .versions_recovery import Recovering, _Rebuilt

__all__ = ["HostVersions", "LocalVersions", "Versions", "VersionsUnavailable", "host_versions"]

log = logging.getLogger("cacheplug")

# Every this many invalidations the journal is folded into one snapshot record and the
# records older than one window are deleted, so the journal stays bounded.
_SNAPSHOT_EVERY = 1024
# How many of the latest invalidations each process keeps as tag sets for quick rechecks.
_RECENT = 16
# The most tag versions a store's mirror holds (see _fold): about 10 MB of short tags.
_MIRROR_MAX = 65_536
# The wall clock dependency edges expire by (a test moves it).
_NOW: Callable[[], float] = time.time
# How often the watcher looks for a deleted or replaced directory (seconds).
_WATCH_INTERVAL = 0.5
# Test-only: called with the name of each step of a bump ("locked", "inserted", "committed",
# "published", "snapshot") so that a test can kill the process exactly there.
_STEP: Callable[[str], None] | None = None


def _step(name: str) -> None:
    hook = _STEP
    if hook is not None:
        hook(name)


def _watch_interval() -> float:
    """The watcher's pause, read at every round (so that a test can change it)."""
    return _WATCH_INTERVAL


class Versions(Protocol):
    """The contract both version stores keep."""

    epoch: Any  # epoch[0] is the current sequence number (an int-indexable view)
    mirror: dict[str, int]
    keyed: bool  # whether any key tag was ever invalidated (stores then check key tags)
    # (seq, tags) of the latest invalidations this process has seen, oldest first (a tuple,
    # replaced whole): an entry checked shortly before them is rechecked with one set
    # operation per invalidation instead of one lookup per tag.
    recent: tuple[tuple[int, frozenset[str]], ...]
    floor: int  # entries whose ``seq`` is below this are stale whatever their tags
    incarnation: str  # changes when the store is rebuilt: entries of another one are stale
    writable: bool  # False: invalidations can be read but not recorded
    generation: int  # moves on every reopen (after a fork, a deleted directory...)

    def sync(self) -> int:
        """Bring ``mirror`` up to date; return the epoch it now reflects."""
        ...

    def bump(self, tags: Iterable[str]) -> int:
        """Record an invalidation of ``tags`` and what depends on them; return its sequence number."""
        ...

    def depend(self, derived: str, sources: Iterable[str], expires: float | None = None) -> None:
        """From now on, a bump of any of ``sources`` also bumps ``derived`` (transitively).

        Until ``derived`` is bumped or ``expires`` (wall-clock seconds) passes. Raises
        :class:`~cacheplug.errors.InvalidationError` when it cannot be recorded.
        """
        ...

    def check(self) -> bool:
        """Reopen the store if its files were deleted or replaced; True if it did."""
        ...

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(reopened)`` on every watcher tick (held weakly)."""
        ...

    def close(self) -> None: ...


def fresh(mirror: dict[str, int], tags: Iterable[str], seq: int) -> bool:
    """True when no tag in ``tags`` was invalidated after ``seq``."""
    get = mirror.get
    for tag in tags:  # noqa: SIM110 (a loop is faster than all() over a generator)
        if get(tag, 0) > seq:
            return False
    return True


def _counted(record: tuple[str, ...]) -> str:
    """What an invalidation covers, in words: ``"2 tags and 1 key"`` (keys travel as key tags)."""
    keys = sum(1 for tag in record if tag.startswith("\x00k:"))
    tags = len(record) - keys
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((tags, "tag"), (keys, "key")) if n]
    return " and ".join(parts) or "nothing"


def _mirror(store: LocalVersions | HostVersions | _Rebuilt, seq: int, tags: Iterable[str]) -> None:
    """Record invalidation ``seq`` of ``tags`` in a store's mirror and its recent window."""
    frozen = frozenset(tags)
    mirror = store.mirror
    for tag in frozen:
        # One store, in place: a reader without the lock sees the old version or the new one,
        # never no version at all (taking the tag out to re-insert it last let a concurrent
        # reader judge an entry fresh against a tag it could not see).
        if mirror.get(tag, 0) < seq:
            mirror[tag] = seq
        if tag.startswith("\x00k:"):
            store.keyed = True
    store.recent = (*store.recent[1 - _RECENT :], (seq, frozen))
    if len(mirror) > _MIRROR_MAX:
        _fold(store)


def _fold(store: LocalVersions | HostVersions | _Rebuilt) -> None:
    """Forget the oldest versions beyond the bound; ``floor`` rises to the newest forgotten.

    An entry checked before it is then stale, never judged against a forgotten version: the
    floor rises before a new mirror replaces the old, and readers take the mirror first
    (``Judge.untouched_since``). A quarter goes at once, chosen by version (the mirror is not
    kept in version order): O(n log n) per fold of n/4 versions, O(log n) per version recorded.
    """
    mirror = store.mirror
    cut = len(mirror) - _MIRROR_MAX * 3 // 4
    top = heapq.nsmallest(cut, mirror.values())[-1]
    store.floor = max(store.floor, top)
    store.mirror = {tag: version for tag, version in mirror.items() if version > top}


class LocalVersions:
    """Tag versions of one process."""

    incarnation = "local"
    writable = True
    generation = 0
    floor = 0

    def __init__(self) -> None:
        # A list, not an array: every hit reads epoch[0], and a list subscript is specialised
        # by the interpreter and returns the stored int (an array builds a new int object
        # for every read above 256).
        self.epoch: list[int] = [0]
        self.mirror: dict[str, int] = {}
        self.keyed = False
        self.recent: tuple[tuple[int, frozenset[str]], ...] = ()
        self._lock = threading.Lock()
        self._edges = MemoryEdges()

    def sync(self) -> int:
        return self.epoch[0]

    def bump(self, tags: Iterable[str]) -> int:
        with self._lock:
            seq = self.epoch[0] + 1
            _mirror(self, seq, self._edges.reach(tags, _NOW()))
            # Published last: a reader that sees the new epoch also sees the versions.
            self.epoch[0] = seq
            return seq

    def depend(self, derived: str, sources: Iterable[str], expires: float | None = None) -> None:
        edges, expires = checked_edges(derived, sources, expires)
        with self._lock:
            self._edges.add(derived, edges, expires, _NOW())

    def check(self) -> bool:
        return False

    def add_listener(self, callback: Listener) -> None:
        """Nothing to report: a process's own memory is never deleted under it."""

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalVersions(epoch={self.epoch[0]})"


class HostVersions(Recovering):
    """Tag versions shared by every process of a host through ``directory``.

    Raises :class:`VersionsUnavailable` when the invalidations cannot be read.
    """

    def __init__(self, directory: str, *, timeout: float = 10.0) -> None:
        self.directory = directory
        self._epoch_path = os.path.join(directory, "epoch")
        self._journal_path = os.path.join(directory, "journal", "journal.db")
        self._timeout = timeout
        self._lock = threading.RLock()
        self._flocks = {}
        self.mirror = {}
        self.recent = ()
        self.keyed = self._pending = self._reopening = False
        self.floor = self._seen = self.generation = 0
        self._fd = -1
        self._fds = []
        self._maps = []
        self._ids = self._broken = None
        self._listeners = []
        self._logged = {}
        self._stop = threading.Event()
        self._watcher = None
        with self._lock:
            self._open(None)
            try:
                self._reload_or_recover()
            except VersionsUnavailable:
                raise
            except Exception as exc:
                raise self._unavailable(f"the journal cannot be read ({exc!r})") from exc
        weakref.finalize(self, _release, self._fds, self._stop)
        _STORES.add(self)
        self._watch()

    # The watcher thread calls this without holding the store (it holds it weakly).
    _watch_interval = staticmethod(_watch_interval)
    # A reload rebuilds the mirror aside with this, then publishes it (see _reload).
    _mirror_into = staticmethod(_mirror)

    # -- recording ---------------------------------------------------------------------------

    def bump(self, tags: Iterable[str]) -> int:
        record = tuple(tags)
        for tag in record:
            if type(tag) is not str:  # the journal holds JSON lists of str, nothing else
                raise TypeError(f"tags are str, got {tag!r}")
        return self._write(f"the invalidation of {_counted(record)}", lambda: self._record(record))

    def depend(self, derived: str, sources: Iterable[str], expires: float | None = None) -> None:
        edges, expires = checked_edges(derived, sources, expires)
        if edges:
            self._write(f"a dependency of {derived!r}", lambda: self._link(derived, edges, expires))

    def _link(self, derived: str, sources: tuple[str, ...], expires: float | None) -> None:
        """Commit the edges under the epoch lock (a bump walks them or was published before)."""
        journal = self._journal
        with self._flocked(self._fd):
            journal.begin()
            try:
                journal.add_edges(derived, sources, expires)
                journal.commit()
            finally:
                journal.rollback()

    def _record(self, record: tuple[str, ...]) -> int:
        """Commit the record, then publish the epoch (the caller holds ``_lock``)."""
        journal = self._journal
        with self._flocked(self._fd):
            journal.begin()
            try:
                _step("locked")
                # Above both: a process killed after its commit left the journal ahead.
                high, linked = journal.bump_state()
                seq: int = max(self.epoch[0], high) + 1
                if linked:  # in the same transaction: the walk's deletions commit with the record
                    record = journal.reach(record, _NOW())
                journal.set(seq, record)
                _step("inserted")
                journal.commit()
            finally:
                journal.rollback()
            _step("committed")
            self.epoch[0] = seq
            _step("published")
            if self._seen == seq - 1:
                self._apply(seq, record)  # up to date: no need to read back our own record
            if seq % _SNAPSHOT_EVERY == 0:
                try:
                    self._replay(seq)
                    if self._seen == seq:
                        journal.write_snapshot(
                            seq, self.floor, dict(self.mirror), seq - _SNAPSHOT_EVERY, _step, _NOW()
                        )
                except Exception as exc:  # recorded already: a later snapshot will do
                    self._log_once("snapshot", exc)
        return seq

    def _apply(self, seq: int, tags: Iterable[str]) -> None:
        _mirror(self, seq, tags)
        self._seen = seq

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop and join the watcher, close the journal connection.

        The epoch mapping stays readable (fast paths may still hold it).
        """
        self._stop.set()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(10)
        with self._lock, contextlib.suppress(Exception):
            self._journal.close()
        _STORES.discard(self)
        with _HOST_LOCK:
            if _HOST.get(_resolved(self.directory)) is self:
                del _HOST[_resolved(self.directory)]

    def __repr__(self) -> str:
        return f"HostVersions({self.directory!r}, epoch={self.epoch[0]}, incarnation={self.incarnation!r})"


_STORES: weakref.WeakSet[HostVersions] = weakref.WeakSet()
_HOST: weakref.WeakValueDictionary[str, HostVersions] = state.HOST_VERSIONS
_HOST_LOCK = threading.RLock()  # reentrant: a fork from under it must not deadlock
_FORKING: list[HostVersions] = []


def _before_fork() -> None:
    # A fork while another thread holds a store's lock (or the journal's SQLite handle)
    # would leave the child with a lock nobody releases: wait for them first.
    _HOST_LOCK.acquire()
    _FORKING[:] = list(_STORES)
    for store in _FORKING:
        store._lock.acquire()


def _after_fork_parent() -> None:
    for store in reversed(_FORKING):
        store._lock.release()
    _FORKING.clear()
    _HOST_LOCK.release()


def _after_fork_child() -> None:
    global _HOST_LOCK
    _HOST_LOCK = threading.RLock()
    stores, _FORKING[:] = list(_FORKING), []
    for store in stores:
        try:
            store._after_fork_child()
        except Exception as exc:
            log.warning("cacheplug: reopening %s after fork failed: %r", store.directory, exc)


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)


def _resolved(directory: str) -> str:
    """``directory`` with its parent resolved but not itself: a symlinked store is refused."""
    path = os.path.normpath(os.path.abspath(directory))
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def host_versions(directory: str) -> HostVersions:
    """The process's one :class:`HostVersions` for ``directory`` (shared by all tiers on it).

    Raises :class:`VersionsUnavailable` when its invalidations cannot be read (try again later).
    """
    real = _resolved(directory)
    with _HOST_LOCK:
        store = _HOST.get(real)
        if store is None:
            store = HostVersions(real)
            _HOST[real] = store
        return store
