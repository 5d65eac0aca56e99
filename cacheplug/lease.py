"""Leases on keys among the processes of one host: what ``@cached(lock="host")`` waits on.

A lease is a lock with an expiry and a fencing token, kept in small files of one directory
(beside the disk tier's entries). This module knows nothing of caches; the miss path
(``cacheplug.cache.stampede``) acquires a lease before computing, checks its fence before
storing and releases it after.

Files (created 0600 in a 0700 directory, opened with ``O_NOFOLLOW``; a file that is not a
regular file of this user is a fault, never followed):

* ``<digest>.lease``, one per key while it is leased: its holder keeps an exclusive
  ``flock`` on it for the lease. The kernel drops a dead process's locks, so a holder killed
  at any point (kill -9) never wedges the key: the next caller's ``flock`` succeeds. The
  file's one line, ``cacheplug-lease 1 <token> <expiry> <pid>`` (ASCII, fixed width, read
  with a size bound and parsed strictly), says until when (``time.monotonic``, the same
  clock in every process of a host) the holder may compute. A tampered line can at worst
  make a caller wait its own timeout, never run anything.
* ``stripe-<nn>`` (:data:`STRIPES` of them): the *guard* of the keys hashing to it, an
  exclusive ``flock`` held for a few system calls (granting, taking over, releasing a lease)
  and across the store a holder makes after checking its fence; and the stripe's last token
  (ASCII digits). Tokens grow by at least one per grant and never fall below the wall
  clock's microseconds, so they stay monotonic per key even if a stripe file is lost.

Taking over: a caller that finds the key's file locked past its expiry (a slow or hung
holder), or that has itself waited the whole timeout (a tampered expiry), unlinks the file
under the guard and locks a new one at the same path. The old holder keeps a lock on a file
nobody opens any more, and its *fence* fails: under the guard, the file at the path is no
longer the one it locked, with its token. Because the guard is held from that check to the
end of the store, no takeover slips in between.

Waiting polls (1 ms doubling to 25 ms): every step is a non-blocking system call, so the
same step generator (:meth:`LeaseStore.attempts`) serves a blocking thread and an event
loop (which must never stall on another process's lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import math
import os
import re
import stat
import time
from collections.abc import Callable, Generator

from .errors import CacheplugError
from .private_files import directory_problem, private_makedirs, same_file

__all__ = ["STRIPES", "Lease", "LeaseFault", "LeaseStore"]

STRIPES = 64
POLL_FIRST, POLL_MAX = 0.001, 0.025
FENCE_WAIT = 5.0  # seconds a holder waits for its stripe's guard before storing (then a fault)
_READ_MAX = 128
_RECORD = re.compile(rb"cacheplug-lease 1 ([0-9]{1,20}) ([0-9]{1,13}\.[0-9]{6}) ([0-9]{1,10})\n")
_TOKEN = re.compile(rb"([0-9]{1,20})\n?")
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
_FLAGS = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK

Steps = Generator[float, None, "Lease"]
MaybeLease = Generator[float, None, "Lease | None"]


class LeaseFault(CacheplugError):
    """The lease directory or one of its files cannot be used (untrusted, corrupt, busy too long)."""


def _flock(fd: int) -> bool:
    """An exclusive lock on ``fd`` without waiting: True if taken, False if someone holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def _record(fd: int) -> tuple[int, float] | None:
    """The (token, expiry) a lease file says, or ``None`` when it says nothing readable."""
    match = _RECORD.fullmatch(os.pread(fd, _READ_MAX, 0))
    if match is None:
        return None
    expiry = float(match[2])
    return (int(match[1]), expiry) if math.isfinite(expiry) else None


def _write_record(fd: int, token: int, expiry: float) -> None:
    line = f"cacheplug-lease 1 {token:020d} {max(expiry, 0.0):020.6f} {os.getpid():010d}\n"
    os.pwrite(fd, line.encode("ascii"), 0)


class Lease:
    """A key leased by this process: its ``token``, whether the caller ``waited`` for another
    holder first (then it should look for that holder's value before computing) and whether
    it ``taken_over`` a holder that overran its lease."""

    __slots__ = ("_fd", "_guard", "_path", "_store", "_stripe", "taken_over", "token", "waited")

    def __init__(
        self, store: LeaseStore, fd: int, path: str, stripe: str, token: int, waited: bool, taken_over: bool
    ) -> None:
        self._store = store
        self._fd = fd
        self._path = path
        self._stripe = stripe
        self._guard = -1
        self.token = token
        self.waited = waited
        self.taken_over = taken_over

    def fence(self) -> bool:
        """Whether the lease is still this holder's; if so, the guard is held until
        :meth:`unfence` (or :meth:`release`), so store now. Blocks at most :data:`FENCE_WAIT`
        seconds for the guard (then raises :class:`LeaseFault`)."""
        if self._fd < 0:
            return False
        guard = self._store.guard_now(self._stripe, FENCE_WAIT)
        try:
            record = _record(self._fd)
            ours = same_file(self._fd, self._path) and record is not None and record[0] == self.token
        except BaseException:
            os.close(guard)
            raise
        if not ours:
            os.close(guard)
            return False
        self._guard = guard
        return True

    def unfence(self) -> None:
        """Let other processes take the stripe's guard again (the store is done)."""
        guard, self._guard = self._guard, -1
        if guard >= 0:
            os.close(guard)

    def release(self) -> None:
        """End the lease: remove the key's file if it is still this holder's, drop the lock.

        Never waits: when the stripe's guard is busy the file is left for the next holder
        (its lock is dropped all the same).
        """
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        try:
            self.unfence()
            guard = self._store.guard_nowait(self._stripe)
            if guard >= 0:
                try:
                    if same_file(fd, self._path):
                        os.unlink(self._path)
                finally:
                    os.close(guard)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"Lease(token={self.token}, waited={self.waited}, taken_over={self.taken_over})"


class LeaseStore:
    """The leases of one directory. ``clock``: the host's monotonic seconds (expiries);
    ``wall``: seconds since the epoch (the floor of tokens)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        self._clock = clock
        self._wall = wall
        self._ready = False

    # -- acquiring --------------------------------------------------------------------------

    def acquire(self, key: str, timeout: float) -> Lease:
        """Lease ``key`` for ``timeout`` seconds, blocking this thread while another holds it."""
        steps = self.attempts(key, timeout)
        try:
            while True:
                time.sleep(steps.send(None))
        except StopIteration as done:
            lease: Lease = done.value
            return lease
        finally:
            steps.close()

    async def aacquire(self, key: str, timeout: float) -> Lease:
        """:meth:`acquire` for a task: it sleeps in the event loop between attempts."""
        steps = self.attempts(key, timeout)
        try:
            while True:
                await asyncio.sleep(steps.send(None))
        except StopIteration as done:
            lease: Lease = done.value
            return lease
        finally:
            steps.close()

    def attempts(self, key: str, timeout: float) -> Steps:
        """Lease ``key``: yields how long to sleep before the next attempt; returns the lease."""
        path, stripe = self._paths(key)
        started = self._clock()
        pause = POLL_FIRST
        waited = False
        while True:
            fd = self._open(path)
            try:
                if _flock(fd):
                    if same_file(fd, path):  # not unlinked by a release or a takeover meanwhile
                        # Say "held" at once, so that nobody reads the last holder's expiry
                        # and takes this fresh lease over while it waits for the guard.
                        _write_record(fd, 0, self._clock() + timeout)
                        owned, fd = fd, -1  # _grant owns it now: the lease's, or closed
                        lease = yield from self._grant(owned, path, stripe, timeout, waited)
                        if lease is not None:
                            return lease
                    continue
                waited = True
                record = _record(fd)
                now = self._clock()
                if (record is not None and record[1] <= now) or now - started >= timeout:
                    lease = yield from self._take_over(fd, path, stripe, timeout)
                    if lease is not None:
                        return lease
                    continue
            finally:
                if fd >= 0:
                    os.close(fd)
            yield pause
            pause = min(pause * 2, POLL_MAX)

    def _grant(self, fd: int, path: str, stripe: str, timeout: float, waited: bool) -> MaybeLease:
        """Give the locked file ``fd`` its token and expiry (``None``: taken over meanwhile)."""
        try:
            guard = yield from self._guard(stripe, timeout)
            try:
                if not same_file(fd, path):
                    os.close(fd)
                    return None
                token = self._next_token(guard, stripe)
                _write_record(fd, token, self._clock() + timeout)
            finally:
                os.close(guard)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return Lease(self, fd, path, stripe, token, waited, False)

    def _take_over(self, busy: int, path: str, stripe: str, timeout: float) -> MaybeLease:
        """Replace the file a holder locks past its lease (``None``: it changed meanwhile)."""
        guard = yield from self._guard(stripe, timeout)
        try:
            if not same_file(busy, path):
                return None  # released or taken over by someone else: try again
            if _flock(busy):
                return None  # the holder just let go: take it the ordinary way
            os.unlink(path)
            try:
                fd = os.open(path, _FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another caller made the new file first: it holds it
                return None
            if not _flock(fd):  # another caller opened the new file first: it holds it
                os.close(fd)
                return None
            try:
                token = self._next_token(guard, stripe)
                _write_record(fd, token, self._clock() + timeout)
            except BaseException:
                os.close(fd)
                raise
            return Lease(self, fd, path, stripe, token, True, True)
        finally:
            os.close(guard)

    # -- the stripes' guards and tokens -----------------------------------------------------

    def _guard(self, stripe: str, timeout: float) -> Generator[float, None, int]:
        """The stripe's guard (an open, locked fd); yields pauses while another process has it."""
        deadline = self._clock() + max(timeout, FENCE_WAIT)
        pause = POLL_FIRST / 4
        while True:
            fd = self.guard_nowait(stripe)
            if fd >= 0:
                return fd
            if self._clock() >= deadline:
                raise LeaseFault(f"the lease guard {stripe!r} stayed busy for {max(timeout, FENCE_WAIT):g} s")
            yield pause
            pause = min(pause * 2, POLL_MAX)

    def guard_now(self, stripe: str, wait: float) -> int:
        """The stripe's guard, blocking this thread at most ``wait`` seconds."""
        steps = self._guard(stripe, wait)
        try:
            while True:
                time.sleep(steps.send(None))
        except StopIteration as done:
            fd: int = done.value
            return fd
        finally:
            steps.close()

    def guard_nowait(self, stripe: str) -> int:
        """The stripe's guard if nobody has it (an open, locked fd), else -1."""
        fd = self._open(stripe)
        try:
            if _flock(fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return -1

    def _next_token(self, guard: int, stripe: str) -> int:
        """The stripe's next token (under its guard)."""
        raw = os.pread(guard, _READ_MAX, 0)
        match = _TOKEN.fullmatch(raw) if raw else None
        floor = int(self._wall() * 1_000_000)
        token = max(int(match[1]) + 1 if match else 0, floor)
        line = f"{token:020d}\n".encode("ascii")
        os.pwrite(guard, line, 0)
        if len(raw) > len(line):
            os.ftruncate(guard, len(line))
        if raw and match is None:
            # Rewritten above (the next grant works); this one is reported, not granted.
            raise LeaseFault(f"the lease stripe {stripe!r} held {raw[:40]!r}, not a token; it was reset")
        return token

    # -- files ------------------------------------------------------------------------------

    def _paths(self, key: str) -> tuple[str, str]:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        stripe = f"stripe-{int(digest[:8], 16) % STRIPES:02d}"
        return os.path.join(self.directory, digest[:40] + ".lease"), os.path.join(self.directory, stripe)

    def _open(self, path: str) -> int:
        """Open (creating) one of the store's files: a regular file of this user, never a link."""
        if not self._ready:
            self._prepare()
        try:
            fd = os.open(path, _FLAGS | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the directory was removed: make it again, once
            self._prepare()
            fd = os.open(path, _FLAGS | os.O_CREAT, 0o600)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise LeaseFault(f"{path!r} is not a regular file of this user: leases there are not used")
        return fd

    def _prepare(self) -> None:
        private_makedirs(self.directory)
        problem = directory_problem(self.directory)
        if problem is not None:
            raise LeaseFault(f"lease directory refused: {problem}")
        self._ready = True

    def __repr__(self) -> str:
        return f"LeaseStore({self.directory!r})"
