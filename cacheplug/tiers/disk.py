"""The host tier: diskcache (SQLite + files) on local disk, shared by every process.

Guarantees:

- **Nothing stored runs code unverified.** Entries are bytes made by the tier's codec
  (a :class:`~cacheplug.codec.Codec`, by default ``PickleCodec``): serialization and
  signing are the codec's, nothing else here; diskcache never unpickles on its own (rows
  in its pickle or text modes are refused, and value file names outside the tier's folder
  are ignored). Without a signed codec (a secret) the directory is the defence: it must be
  owned by this user, not group- or world-writable and not a symlink, or the tier refuses
  it. With one every entry is verified before it is deserialized, and any directory is
  accepted.
- **Owner-only files whatever the umask**: folders 0700, ``cache.db`` 0600, value files
  0600 (see ``diskfiles`` and ``diskstore``).
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
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import diskcache

from ..codec import Codec, CorruptEntryError, UnreadableEntryError, codec_for
from ..envelope import MISS, Entry
from ..errors import ConfigurationError, TierUnavailable
from ..private_files import default_directory, directory_problem
from ..versions import HostVersions, host_versions
from .diskfiles import Identities, Refused, identities, is_corrupt, prepare, quarantine
from .diskstore import Store, after_fork_in_child, sqlite_gate

__all__ = ["DiskTier", "directory_problem"]

log = logging.getLogger("cacheplug")

RETRY_EVERY = 10.0  # seconds between attempts to open a tier that is down
LOG_EVERY = 10.0  # seconds between two log lines of one kind for one tier
OPEN_WAIT = 1.0  # lock wait when opening off the call path (construction, check())

_live: weakref.WeakSet[DiskTier] = weakref.WeakSet()


class DiskTier:
    """A diskcache-backed tier in ``directory`` (default: ``CACHEPLUG_DIR`` or the project's folder).

    ``codec``: the :class:`~cacheplug.Codec` that turns entries into the stored bytes and
    back (default: an unsigned :class:`~cacheplug.PickleCodec`). ``secret``: the shorthand
    for ``codec=PickleCodec(secret)``: one or several (a comma-separated str or a sequence)
    secrets, the first signs entries, every one verifies them; not together with ``codec``.
    ``timeout``: the longest SQLite waits for a lock on the call path. ``monotonic``: the
    clock of the retry and log intervals.
    """

    name = "disk"
    shared = True

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        size_limit: int = 2**30,
        *,
        codec: Codec | None = None,
        secret: str | Sequence[str] | None = None,
        timeout: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(size_limit, int) or isinstance(size_limit, bool) or size_limit < 1:
            raise ConfigurationError(
                f"DiskTier size_limit must be a positive int of bytes, got {size_limit!r}"
            )
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout < 3600:
            raise ConfigurationError(f"DiskTier timeout must be positive seconds, got {timeout!r}")
        self.codec: Codec = codec_for(codec, secret, "DiskTier")
        self._dumps, self._loads = self.codec.dumps, self.codec.loads  # bound once: every hit
        self.directory = os.path.abspath(os.fspath(default_directory() if directory is None else directory))
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
        self._ids: Identities | None = None
        self._retry_at = -float("inf")
        try:
            self._try_open(OPEN_WAIT)
        except Refused as exc:
            raise ConfigurationError(
                f"refusing the disk tier directory: {exc}; anyone who can write there could make "
                f"this process run code. Use a directory you own with mode 0700 (chmod 700 it, or "
                f"remove it and let cacheplug create it), set CACHEPLUG_DIR or "
                f"DiskTier(directory=...) to another folder, or set a secret (CACHEPLUG_SECRET, "
                f"DiskTier(secret=...), or a signed DiskTier(codec=...)) so that entries are signed "
                f"and verified"
            ) from None
        _live.add(self)

    # -- opening, faults, reopening ----------------------------------------------------------

    def _open(self, wait: float) -> None:
        prepare(self.directory, self._entries, self._db, signed=self.codec.signed)
        self._ids = identities(self.directory, self._db)  # what a quarantine compares against
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
                if not is_corrupt(exc):
                    raise
                self._quarantine()
                self._open(wait)
        except Refused:
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
        except Refused as exc:
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
        """Move a corrupt ``entries`` folder aside, once (see ``diskfiles.quarantine``)."""
        aside = quarantine(self.directory, self._entries, self._db, self._ids)
        if aside is not None:
            self.quarantined += 1
            log.warning(
                "cacheplug: the disk tier database %s is corrupt; moved it aside to %s and "
                "started an empty one",
                self._db,
                aside,
            )

    def _failed(self, dc: Any, exc: BaseException) -> None:
        """After an operation failed: quarantine a corrupt database, reopen vanished files."""
        if isinstance(exc, diskcache.Timeout) or "locked" in str(exc) or "full" in str(exc):
            return
        if is_corrupt(exc):
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
        if dc is None or identities(self.directory, self._db) == self._ids:
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
            entry = self._loads(data, key)
            if not isinstance(entry, Entry):
                raise CorruptEntryError(
                    f"the codec {type(self.codec).__name__}.loads returned {type(entry).__name__}, "
                    f"not a cacheplug.Entry: a codec's loads must rebuild the Entry it was given"
                )
            return entry
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
        data = self._dumps(entry, key)
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

    def measure(self) -> tuple[int | None, int | None]:
        """``(entries, bytes)``: the rows and the bytes used on disk (both O(1) in diskcache)."""
        dc = self._ready()
        with sqlite_gate:
            return len(dc), int(dc.volume())

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
        return f"DiskTier({self.directory!r}, size_limit={self.size_limit}, codec={self.codec!r}{state})"


def _after_fork_in_child() -> None:
    for tier in list(_live):
        tier._after_fork()


after_fork_in_child.append(_after_fork_in_child)
