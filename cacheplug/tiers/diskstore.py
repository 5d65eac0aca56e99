"""diskcache, adapted for the disk tier: owner-only files, no unpickling, bounded waits, fork safety.

- :class:`Store` is a ``diskcache.Cache`` whose lock waits are bounded (diskcache's own
  retry loops last 60 s), with a lean read for the tier's hit path and a way to open an
  existing cache without writing (a full disk).
- Its ``Disk`` writes value files 0600 in 0700 folders whatever the umask, and never
  unpickles: rows in diskcache's pickle or text modes, pickled keys and value file names
  outside the folder are refused (the tier only ever stores bytes under str keys).
- Fork: every SQLite call of the tier runs inside the fork gate (``cacheplug.forkgate``), closed before
  a fork; a forked child keeps (never uses, never closes) the parent's connections and
  runs :data:`after_fork_in_child` so that each store opens its own.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import diskcache

from ..forkgate import GATE
from ..private_files import private_makedirs

__all__ = ["Store", "after_fork_in_child", "sqlite_gate"]

_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


def _inside(filename: Any) -> bool:
    """Is a value file name from a row relative and inside the folder (no ``..``, no root)?"""
    if not isinstance(filename, str) or os.path.isabs(filename):
        return False
    return not os.path.normpath(filename).startswith("..")


class _PrivateDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's Disk with owner-only value files, and no unpickling of rows or keys.

    The tier only ever stores bytes (raw rows, or value files for large ones), so a row in
    diskcache's pickle or text mode, or with a value file outside the folder, was not
    written by cacheplug: it reads as empty bytes, which the codec reports as corrupt.
    """

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: str | None = None) -> int:
        full_dir = os.path.dirname(full_path)
        for count in range(1, 11):
            with contextlib.suppress(OSError):
                private_makedirs(full_dir)
            try:
                fd = os.open(full_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600)
            except OSError:
                if count == 10:
                    raise
                continue  # another process removed the folder in between: create it again
            with open(fd, "wb" if "b" in mode else "w", encoding=encoding) as writer:
                size = 0
                for chunk in iterator:
                    size += len(chunk)
                    writer.write(chunk)
                return size
        raise AssertionError("unreachable")

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_RAW:
            return bytes(value) if type(value) is memoryview else value
        if mode == diskcache.core.MODE_BINARY and not read and _inside(filename):
            with open(os.path.join(self._directory, filename), "rb") as reader:
                return reader.read()
        return b""

    def get(self, key: Any, raw: bool) -> Any:
        if raw:
            return bytes(key) if type(key) is memoryview else key
        return None  # a pickled key: not cacheplug's, never unpickled

    def remove(self, file_path: Any) -> None:
        if _inside(file_path):
            super().remove(file_path)


class _Holder:
    """Keeps a reference to one SQLite connection (connections cannot be weakly referenced)."""

    __slots__ = ("__weakref__", "con")

    def __init__(self, con: Any) -> None:
        self.con = con


# Around every SQLite call of the tier: a fork waits until none is under way (see forkgate).
sqlite_gate = GATE
_holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
_at_fork: list[Any] = []  # every live connection, while a fork is under way
_inherited: list[Any] = []  # a forked child's copies of its parent's connections
after_fork_in_child: list[Callable[[], None]] = []  # run in a forked child, after the above


class _TrackedLocal(threading.local):
    """diskcache's per-thread connection slot, registering each connection it holds."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "con":
            holder = _Holder(value)
            _holders.add(holder)
            super().__setattr__("holder", holder)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name == "con":
            with contextlib.suppress(AttributeError):
                super().__delattr__("holder")
        super().__delattr__(name)


_MODE_RAW = diskcache.core.MODE_RAW
EVICTION_POLICY = diskcache.core.EVICTION_POLICY
_SELECT = (
    "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?)"
)


class Store(diskcache.Cache):  # type: ignore[misc]
    """diskcache.Cache with a bounded wait where diskcache would retry for 60 seconds.

    diskcache retries a locked database for up to 60 s in its constructor and settings
    reads (``_sql_retry``); here that wait is ``wait`` at construction, then ``timeout``.
    """

    def __init__(self, directory: str, *, wait: float, timeout: float, size_limit: int) -> None:
        self._wait = wait
        super().__init__(directory, timeout=timeout, disk=_PrivateDisk, size_limit=size_limit)
        self.close()
        self._local = _TrackedLocal()
        self._wait = timeout
        # The lean read below is diskcache's own transaction-free fast path; settings that
        # need a transaction per read (statistics, an LRU/LFU policy set by another user of
        # the directory) keep diskcache's full get.
        self._lean = not self.statistics and EVICTION_POLICY[self.eviction_policy]["get"] is None

    @classmethod
    def for_reading(cls, directory: str, timeout: float) -> Store:
        """Open an existing cache without diskcache's constructor, which writes its settings.

        For a full disk (or a database SQLite will only read): reads are served, writes
        fail (each a counted fault) until there is room again.
        """
        self: Store = cls.__new__(cls)
        self._directory, self._timeout, self._wait, self._txn_id = directory, timeout, timeout, None
        self._local = _TrackedLocal()
        self._disk = _PrivateDisk(directory)
        for key in (*diskcache.core.DEFAULT_SETTINGS, *diskcache.core.METADATA):
            if not key.startswith("sqlite_"):
                self.reset(key)  # reads the setting from the database into an attribute
        self._disk.min_file_size = self.disk_min_file_size
        self._disk.pickle_protocol = self.disk_pickle_protocol
        ((self._page_size,),) = self._sql("PRAGMA page_size").fetchall()
        self._lean = not self.statistics and EVICTION_POLICY[self.eviction_policy]["get"] is None
        return self

    def read(self, key: str) -> Any:
        """The bytes stored under ``key`` (a str), or ``None``: diskcache's ``get``, leaner."""
        if not self._lean:
            return self.get(key)
        local = self._local
        con = getattr(local, "con", None)
        if con is None or local.pid != os.getpid():
            con = self._con
        rows = con.execute(_SELECT, (key, time.time())).fetchall()
        if not rows:
            return None
        ((mode, filename, value),) = rows
        if mode == _MODE_RAW:
            return value
        try:
            return self._disk.fetch(mode, filename, value, False)
        except OSError:
            return None  # the value file was deleted before it could be read: a miss

    def reset(self, key: str, value: Any = diskcache.core.ENOVAL, update: bool = True) -> Any:
        """diskcache's ``reset``, its PRAGMA retry loop (60 s there) bounded by ``_wait``.

        Reached from the constructor and whenever a thread opens a connection (its
        ``sqlite_`` settings are set again); a setting read or update goes through the
        bounded ``_sql_retry`` in diskcache's own code.
        """
        if value is diskcache.core.ENOVAL or not key.startswith("sqlite_"):
            return super().reset(key, value, update)
        if update:
            self._sql_retry("UPDATE Settings SET value = ? WHERE key = ?", (value, key))
        sql = self._sql
        pragma = key[7:]
        deadline = time.monotonic() + self._wait
        while True:
            try:
                try:
                    ((old_value,),) = sql(f"PRAGMA {pragma}").fetchall()
                    changed = old_value != value
                except ValueError:
                    changed = True
                if changed:
                    sql(f"PRAGMA {pragma} = {value}").fetchall()
                break
            except sqlite3.OperationalError as exc:
                if str(exc) != "database is locked" or time.monotonic() >= deadline:
                    raise
                time.sleep(0.001)
        setattr(self, key, value)
        return value

    @property
    def _sql_retry(self) -> Callable[..., Any]:
        sql = self._sql
        deadline = time.monotonic() + self._wait

        def execute(statement: str, *args: Any, **kwargs: Any) -> Any:
            while True:
                try:
                    return sql(statement, *args, **kwargs)
                except sqlite3.OperationalError as exc:
                    if str(exc) != "database is locked" or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.001)

        return execute

    def forget_connections(self) -> None:
        """In a forked child: drop (never close, never use) the parent's connections."""
        _inherited.append(self._local)
        self._local = _TrackedLocal()
        self._txn_id = None


def _before_fork() -> None:
    # The gate is closed by then (its before-fork hook runs first): no tier call
    # starts before the fork; the list of connections is taken here.
    while True:
        try:
            _at_fork[:] = [h.con for h in list(_holders)]
            return
        except RuntimeError:  # another thread opened a connection meanwhile
            continue


def _after_fork_in_parent() -> None:
    _at_fork.clear()


def _after_fork_in_child() -> None:
    # Threads other than the forking one are gone, and so are their thread-locals: their
    # connections would be finalized (closed) here but for these references, kept forever.
    _inherited.extend(_at_fork)
    _at_fork.clear()
    for callback in list(after_fork_in_child):
        callback()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
