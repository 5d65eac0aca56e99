"""The invalidation journal of a host version store: typed records in one SQLite file.

The journal holds plain data only, so opening a cache directory never runs code from it:

* ``meta``: ``format`` (this release writes :data:`FORMAT`), ``incarnation`` (a random id,
  new whenever the journal is created or rebuilt) and ``floor`` (the epoch at creation:
  nothing below it is recorded here);
* ``records``: one row per invalidation, ``(seq, tags)`` with the tags as a JSON list of str;
* ``snapshots``: one row folding the records up to ``seq`` into ``{"floor", "versions"}``;
* ``edges``: the dependency edges ``(source, derived, expires)``, indexed by source (what a
  bump walks, :meth:`Journal.reach`), by derived (dropped when it is bumped) and by expiry
  (see :mod:`cacheplug.versions_deps`).

A journal written by the first release (no ``meta``, pickled ``journal``/``snapshot`` rows)
is migrated without reading its rows: they are dropped, and the new journal's floor makes
every entry stored before stale. An older format of this one (2: no edges, whose writers
would not walk them) is discarded like a corrupt journal: moved aside and rebuilt above
every entry stored before; its processes then find the new format too new and stop
serving cached values, rather than bump without walking the edges. A newer format is left
untouched
(:class:`JournalTooNew`); a row that is not the expected JSON raises
:class:`JournalCorrupt` and is never interpreted. Transactions are the caller's: the
version store serializes all use of one journal behind its own lock.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import urllib.parse
from collections.abc import Callable
from typing import Any, NamedTuple

from .versions_deps import closure

__all__ = ["FORMAT", "Journal", "JournalCorrupt", "JournalTooNew", "Meta", "create_private", "is_corruption"]

FORMAT = 3  # 3: the edges table

# Connections inherited through fork: never closed nor used in the child (SQLite forbids
# both), only kept referenced so that garbage collection does not close them either.
_INHERITED: list[sqlite3.Connection] = []

_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


class JournalCorrupt(Exception):
    """The journal file or one of its rows is not what this release writes."""


class JournalTooNew(Exception):
    """The journal was written in a format this release does not know."""


class Meta(NamedTuple):
    incarnation: str
    floor: int
    created: bool  # this open created (or migrated) the journal
    migrated: bool  # ... from the first release's pickled format


def is_corruption(exc: BaseException) -> bool:
    """Is ``exc`` SQLite saying the file is damaged (not busy, full or read-only)?"""
    if isinstance(exc, JournalCorrupt):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return type(exc) is sqlite3.DatabaseError


def _tags(text: Any) -> tuple[str, ...]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise JournalCorrupt(f"a journal record is not a JSON list of tags: {str(text)[:80]!r}")
    return tuple(value)


def _snapshot(text: Any) -> tuple[int, dict[str, int]]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        value = None
    ok = (
        isinstance(value, dict)
        and type(value.get("floor")) is int
        and isinstance(value.get("versions"), dict)
    )
    versions = value["versions"] if ok else {}  # type: ignore[index]
    if not ok or not all(type(v) is int for v in versions.values()):
        raise JournalCorrupt("the journal snapshot is not the expected JSON")
    return value["floor"], versions  # type: ignore[index]


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, tags TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS snapshots (id INTEGER PRIMARY KEY CHECK (id = 0), "
    "seq INTEGER NOT NULL, state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS edges (source TEXT NOT NULL, derived TEXT NOT NULL, expires REAL, "
    "PRIMARY KEY (source, derived)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS edges_by_derived ON edges (derived)",
    "CREATE INDEX IF NOT EXISTS edges_by_expiry ON edges (expires) WHERE expires IS NOT NULL",
)
# Tags per statement in the edge queries (SQLite allows at least 999 parameters).
_CHUNK = 500
# The first release's tables, recreated empty after a migration so that its processes still
# running during a rolling deploy keep recording (their epoch moves make this release treat
# every entry as stale, which is safe) instead of failing on a missing table.
_LEGACY = (
    "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, tags BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 0), "
    "seq INTEGER NOT NULL, versions BLOB NOT NULL)",
)


class Journal:
    """One SQLite journal file, used by one version store under that store's lock.

    One connection per process, opened lazily; SQLite waits at most ``_timeout`` seconds
    for a lock, then raises.
    """

    def __init__(self, path: str, *, writable: bool, timeout: float = 10.0) -> None:
        self.path = path
        self.writable = writable
        self._timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._immutable = False

    def _conn(self) -> sqlite3.Connection:
        conn = self._db
        if conn is None:
            if self.writable:
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            else:
                conn = self._read_only()
            self._db = conn
        return conn

    def _read_only(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # A WAL journal without its -shm in a folder this process cannot write: SQLite
            # can only read it as immutable, which never notices later writes, so each
            # catch-up reconnects (see records()).
            conn.close()
        self._immutable = True
        return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)

    # -- opening ---------------------------------------------------------------------------

    def open(self, floor: int) -> Meta:
        """Read (or create, or migrate) the journal's meta; ``floor`` is used on creation.

        Creating and migrating write: the caller holds the epoch lock.
        """
        conn = self._conn()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            return self._meta(conn)
        if not self.writable:
            what = "was written by an older release" if tables else "does not exist yet"
            raise JournalCorrupt(f"the journal {what} and cannot be written by this process")
        conn.execute("BEGIN IMMEDIATE")
        try:
            legacy = bool(tables & {"journal", "snapshot"})
            if legacy:
                # Dropped unread: the first release pickled its rows (see the module doc).
                conn.execute("DROP TABLE IF EXISTS journal")
                conn.execute("DROP TABLE IF EXISTS snapshot")
                for statement in _LEGACY:
                    conn.execute(statement)
            for statement in _SCHEMA:
                conn.execute(statement)
            incarnation = secrets.token_hex(8)
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("format", str(FORMAT)), ("incarnation", incarnation), ("floor", str(floor))],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return Meta(incarnation, floor, True, legacy)

    def _meta(self, conn: sqlite3.Connection) -> Meta:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        try:
            fmt = int(meta["format"])
            incarnation = str(meta["incarnation"])
            floor = int(meta["floor"])
        except (KeyError, ValueError, TypeError) as exc:
            raise JournalCorrupt(f"the journal's meta table is damaged: {exc!r}") from None
        if fmt > FORMAT:
            raise JournalTooNew(
                f"the journal has format {fmt} and this release reads format {FORMAT}: a newer "
                f"cacheplug shares this folder; upgrade this process's cacheplug"
            )
        if fmt < FORMAT and floor >= 0:
            raise JournalCorrupt(
                f"the journal was written by an older release (format {fmt}, this one writes {FORMAT})"
            )
        if fmt != FORMAT or floor < 0:
            raise JournalCorrupt(f"the journal's meta table is damaged (format {fmt}, floor {floor})")
        return Meta(incarnation, floor, False, False)

    def meta(self) -> Meta:
        return self._meta(self._conn())

    # -- transactions ------------------------------------------------------------------------

    def begin(self) -> None:
        conn = self._conn()
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn().execute("COMMIT")

    def rollback(self) -> None:
        conn = self._db
        if conn is not None and conn.in_transaction:
            conn.execute("ROLLBACK")

    # -- records -------------------------------------------------------------------------------

    def set(self, seq: int, tags: tuple[str, ...]) -> None:
        """Append the record of invalidation ``seq`` (inside the caller's transaction)."""
        self._conn().execute("INSERT INTO records VALUES (?, ?)", (seq, json.dumps(list(tags))))

    def records(self, after: int, upto: int) -> list[tuple[int, tuple[str, ...]]]:
        if self._immutable:
            self.close()
        rows = self._conn().execute(
            "SELECT seq, tags FROM records WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto)
        )
        return [(seq, _tags(text)) for seq, text in rows]

    def snapshot(self) -> tuple[int, int, dict[str, int]] | None:
        """``(seq, floor, versions)`` of the snapshot, if any."""
        row = self._conn().execute("SELECT seq, state FROM snapshots WHERE id = 0").fetchone()
        if row is None:
            return None
        floor, versions = _snapshot(row[1])
        return row[0], floor, versions

    def write_snapshot(
        self,
        seq: int,
        floor: int,
        versions: dict[str, int],
        drop_upto: int,
        step: Callable[[str], None],
        now: float,
    ) -> None:
        """Store the versions as of ``seq``, drop the records up to ``drop_upto`` and the edges
        expired by ``now``, atomically."""
        state = json.dumps({"floor": floor, "versions": versions})
        self.begin()
        try:
            conn = self._conn()
            conn.execute("INSERT OR REPLACE INTO snapshots VALUES (0, ?, ?)", (seq, state))
            step("snapshot")
            conn.execute("DELETE FROM records WHERE seq <= ?", (drop_upto,))
            conn.execute("DELETE FROM edges WHERE expires <= ?", (now,))
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    # -- dependency edges (inside the caller's transaction) ---------------------------------

    def add_edges(self, derived: str, sources: tuple[str, ...], expires: float | None) -> None:
        """Record an edge from each of ``sources`` to ``derived``; an existing one keeps the later expiry."""
        self._conn().executemany(
            "INSERT INTO edges VALUES (?, ?, ?) ON CONFLICT (source, derived) DO UPDATE SET expires = "
            "CASE WHEN expires IS NULL OR excluded.expires IS NULL THEN NULL "
            "ELSE MAX(expires, excluded.expires) END",
            [(source, derived, expires) for source in sources],
        )

    def reach(self, tags: tuple[str, ...], now: float) -> tuple[str, ...]:
        """``tags`` and every tag derived from them (transitively, through unexpired edges).

        The edges into every tag reached are dropped (it is stale now) and expired edges
        met are deleted, with the rest of the expired ones (through their index).
        """
        conn = self._conn()

        def dependents(frontier: list[str]) -> list[tuple[str, float | None]]:
            rows: list[tuple[str, float | None]] = []
            for i in range(0, len(frontier), _CHUNK):
                chunk = frontier[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(f"SELECT derived, expires FROM edges WHERE source IN ({marks})", chunk)
            for derived, expires in rows:
                if type(derived) is not str or not (expires is None or type(expires) in (int, float)):
                    raise JournalCorrupt(
                        f"a journal edge is not (str, seconds): {derived!r:.80}, {expires!r}"
                    )
            return rows

        reached, expired = closure(tags, dependents, now)
        found = list(reached)
        for i in range(0, len(found), _CHUNK):
            chunk = found[i : i + _CHUNK]
            conn.execute(f"DELETE FROM edges WHERE derived IN ({','.join('?' * len(chunk))})", chunk)
        if expired:
            conn.execute("DELETE FROM edges WHERE expires <= ?", (now,))
        return tuple(found)

    def edges(self) -> int:
        """How many edges are recorded (for tests and diagnostics)."""
        count: int = self._conn().execute("SELECT COUNT(*) FROM edges").fetchone()[0]
        return count

    def high(self) -> int:
        """The highest sequence number this journal accounts for (records, snapshot, floor)."""
        return self.bump_state()[0]

    def bump_state(self) -> tuple[int, bool]:
        """:meth:`high`, and whether any dependency edge exists (else a bump walks nothing)."""
        # One statement: this runs inside every bump's write transaction.
        top, snap, floor, linked = (
            self._conn()
            .execute(
                "SELECT (SELECT MAX(seq) FROM records), (SELECT seq FROM snapshots WHERE id = 0), "
                "(SELECT value FROM meta WHERE key = 'floor'), EXISTS (SELECT 1 FROM edges)"
            )
            .fetchone()
        )
        try:
            base = int(floor) if floor is not None else 0
        except ValueError:
            raise JournalCorrupt("the journal's floor is not a number") from None
        return max(int(top or 0), int(snap or 0), base), bool(linked)

    def raise_floor(self, floor: int) -> None:
        """Declare nothing below ``floor`` recorded (inside the caller's transaction)."""
        self._conn().execute(
            "UPDATE meta SET value = ? WHERE key = 'floor' AND CAST(value AS INTEGER) < ?",
            (str(floor), floor),
        )

    # -- lifetime --------------------------------------------------------------------------

    def abandon(self) -> None:
        """After a fork: forget the inherited connection without closing or using it."""
        if self._db is not None:
            _INHERITED.append(self._db)
            self._db = None

    def close(self) -> None:
        conn, self._db = self._db, None
        if conn is not None:
            conn.close()


def create_private(path: str) -> bool:
    """Create ``path`` owner-only (0600 whatever the umask) unless it exists; True if created.

    An existing file is not opened: closing any descriptor of a database releases every
    POSIX lock this process holds on it, including those of open SQLite connections.
    (``O_EXCL`` never follows a symbolic link.)
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True
