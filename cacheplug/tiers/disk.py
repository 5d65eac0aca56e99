"""The host tier: diskcache (SQLite + files) on local disk, shared by every process.

Guarantees:

- **Nothing stored runs code unverified.** Entries are bytes made by the tier's codec
  (``cacheplug.codec``): diskcache never unpickles on its own (rows in its pickle or text
  modes are refused, and value file names outside the tier's folder are ignored). Without
  a secret the directory is the defence: it must be owned by this user, not group- or
  world-writable and not a symlink, or the tier refuses it. With a secret every entry is
  signed and verified before it is unpickled, and any directory is accepted.
- **Owner-only files whatever the umask**: folders 0700, ``cache.db`` 0600 (created
  before SQLite opens it, so its ``-wal``/``-shm`` files copy that mode), value files 0600.
- **Bounded waits**: SQLite waits at most ``timeout`` seconds for a lock and nothing
  retries; past that the operation raises and the coordinator serves the call from
  another tier or by computing.
- **Faults never fail construction**: a read-only, full, corrupt or uncreatable directory
  leaves the tier *down*; its operations raise :class:`TierUnavailable` and it tries to
  open again at most every 10 seconds. A corrupt ``cache.db`` is quarantined (moved
  aside under a lock file, so that two processes do not race) and rebuilt.
- **Deleted or replaced directories are noticed** by :meth:`DiskTier.check` (and after a
  failing operation) and reopened.
- **Fork-safe**: a forked child never uses its parent's SQLite connections (nor closes
  them); it opens its own.

Unreadable rows are misses: corrupt and tampered ones are counted, logged (at most once
per 10 seconds per kind) and deleted; foreign ones (another release's format) are counted
and left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import diskcache

from ..codec import PickleCodec, UnreadableEntryError, parse_secrets
from ..envelope import MISS, Entry
from ..errors import ConfigurationError, TierUnavailable
from ..private_files import directory_problem, private_makedirs
from ..settings import default_directory
from ..versions import HostVersions, host_versions
from .diskstore import Store, after_fork_in_child, sqlite_gate

__all__ = ["DiskTier", "directory_problem"]

log = logging.getLogger("cacheplug")

RETRY_EVERY = 10.0  # seconds between attempts to open a tier that is down
LOG_EVERY = 10.0  # seconds between two log lines of one kind for one tier
OPEN_WAIT = 1.0  # lock wait when opening off the call path (construction, check())
_CORRUPT_MARKS = ("not a database", "malformed")
_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc) for m in _CORRUPT_MARKS)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Refused(Exception):
    """The directory failed the security check (raised as ConfigurationError at build)."""


_live: weakref.WeakSet[DiskTier] = weakref.WeakSet()


class DiskTier:
    """A diskcache-backed tier in ``directory`` (default: the project's cache folder).

    ``secret``: one or several (a comma-separated str or a sequence) secrets; the first
    signs entries, every one verifies them. ``timeout``: the longest SQLite waits for a
    lock on the call path. ``monotonic``: the clock of the retry and log intervals.
    """

    name = "disk"
    shared = True

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        size_limit: int = 2**30,
        *,
        timeout: float = 0.05,
        secret: str | Sequence[str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(size_limit, int) or isinstance(size_limit, bool) or size_limit < 1:
            raise ConfigurationError(
                f"DiskTier size_limit must be a positive int of bytes, got {size_limit!r}"
            )
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout < 3600:
            raise ConfigurationError(f"DiskTier timeout must be positive seconds, got {timeout!r}")
        self.codec = PickleCodec(parse_secrets(secret, "DiskTier secret"))
        if directory is None:
            directory = default_directory()
        self.directory = os.path.abspath(os.fspath(directory))
        self.size_limit = size_limit
        self.timeout = float(timeout)
        self.corrupt = 0
        self.tampered = 0
        self.foreign = 0
        self.quarantined = 0
        self.down_reason: str | None = None
        self._entries = os.path.join(self.directory, "entries")
        self._db = os.path.join(self._entries, "cache.db")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._logged: dict[str, float] = {}
        self._dc: Any = None
        self._ids: tuple[Any, Any] | None = None
        self._retry_at = -float("inf")
        try:
            self._try_open(OPEN_WAIT)
        except _Refused as exc:
            raise ConfigurationError(
                f"refusing the disk tier directory: {exc}; anyone who can write there could make "
                f"this process run code. Use a directory you own with mode 0700 (chmod 700 it, or "
                f"remove it and let cacheplug create it), set CACHEPLUG_DIR or "
                f"DiskTier(directory=...) to another folder, or set a secret (CACHEPLUG_SECRET, "
                f"DiskTier(secret=...)) so that entries are signed and verified"
            ) from None
        _live.add(self)

    # -- opening, faults, reopening ----------------------------------------------------------

    def _security_problem(self) -> str | None:
        for path in (self.directory, self._entries, self._db):
            problem = directory_problem(path)
            if problem is not None:
                return problem
        return None

    def _open(self, wait: float) -> None:
        private_makedirs(self.directory)
        if self._security_problem() is not None:
            if not self.codec.signed:
                raise _Refused(self._security_problem())
        else:
            # Ours and not writable by others: make it owner-only (an older release may
            # have left it readable). A directory accepted for its secret is left as it is.
            # Only ever remove bits: an operator's read-only (0500) directory stays so.
            mode = stat.S_IMODE(os.stat(self.directory).st_mode)
            if mode & ~0o700:
                os.chmod(self.directory, mode & 0o700)
        private_makedirs(self._entries)
        fd = os.open(self._db, os.O_RDWR | os.O_CREAT | _FLAGS, 0o600)
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                if os.lstat(self._db + suffix).st_uid == os.geteuid():
                    os.chmod(self._db + suffix, 0o600, follow_symlinks=False)
        ids = (_identity(self.directory), _identity(self._db))
        self._ids = ids  # what a corrupt-database quarantine compares against
        try:
            with sqlite_gate:
                store = Store(self._entries, wait=wait, timeout=self.timeout, size_limit=self.size_limit)
        except sqlite3.OperationalError as exc:
            if not any(mark in str(exc) for mark in ("full", "readonly", "disk I/O error")):
                raise
            with sqlite_gate:
                store = Store.for_reading(self._entries, self.timeout)
            self._log(
                "read-only",
                "cacheplug: the disk tier at %s opened for reading only (%s); writes fail until "
                "that is fixed",
                self.directory,
                exc,
            )
        self._dc = store
        self.down_reason = None

    def _try_open(self, wait: float) -> None:
        """Open, quarantining a corrupt database; on any other fault the tier is down."""
        try:
            try:
                self._open(wait)
            except Exception as exc:
                if not _is_corrupt(exc):
                    raise
                self._quarantine()
                self._open(wait)
        except _Refused:
            raise
        except Exception as exc:
            self._dc = None
            self._retry_at = self._monotonic() + RETRY_EVERY
            self.down_reason = f"{type(exc).__name__}: {exc}"
            self._log(
                "down",
                "cacheplug: the disk tier at %s is down (%s); calls are served without it, "
                "retrying every %.0f s",
                self.directory,
                self.down_reason,
                RETRY_EVERY,
            )

    def _reopen(self, wait: float) -> None:
        """Open again; a directory that now fails the security check leaves the tier down."""
        try:
            self._try_open(wait)
        except _Refused as exc:
            self._dc = None
            self._retry_at = self._monotonic() + RETRY_EVERY
            self.down_reason = f"refused: {exc}"
            self._log("down", "cacheplug: the disk tier refuses its directory now: %s", exc)

    def _ready(self) -> Any:
        """The open diskcache, reopening a down tier at most every RETRY_EVERY seconds."""
        with self._lock:
            if self._dc is None and self._monotonic() >= self._retry_at:
                self._reopen(self.timeout)
            if self._dc is None:
                raise TierUnavailable(
                    f"the disk tier at {self.directory!r} is unavailable ({self.down_reason}); "
                    f"cacheplug retries every {RETRY_EVERY:.0f} s. Check the folder's permissions "
                    f"and free space, or set CACHEPLUG_DIR / DiskTier(directory=...) elsewhere"
                )
            return self._dc

    def _quarantine(self) -> None:
        """Move a corrupt ``entries`` folder aside, once, under an exclusive lock file."""
        fd = os.open(os.path.join(self.directory, "entries.lock"), os.O_RDWR | os.O_CREAT | _FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Another process may have quarantined it already: only move what failed here.
            if self._ids is None or _identity(self._db) == self._ids[1]:
                aside = f"{self._entries}.corrupt-{int(time.time())}-{os.getpid()}"
                os.rename(self._entries, aside)
                self.quarantined += 1
                log.warning(
                    "cacheplug: the disk tier database %s is corrupt; moved it aside to %s and "
                    "started an empty one",
                    self._db,
                    aside,
                )
        finally:
            os.close(fd)  # releases the lock

    def _failed(self, dc: Any, exc: BaseException) -> None:
        """After an operation failed: quarantine a corrupt database, reopen vanished files."""
        if isinstance(exc, diskcache.Timeout) or "locked" in str(exc) or "full" in str(exc):
            return
        if _is_corrupt(exc):
            with self._lock:
                if self._dc is dc:
                    self._dc = None
                    with contextlib.suppress(Exception):
                        self._quarantine()
                    self._reopen(self.timeout)
            return
        self.check()

    def check(self) -> bool:
        """Reopen if the directory or its database was deleted or replaced; True if reopened.

        Cheap (two ``stat`` calls): meant for a background watcher, about once a second.
        """
        dc = self._dc
        if dc is None or (_identity(self.directory), _identity(self._db)) == self._ids:
            return False
        with self._lock:
            if self._dc is not dc:
                return False
            self._dc = None
            with contextlib.suppress(Exception), sqlite_gate:
                dc.close()
            log.warning(
                "cacheplug: the disk tier at %s was deleted or replaced; reopening it", self.directory
            )
            self._reopen(OPEN_WAIT)
            return self._dc is not None

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._dc is not None:
            self._dc.forget_connections()

    def _log(self, kind: str, message: str, *args: Any) -> None:
        now = self._monotonic()
        if now - self._logged.get(kind, -float("inf")) >= LOG_EVERY:
            self._logged[kind] = now
            log.warning(message, *args)

    # -- the tier protocol ------------------------------------------------------------------

    def versions(self) -> HostVersions:
        """The host-wide tag versions kept beside this tier."""
        return host_versions(os.path.join(self.directory, "versions"))

    def get(self, key: str) -> Entry | Any:
        dc = self._dc
        if dc is None:
            dc = self._ready()
        try:
            with sqlite_gate:
                data = dc.read(key)
        except Exception as exc:
            self._failed(dc, exc)
            raise
        if data is None:
            return MISS
        try:
            return self.codec.loads(data, key)
        except UnreadableEntryError as exc:
            self._unreadable(dc, key, exc)
            return MISS

    def _unreadable(self, dc: Any, key: str, exc: UnreadableEntryError) -> None:
        kind = exc.kind
        if kind == "foreign":
            self.foreign += 1
            self._log(
                kind, "cacheplug: skipping disk entry %r (left for the release that wrote it): %s", key, exc
            )
            return
        if kind == "tampered":
            self.tampered += 1
        else:
            self.corrupt += 1
        self._log(kind, "cacheplug: dropping unreadable disk entry %r (%s): %s", key, kind, exc)
        with contextlib.suppress(Exception), sqlite_gate:
            dc.delete(key)

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        data = self.codec.dumps(entry, key)
        if expire is not None and expire <= 0:
            return
        dc = self._dc
        if dc is None:
            dc = self._ready()
        try:
            with sqlite_gate:
                dc.set(key, data, expire=expire)
        except Exception as exc:
            self._failed(dc, exc)
            raise

    def delete(self, key: str) -> bool:
        dc = self._dc
        if dc is None:
            dc = self._ready()
        try:
            with sqlite_gate:
                return bool(dc.delete(key))
        except Exception as exc:
            self._failed(dc, exc)
            raise

    def clear(self) -> None:
        dc = self._ready()
        with sqlite_gate:
            dc.clear()

    def keys(self) -> list[str]:
        """Every stored key. O(entries): for sweeps and tools, never for calls."""
        dc = self._ready()
        with sqlite_gate:
            return [k for k in dc.iterkeys() if isinstance(k, str)]

    def expire(self) -> int:
        """Reclaim rows whose diskcache expiry has passed."""
        dc = self._ready()
        with sqlite_gate:
            return int(dc.expire())

    def volume(self) -> int:
        """Bytes used on disk by the entries."""
        dc = self._ready()
        with sqlite_gate:
            return int(dc.volume())

    def __len__(self) -> int:
        dc = self._ready()
        with sqlite_gate:
            return len(dc)

    def close(self) -> None:
        dc = self._dc
        if dc is not None:
            with sqlite_gate:
                dc.close()

    def __repr__(self) -> str:
        state = "" if self._dc is not None else f", down: {self.down_reason}"
        return (
            f"DiskTier({self.directory!r}, size_limit={self.size_limit}, signed={self.codec.signed}{state})"
        )


def _after_fork_in_child() -> None:
    for tier in list(_live):
        tier._after_fork()


after_fork_in_child.append(_after_fork_in_child)
