"""Dependency edges in the version stores: one bump, transitive, indexed, host-wide, recoverable."""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug.versions
from cacheplug.errors import InvalidationError
from cacheplug.journal import FORMAT
from cacheplug.versions import HostVersions, LocalVersions, fresh


@pytest.fixture(params=["local", "host"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    built: Any = LocalVersions() if request.param == "local" else HostVersions(str(tmp_path / "versions"))
    yield built
    built.close()


def _edges(store: Any) -> int:
    return len(store._edges) if isinstance(store, LocalVersions) else int(store._journal.edges())


def test_a_bump_of_a_source_bumps_its_dependents_with_the_same_number(store: Any) -> None:
    store.depend("d1", ["s"])
    store.depend("d2", ["d1", "t"])
    seq = store.bump(["s"])
    assert store.sync() == seq
    assert store.mirror["s"] == store.mirror["d1"] == store.mirror["d2"] == seq
    assert store.recent[-1] == (seq, frozenset({"s", "d1", "d2"}))
    assert "t" not in store.mirror


def test_a_cycle_is_walked_once(store: Any) -> None:
    store.depend("b", ["a"])
    store.depend("c", ["b"])
    store.depend("a", ["c"])
    seq = store.bump(["b"])
    assert {t: store.mirror[t] for t in "abc"} == dict.fromkeys("abc", seq)
    assert _edges(store) == 0  # every tag reached was bumped: their edges are gone


def test_edges_into_a_bumped_tag_are_dropped_and_others_kept(store: Any) -> None:
    store.depend("d", ["s1", "s2"])
    store.depend("e", ["d"])
    store.bump(["d"])  # d and e are bumped; the edge d -> e goes with e, s1/s2 -> d with d
    assert _edges(store) == 0
    store.depend("d", ["s1"])
    store.depend("x", ["s2"])
    seq = store.bump(["s2"])
    assert store.mirror["x"] == seq and store.mirror.get("d", 0) < seq
    assert _edges(store) == 1


def test_an_expired_edge_is_not_followed(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: 1000.0)
    store.depend("soon", ["s"], expires=1000.5)
    store.depend("later", ["s"], expires=2000.0)
    store.depend("never", ["s"])
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: 1001.0)
    seq = store.bump(["s"])
    assert store.mirror.get("soon", 0) < seq
    assert store.mirror["later"] == store.mirror["never"] == seq
    assert _edges(store) == 0


def test_recording_an_edge_again_keeps_the_later_expiry(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: 1000.0)
    store.depend("d", ["s"], expires=2000.0)
    store.depend("d", ["s"], expires=1500.0)  # a shorter-lived value must not cut the older one's link
    store.depend("f", ["s"])
    store.depend("f", ["s"], expires=1100.0)  # nor a never-expiring one's
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: 1600.0)
    seq = store.bump(["s"])
    assert store.mirror["d"] == store.mirror["f"] == seq


def test_bad_edges_are_refused(store: Any) -> None:
    with pytest.raises(TypeError):
        store.depend(1, ["s"])
    with pytest.raises(TypeError):
        store.depend("d", [b"s"])
    with pytest.raises(ValueError, match="expires"):
        store.depend("d", ["s"], expires=math.nan)
    store.depend("d", ["d"])  # an edge to itself is pointless: not recorded
    assert _edges(store) == 0


def test_memory_edges_stay_bounded_when_values_are_relinked(monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalVersions()
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: 0.0)
    for i in range(5000):
        store.depend("d", ["s"], expires=10.0 + i)  # relinked on every store, each with a later expiry
    assert _edges(store) == 1
    assert len(store._edges._expiring) <= 2 * 1 + 64 + 1


def test_another_store_on_the_directory_walks_the_edges(tmp_path: Path) -> None:
    writer = HostVersions(str(tmp_path / "versions"))
    other = HostVersions(str(tmp_path / "versions"))
    try:
        writer.depend("derived", ["source"])
        seq = other.bump(["source"])
        assert writer.sync() == seq and writer.mirror["derived"] == seq  # the record holds it
    finally:
        writer.close()
        other.close()


def test_a_failed_bump_leaves_the_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = HostVersions(str(tmp_path / "versions"))
    try:
        store.depend("d", ["s"])

        def full(*args: Any) -> None:
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(store._journal, "set", full)
            with pytest.raises(InvalidationError):
                store.bump(["s"])
        assert _edges(store) == 1  # the walk's deletions were rolled back with the record
        seq = store.bump(["s"])
        assert store.mirror["d"] == seq
    finally:
        store.close()


def test_expired_edges_never_walked_are_reclaimed_with_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cacheplug.versions, "_SNAPSHOT_EVERY", 4)
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: 1000.0)
    store = HostVersions(str(tmp_path / "versions"))
    try:
        for i in range(10):
            store.depend(f"d{i}", [f"s{i}"], expires=1001.0)
        store.depend("kept", ["s"])
        monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: 1002.0)
        for i in range(4):
            store.bump([f"other{i}"])
        assert _edges(store) == 1
    finally:
        store.close()


def test_the_edge_statements_of_a_bump_use_the_indexes(tmp_path: Path) -> None:
    store = HostVersions(str(tmp_path / "versions"))
    try:
        for i in range(200):
            store.depend(f"d{i}", [f"s{i}"], expires=None if i % 2 else 1.0)
        statements: list[str] = []
        conn = store._journal._conn()
        conn.set_trace_callback(statements.append)
        store.bump(["s1", "s2"])
        conn.set_trace_callback(None)
        # (The existence check in every bump reads at most one row: EXISTS stops there.)
        edge_statements = [s for s in statements if "edges WHERE" in s]
        assert len(edge_statements) >= 3  # the walk (two levels) and the drop
        for statement in edge_statements:
            plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
            assert "SCAN" not in plan, (statement, plan)
    finally:
        store.close()


def test_a_bump_without_any_edge_runs_no_edge_statement(tmp_path: Path) -> None:
    store = HostVersions(str(tmp_path / "versions"))
    try:
        store.bump(["warm"])
        statements: list[str] = []
        conn = store._journal._conn()
        conn.set_trace_callback(statements.append)
        store.bump(["a", "b"])
        conn.set_trace_callback(None)
        assert [s for s in statements if "FROM edges WHERE" in s] == []  # only the existence check
    finally:
        store.close()


def test_a_journal_of_the_previous_format_is_discarded_and_rebuilt(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    for tag in "abc":
        store.bump([tag])
    epoch, incarnation = store.epoch[0], store.incarnation
    store.close()
    conn = sqlite3.connect(directory / "journal" / "journal.db", isolation_level=None)
    conn.execute("DROP TABLE edges")  # what the previous release wrote
    conn.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(FORMAT - 1),))
    conn.close()
    rebuilt = HostVersions(str(directory))
    try:
        assert rebuilt.incarnation != incarnation and rebuilt.floor > epoch
        assert any(n.startswith("journal.corrupt-") for n in os.listdir(directory / "journal"))
        rebuilt.depend("d", ["s"])
        assert rebuilt.mirror.get("d", 0) < rebuilt.bump(["s"]) == rebuilt.mirror["d"]
    finally:
        rebuilt.close()


def test_a_journal_lost_under_a_live_epoch_starts_above_it(tmp_path: Path) -> None:
    """Entries checked at the current epoch may have had edges in the lost journal: stale."""
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    try:
        store.depend("derived", ["source"])
        epoch = store.bump(["x"])
        for suffix in ("", "-wal", "-shm"):
            (directory / "journal" / f"journal.db{suffix}").unlink(missing_ok=True)
        assert store.check()
        assert store.floor > epoch and store.epoch[0] >= store.floor  # an entry at seq == epoch is stale
        assert _edges(store) == 0
    finally:
        store.close()


def test_a_quarantined_journal_loses_its_edges_and_every_older_entry(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    try:
        store.depend("derived", ["source"])
        checked = store.sync()  # an entry stored now carries this seq
        conn = sqlite3.connect(directory / "journal" / "journal.db", isolation_level=None)
        conn.execute("INSERT INTO edges VALUES ('source', x'00ff', NULL)")  # not what we write
        conn.close()
        seq = store.bump(["source"])  # meets the row: quarantined, rebuilt, recorded there
        assert checked < store.floor <= seq
        assert any(n.startswith("journal.corrupt-") for n in os.listdir(directory / "journal"))
        assert _edges(store) == 0
        assert fresh(store.mirror, ["derived"], checked)  # its edge is lost, but...
        assert checked < store.floor  # ...every entry from before is stale anyway
    finally:
        store.close()
