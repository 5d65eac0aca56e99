"""The read side and recovery of a host version store.

* **Catching up** (:meth:`Recovering.sync`): the mirror is rebuilt from the journal's
  snapshot and the records after it, then kept current by replaying the records up to the
  epoch; ``sync`` returns the epoch the mirror reflects, never a newer one.
* **Reopening** (:meth:`Recovering.check`): the epoch file and the journal are identified
  by (device, inode); when either was deleted or replaced the store reopens, ``generation``
  moves and listeners are told. A folder or file that another user could write (a symlink,
  owned by another user, group- or world-writable: checked on every open and every check)
  breaks the store, and it is never reopened onto it. A store that cannot be reopened
  stays broken (reads raise
  :class:`VersionsUnavailable`) and is retried by the watcher and by every bump.
* **Quarantine**: a corrupt journal is moved aside once host-wide (under the epoch lock)
  and rebuilt with a new ``incarnation`` and a ``floor`` above every entry stored before;
  a read-only store with a corrupt journal is unavailable.
* Records missing below the epoch (a journal moved aside or lost) make every entry stored
  before stale; nothing is ever guessed fresh.
* **Writing** (:meth:`Recovering._write`, for bumps and dependency edges): a replaced store
  is reopened first, a broken or read-only one refuses, a corrupt journal is quarantined
  and the write retried once; whatever else fails raises :class:`InvalidationError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import InvalidationError
from .journal import create_private, is_corruption
from .versions_epoch import VersionsUnavailable, _identity
from .versions_watch import Watching

__all__ = ["Recovering"]

log = logging.getLogger("cacheplug")
T = TypeVar("T")


class _Rebuilt:
    """A mirror being rebuilt aside (:meth:`Recovering._reload`), published when complete."""

    __slots__ = ("floor", "keyed", "mirror", "recent")

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.mirror: dict[str, int] = {}
        self.keyed = False
        self.recent: tuple[tuple[int, frozenset[str]], ...] = ()


class Recovering(Watching):
    """Reading, reopening and quarantine for a host store; see the module docstring."""

    # -- reading -----------------------------------------------------------------------------

    def _reload(self) -> None:
        """Rebuild the mirror from the snapshot and the journal after it.

        Built aside, then published the way a fold is: the floor first (it never goes down),
        then the new mirror, then ``_seen``. A reader that takes the mirror (then the floor)
        while this runs judges against the old state or the new one, never against a mirror
        emptied or rolled back to the snapshot under a floor that does not cover it.
        """
        journal = self._journal
        upto = self.epoch[0]
        new = _Rebuilt(self._journal_floor)
        seen = self._journal_floor  # nothing below the journal's floor is recorded
        snap = journal.snapshot()
        if snap is not None and snap[0] >= seen:
            seen, floor, versions = snap
            new.mirror = dict(versions)
            new.floor = max(new.floor, floor)
        new.keyed = any(t.startswith("\x00k:") for t in new.mirror)
        if upto > seen:
            records = journal.records(seen, upto)
            if len(records) == upto - seen:
                for seq, tags in records:
                    self._mirror_into(new, seq, tags)
                seen = upto
            else:
                # Records are missing: _replay below decides (a reopen is not nested, so it
                # ends with every entry before ``upto`` stale); until then nothing is judged
                # against the snapshot alone.
                new.floor = max(new.floor, upto)
        self.floor = max(self.floor, new.floor)
        self.keyed = self.keyed or new.keyed  # never off first: a reader may hold the old mirror
        self.mirror = new.mirror
        self.recent = new.recent
        self._seen = seen
        self._replay(self.epoch[0])

    def _reload_or_recover(self) -> None:
        try:
            self._reload()
        except Exception as exc:
            if not is_corruption(exc):
                raise
            self._recover(exc)  # a record that is not the expected JSON: never interpreted

    def _replay(self, upto: int) -> None:
        if upto <= self._seen:
            return
        journal = self._journal
        records = journal.records(self._seen, upto)
        if not records or records[0][0] != self._seen + 1 or records[-1][0] != upto:
            snap = journal.snapshot()
            if snap is not None and snap[0] > self._seen:
                # The records this process missed were folded into the snapshot.
                seen, floor, versions = snap
                self.floor = max(self.floor, floor)  # first, as in a fold (see _reload)
                self.mirror = dict(versions)
                self._seen = seen
                self.keyed = self.keyed or any(t.startswith("\x00k:") for t in self.mirror)
                self.recent = ()
                if self._seen >= upto:
                    return  # the snapshot is newer than the epoch this catch-up started from
                records = journal.records(self._seen, upto)
            floor = journal.meta().floor
            if len(records) != upto - self._seen and floor > self._seen:
                # A process that reopened after a rebuild raised the journal's floor: nothing
                # below it is recorded, and everything stored below it is stale.
                self.floor = max(self.floor, floor)  # first, then the emptied mirror
                self.mirror, self.recent = {}, ()
                self._seen = self.floor
                records = journal.records(self._seen, upto)
            if len(records) != upto - self._seen:
                # Records below the epoch are missing: this process may be reading a journal
                # that was moved aside or deleted. Reopen if so; otherwise the journal was
                # lost, and every entry stored before now is stale. (Within a reopen the
                # files were just opened: _check_locked does not nest, so this converges.)
                if self._check_locked():
                    self._pending = True
                    return
                log.warning(
                    "cacheplug: invalidation journal in %s is incomplete; treating all entries as stale",
                    self.directory,
                )
                self.floor = max(self.floor, upto)  # first, then the emptied mirror
                self.mirror = {}
                self.recent = ()
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

    # -- writing -------------------------------------------------------------------------------

    def _write(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action`` (it writes the journal under the epoch lock) for a bump or an edge.

        ``what`` names the write in the :class:`InvalidationError` raised when it cannot be
        recorded; the listeners hear of a reopen it caused; the mirror then catches up.
        """
        reopened = False
        try:
            with self._lock:
                if self._watcher is None:
                    self._watch()
                reopened = self._check_locked()
                if self._broken is not None:
                    raise InvalidationError(
                        f"cannot record {what}: {self._broken}; other processes may still serve the "
                        f"old values — fix it, then invalidate again"
                    )
                if not self.writable:
                    raise InvalidationError(
                        f"cannot record {what}: {self.directory} is read-only for this process; other "
                        f"processes may still serve the old values — make the folder writable by this "
                        f"user, then invalidate again"
                    )
                try:
                    result = action()
                except Exception as exc:
                    if not is_corruption(exc):
                        raise
                    self._recover(exc)
                    reopened = True
                    result = action()
        except InvalidationError:
            raise
        except Exception as exc:
            raise InvalidationError(
                f"could not record {what} in {self.directory}: {exc!r}; other processes may still "
                f"serve the old values — free disk space or fix permissions, then invalidate again"
            ) from exc
        finally:
            if reopened:
                self._pending = False
                self._notify(True)
        with contextlib.suppress(Exception):  # recorded; catching up can wait for a read
            self.sync()
        return result

    # -- faults and reopening ------------------------------------------------------------------

    def check(self) -> bool:
        """Reopen if the epoch file or the journal was deleted or replaced; True if it did.

        Raises :class:`VersionsUnavailable` if the store cannot be reopened.
        """
        with self._lock:
            reopened = self._check_locked(trust=True)
            if self._broken is not None:
                raise self._unavailable(self._broken)
            self._pending = self._pending and not reopened
        if reopened:
            self._notify(True)
        return reopened

    def _check_locked(self, advance: int = 0, trust: bool = False) -> bool:
        # ``trust``: also look for a chmod or chown of unchanged files (the watcher and
        # check() do; a bump only compares identities, two stat calls, to stay cheap).
        try:
            ids = (_identity(self._epoch_path), _identity(self._journal_path))
        except OSError:
            ids = None
        untrusted = False
        if ids == self._ids and self._broken is None:
            if not trust:
                return False
            try:
                self._check_trusted()  # a chmod or chown since it was opened
                return False
            except VersionsUnavailable:
                untrusted = True
        try:
            epoch_moved = untrusted or self._ids is None or _identity(self._epoch_path) != self._ids[0]
        except OSError:
            epoch_moved = True
        reopening = self._reopening
        if reopening and not advance:
            # A reopen is under way (its replay found records missing below the epoch): the
            # files were opened just now, so the journal is what it is. Reopening again would
            # find the same and recurse without end.
            return False
        previous = (self.incarnation, max(self.epoch[0], self._seen))
        self._reopening = True  # a quarantine's reopen (``advance``) is the one nesting
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
        finally:
            self._reopening = reopening
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
