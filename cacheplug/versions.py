"""Tag versions: what makes invalidation O(tags) and reads never stale.

Every invalidation takes the next number of a sequence (the *epoch*) and records, for each
tag it invalidates, that number as the tag's version. An entry remembers ``seq``, the epoch
as of which it is known fresh; it is fresh while every tag it carries has a version not
above ``seq``. Nothing is scanned: an invalidation writes one record, a read compares.

The hit path reads one integer, ``epoch[0]``: when it still equals the entry's ``seq``
nothing at all was invalidated since the entry was checked, so no tag is looked at. When it
moved, the tags are compared once and ``seq`` is advanced.

Two stores share this contract:

* :class:`LocalVersions`: one process (memory-only caches);
* :class:`HostVersions`: every process of a host. The epoch is an 8-byte counter in a
  memory-mapped file beside the disk tier; each invalidation appends its tags to a journal
  (a small diskcache) *before* publishing the new epoch, under an exclusive file lock, so a
  process that sees the epoch move finds the journal records it needs to catch up.
  Recording fails closed: if the journal cannot be written, :meth:`bump` raises
  :class:`~cacheplug.errors.InvalidationError` and the epoch does not move.
"""

from __future__ import annotations

import array
import contextlib
import logging
import mmap
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import diskcache

from .errors import InvalidationError

__all__ = ["HostVersions", "LocalVersions", "Versions", "host_versions"]

log = logging.getLogger("cacheplug")

# Every this many invalidations the journal is folded into one snapshot record and the
# records older than one window are deleted, so the journal stays bounded.
_SNAPSHOT_EVERY = 1024
_SNAPSHOT_KEY = "snapshot"


class Versions(Protocol):
    """The contract both version stores keep."""

    epoch: Any  # epoch[0] is the current sequence number (an int-indexable view)
    mirror: dict[str, int]
    keyed: bool  # whether any key tag was ever invalidated (stores then check key tags)
    # (seq, tags) of the latest invalidation this process has seen: an entry checked just
    # before it is rechecked with one set operation instead of one lookup per tag.
    last: tuple[int, frozenset[str]]

    def sync(self) -> int:
        """Bring ``mirror`` up to date; return the epoch it now reflects."""
        ...

    def bump(self, tags: Iterable[str]) -> int:
        """Record an invalidation of ``tags``; return its sequence number."""
        ...

    floor: int  # entries whose ``seq`` is below this are stale whatever their tags

    def close(self) -> None: ...


def fresh(mirror: dict[str, int], tags: Iterable[str], seq: int) -> bool:
    """True when no tag in ``tags`` was invalidated after ``seq``."""
    get = mirror.get
    for tag in tags:  # noqa: SIM110 (a loop is faster than all() over a generator)
        if get(tag, 0) > seq:
            return False
    return True


class LocalVersions:
    """Tag versions of one process."""

    def __init__(self) -> None:
        self.epoch = array.array("q", [0])
        self.mirror: dict[str, int] = {}
        self.keyed = False
        self.last: tuple[int, frozenset[str]] = (0, frozenset())
        self._lock = threading.Lock()

    def sync(self) -> int:
        return self.epoch[0]

    floor = 0

    def bump(self, tags: Iterable[str]) -> int:
        with self._lock:
            seq = self.epoch[0] + 1
            tags = frozenset(tags)
            for tag in tags:
                self.mirror[tag] = seq
                if tag.startswith("\x00k:"):
                    self.keyed = True
            self.last = (seq, tags)
            # Published last: a reader that sees the new epoch also sees the versions.
            self.epoch[0] = seq
            return seq

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalVersions(epoch={self.epoch[0]})"


class HostVersions:
    """Tag versions shared by every process of a host through ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._journal = diskcache.Cache(
            os.path.join(directory, "journal"), timeout=10, size_limit=2**40, cull_limit=0
        )
        path = os.path.join(directory, "epoch")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size < mmap.PAGESIZE:
                os.ftruncate(self._fd, mmap.PAGESIZE)
            self._mmap = mmap.mmap(self._fd, mmap.PAGESIZE)
            self.epoch = memoryview(self._mmap).cast("q")
            if self.epoch[0] == 0:
                # A lost epoch file must not restart the sequence below the journal's.
                self.epoch[0] = self._journal_high()
        self.mirror: dict[str, int] = {}
        self.keyed = False
        self.last: tuple[int, frozenset[str]] = (0, frozenset())
        self._seen = 0
        self._lock = threading.Lock()
        self._reload()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _journal_high(self) -> int:
        high = 0
        for key in self._journal.iterkeys():
            if isinstance(key, int):
                high = max(high, key)
        snap = self._journal.get(_SNAPSHOT_KEY)
        if snap is not None:
            high = max(high, snap[0])
        return high

    def _reload(self) -> None:
        """Rebuild the mirror from the snapshot and the journal after it."""
        snap = self._journal.get(_SNAPSHOT_KEY, retry=False)
        base, versions = snap if snap is not None else (0, {})
        self.mirror = dict(versions)
        self.keyed = any(t.startswith("\x00k:") for t in self.mirror)
        self._seen = base
        self._replay(self.epoch[0])

    def _replay(self, upto: int) -> None:
        get = self._journal.get
        for seq in range(self._seen + 1, upto + 1):
            tags = get(seq, retry=False)
            if tags is None:
                snap = get(_SNAPSHOT_KEY, retry=False)
                if snap is None or snap[0] < seq:
                    # A record below the epoch is missing and no snapshot covers it:
                    # the journal was lost. Treat every tag as invalidated now.
                    log.warning(
                        "cacheplug: invalidation journal in %s is incomplete; treating all entries as stale",
                        self.directory,
                    )
                    self.mirror = {}
                    self.floor = upto
                    self._seen = upto
                    return
                self.mirror = dict(snap[1])
                self.keyed = self.keyed or any(t.startswith("\x00k:") for t in self.mirror)
                self._seen = snap[0]
                self._replay(upto)
                return
            for tag in tags:
                self.mirror[tag] = seq
                if tag.startswith("\x00k:"):
                    self.keyed = True
            self.last = (seq, frozenset(tags))
            self._seen = seq

    floor = 0  # entries with a seq below this are stale (set only when the journal was lost)

    def sync(self) -> int:
        current = self.epoch[0]
        if current != self._seen:
            with self._lock:
                if current > self._seen:
                    self._replay(current)
        return current

    def bump(self, tags: Iterable[str]) -> int:
        record = tuple(tags)
        try:
            with self._lock, self._locked():
                seq = self.epoch[0] + 1
                # No retry: diskcache retries a locked database forever, and an invalidation
                # that cannot be recorded within the journal's timeout must fail closed.
                self._journal.set(seq, record, retry=False)
                self.epoch[0] = seq
                if seq % _SNAPSHOT_EVERY == 0:
                    self._snapshot(seq)
        except InvalidationError:
            raise
        except Exception as exc:
            raise InvalidationError(
                f"could not record the invalidation of {len(record)} tag(s) in "
                f"{self.directory}: {exc!r}; other processes may still serve the old values — "
                f"free disk space or fix permissions, then invalidate again"
            ) from exc
        with contextlib.suppress(Exception):  # recorded; catching up can wait for a read
            self.sync()
        return seq

    def _snapshot(self, seq: int) -> None:
        self._replay(seq)
        self._journal.set(_SNAPSHOT_KEY, (seq, dict(self.mirror)), retry=False)
        with self._journal.transact(retry=False):
            for old in range(max(1, seq - 2 * _SNAPSHOT_EVERY + 1), seq - _SNAPSHOT_EVERY + 1):
                self._journal.delete(old, retry=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._journal.close()

    def __repr__(self) -> str:
        return f"HostVersions({self.directory!r}, epoch={self.epoch[0]})"


_HOST: dict[str, HostVersions] = {}
_HOST_LOCK = threading.Lock()


def host_versions(directory: str) -> HostVersions:
    """The process's one :class:`HostVersions` for ``directory`` (shared by all tiers on it)."""
    real = os.path.realpath(directory)
    with _HOST_LOCK:
        store = _HOST.get(real)
        if store is None:
            store = _HOST[real] = HostVersions(real)
        return store
