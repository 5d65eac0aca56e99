"""The disk tier's defences (issue 6, items 9 and 10): the directory check, owner-only files,
signed entries verified before anything is unpickled, and rows diskcache would unpickle."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from cacheplug import MISS, Cache, DiskTier, MemoryTier, cached
from cacheplug.envelope import Entry
from cacheplug.errors import ConfigurationError
from cacheplug.tiers.disk import directory_problem
from tests.disk_support import Touch, in_child, modes_under, raw_db

SECRET = "tier-secret-0123456789"
KEY = "|fn:app.f@0123456789ab(i1)"


def _entry(value: Any) -> Entry:
    return Entry(value, 100.0, None, 0, ("user:1",))


def _round_trip(tier: DiskTier) -> None:
    tier.set(KEY, _entry("v"))
    assert tier.get(KEY).value == "v"
    tier.close()


def _unsafe(tmp_path: Path, kind: str) -> Path:
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    if kind == "other-owner":
        os.chown(target, 65534, 65534)
        return target
    if kind == "world-writable":
        target.chmod(0o777)
        return target
    link = tmp_path / "link"
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("kind", ["other-owner", "world-writable", "symlink"])
def test_unsafe_directory_is_refused_without_a_secret_and_accepted_with_one(
    tmp_path: Path, kind: str
) -> None:
    directory = _unsafe(tmp_path, kind)
    assert directory_problem(str(directory)) is not None
    with pytest.raises(ConfigurationError, match="secret") as info:
        DiskTier(directory)
    assert "chmod 700" in str(info.value) and "CACHEPLUG_DIR" in str(info.value)
    _round_trip(DiskTier(directory, secret=SECRET))


def test_directory_problem_accepts_own_private_or_absent_folders(tmp_path: Path) -> None:
    assert directory_problem(str(tmp_path)) is None
    assert directory_problem(str(tmp_path / "absent")) is None
    readable = tmp_path / "readable"
    readable.mkdir(mode=0o755)
    assert directory_problem(str(readable)) is None
    (tmp_path / "group").mkdir()
    (tmp_path / "group").chmod(0o770)
    assert "group- or world-writable" in (directory_problem(str(tmp_path / "group")) or "")


def test_every_file_and_folder_is_owner_only_under_umask_000(tmp_path: Path) -> None:
    """Item 10: under umask 000 nothing under the tier's directory has group or other bits."""
    directory = tmp_path / "cache" / "tier"

    def body() -> dict[str, int]:
        os.umask(0)
        tier = DiskTier(directory)
        tier.set("small", _entry("v"))
        tier.set("large", _entry(b"x" * 100_000))  # above diskcache's file size: a value file
        assert tier.get("large").value == b"x" * 100_000
        signed = DiskTier(directory, secret=SECRET)
        signed.set(KEY, _entry("v"))
        return modes_under(directory)  # while open: the -wal and -shm files exist

    modes = in_child(body)
    assert any(path.endswith(".val") for path in modes), "no value file was written"
    assert any(path.endswith("-wal") for path in modes) or any(path.endswith("-shm") for path in modes)
    loose = {path: f"{mode:o}" for path, mode in modes.items() if mode & 0o077}
    assert not loose


def test_crafted_pickle_in_cache_db_does_not_run_with_a_secret(tmp_path: Path) -> None:
    """Item 9: a pickle stored for an existing key by another writer is a miss, deleted."""
    marker = tmp_path / "ran"
    tier = DiskTier(tmp_path / "tier", secret=SECRET)
    tier.set(KEY, _entry("good"))
    evil = pickle.dumps((Touch(marker), 1.0, None, 0, (), 0, ""), 5)
    with raw_db(tmp_path / "tier") as con:
        (good,) = con.execute("SELECT value FROM Cache WHERE key = ?", (KEY,)).fetchone()
        for forged in (b"CP\x02p" + evil, good[:44] + evil, evil):
            con.execute("UPDATE Cache SET value = ? WHERE key = ?", (forged, KEY))
            assert tier.get(KEY) is MISS
            con.execute("INSERT OR IGNORE INTO Cache (key, raw, value, mode) VALUES (?, 1, ?, 1)", (KEY, b""))
    assert not marker.exists()
    assert tier.tampered == 2 and tier.corrupt == 1
    tier.close()


def test_format_1_pickle_is_not_run_and_left_for_the_old_release(tmp_path: Path) -> None:
    """Item 16: without a secret too, the pickles written by earlier releases are never loaded."""
    marker = tmp_path / "ran"
    tier = DiskTier(tmp_path / "tier")
    tier._dc.set(KEY, pickle.dumps((1, Touch(marker), 100.0, None, 3, (), 0), 5))
    assert tier.get(KEY) is MISS
    assert tier.foreign == 1 and KEY in tier._dc  # counted, not deleted
    assert not marker.exists()
    tier.close()


@pytest.mark.parametrize("secret", [None, SECRET])
def test_rows_in_diskcache_pickle_mode_are_never_unpickled(tmp_path: Path, secret: str | None) -> None:
    """diskcache unpickles rows in its pickle mode (4) by itself: the tier refuses them."""
    marker = tmp_path / "ran"
    tier = DiskTier(tmp_path / "tier", secret=secret)
    tier.set(KEY, _entry("good"))
    evil = pickle.dumps(Touch(marker), 5)
    with raw_db(tmp_path / "tier") as con:
        con.execute("UPDATE Cache SET mode = 4, value = ? WHERE key = ?", (evil, KEY))
        con.execute("INSERT INTO Cache (key, raw, mode, value) VALUES (?, 0, 1, ?)", (evil, b"x"))
    assert tier.get(KEY) is MISS
    assert tier.corrupt == 1
    keys = tier.keys()
    assert keys == []  # listing keys does not unpickle the pickled one either
    assert not marker.exists()
    tier.close()


def test_value_file_names_outside_the_folder_are_neither_read_nor_deleted(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.write_bytes(b"CP\x02p" + pickle.dumps(("stolen", 1.0, None, 0, (), 0, ""), 5))
    tier = DiskTier(tmp_path / "tier")
    tier.set(KEY, _entry("good"))
    with raw_db(tmp_path / "tier") as con:
        con.execute(
            "UPDATE Cache SET mode = 2, filename = ?, value = NULL WHERE key = ?", (str(outside), KEY)
        )
    assert tier.get(KEY) is MISS  # corrupt: deleted, and the named file left alone
    assert outside.exists() and tier.corrupt == 1
    tier.close()


def test_tampered_entry_is_recomputed_by_a_cached_call(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "tier", secret=SECRET)
    calls: list[int] = []
    with Cache([MemoryTier(), tier]) as cache:

        @cached(cache=cache)
        def square(x: int) -> int:
            calls.append(x)
            return x * x

        assert square(3) == 9
        key = square.cache_key(3)
        stored = tier._dc.read(key)
        forged = stored[:-2] + bytes([stored[-2] ^ 1]) + stored[-1:]
        tier._dc.set(key, forged)
        cache.tiers[0].clear()
        assert square(3) == 9
        assert calls == [3, 3] and tier.tampered == 1
