"""The tag-version mirror is bounded: older versions fold into the floor (issue 7, "Also")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug.versions
from cacheplug import Cache, DiskTier, MemoryTier
from cacheplug.versions import HostVersions, LocalVersions, fresh

BOUND = 8


@pytest.fixture(autouse=True)
def _tiny_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacheplug.versions, "_MIRROR_MAX", BOUND)


@pytest.fixture(params=["local", "host"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    built: Any = LocalVersions() if request.param == "local" else HostVersions(str(tmp_path / "versions"))
    yield built
    built.close()


def _judged_fresh(store: Any, tags: list[str], seq: int) -> bool:
    """The coordinator's judgement of an entry checked at ``seq`` (``Cache._untouched_since``)."""
    return seq >= store.floor and fresh(store.mirror, tags, seq)


def test_many_distinct_tags_keep_the_mirror_bounded(store: Any) -> None:
    for i in range(1000):
        store.bump([f"tag:{i}"])
        assert len(store.mirror) <= BOUND
    assert store.floor > 900  # the folded versions are below the floor


def test_an_entry_older_than_the_floor_is_stale_and_a_newer_one_fresh(store: Any) -> None:
    old = store.bump(["a"])
    for i in range(50):
        store.bump([f"tag:{i}"])
    assert "a" not in store.mirror  # folded away...
    assert not _judged_fresh(store, ["a"], old - 1)  # ...so what it may have hidden is stale
    assert not _judged_fresh(store, ["b"], old)
    now = store.sync()
    assert _judged_fresh(store, ["b"], now)
    assert not _judged_fresh(store, ["tag:49"], now - 1)  # still in the mirror: judged by its version


def test_a_fold_forgets_the_oldest_versions_whatever_their_order(store: Any) -> None:
    store.bump(["a"])
    for i in range(BOUND - 1):
        store.bump([f"tag:{i}"])
    store.bump(["a"])  # a is now the newest, though it entered the mirror first
    store.bump(["one more"])  # over the bound: folds
    assert "a" in store.mirror and "tag:0" not in store.mirror
    assert store.floor >= 2


class _Watched(dict[str, int]):
    """A mirror that checks, after every change, that no version a reader could see went away."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.high: dict[str, int] = dict(self)
        self.hidden: list[tuple[str, int, int]] = []

    def _check(self) -> None:
        for tag, version in self.high.items():
            seen = dict.get(self, tag, 0)
            if seen < version:
                self.hidden.append((tag, version, seen))
        self.high.update(self)

    def __setitem__(self, tag: str, version: int) -> None:
        super().__setitem__(tag, version)
        self._check()

    def pop(self, tag: str, *default: Any) -> Any:
        found = super().pop(tag, *default)
        self._check()
        return found

    def __delitem__(self, tag: str) -> None:
        super().__delitem__(tag)
        self._check()


def test_a_bump_never_hides_a_tag_s_version_from_a_concurrent_reader() -> None:
    """The stale read of tests/test_invalidation_stress.py under load: a second invalidation of
    a tag took the tag out of the mirror before putting its new version in, and a reader in
    between saw the tag as never invalidated."""
    store = LocalVersions()
    store.mirror = _Watched()
    store.bump(["item:41"])
    store.bump(["item:41", "other"])
    store.bump(["item:41"])
    assert isinstance(store.mirror, _Watched) and store.mirror.hidden == []
    assert store.mirror["item:41"] == 3


def test_a_snapshot_holds_the_folded_floor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacheplug.versions, "_SNAPSHOT_EVERY", 16)
    directory = str(tmp_path / "versions")
    store = HostVersions(directory)
    try:
        for i in range(40):
            store.bump([f"tag:{i}"])
        late = HostVersions(directory)  # starts from the snapshot and the records after it
        try:
            assert late.floor >= 16 and len(late.mirror) <= BOUND
            assert late.sync() == store.sync()
        finally:
            late.close()
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_cache_serves_a_fresh_entry_and_refuses_one_older_than_the_floor(kind: str, tmp_path: Path) -> None:
    tiers: list[Any] = [MemoryTier()]
    if kind == "disk":
        tiers.append(DiskTier(str(tmp_path / "disk")))
    with Cache(tiers) as cache:
        cache.set("old", 1, tags=["kept"])
        for i in range(100):
            cache.invalidate(tags=[f"item:{i}"])
        assert len(cache.versions.mirror) <= BOUND
        cache.set("new", 2, tags=["kept"])
        assert cache.get("old") is None  # older than every version the mirror still holds
        assert cache.get("new") == 2


def test_a_fold_never_removes_a_version_from_the_mirror_a_reader_holds(store: Any) -> None:
    """A reader takes the mirror, then the floor: what it holds must still know every version."""
    for i in range(BOUND):
        store.bump([f"tag:{i}"])
    held, floor = store.mirror, store.floor
    before = dict(held)
    store.bump(["one more"])  # over the bound: folds
    assert store.floor > floor and store.mirror is not held
    assert all(held[tag] == version for tag, version in before.items())
