"""The disk tier's rows, read without writing: keys, stored bytes, row sizes, totals.

The read commands (``stats``, ``keys``, ``inspect``) look at a cache directory that other
processes own. They open its diskcache database the way the disk tier does on a full disk
(:meth:`cacheplug.tiers.diskstore.Store.for_reading`): nothing is created, no setting is
written, no row is deleted, and nothing stored is unpickled here (decoding is
``cacheplug.cli.entries``' job). A database SQLite cannot read (corrupt, locked past the
wait) is a :class:`~cacheplug.cli.common.CliError` saying what to do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..tiers.diskfiles import is_corrupt
from ..tiers.diskstore import Store, sqlite_gate
from .common import CliError, database_path

__all__ = ["Row", "Rows", "open_rows"]

WAIT = 2.0  # seconds SQLite may wait for another process's lock


@dataclass(frozen=True, slots=True)
class Row:
    """One stored entry as diskcache holds it: the key, the codec's bytes, row times and size."""

    key: str
    data: bytes
    stored: float | None  # wall-clock seconds the row was written
    expires: float | None  # diskcache's expiry (wall clock), None for never


class Rows:
    """Read access to the rows of one disk tier (see the module docstring)."""

    def __init__(self, directory: str, store: Any) -> None:
        self.directory = directory
        self._store = store

    def _guarded(self, what: str, action: Any) -> Any:
        try:
            with sqlite_gate:
                return action()
        except sqlite3.Error as exc:
            raise _explained(self.directory, exc, what) from None

    def measure(self) -> tuple[int, int]:
        """``(rows, bytes on disk)`` of the tier, both O(1)."""
        measured: tuple[int, int] = self._guarded(
            "count the entries", lambda: (len(self._store), int(self._store.volume()))
        )
        return measured

    def stored_keys(self) -> list[str]:
        """Every stored key (O(entries)), sorted."""
        listed = self._guarded(
            "list the keys", lambda: [k for k in self._store.iterkeys() if isinstance(k, str)]
        )
        return sorted(listed)

    def row(self, key: str) -> Row | None:
        """The live (unexpired) row stored under ``key``, or ``None``."""

        def read() -> Row | None:
            data = self._store.read(key)
            if data is None:
                return None
            found = self._store._sql(
                "SELECT store_time, expire_time FROM Cache WHERE key = ? AND raw = 1", (key,)
            ).fetchall()
            stored, expires = found[0] if found else (None, None)
            return Row(key, bytes(data), stored, expires)

        row: Row | None = self._guarded(f"read the entry {key!r}", read)
        return row

    def rows(self, keys: list[str]) -> Iterator[Row]:
        """The live rows of ``keys`` (rows that expired or vanished meanwhile are skipped)."""
        for key in keys:
            found = self.row(key)
            if found is not None:
                yield found

    def close(self) -> None:
        with contextlib.suppress(Exception), sqlite_gate:
            self._store.close()


def _explained(directory: str, exc: BaseException, what: str) -> CliError:
    db = database_path(directory)
    if is_corrupt(exc):
        return CliError(
            f"the disk tier's database {db} is corrupt ({exc}); a cacheplug process moves it aside "
            f"and starts an empty one when it next opens the tier, or remove {os.path.dirname(db)} yourself"
        )
    if "locked" in str(exc):
        return CliError(
            f"could not {what}: {db} stayed locked by another process for {WAIT:.0f} s; try again"
        )
    return CliError(f"could not {what} in {db} ({exc}); check the file's permissions")


@contextlib.contextmanager
def open_rows(directory: str) -> Iterator[Rows]:
    """The rows of the (already checked) cache ``directory``, closed on exit."""
    entries = os.path.dirname(database_path(directory))
    try:
        with sqlite_gate:
            store = Store.for_reading(entries, WAIT)
    except sqlite3.Error as exc:
        raise _explained(directory, exc, "open the disk tier") from None
    except OSError as exc:
        raise CliError(f"could not open the disk tier in {entries} ({exc.strerror})") from None
    rows = Rows(directory, store)
    try:
        yield rows
    finally:
        rows.close()
