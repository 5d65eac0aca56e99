"""The disk tier's folder: the trust check, owner-only modes, and moving a corrupt database aside.

- :func:`prepare` creates the tier's folders (0700) and ``cache.db`` (0600, before SQLite
  opens it, so that its ``-wal``/``-shm`` files copy that mode) whatever the umask. A folder
  that a symlink, another user or group/world write bits make unsafe raises
  :class:`Refused` unless the tier's codec is signed; a safe one of ours is made
  owner-only, only ever removing permission bits.
- :func:`quarantine` moves a corrupt ``entries`` folder aside under an exclusive lock
  file, and only if it is still the database that failed here (another process may have
  moved it already).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import time

from ..private_files import directory_problem, private_makedirs

__all__ = ["Identities", "Refused", "identities", "is_corrupt", "prepare", "quarantine"]

_CORRUPT_MARKS = ("not a database", "malformed")
_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


class Refused(Exception):
    """The directory failed the security check (raised as ConfigurationError at build)."""


def is_corrupt(exc: BaseException) -> bool:
    """Is ``exc`` SQLite saying that the database file is damaged?"""
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc) for m in _CORRUPT_MARKS)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


Identities = tuple[tuple[int, int] | None, tuple[int, int] | None]


def identities(directory: str, db: str) -> Identities:
    """(device, inode) of the folder and of ``cache.db`` (``None`` for one that is gone).

    Two stat calls: compared with the ones taken at opening, they tell a deleted or
    replaced folder or database apart.
    """
    return _identity(directory), _identity(db)


def _security_problem(*paths: str) -> str | None:
    for path in paths:
        problem = directory_problem(path)
        if problem is not None:
            return problem
    return None


def prepare(directory: str, entries: str, db: str, *, signed: bool) -> None:
    """Create or check the tier's folders and ``cache.db``; :class:`Refused` if unsafe and unsigned."""
    private_makedirs(directory)
    problem = _security_problem(directory, entries, db)
    if problem is not None:
        if not signed:
            raise Refused(problem)
    else:
        # Ours and not writable by others: make it owner-only (an older release may have
        # left it readable). A directory accepted for its signed codec is left as it is.
        # Only ever remove bits: an operator's read-only (0500) directory stays so.
        mode = stat.S_IMODE(os.stat(directory).st_mode)
        if mode & ~0o700:
            os.chmod(directory, mode & 0o700)
    private_makedirs(entries)
    fd = os.open(db, os.O_RDWR | os.O_CREAT | _FLAGS, 0o600)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            if os.lstat(db + suffix).st_uid == os.geteuid():
                os.chmod(db + suffix, 0o600, follow_symlinks=False)


def quarantine(directory: str, entries: str, db: str, opened: Identities | None) -> str | None:
    """Move ``entries`` aside unless ``cache.db`` changed since ``opened``; where it went, or None.

    ``opened``: the :func:`identities` taken when the failing database was opened (``None``:
    it never was, move whatever is there).
    """
    fd = os.open(os.path.join(directory, "entries.lock"), os.O_RDWR | os.O_CREAT | _FLAGS, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # Another process may have quarantined it already: only move what failed here.
        if opened is not None and _identity(db) != opened[1]:
            return None
        aside = f"{entries}.corrupt-{int(time.time())}-{os.getpid()}"
        os.rename(entries, aside)
        return aside
    finally:
        os.close(fd)  # releases the lock
