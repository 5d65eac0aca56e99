"""The journal holds no pickles; old and newer formats are handled safely (issue 6, items 8, 16)."""

from __future__ import annotations

import logging
import mmap
import os
import pickle
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest

from cacheplug.errors import CacheplugError
from cacheplug.journal import FORMAT
from cacheplug.versions import HostVersions, VersionsUnavailable, fresh, host_versions


class _Plant:
    """Unpickling this creates ``path`` (a stand-in for any code an attacker would run)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _write_epoch(directory: Path, value: int) -> None:
    with open(directory / "epoch", "wb") as f:
        f.write(struct.pack("q", value).ljust(mmap.PAGESIZE, b"\0"))


def _tables(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}
    finally:
        conn.close()


def test_a_first_release_journal_is_migrated_without_unpickling_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory, marker = tmp_path / "versions", tmp_path / "marker"
    (directory / "journal").mkdir(parents=True)
    _write_epoch(directory, 5)
    bomb = pickle.dumps(_Plant(marker))
    conn = sqlite3.connect(directory / "journal" / "journal.db")
    conn.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, tags BLOB NOT NULL)")
    conn.execute(
        "CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 0), "
        "seq INTEGER NOT NULL, versions BLOB NOT NULL)"
    )
    conn.executemany("INSERT INTO journal VALUES (?, ?)", [(seq, bomb) for seq in range(1, 6)])
    conn.execute("INSERT INTO snapshot VALUES (0, 3, ?)", (bomb,))
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="cacheplug"):
        store = HostVersions(str(directory))
    try:
        assert not marker.exists()
        assert store.epoch[0] == 5 and store.floor == 5  # everything stored before is stale
        assert len(store.incarnation) == 16
        assert sum("older release" in r.getMessage() for r in caplog.records) == 1
        tables = _tables(directory / "journal" / "journal.db")
        assert tables["journal"] == tables["snapshot"] == 0  # the pickles are gone
        assert store.bump(["a"]) == 6 and store.mirror == {"a": 6}
        again = HostVersions(str(directory))  # migrated once: a second open changes nothing
        try:
            assert again.incarnation == store.incarnation and again.floor == 5
            assert again.mirror == {"a": 6}
        finally:
            again.close()
    finally:
        store.close()
    assert not marker.exists()


def test_a_pickled_record_in_the_new_journal_is_never_unpickled(tmp_path: Path) -> None:
    directory, marker = tmp_path / "versions", tmp_path / "marker"
    store = HostVersions(str(directory))
    reader = HostVersions(str(directory))
    try:
        store.bump(["a"])
        reader.sync()
        old_incarnation = store.incarnation
        conn = sqlite3.connect(directory / "journal" / "journal.db", isolation_level=None)
        conn.execute("INSERT INTO records VALUES (2, ?)", (pickle.dumps(_Plant(marker)),))
        conn.execute("INSERT INTO records VALUES (3, ?)", ('{"not": "a list"}',))
        conn.close()
        store.epoch[0] = 3  # as a crafted file would publish it
        reader.sync()  # meets the rows: they are not JSON lists of str, so the journal is corrupt
        assert not marker.exists()
        assert reader.incarnation != old_incarnation  # quarantined and rebuilt
        assert reader.floor >= 4 and reader.epoch[0] >= 4
        assert any(n.startswith("journal.corrupt-") for n in os.listdir(directory / "journal"))
        assert not fresh(reader.mirror, ["a"], 1) or reader.floor > 1
        seq = store.bump(["b"])  # the other process follows the rebuilt journal
        assert store.incarnation == reader.incarnation
        assert reader.sync() == seq and reader.mirror.get("b") == seq
    finally:
        store.close()
        reader.close()
    fresh_open = HostVersions(str(directory))
    fresh_open.close()
    assert not marker.exists()


def test_a_pickled_snapshot_is_never_unpickled(tmp_path: Path) -> None:
    directory, marker = tmp_path / "versions", tmp_path / "marker"
    HostVersions(str(directory)).close()
    conn = sqlite3.connect(directory / "journal" / "journal.db", isolation_level=None)
    conn.execute("INSERT INTO snapshots VALUES (0, 0, ?)", (pickle.dumps(_Plant(marker)),))
    conn.close()
    store = HostVersions(str(directory))
    try:
        assert not marker.exists()
        assert store.epoch[0] == 1 and store.floor == 1  # rebuilt, everything before is stale
        assert store.bump(["x"]) == 2
    finally:
        store.close()


def test_a_newer_format_journal_is_left_untouched_and_unreadable(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    store.bump(["a"])
    store.close()
    db = directory / "journal" / "journal.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(FORMAT + 1),))
    conn.close()
    before = {name: (directory / "journal" / name).read_bytes() for name in os.listdir(directory / "journal")}
    with pytest.raises(VersionsUnavailable, match="newer") as raised:
        HostVersions(str(directory))
    assert isinstance(raised.value, CacheplugError)
    with pytest.raises(VersionsUnavailable):
        host_versions(str(directory))
    after = {name: (directory / "journal" / name).read_bytes() for name in os.listdir(directory / "journal")}
    assert after == before


def test_a_tampered_record_met_on_open_is_never_interpreted(tmp_path: Path) -> None:
    directory, marker = tmp_path / "versions", tmp_path / "marker"
    store = HostVersions(str(directory))
    store.bump(["a"])
    incarnation = store.incarnation
    store.close()
    conn = sqlite3.connect(directory / "journal" / "journal.db", isolation_level=None)
    conn.execute("INSERT INTO records VALUES (2, ?)", (pickle.dumps(_Plant(marker)),))
    conn.close()
    _write_epoch(directory, 2)
    opened = HostVersions(str(directory))
    try:
        assert not marker.exists()
        assert opened.incarnation != incarnation and opened.floor >= 3
        assert opened.bump(["b"]) == opened.floor + 1
    finally:
        opened.close()
    assert not marker.exists()
