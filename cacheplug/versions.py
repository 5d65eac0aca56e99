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
  (a SQLite table) *before* publishing the new epoch, under an exclusive file lock, so a
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
import pickle
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from .errors import InvalidationError

__all__ = ["HostVersions", "LocalVersions", "Versions", "host_versions"]

log = logging.getLogger("cacheplug")

# Every this many invalidations the journal is folded into one snapshot record and the
# records older than one window are deleted, so the journal stays bounded.
_SNAPSHOT_EVERY = 1024
# How many of the latest invalidations each process keeps as tag sets for quick rechecks.
_RECENT = 16


class Versions(Protocol):
    """The contract both version stores keep."""

    epoch: Any  # epoch[0] is the current sequence number (an int-indexable view)
    mirror: dict[str, int]
    keyed: bool  # whether any key tag was ever invalidated (stores then check key tags)
    # (seq, tags) of the latest invalidations this process has seen, oldest first (a tuple,
    # replaced whole): an entry checked shortly before them is rechecked with one set
    # operation per invalidation instead of one lookup per tag.
    recent: tuple[tuple[int, frozenset[str]], ...]

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
        self.recent: tuple[tuple[int, frozenset[str]], ...] = ()
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
            self.recent = (*self.recent[1 - _RECENT :], (seq, tags))
            # Published last: a reader that sees the new epoch also sees the versions.
            self.epoch[0] = seq
            return seq

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalVersions(epoch={self.epoch[0]})"


class _Journal:
    """The invalidation journal: one SQLite table of (seq, tags) and one snapshot row.

    A plain table rather than a cache: an invalidation is one ``INSERT`` in autocommit mode
    (WAL, no fsync per commit), and catching up is one range query. Each thread (and each
    process after a fork) uses its own connection; SQLite waits at most ``_timeout``
    seconds for a lock, then raises.
    """

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self._timeout = timeout
        self._local = threading.local()
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, tags BLOB NOT NULL)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 0), "
            "seq INTEGER NOT NULL, versions BLOB NOT NULL)"
        )

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            local.conn, local.pid = conn, os.getpid()
        return conn

    def set(self, seq: int, tags: tuple[str, ...]) -> None:
        """Append the record of invalidation ``seq``."""
        self._conn().execute("INSERT INTO journal VALUES (?, ?)", (seq, pickle.dumps(tags, 5)))

    def records(self, after: int, upto: int) -> list[tuple[int, tuple[str, ...]]]:
        rows = self._conn().execute(
            "SELECT seq, tags FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto)
        )
        return [(seq, pickle.loads(blob)) for seq, blob in rows]

    def snapshot(self) -> tuple[int, dict[str, int]] | None:
        row = self._conn().execute("SELECT seq, versions FROM snapshot WHERE id = 0").fetchone()
        return None if row is None else (row[0], pickle.loads(row[1]))

    def write_snapshot(self, seq: int, versions: dict[str, int], drop_upto: int) -> None:
        """Store the versions as of ``seq`` and drop the records up to ``drop_upto``."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR REPLACE INTO snapshot VALUES (0, ?, ?)", (seq, pickle.dumps(versions, 5)))
            conn.execute("DELETE FROM journal WHERE seq <= ?", (drop_upto,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def high(self) -> int:
        conn = self._conn()
        top = conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0] or 0
        snap = conn.execute("SELECT seq FROM snapshot WHERE id = 0").fetchone()
        return max(top, snap[0] if snap else 0)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class HostVersions:
    """Tag versions shared by every process of a host through ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(os.path.join(directory, "journal"), mode=0o700, exist_ok=True)
        self._journal = _Journal(os.path.join(directory, "journal", "journal.db"))
        path = os.path.join(directory, "epoch")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size < mmap.PAGESIZE:
                os.ftruncate(self._fd, mmap.PAGESIZE)
            self._mmap = mmap.mmap(self._fd, mmap.PAGESIZE)
            self.epoch = memoryview(self._mmap).cast("q")
            if self.epoch[0] == 0:
                # A lost epoch file must not restart the sequence below the journal's.
                self.epoch[0] = self._journal.high()
        self.mirror: dict[str, int] = {}
        self.keyed = False
        self.recent: tuple[tuple[int, frozenset[str]], ...] = ()
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

    def _reload(self) -> None:
        """Rebuild the mirror from the snapshot and the journal after it."""
        snap = self._journal.snapshot()
        base, versions = snap if snap is not None else (0, {})
        self.mirror = dict(versions)
        self.keyed = any(t.startswith("\x00k:") for t in self.mirror)
        self._seen = base
        self._replay(self.epoch[0])

    def _apply(self, seq: int, tags: Iterable[str]) -> None:
        frozen = frozenset(tags)
        for tag in frozen:
            self.mirror[tag] = seq
            if tag.startswith("\x00k:"):
                self.keyed = True
        self.recent = (*self.recent[1 - _RECENT :], (seq, frozen))
        self._seen = seq

    def _replay(self, upto: int) -> None:
        if upto <= self._seen:
            return
        records = self._journal.records(self._seen, upto)
        if not records or records[0][0] != self._seen + 1 or records[-1][0] != upto:
            snap = self._journal.snapshot()
            if snap is not None and snap[0] > self._seen:
                # The records this process missed were folded into the snapshot.
                self.mirror = dict(snap[1])
                self.keyed = self.keyed or any(t.startswith("\x00k:") for t in self.mirror)
                self._seen = snap[0]
                records = self._journal.records(self._seen, upto)
            if len(records) != upto - self._seen:
                # Records below the epoch are missing and no snapshot covers them: the
                # journal was lost. Treat every entry stored before now as stale.
                log.warning(
                    "cacheplug: invalidation journal in %s is incomplete; treating all entries as stale",
                    self.directory,
                )
                self.mirror = {}
                self.floor = upto
                self._seen = upto
                return
        for seq, tags in records:
            self._apply(seq, tags)

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
                self._journal.set(seq, record)
                self.epoch[0] = seq
                if self._seen == seq - 1:
                    self._apply(seq, record)  # up to date: no need to read back our own record
                if seq % _SNAPSHOT_EVERY == 0:
                    self._replay(seq)
                    self._journal.write_snapshot(seq, dict(self.mirror), seq - _SNAPSHOT_EVERY)
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
