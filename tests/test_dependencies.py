"""Dependencies of the direct API (issue 7, "Also"): ``depends_on=`` and ``add_dependency``.

Invalidating a source key or tag makes every derived key stale, transitively, in every
process of the host; cycles end; edges are linked before the value is stored and dropped
when the derived key is invalidated or expires.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
import cacheplug.versions
from cacheplug import Cache, DiskTier, InvalidationError, MemoryTier
from cacheplug.middleware import Op

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["memory", "disk"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cache]:
    tiers: list[Any] = [MemoryTier()]
    if request.param == "disk":
        tiers.append(DiskTier(str(tmp_path / "disk")))
    with Cache(tiers) as built:
        yield built


def _edges(cache: Cache) -> int:
    versions: Any = cache.versions
    if isinstance(versions, cacheplug.versions.LocalVersions):
        return len(versions._edges)
    count: int = versions._journal.edges()
    return count


def _run(code: str, *args: str) -> None:
    """Run ``code`` in another interpreter (bounded in time); it must succeed."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_invalidating_a_source_key_makes_the_derived_key_stale(cache: Cache) -> None:
    cache.set("plan", "gold")
    cache.set("invoice", "gold invoice", depends_on=["plan"])
    cache.set("unrelated", 1)
    assert cache.get("invoice") == "gold invoice"
    cache.delete("plan")
    assert cache.get("invoice") is None
    assert cache.get("unrelated") == 1


def test_invalidating_a_source_tag_makes_the_derived_key_stale(cache: Cache) -> None:
    cache.set("report", "r1")
    cache.add_dependency("report", tags=["account:7"])
    cache.invalidate(tags=["account:8"])
    assert cache.get("report") == "r1"
    cache.invalidate(tags=["account:7"])
    assert cache.get("report") is None


def test_dependencies_are_transitive(cache: Cache) -> None:
    cache.set("rate", 1.1)
    cache.set("price", 11, depends_on=["rate"])
    cache.set("basket", 22, depends_on=["price"])
    cache.set("page", "<p>22</p>", depends_on=["basket"])
    epoch = cache.stats()["epoch"]
    cache.invalidate(keys=["rate"])
    assert cache.stats()["epoch"] == epoch + 1  # one invalidation for the whole chain
    assert [cache.get(k) for k in ("price", "basket", "page")] == [None, None, None]


def test_a_cycle_of_dependencies_terminates(cache: Cache) -> None:
    cache.set("a", 1)
    cache.set("b", 2, depends_on=["a"])
    cache.set("c", 3, depends_on=["b"])
    cache.add_dependency("a", ["c"])
    cache.invalidate(keys=["b"])
    assert [cache.get(k) for k in ("a", "b", "c")] == [None, None, None]


def test_get_or_compute_links_the_value_it_computes(cache: Cache) -> None:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_compute("total", compute, depends_on=["line:1"]) == 1
    assert cache.get_or_compute("total", compute, depends_on=["line:1"]) == 1
    cache.invalidate(keys=["line:1"])
    assert cache.get_or_compute("total", compute, depends_on=["line:1"]) == 2


def test_module_level_add_dependency_links_keys_of_the_default_cache() -> None:
    default = cacheplug.get_cache()
    default.set("user:1", "ada")
    default.set("greeting", "hello ada")
    cacheplug.add_dependency("greeting", ["user:1"])
    cacheplug.invalidate(keys=["user:1"])
    assert default.get("greeting") is None
    other = Cache([MemoryTier()])
    other.set("x", 1)
    cacheplug.add_dependency("x", tags=["t"], cache=other)
    cacheplug.invalidate(tags=["t"])
    assert other.get("x") is None


def test_the_edges_of_an_invalidated_derived_key_are_dropped(cache: Cache) -> None:
    cache.set("source", 1)
    cache.set("derived", 2, depends_on=["source", "other"])
    assert _edges(cache) == 2
    cache.delete("derived")
    assert _edges(cache) == 0
    cache.set("derived", 3)  # stored again without dependencies: a source no longer reaches it
    cache.delete("source")
    assert cache.get("derived") == 3


def test_the_edges_of_an_expired_derived_key_are_pruned(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.set("source", 1)
    cache.set("short", 2, ttl=30, depends_on=["source"])
    cache.set("forever", 3, depends_on=["source"])
    assert _edges(cache) == 2
    # Only the edges' clock moves past "short"'s expiry (the entry's is the real clock).
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: time.time() + 60)
    cache.delete("source")  # the walk ignores the expired edge and deletes it
    assert _edges(cache) == 0
    assert cache.get("forever") is None


def test_edges_expire_with_the_entry_ttl_not_before(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.set("source", 1)
    cache.set("derived", 2, ttl=30, depends_on=["source"])
    monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: time.time() + 29)  # still unexpired
    cache.delete("source")
    assert cache.get("derived") is None


def test_a_cache_with_its_own_clock_keeps_edges_until_invalidated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], float]
) -> None:
    cache = Cache([MemoryTier(), DiskTier(str(tmp_path / "disk"))], clock=clock)
    try:
        cache.set("source", 1)
        cache.set("derived", 2, ttl=30, depends_on=["source"])
        monkeypatch.setattr(cacheplug.versions, "_NOW", lambda: time.time() + 3600)
        cache.delete("source")  # the fake clock cannot be compared with the wall clock
        assert cache.get("derived") is None
    finally:
        cache.close()


def test_a_source_invalidated_while_the_derived_value_computes_is_never_stored(cache: Cache) -> None:
    def compute() -> str:
        cache.delete("plan")  # a write lands while the value is computed from the old plan
        return "stale"

    assert cache.get_or_compute("invoice", compute, depends_on=["plan"]) == "stale"
    assert cache.get("invoice") is None
    assert cache.stats()["stale_sets"] == 1


def test_the_edges_exist_before_the_value_is_stored(tmp_path: Path) -> None:
    seen: list[int] = []
    holder: list[Cache] = []

    def watch(op: Op, call_next: Callable[[Op], Any]) -> Any:
        if op.kind == "set":
            seen.append(_edges(holder[0]))
            holder[0].invalidate(keys=["plan"])  # the source changes just before the store
        return call_next(op)

    cache = Cache([MemoryTier(), DiskTier(str(tmp_path / "disk"))], middleware=[watch])
    holder.append(cache)
    try:
        cache.set("invoice", "old", depends_on=["plan"])
        assert seen == [1]  # linked when the store began
        assert cache.get("invoice") is None  # so the invalidation reached it: not stored fresh
    finally:
        cache.close()


def test_a_link_that_cannot_be_recorded_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache([MemoryTier(), DiskTier(str(tmp_path / "disk"))])
    try:

        def broken(*args: Any) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(cache.versions._journal, "add_edges", broken)  # type: ignore[attr-defined]
        cache.set("plain", 1)
        cache.set("derived", 2, depends_on=["plain"])
        assert cache.get("derived") is None  # an unlinked value would outlive its source
        assert cache.get_or_compute("computed", lambda: 3, depends_on=["plain"]) == 3
        assert cache.get("computed") is None
        assert cache.stats()["faults"]["versions.depend"] == 2
        with pytest.raises(InvalidationError, match="dependency"):
            cache.add_dependency("plain", ["other"])
    finally:
        cache.close()


def test_bad_arguments_fail_fast(cache: Cache) -> None:
    with pytest.raises(cacheplug.ConfigurationError):
        cache.set("k", 1, depends_on="plan")  # type: ignore[arg-type]
    with pytest.raises(cacheplug.ConfigurationError):
        cache.add_dependency("k", tags="plan")  # type: ignore[arg-type]
    with pytest.raises(cacheplug.ConfigurationError):
        cache.add_dependency("k", ["a"], ttl=-1)


_INVALIDATE = """
import sys
from cacheplug import Cache, DiskTier, MemoryTier

with Cache([MemoryTier(), DiskTier(sys.argv[1])]) as cache:
    if sys.argv[2] == "key":
        cache.invalidate(keys=[sys.argv[3]])
    else:
        cache.invalidate(tags=[sys.argv[3]])
"""

_STORE = """
import sys
from cacheplug import Cache, DiskTier, MemoryTier

with Cache([MemoryTier(), DiskTier(sys.argv[1])]) as cache:
    cache.set("summary", "computed elsewhere", depends_on=["orders"])
"""


def test_invalidating_a_source_in_another_process_makes_a_derived_key_here_stale(tmp_path: Path) -> None:
    directory = str(tmp_path / "disk")
    with Cache([MemoryTier(), DiskTier(directory)]) as cache:
        cache.set("orders", [1, 2])
        cache.set("total", 3, depends_on=["orders"])
        cache.set("page", "total: 3", depends_on=["total"])
        cache.set("badge", "gold")
        cache.add_dependency("badge", tags=["account:1"])
        assert cache.get("page") == "total: 3"  # held in this process's memory tier
        _run(_INVALIDATE, directory, "key", "orders")
        assert cache.get("total") is None and cache.get("page") is None
        assert cache.get("badge") == "gold"
        _run(_INVALIDATE, directory, "tag", "account:1")
        assert cache.get("badge") is None


def test_edges_recorded_by_another_process_are_walked_here(tmp_path: Path) -> None:
    directory = str(tmp_path / "disk")
    _run(_STORE, directory)
    with Cache([MemoryTier(), DiskTier(directory)]) as cache:
        assert cache.get("summary") == "computed elsewhere"
        cache.invalidate(keys=["orders"])
        assert cache.get("summary") is None
