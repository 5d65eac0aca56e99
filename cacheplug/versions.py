"""Tag versions: what makes invalidation O(tags) and reads never stale.

Every invalidation takes the next number of a sequence (the *epoch*) and records, for each
tag it invalidates, that number as the tag's version. An entry remembers ``seq``, the epoch
as of which it is known fresh; it is fresh while every tag it carries has a version not
above ``seq`` and ``seq`` is not below the store's ``floor``. Nothing is scanned.

The hit path reads one integer, ``epoch[0]``: when it still equals the entry's ``seq``
nothing at all was invalidated since the entry was checked, so no tag is looked at.

Two stores share this contract:

* :class:`LocalVersions`: one process (memory-only caches);
* :class:`HostVersions`: every process of a host. The epoch is an 8-byte counter in a
  memory-mapped file; each invalidation is committed to a journal
  (:mod:`cacheplug.journal`, plain JSON, never pickles) *before* the epoch is published,
  under an exclusive file lock, so a record exists for every number up to the epoch.

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
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import inspect
import logging
import mmap
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .errors import CacheplugError, InvalidationError
from .journal import Journal, JournalTooNew, create_private, is_corruption

__all__ = ["HostVersions", "LocalVersions", "Versions", "VersionsUnavailable", "host_versions"]

log = logging.getLogger("cacheplug")

# Every this many invalidations the journal is folded into one snapshot record and the
# records older than one window are deleted, so the journal stays bounded.
_SNAPSHOT_EVERY = 1024
# How many of the latest invalidations each process keeps as tag sets for quick rechecks.
_RECENT = 16
# How often the watcher looks for a deleted or replaced directory (seconds).
_WATCH_INTERVAL = 0.5
# Test-only: called with the name of each step of a bump ("locked", "inserted", "committed",
# "published", "snapshot") so that a test can kill the process exactly there.
_STEP: Callable[[str], None] | None = None

Listener = Callable[[bool], None]


def _step(name: str) -> None:
    hook = _STEP
    if hook is not None:
        hook(name)


class VersionsUnavailable(CacheplugError):
    """The host's invalidations cannot be read, so no cached value can be judged fresh.

    Callers serve nothing cached (they compute) and retry later.
    """


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
        """Record an invalidation of ``tags``; return its sequence number."""
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


class LocalVersions:
    """Tag versions of one process."""

    incarnation = "local"
    writable = True
    generation = 0
    floor = 0

    def __init__(self) -> None:
        self.epoch = array.array("q", [0])
        self.mirror: dict[str, int] = {}
        self.keyed = False
        self.recent: tuple[tuple[int, frozenset[str]], ...] = ()
        self._lock = threading.Lock()

    def sync(self) -> int:
        return self.epoch[0]

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

    def check(self) -> bool:
        return False

    def add_listener(self, callback: Listener) -> None:
        """Nothing to report: a process's own memory is never deleted under it."""

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalVersions(epoch={self.epoch[0]})"


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _fd_identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _private_dirs(*paths: str) -> None:
    """Create each missing folder of ``paths`` (and missing parents) owner-only (0700)."""
    for path in paths:
        missing: list[str] = []
        while not os.path.isdir(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask; this is not


_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


class HostVersions:
    """Tag versions shared by every process of a host through ``directory``.

    Raises :class:`VersionsUnavailable` when the invalidations cannot be read.
    """

    epoch: Any  # an int64 view of the mapped epoch file (read by the hit path)
    writable: bool
    incarnation: str
    _mmap: Any
    _journal: Journal
    _journal_floor: int

    def __init__(self, directory: str, *, timeout: float = 10.0) -> None:
        self.directory = directory
        self._epoch_path = os.path.join(directory, "epoch")
        self._journal_path = os.path.join(directory, "journal", "journal.db")
        self._timeout = timeout
        self._lock = threading.RLock()
        self._flocks: dict[int, int] = {}  # fd -> depth of this process's flock on it
        self.mirror: dict[str, int] = {}
        self.keyed = False
        self.recent: tuple[tuple[int, frozenset[str]], ...] = ()
        self.floor = 0
        self._seen = 0
        self.generation = 0
        self._fd = -1
        self._fds: list[int] = []  # every fd opened, closed with the store (see close())
        self._maps: list[Any] = []  # replaced mmaps, kept alive for fast paths still reading them
        self._ids: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._broken: str | None = None
        self._pending = False  # a reopen that listeners have not heard of yet
        self._listeners: list[Callable[[], Listener | None]] = []
        self._logged: dict[str, float] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
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

    # -- opening ------------------------------------------------------------------------------

    def _unavailable(self, what: str) -> VersionsUnavailable:
        return VersionsUnavailable(
            f"cannot read the invalidations in {self.directory}: {what}; cached values are not "
            f"served until this is fixed (fix the permissions, free disk space or delete the folder)"
        )

    def _open(self, previous: tuple[str, int] | None, advance: int = 0) -> None:
        """Open (or create) the epoch file and the journal; repair what a crash left behind.

        ``previous``: the (incarnation, epoch) this process knew before a reopen. If the
        epoch file and the journal were both replaced since, numbers may have restarted: the
        epoch and the journal's floor are raised above the old epoch, so no entry from before
        is judged against restarted numbers. (With the same epoch file, numbers go on and the
        new journal's floor already covers every entry from before it.) ``advance``: a
        journal created now starts that far above the epoch (1 after a quarantine, so that
        every fast path rechecks).
        """
        try:
            _private_dirs(os.path.dirname(self._journal_path))
        except OSError as exc:
            raise self._unavailable(f"the folder cannot be created ({exc})") from exc
        writable = True
        try:
            same = self._ids is not None and _identity(self._epoch_path) == self._ids[0]
        except OSError:
            same = False
        if same:
            fd, mm, view = self._fd, self._mmap, self.epoch
            writable = self.writable
        else:
            try:
                fd = os.open(self._epoch_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                if exc.errno not in _READ_ONLY:
                    raise self._unavailable(f"the epoch file cannot be opened ({exc})") from exc
                try:
                    fd = os.open(self._epoch_path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc2:
                    raise self._unavailable(f"the epoch file cannot be read ({exc2})") from exc2
                writable = False
            self._fds.append(fd)
            st = os.fstat(fd)
            if writable and st.st_mode & 0o077 and st.st_uid == os.geteuid():
                os.fchmod(fd, 0o600)
            mm = view = None
        if writable:
            try:
                create_private(self._journal_path)
            except OSError as exc:
                if exc.errno not in _READ_ONLY:
                    raise self._unavailable(f"the journal cannot be created ({exc})") from exc
                writable = False
            writable = writable and os.access(self._journal_path, os.W_OK)
            # SQLite creates -wal/-shm beside the journal: the folder must be writable too.
            writable = writable and os.access(os.path.dirname(self._journal_path), os.W_OK | os.X_OK)
        journal = Journal(self._journal_path, writable=writable, timeout=self._timeout)
        try:
            with self._flocked(fd) if writable else contextlib.nullcontext():
                if view is None:
                    size = os.fstat(fd).st_size
                    if size < mmap.PAGESIZE and writable:
                        os.ftruncate(fd, mmap.PAGESIZE)  # a short (or new) epoch file is extended
                    elif size < 8:
                        raise self._unavailable("the epoch file is truncated and read-only")
                    length = mmap.PAGESIZE if writable or size >= mmap.PAGESIZE else 8
                    mm = mmap.mmap(fd, length, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
                    view = memoryview(mm).cast("q")
                meta = self._open_journal(journal, view, advance)
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

    def _open_journal(self, journal: Journal, view: Any, advance: int) -> Any:
        """The journal's meta; a corrupt journal is quarantined and rebuilt once."""
        for attempt in range(2):
            try:
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

    def _quarantine(self, exc: BaseException) -> None:
        """Move a corrupt journal aside (the caller holds the epoch lock)."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        folder = os.path.dirname(self._journal_path)
        aside = os.path.join(folder, f"journal.corrupt-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._journal_path + suffix, aside + suffix)
        log.warning(
            "cacheplug: the invalidation journal in %s is corrupt (%r); moved aside to %s and "
            "rebuilt; every entry stored before is treated as stale",
            self.directory,
            exc,
            aside,
        )
        create_private(self._journal_path)

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

    # -- reading -----------------------------------------------------------------------------

    def _reload(self) -> None:
        """Rebuild the mirror from the snapshot and the journal after it."""
        journal = self._journal
        snap = journal.snapshot()
        self.floor = self._journal_floor
        self.mirror = {}
        self._seen = self._journal_floor  # nothing below the journal's floor is recorded
        if snap is not None and snap[0] >= self._seen:
            self._seen, floor, versions = snap
            self.mirror = dict(versions)
            self.floor = max(self.floor, floor)
        self.keyed = any(t.startswith("\x00k:") for t in self.mirror)
        self.recent = ()
        self._replay(self.epoch[0])

    def _reload_or_recover(self) -> None:
        try:
            self._reload()
        except Exception as exc:
            if not is_corruption(exc):
                raise
            self._recover(exc)  # a record that is not the expected JSON: never interpreted

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
        journal = self._journal
        records = journal.records(self._seen, upto)
        if not records or records[0][0] != self._seen + 1 or records[-1][0] != upto:
            snap = journal.snapshot()
            if snap is not None and snap[0] > self._seen:
                # The records this process missed were folded into the snapshot.
                self._seen, floor, versions = snap
                self.mirror = dict(versions)
                self.floor = max(self.floor, floor)
                self.keyed = self.keyed or any(t.startswith("\x00k:") for t in self.mirror)
                self.recent = ()
                if self._seen >= upto:
                    return  # the snapshot is newer than the epoch this catch-up started from
                records = journal.records(self._seen, upto)
            floor = journal.meta().floor
            if len(records) != upto - self._seen and floor > self._seen:
                # A process that reopened after a rebuild raised the journal's floor: nothing
                # below it is recorded, and everything stored below it is stale.
                self.mirror, self.recent = {}, ()
                self._seen = self.floor = max(self.floor, floor)
                records = journal.records(self._seen, upto)
            if len(records) != upto - self._seen:
                # Records below the epoch are missing: this process may be reading a journal
                # that was moved aside or deleted. Reopen if so; otherwise the journal was
                # lost, and every entry stored before now is stale.
                if self._check_locked():
                    self._pending = True
                    return
                log.warning(
                    "cacheplug: invalidation journal in %s is incomplete; treating all entries as stale",
                    self.directory,
                )
                self.mirror = {}
                self.recent = ()
                self.floor = upto
                self._seen = upto
                return
        for seq, tags in records:
            self._apply(seq, tags)

    def sync(self) -> int:
        current: int = self.epoch[0]
        if current == self._seen and self._broken is None:
            return current
        with self._lock:
            if self._watcher is None:
                self._watch()
            if self._broken is not None:  # the watcher (and every bump) retries the reopen
                raise self._unavailable(self._broken)
            current = self.epoch[0]
            if current < self._seen:
                self._check_locked()  # an epoch going back: the file was replaced
            elif current > self._seen:
                try:
                    self._replay(current)
                except Exception as exc:
                    if not is_corruption(exc):
                        raise
                    self._recover(exc)
            # What the mirror reflects, never a newer epoch read after the replay: the caller
            # marks entries fresh as of the number returned.
            current = min(self._seen, self.epoch[0])
            notify, self._pending = self._pending, False
        if notify:
            self._notify(True)
        return current

    # -- recording ---------------------------------------------------------------------------

    def bump(self, tags: Iterable[str]) -> int:
        record = tuple(tags)
        for tag in record:
            if type(tag) is not str:  # the journal holds JSON lists of str, nothing else
                raise TypeError(f"tags are str, got {tag!r}")
        reopened = False
        try:
            with self._lock:
                if self._watcher is None:
                    self._watch()
                reopened = self._check_locked()
                if self._broken is not None:
                    raise InvalidationError(
                        f"cannot record the invalidation of {len(record)} tag(s): {self._broken}; "
                        f"other processes may still serve the old values — fix it, then invalidate again"
                    )
                if not self.writable:
                    raise InvalidationError(
                        f"cannot record the invalidation of {len(record)} tag(s): {self.directory} "
                        f"is read-only for this process; other processes may still serve the old "
                        f"values — make the folder writable by this user, then invalidate again"
                    )
                try:
                    seq = self._record(record)
                except Exception as exc:
                    if not is_corruption(exc):
                        raise
                    self._recover(exc)
                    reopened = True
                    seq = self._record(record)
        except InvalidationError:
            raise
        except Exception as exc:
            raise InvalidationError(
                f"could not record the invalidation of {len(record)} tag(s) in "
                f"{self.directory}: {exc!r}; other processes may still serve the old values — "
                f"free disk space or fix permissions, then invalidate again"
            ) from exc
        finally:
            if reopened:
                self._pending = False
                self._notify(True)
        with contextlib.suppress(Exception):  # recorded; catching up can wait for a read
            self.sync()
        return seq

    def _record(self, record: tuple[str, ...]) -> int:
        """Commit the record, then publish the epoch (the caller holds ``_lock``)."""
        journal = self._journal
        with self._flocked(self._fd):
            journal.begin()
            try:
                _step("locked")
                # Above both: a process killed after its commit left the journal ahead.
                seq: int = max(self.epoch[0], journal.high()) + 1
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
                            seq, self.floor, dict(self.mirror), seq - _SNAPSHOT_EVERY, _step
                        )
                except Exception as exc:  # recorded already: a later snapshot will do
                    self._log_once("snapshot", exc)
        return seq

    # -- faults and reopening ------------------------------------------------------------------

    def check(self) -> bool:
        """Reopen if the epoch file or the journal was deleted or replaced; True if it did.

        Raises :class:`VersionsUnavailable` if the store cannot be reopened.
        """
        with self._lock:
            reopened = self._check_locked()
            if self._broken is not None:
                raise self._unavailable(self._broken)
            self._pending = self._pending and not reopened
        if reopened:
            self._notify(True)
        return reopened

    def _check_locked(self, advance: int = 0) -> bool:
        try:
            ids = (_identity(self._epoch_path), _identity(self._journal_path))
        except OSError:
            ids = None
        if ids == self._ids and self._broken is None:
            return False
        try:
            epoch_moved = self._ids is None or _identity(self._epoch_path) != self._ids[0]
        except OSError:
            epoch_moved = True
        previous = (self.incarnation, max(self.epoch[0], self._seen))
        try:
            self._open(previous, advance)
            if advance:
                self._reload()  # recovering already: a second corruption is a fault
            else:
                self._reload_or_recover()
        except Exception as exc:
            if self._broken is None:
                log.warning("cacheplug: %s", exc)
                if self.writable and epoch_moved:
                    # The old epoch file is gone: moving its counter makes every process
                    # still reading it recheck, and the recheck fails until this is fixed.
                    self.epoch[0] += 1
            self._broken = str(exc)
            return False
        self._broken = None
        self.generation += 1
        log.warning("cacheplug: the invalidation store in %s was reopened", self.directory)
        return True

    def _recover(self, exc: BaseException) -> None:
        """A corrupt journal met while open: quarantine it (once, host-wide) and reopen."""
        if not self.writable:
            self._broken = f"the journal is corrupt ({exc!r}) and read-only"
            raise self._unavailable(self._broken) from exc
        with self._flocked(self._fd):
            try:
                unchanged = self._ids is not None and _identity(self._journal_path) == self._ids[1]
            except OSError:
                unchanged = False
            if unchanged:  # else another process has quarantined it already
                self._journal.close()
                self._quarantine(exc)
            if self._ids is not None:  # force the reopen (of the journal: the epoch fd stays)
                self._ids = (self._ids[0], (-1, -1))
            if not self._check_locked(advance=1):
                raise self._unavailable(self._broken or f"{exc!r}") from exc
        self._pending = True

    def _log_once(self, what: str, exc: BaseException) -> None:
        """Log a background fault at most once per 10 s per (what, exception type)."""
        key = f"{what}:{type(exc).__name__}"
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) >= 10.0:
            self._logged[key] = now
            log.warning("cacheplug: version store %s: %s failed: %r", self.directory, what, exc)

    # -- the watcher and its listeners --------------------------------------------------------

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
                reopened = self._check_locked()
                if self.writable and self._broken is None:
                    self._repair_behind()
            except Exception as exc:
                self._log_once("watch", exc)
            reopened, self._pending = reopened or self._pending, False
        self._notify(reopened)

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

    def _watch(self) -> None:
        """Start this store's watcher thread (once per process; the caller holds ``_lock``
        or is the constructor)."""
        if self._stop.is_set():
            return
        thread = threading.Thread(
            target=_watch_loop,
            args=(weakref.ref(self), self._stop),
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
            fd = os.open(self._epoch_path, (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_CLOEXEC)
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
            if _HOST.get(os.path.realpath(self.directory)) is self:
                del _HOST[os.path.realpath(self.directory)]

    def __repr__(self) -> str:
        return f"HostVersions({self.directory!r}, epoch={self.epoch[0]}, incarnation={self.incarnation!r})"


def _watch_loop(ref: Callable[[], HostVersions | None], stop: threading.Event) -> None:
    while not stop.wait(_WATCH_INTERVAL):
        store = ref()
        if store is None:
            return  # the store was garbage-collected
        try:
            store._tick()
        except Exception as exc:  # never dies of one bad round
            log.warning("cacheplug: version store watcher: %r", exc)
        del store


def _release(fds: list[int], stop: threading.Event) -> None:
    stop.set()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


_STORES: weakref.WeakSet[HostVersions] = weakref.WeakSet()
_HOST: weakref.WeakValueDictionary[str, HostVersions] = weakref.WeakValueDictionary()
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


def host_versions(directory: str) -> HostVersions:
    """The process's one :class:`HostVersions` for ``directory`` (shared by all tiers on it).

    Raises :class:`VersionsUnavailable` when its invalidations cannot be read (try again later).
    """
    real = os.path.realpath(directory)
    with _HOST_LOCK:
        store = _HOST.get(real)
        if store is None:
            store = HostVersions(real)
            _HOST[real] = store
        return store
