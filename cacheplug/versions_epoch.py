"""The crash-safe epoch file of a host version store: opening, locking, mapping.

A host store's state is two files in its directory: ``epoch``, an 8-byte counter in a
memory-mapped page (``epoch[0]``, read by every hit path), and the journal
(:mod:`cacheplug.journal`) that records each number up to it. This module holds the store's
state and everything that touches those files directly:

* **Opening** (:meth:`EpochFile._open`): folders and files are created owner-only (0700 /
  0600) whatever the umask; a store that cannot be written opens read-only
  (``writable`` False); one that cannot be read raises :class:`VersionsUnavailable`. An
  epoch found behind the journal (a kill between commit and publish) is raised to it, and
  after both files were replaced the numbers are raised above every epoch this process
  knew, so no entry is judged against restarted numbers.
* **Locking** (:meth:`EpochFile._flocked`): one exclusive ``flock`` on the epoch file
  serializes every writer of the host; it is reentrant within a store and waited for at
  most the journal timeout (then :class:`TimeoutError`).
* **Repair** (:meth:`EpochFile._repair_behind`): an epoch left behind its journal by a
  killed process is published when nobody is bumping.
* Replaced mappings are kept alive (fast paths may still read them); file descriptors are
  closed only when the store is collected (:func:`_release`).

The layers above (:mod:`cacheplug.versions_watch`, :mod:`cacheplug.versions_recovery`,
:class:`cacheplug.versions.HostVersions`) add behaviour to this class and open and lock
the files through it (only a forked child, in :mod:`cacheplug.versions_watch`, reopens its
own description of the same epoch file). Methods they provide that this one calls are
declared below for the type checker only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import CacheplugError
from .journal import Journal, JournalCorrupt, JournalTooNew, create_private, is_corruption
from .private_files import private_makedirs

__all__ = ["EpochFile", "Listener", "VersionsUnavailable"]

log = logging.getLogger("cacheplug")

Listener = Callable[[bool], None]


class VersionsUnavailable(CacheplugError):
    """The host's invalidations cannot be read, so no cached value can be judged fresh.

    Callers serve nothing cached (they compute) and retry later.
    """


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _fd_identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def _problem(path: str, st: os.stat_result | None = None) -> str | None:
    """Why ``path`` (its ``lstat``, or ``st``) cannot be trusted; None when fine or absent.

    Untrusted: a symbolic link, owned by another user than this process's (or root, whom
    every user trusts anyway), or group- or world-writable. Whoever can write the store can
    suppress invalidations, and every process of the host would then serve stale values.
    """
    if st is None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None  # created owner-only below
        except OSError as exc:
            return f"{path!r} cannot be examined ({exc})"
    euid = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        return f"{path!r} is a symbolic link"
    if st.st_uid not in (euid, 0):
        return f"{path!r} is owned by uid {st.st_uid}, not by this process's user (uid {euid})"
    if st.st_mode & 0o022:
        return f"{path!r} is group- or world-writable (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _untrusted(problem: str) -> str:
    return (
        f"{problem}, so another user could rewrite the invalidations (and make stale values "
        f"look fresh); it is not used: make it a real file or folder owned by uid {os.geteuid()} "
        f"and writable only by it (chmod go-w), or delete the versions folder"
    )


def _release(fds: list[int], stop: threading.Event) -> None:
    stop.set()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class EpochFile:
    """The state of a host store and its epoch file; see the module docstring.

    Not used alone: :class:`cacheplug.versions.HostVersions` initializes the state.
    """

    directory: str
    _epoch_path: str
    _journal_path: str
    _timeout: float
    _lock: threading.RLock
    _flocks: dict[int, int]  # fd -> depth of this process's flock on it
    mirror: dict[str, int]
    keyed: bool
    recent: tuple[tuple[int, frozenset[str]], ...]
    floor: int
    _seen: int
    generation: int
    _fd: int
    _fds: list[int]  # every fd opened, closed with the store (see _release())
    _maps: list[Any]  # replaced mmaps, kept alive for fast paths still reading them
    _ids: tuple[tuple[int, int], tuple[int, int]] | None
    _broken: str | None
    _pending: bool  # a reopen that listeners have not heard of yet
    _reopening: bool  # a reopen is under way (in this thread: under ``_lock``); never nested
    _listeners: list[Callable[[], Listener | None]]
    _logged: dict[str, float]
    _stop: threading.Event
    _watcher: threading.Thread | None
    epoch: Any  # an int64 view of the mapped epoch file (read by the hit path)
    writable: bool
    incarnation: str
    _mmap: Any
    _journal: Journal
    _journal_floor: int

    if TYPE_CHECKING:  # provided by the layers above (one store, split by job)

        def _quarantine(self, exc: BaseException) -> None: ...  # versions_recovery

        def _check_locked(self, advance: int = 0, trust: bool = False) -> bool: ...  # versions_recovery

        def _apply(self, seq: int, tags: Iterable[str]) -> None: ...  # versions

        @staticmethod
        def _mirror_into(store: Any, seq: int, tags: Iterable[str]) -> None: ...  # versions

        @staticmethod
        def _watch_interval() -> float: ...  # versions

    def _unavailable(self, what: str) -> VersionsUnavailable:
        return VersionsUnavailable(
            f"cannot read the invalidations in {self.directory}: {what}; cached values are not "
            f"served until this is fixed (fix the permissions, free disk space or delete the folder)"
        )

    def _log_once(self, what: str, exc: BaseException) -> None:
        """Log a background fault at most once per 10 s per (what, exception type)."""
        key = f"{what}:{type(exc).__name__}"
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) >= 10.0:
            self._logged[key] = now
            log.warning("cacheplug: version store %s: %s failed: %r", self.directory, what, exc)

    # -- locking ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _flocked(self, fd: int) -> Iterator[None]:
        """The epoch file's exclusive lock, waited for at most the journal timeout.

        Reentrant within this store (the caller holds ``_lock``), so recovery steps can nest.
        """
        depth = self._flocks.get(fd, 0)
        if depth == 0:
            deadline = time.monotonic() + self._timeout
            delay = 0.00005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"another process has held the epoch lock of {self.directory} for over "
                        f"{self._timeout:g} s"
                    )
                time.sleep(delay)  # flock has no timed wait: poll with a growing pause
                delay = min(delay * 2, 0.002)
        self._flocks[fd] = depth + 1
        try:
            yield
        finally:
            if depth == 0:
                del self._flocks[fd]
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                self._flocks[fd] = depth

    # -- opening ------------------------------------------------------------------------------

    def _open(self, previous: tuple[str, int] | None, advance: int = 0) -> None:
        """Open (or create) the epoch file and the journal; repair what a crash left behind.

        ``previous``: the (incarnation, epoch) this process knew before a reopen. If the
        epoch file and the journal were both replaced since, numbers may have restarted: the
        epoch and the journal's floor are raised above the old epoch, so no entry from before
        is judged against restarted numbers. (With the same epoch file, numbers go on and a
        journal created under it starts one above the epoch: every entry from before it,
        whose dependency edges went with the lost journal, is stale.) ``advance``: a
        journal created now starts that far above the epoch (1 after a quarantine, so that
        every fast path rechecks).
        """
        parent = os.path.dirname(os.path.abspath(self.directory))
        problem = _problem(parent) if previous is not None else None
        if problem is not None:  # never reopened (nor recreated) in a folder another user controls
            raise self._unavailable(_untrusted(problem))
        try:
            private_makedirs(os.path.dirname(self._journal_path))
        except OSError as exc:
            raise self._unavailable(f"the folder cannot be created ({exc})") from exc
        self._check_trusted()
        writable = True
        try:
            same = self._ids is not None and _identity(self._epoch_path) == self._ids[0]
        except OSError:
            same = False
        existed = same  # the epoch file was there before this open (not created now)
        if same:
            fd, mm, view = self._fd, self._mmap, self.epoch
            writable = self.writable
        else:
            try:
                fd = os.open(self._epoch_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._unavailable(_untrusted(f"{self._epoch_path!r} is a symbolic link")) from exc
                if exc.errno not in _READ_ONLY:
                    raise self._unavailable(f"the epoch file cannot be opened ({exc})") from exc
                try:
                    fd = os.open(self._epoch_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                except OSError as exc2:
                    raise self._unavailable(f"the epoch file cannot be read ({exc2})") from exc2
                writable = False
            self._fds.append(fd)
            st = os.fstat(fd)
            problem = _problem(self._epoch_path, st)
            if problem is not None:  # replaced since the check above
                raise self._unavailable(_untrusted(problem))
            if writable and st.st_mode & 0o077 and st.st_uid == os.geteuid():
                os.fchmod(fd, 0o600)
            mm = view = None
        # SQLite creates -wal/-shm beside the journal: the folder must be writable too.
        writable = writable and os.access(os.path.dirname(self._journal_path), os.W_OK | os.X_OK)
        if writable and os.path.lexists(self._journal_path):
            writable = os.access(self._journal_path, os.W_OK)
        journal = Journal(self._journal_path, writable=writable, timeout=self._timeout)
        try:
            with self._flocked(fd) if writable else contextlib.nullcontext():
                # Created and filled under the epoch lock: a journal found empty under it
                # was truncated (see _open_journal), never one being created.
                created = writable and create_private(self._journal_path)
                if view is None:
                    size = os.fstat(fd).st_size
                    existed = size >= 8
                    if size < mmap.PAGESIZE and writable:
                        os.ftruncate(fd, mmap.PAGESIZE)  # a short (or new) epoch file is extended
                    elif size < 8:
                        raise self._unavailable("the epoch file is truncated and read-only")
                    length = mmap.PAGESIZE if writable or size >= mmap.PAGESIZE else 8
                    mm = mmap.mmap(fd, length, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
                    view = memoryview(mm).cast("q")
                # A journal created under an epoch that existed replaces a lost one, and its
                # dependency edges with it: it starts above the epoch, so that every entry
                # judged before (whose edges may be lost) is stale.
                meta = self._open_journal(journal, view, max(advance, int(created and existed)), created)
                if writable:
                    high = journal.high()
                    if view[0] < high or view[0] < 0:
                        view[0] = high  # a crash between commit and publish, or a lost epoch file
                    restarted = previous is not None and not same and meta.incarnation != previous[0]
                    if previous is not None and restarted and meta.floor <= previous[1]:
                        journal.begin()
                        try:
                            journal.raise_floor(previous[1] + 1)
                            journal.commit()
                        finally:
                            journal.rollback()
                        view[0] = max(view[0], previous[1] + 1)
                        meta = journal.meta()
                journal_id = _identity(self._journal_path)
                self._check_trusted()  # nothing was swapped while SQLite opened it
        except VersionsUnavailable:
            journal.close()
            raise
        except Exception as exc:
            journal.close()
            raise self._unavailable(f"{exc!r}") from exc
        if getattr(self, "epoch", None) is not None and view is not self.epoch:
            self._maps.append((self._mmap, self.epoch))
            if self.writable:
                # Fast paths still holding the old counter see it move and recheck (through
                # sync(), which answers from the new files) until they are rebound.
                with contextlib.suppress(Exception):
                    self.epoch[0] += 1
        old = getattr(self, "_journal", None)
        self._fd, self._mmap, self.epoch, self._journal = fd, mm, view, journal
        self.writable = writable
        self.incarnation = meta.incarnation
        self._journal_floor = meta.floor
        self._ids = (_fd_identity(fd), journal_id)
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()

    def _check_trusted(self) -> None:
        """Raise :class:`VersionsUnavailable` if a folder or file of the store is untrusted."""
        folder = os.path.dirname(self._journal_path)
        for path in (self.directory, folder, self._epoch_path, self._journal_path):
            problem = _problem(path)
            if problem is not None:
                raise self._unavailable(_untrusted(problem))

    def _open_journal(self, journal: Journal, view: Any, advance: int, created: bool = False) -> Any:
        """The journal's meta; a corrupt journal is quarantined and rebuilt once.

        An empty journal that this open did not just create (``created``) is corrupt: it was
        truncated (journals are created and filled under the epoch lock), and SQLite would
        report it locked to every process but the one still holding it open.
        """
        for attempt in range(2):
            try:
                empty = journal.writable and not (created or attempt or advance)
                if empty and os.stat(self._journal_path).st_size == 0:
                    raise JournalCorrupt("the journal is empty (truncated to 0 bytes)")
                meta = journal.open(floor=max(view[0], 0) + max(attempt, advance))
                journal.high()
                journal.snapshot()  # parsed now, so that a damaged one is found here
                if meta.migrated:
                    log.warning(
                        "cacheplug: the invalidation journal in %s was written by an older release "
                        "(pickled records); it was discarded unread and every entry stored before "
                        "is treated as stale",
                        self.directory,
                    )
                return meta
            except JournalTooNew as exc:
                raise self._unavailable(str(exc)) from exc
            except Exception as exc:
                if attempt or not journal.writable or not is_corruption(exc):
                    raise
                journal.close()
                self._quarantine(exc)
        raise AssertionError("unreachable")

    # -- repair -------------------------------------------------------------------------------

    def _repair_behind(self) -> None:
        """Publish records a killed bumper committed but did not publish (if nobody bumps now)."""
        fd = self._fd
        if self._flocks.get(fd):
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a bump is under way: it publishes above the journal anyway
        try:
            high = self._journal.high()
            if self.epoch[0] < high:
                log.warning(
                    "cacheplug: epoch of %s was behind its journal (a killed process); repaired",
                    self.directory,
                )
                self.epoch[0] = high
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
