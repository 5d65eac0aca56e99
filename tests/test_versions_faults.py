"""Faults of the host version store: read-only, corrupt, unreachable, deleted (issue 6, items 4, 5)."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cacheplug.errors import InvalidationError
from cacheplug.invalidation import key_tag
from cacheplug.versions import HostVersions, VersionsUnavailable, fresh, host_versions

from .versions_support import in_child

NOBODY = 65534


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@pytest.fixture
def nobody_dir() -> Iterator[str]:
    """A folder owned by ``nobody`` that ``nobody`` can reach (tmp_path is root-only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user (as that user, permission bits apply anyway)")
    base = tempfile.mkdtemp(prefix="cacheplug-ro-", dir="/tmp")
    os.chown(base, NOBODY, NOBODY)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_read_only_store_serves_reads_and_fails_bumps_closed(nobody_dir: str) -> None:
    """As an unprivileged user (root ignores permission bits) over folders chmod 0500."""

    def body() -> None:
        _drop_to_nobody()
        directory = os.path.join(nobody_dir, "versions")
        writer = HostVersions(directory)
        seq = writer.bump(["a"])
        writer.close()  # SQLite removes -wal/-shm with its last connection
        for folder in (directory, os.path.join(directory, "journal")):
            os.chmod(folder, 0o500)
        store = HostVersions(directory)
        assert not store.writable
        assert store.sync() == seq and store.mirror == {"a": seq}
        assert not fresh(store.mirror, ["a"], seq - 1)
        with pytest.raises(InvalidationError, match="read-only"):
            store.bump(["b"])
        with pytest.raises(InvalidationError, match="of 1 tag and 1 key"):  # not "2 tag(s)"
            store.bump(["b", key_tag("k")])
        assert store.epoch[0] == seq and store.sync() == seq
        store.close()

    assert in_child(body) == ""


def test_a_read_only_store_sees_invalidations_recorded_by_its_owner(nobody_dir: str) -> None:
    """The owner still writes (root here); the read-only process follows."""
    directory = os.path.join(nobody_dir, "versions")
    owner = HostVersions(directory)
    owner.bump(["a"])
    for root, dirs, files in os.walk(nobody_dir):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    os.chmod(nobody_dir, 0o755)
    read, write = os.pipe()
    go_read, go_write = os.pipe()

    def body() -> None:
        _drop_to_nobody()
        store = HostVersions(directory)
        assert not store.writable and store.mirror.get("a") == 1
        os.write(write, b"r")
        os.read(go_read, 1)
        assert store.sync() == 2 and store.mirror.get("b") == 2

    def run() -> str:
        return in_child(body)

    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(run()))
    thread.start()
    try:
        assert os.read(read, 1) == b"r"
        owner.bump(["b"])
    finally:
        os.write(go_write, b"g")
        thread.join(30)
        owner.close()
    assert result == [""]


def test_a_corrupt_journal_is_moved_aside_and_rebuilt_with_a_new_incarnation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    for i in range(5):
        store.bump([f"t{i}"])
    incarnation, epoch = store.incarnation, store.epoch[0]
    store.close()
    db = directory / "journal" / "journal.db"
    for suffix in ("-wal", "-shm"):
        (directory / "journal" / f"journal.db{suffix}").unlink(missing_ok=True)
    db.write_bytes(os.urandom(8192))
    with caplog.at_level(logging.WARNING, logger="cacheplug"):
        rebuilt = HostVersions(str(directory))
    try:
        assert rebuilt.incarnation != incarnation
        assert rebuilt.epoch[0] == epoch + 1  # other processes' fast paths recheck...
        assert rebuilt.floor == epoch + 1  # ...and nothing from before is judged fresh
        aside = [n for n in os.listdir(directory / "journal") if n.startswith("journal.corrupt-")]
        assert aside, os.listdir(directory / "journal")
        assert any("corrupt" in r.getMessage() for r in caplog.records)
        assert rebuilt.bump(["x"]) == epoch + 2 and rebuilt.mirror == {"x": epoch + 2}
    finally:
        rebuilt.close()


def test_a_journal_corrupted_under_an_open_store_is_rebuilt_on_the_next_bump(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    other = HostVersions(str(directory))
    try:
        store.bump(["a"])
        incarnation = store.incarnation
        db = directory / "journal" / "journal.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file, none in the WAL
        conn.close()
        size = db.stat().st_size
        with open(db, "r+b") as f:
            f.write(os.urandom(size))
        seq = other.bump(["b"])
        assert other.incarnation != incarnation and other.floor >= 2
        assert store.sync() == seq and store.incarnation == other.incarnation
        assert store.mirror.get("b") == seq and store.floor >= 2  # entries from before are stale
        seq = other.bump(["c"])
        assert store.sync() == seq and store.mirror.get("c") == seq
    finally:
        store.close()
        other.close()


def test_a_directory_that_cannot_be_created_raises_versions_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(VersionsUnavailable, match="cannot read the invalidations"):
        HostVersions(str(blocker / "versions"))
    with pytest.raises(VersionsUnavailable):
        host_versions(str(blocker / "versions"))


def test_an_unreadable_directory_raises_versions_unavailable(nobody_dir: str) -> None:
    directory = os.path.join(nobody_dir, "versions")
    HostVersions(directory).close()  # owned by root, 0700: nobody can neither read nor write it

    def body() -> None:
        _drop_to_nobody()
        with pytest.raises(VersionsUnavailable):
            HostVersions(directory)

    assert in_child(body) == ""


def test_every_file_and_folder_of_the_store_is_owner_only_under_umask_0(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "versions"

    def body() -> None:
        os.umask(0)
        store = HostVersions(str(directory))
        for i in range(3):
            store.bump([f"t{i}"])
        loose = []
        for root, dirs, files in os.walk(tmp_path / "deep"):
            for name in dirs + files:
                mode = os.stat(os.path.join(root, name)).st_mode
                if stat.S_IMODE(mode) & 0o077:
                    loose.append((name, oct(stat.S_IMODE(mode))))
        assert not loose, loose
        assert os.path.exists(os.path.join(directory, "journal", "journal.db-wal"))  # WAL files checked too

    assert in_child(body) == ""


def test_a_bump_waits_for_a_held_epoch_lock_only_boundedly(tmp_path: Path) -> None:
    store = HostVersions(str(tmp_path / "versions"), timeout=0.3)
    seq = store.bump(["a"])
    holder = os.open(tmp_path / "versions" / "epoch", os.O_RDWR)  # another open file description
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(InvalidationError, match="epoch lock"):
            store.bump(["b"])
        assert store.epoch[0] == seq
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    assert store.bump(["b"]) == seq + 1
    store.close()


def test_a_short_epoch_file_is_extended_and_raised_to_the_journal(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    for i in range(4):
        store.bump([f"t{i}"])
    store.close()
    (directory / "epoch").write_bytes(b"\x01")
    again = HostVersions(str(directory))
    try:
        assert again.epoch[0] == 4 and again.mirror == {f"t{i}": i + 1 for i in range(4)}
        assert again.bump(["x"]) == 5
    finally:
        again.close()


class _Recorder:
    def __init__(self) -> None:
        self.reopened = threading.Event()
        self.ticks = threading.Event()

    def heard(self, reopened: bool) -> None:
        self.ticks.set()
        if reopened:
            self.reopened.set()


def test_a_deleted_directory_is_noticed_and_reopened_by_the_watcher(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    recorder = _Recorder()
    store.add_listener(recorder.heard)
    try:
        store.bump(["a"])
        incarnation, generation, epoch = store.incarnation, store.generation, store.epoch[0]
        old_view = store.epoch
        shutil.rmtree(directory)
        assert recorder.reopened.wait(5), "the watcher did not notice the deleted directory"
        assert old_view[0] != epoch  # a fast path still reading the old counter rechecks
        assert store.incarnation != incarnation and store.generation > generation
        assert store.floor > epoch  # nothing from before the deletion is judged fresh
        other = HostVersions(str(directory))
        try:
            seq = other.bump(["b"])
            assert store.sync() == seq and store.mirror.get("b") == seq
        finally:
            other.close()
    finally:
        store.close()


def test_a_bump_in_a_replaced_directory_reopens_first(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    heard: list[bool] = []

    def listener(reopened: bool) -> None:
        heard.append(reopened)

    store.add_listener(listener)
    try:
        store.bump(["a"])
        shutil.rmtree(directory)
        newcomer = HostVersions(str(directory))  # recreated by another process first
        newcomer.bump(["b"])
        seq = store.bump(["c"])  # records in the new directory, not in deleted files
        assert newcomer.sync() == seq and newcomer.mirror.get("c") == seq
        assert store.incarnation == newcomer.incarnation and True in heard
        newcomer.close()
    finally:
        store.close()


def test_a_failing_listener_is_logged_and_the_watcher_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = HostVersions(str(tmp_path / "versions"))
    recorder = _Recorder()
    calls = threading.Event()

    def broken(reopened: bool) -> None:
        calls.set()
        raise RuntimeError("listener bug")

    with caplog.at_level(logging.WARNING, logger="cacheplug"):
        store.add_listener(broken)
        store.add_listener(recorder.heard)
        assert calls.wait(5) and recorder.ticks.wait(5)
        recorder.ticks.clear()
        assert recorder.ticks.wait(5)  # still ticking after the exception
    assert any("listener bug" in r.getMessage() for r in caplog.records)
    watcher = store._watcher
    store.close()
    assert watcher is not None and not watcher.is_alive()  # close() joins its watcher


def test_a_directory_replaced_by_a_file_fails_closed_until_it_can_be_recreated(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    recorder = _Recorder()
    store.add_listener(recorder.heard)
    try:
        epoch = store.bump(["a"])
        shutil.rmtree(directory)
        directory.write_text("in the way")
        with pytest.raises(InvalidationError):
            store.bump(["b"])
        assert store.epoch[0] == epoch + 1  # the old counter moved: every fast path rechecks...
        with pytest.raises(VersionsUnavailable):
            store.sync()  # ...and the recheck cannot judge anything fresh
        directory.unlink()
        assert recorder.reopened.wait(5), "the watcher did not reopen the store once it could"
        seq = store.bump(["c"])
        assert store.sync() == seq and store.floor > epoch
    finally:
        store.close()
