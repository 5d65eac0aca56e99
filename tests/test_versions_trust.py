"""The host version store trusts only what this user alone can write; a truncated journal heals."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import cacheplug.versions
from cacheplug.errors import InvalidationError
from cacheplug.versions import HostVersions, VersionsUnavailable, host_versions

from .versions_support import in_child, wait_child

NOBODY = 65534


def _made(tmp_path: Path) -> Path:
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    store.bump(["a"])
    store.close()
    return directory


def _symlinked(path: Path) -> None:
    aside = path.with_name(path.name + ".real")
    shutil.move(str(path), str(aside))
    path.symlink_to(aside)


UNSAFE: dict[str, Callable[[Path], None]] = {
    "versions 0777": lambda d: d.chmod(0o777),
    "versions owned by nobody": lambda d: os.chown(d, NOBODY, NOBODY),
    "versions symlink": _symlinked,
    "journal folder 0777": lambda d: (d / "journal").chmod(0o777),
    "journal folder owned by nobody": lambda d: os.chown(d / "journal", NOBODY, NOBODY),
    "journal folder symlink": lambda d: _symlinked(d / "journal"),
    "journal.db 0666": lambda d: (d / "journal" / "journal.db").chmod(0o666),
    "journal.db owned by nobody": lambda d: os.chown(d / "journal" / "journal.db", NOBODY, NOBODY),
    "journal.db symlink": lambda d: _symlinked(d / "journal" / "journal.db"),
    "epoch 0666": lambda d: (d / "epoch").chmod(0o666),
    "epoch owned by nobody": lambda d: os.chown(d / "epoch", NOBODY, NOBODY),
    "epoch symlink": lambda d: _symlinked(d / "epoch"),
}


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give files to another user")


@pytest.mark.parametrize("variant", sorted(UNSAFE))
def test_an_unsafe_store_is_unavailable(tmp_path: Path, variant: str) -> None:
    directory = _made(tmp_path)
    UNSAFE[variant](directory)
    with pytest.raises(VersionsUnavailable) as raised:
        HostVersions(str(directory))
    message = str(raised.value)
    assert "another user could rewrite" in message and "chmod go-w" in message, message
    assert str(directory) in message
    with pytest.raises(VersionsUnavailable):
        host_versions(str(directory))


def test_an_owner_only_store_still_opens(tmp_path: Path) -> None:
    directory = _made(tmp_path)
    store = HostVersions(str(directory))
    try:
        assert store.writable and store.mirror == {"a": 1}
        assert store.bump(["b"]) == 2
    finally:
        store.close()


def test_a_store_made_unsafe_while_open_breaks_until_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watcher pinned: a round between the fix and check() would reopen first (check()
    # then rightly answers False). tests/test_versions_reopen.py drives that round by hand.
    monkeypatch.setattr(cacheplug.versions, "_WATCH_INTERVAL", 3600.0)
    directory = tmp_path / "versions"
    store = HostVersions(str(directory))
    try:
        store.bump(["a"])
        (directory / "journal").chmod(0o777)
        with pytest.raises(VersionsUnavailable, match="group- or world-writable"):
            store.check()
        with pytest.raises(VersionsUnavailable):
            store.sync()  # its epoch moved: the fast path rechecks, and the recheck fails
        with pytest.raises(InvalidationError):
            store.bump(["b"])
        (directory / "journal").chmod(0o700)
        generation = store.generation
        assert store.check()
        assert store.generation == generation + 1  # reopened once (it used to nest until RecursionError)
        assert store.bump(["b"]) > 1 and store.sync() == store.epoch[0]
    finally:
        store.close()


@pytest.fixture
def shared() -> Iterator[Path]:
    """A world-writable folder without sticky bit (as a careless /srv/cache)."""
    base = Path(tempfile.mkdtemp(prefix="cacheplug-trust-", dir="/tmp"))
    base.chmod(0o777)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_versions_folder_swapped_by_another_user_is_never_read(shared: Path) -> None:
    directory = shared / "versions"
    store = HostVersions(str(directory))
    try:
        store.bump(["a"])

        def attacker() -> None:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.rename(directory, shared / "versions.old")
            evil = HostVersions(str(directory))  # owner-only, but owned by nobody
            evil.bump(["x"])
            evil.close()

        assert in_child(attacker) == ""
        assert os.stat(directory).st_uid == NOBODY
        with pytest.raises(VersionsUnavailable, match="another user could rewrite"):
            store.check()
        with pytest.raises(VersionsUnavailable):
            store.sync()
        with pytest.raises(InvalidationError):
            store.bump(["b"])
        assert "x" not in store.mirror
        store._tick()  # the watcher's round keeps it broken, never reopened onto it
        assert store._broken is not None and "x" not in store.mirror
        assert os.stat(directory / "journal").st_uid == NOBODY  # nothing of root created in there
    finally:
        store.close()


def _read_line(fd: int, timeout: float) -> bytes:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no answer within {timeout} s (got {data!r})")
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        data += chunk
    return data.strip()


def test_a_journal_truncated_under_a_holder_is_rebuilt_and_the_holder_follows(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    cacheplug.versions._HOST.clear()
    to_parent, from_child = os.pipe()
    to_child, from_parent = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the holder)
        code = 1
        try:
            os.close(to_parent)
            os.close(from_parent)
            holder = HostVersions(str(directory))
            holder.bump(["a"])
            os.write(from_child, b"ready\n")
            os.read(to_child, 1)  # the parent truncated the journal and bumped
            reopened = holder.check()  # what its watcher does every round: the inode changed
            holder.sync()
            assert reopened
            os.write(from_child, f"{holder.mirror.get('b')} {holder.generation}\n".encode())
            holder.close()
            code = 0
        finally:
            os._exit(code)
    os.close(from_child)
    os.close(to_child)
    try:
        assert _read_line(to_parent, 10) == b"ready"
        db = directory / "journal" / "journal.db"
        assert (directory / "journal" / "journal.db-shm").exists()  # WAL mode, held open
        with open(db, "r+b") as f:
            f.truncate(0)
        started = time.monotonic()
        store = HostVersions(str(directory))  # a new process's store
        try:
            assert time.monotonic() - started < 5
            seq = store.bump(["b"])
            assert store.mirror.get("b") == seq
            assert db.stat().st_size > 0
            assert any(n.startswith("journal.corrupt-") for n in os.listdir(directory / "journal"))
            os.write(from_parent, b"g")
            seen, _generation = _read_line(to_parent, 10).split()
            assert int(seen) == seq
        finally:
            store.close()
    finally:
        os.close(from_parent)
        status = wait_child(pid, 10)
        os.close(to_parent)
    assert status is not None and os.waitstatus_to_exitcode(status) == 0


def test_a_journal_created_under_the_lock_is_never_left_empty(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    seen: list[int] = []
    store = HostVersions(str(directory))
    try:
        seen.append(os.stat(directory / "journal" / "journal.db").st_size)
        (directory / "journal" / "journal.db").unlink()
        for suffix in ("-wal", "-shm"):
            (directory / "journal" / f"journal.db{suffix}").unlink(missing_ok=True)
        assert store.check()  # recreated under the epoch lock, then filled before it is released
        seen.append(os.stat(directory / "journal" / "journal.db").st_size)
        assert not any(n.startswith("journal.corrupt-") for n in os.listdir(directory / "journal"))
    finally:
        store.close()
    assert all(size > 0 for size in seen), seen
