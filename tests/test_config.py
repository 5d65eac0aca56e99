"""Configuration: arguments, then CACHEPLUG_* variables, then defaults; the default cache."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, DiskTier, MemoryTier, cached, configure, get_cache
from cacheplug.envelope import Entry
from cacheplug.errors import TierUnavailable
from cacheplug.settings import default_directory
from tests.conftest import FakeClock


def _kinds(cache: Cache) -> list[str]:
    return [type(t).__name__ for t in cache.tiers]


def test_default_cache_is_memory_then_disk_in_cacheplug_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "configured"
    monkeypatch.setenv("CACHEPLUG_DIR", str(directory))
    cache = get_cache()
    assert get_cache() is cache
    assert _kinds(cache) == ["MemoryTier", "DiskTier"]
    assert cache.tiers[1].directory == str(directory)
    assert str(directory) in repr(cache)
    assert cache.default_ttl is None
    assert cache.memory is not None and cache.memory.max_entries == 10_000
    assert cache.enabled


def test_default_ttl_from_the_environment(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    monkeypatch.setenv("CACHEPLUG_DEFAULT_TTL", "30")
    assert get_cache().default_ttl == 30.0
    configure(clock=clock)  # the variable applies to a cache rebuilt with explicit settings too
    calls: list[int] = []

    @cached
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    clock.advance(29)
    f(1)
    clock.advance(1)
    f(1)
    assert calls == [1, 1]


def test_explicit_settings_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_DEFAULT_TTL", "30")
    monkeypatch.setenv("CACHEPLUG_MAX_ENTRIES", "50")
    cache = configure(default_ttl=5, max_entries=7, tiers="memory")
    assert cache.default_ttl == 5.0
    assert cache.memory is not None and cache.memory.max_entries == 7
    assert get_cache() is cache


def test_max_entries_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_MAX_ENTRIES", "2")
    cache = get_cache()
    assert cache.memory is not None and cache.memory.max_entries == 2

    @cached
    def f(x: int) -> int:
        return x

    for i in range(5):
        f(i)
    assert f.cache_info().currsize == 2


@pytest.mark.parametrize(
    ("value", "kinds"),
    [("memory", ["MemoryTier"]), ("disk", ["DiskTier"]), (" Memory , DISK ", ["MemoryTier", "DiskTier"])],
)
def test_tiers_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, kinds: list[str]) -> None:
    monkeypatch.setenv("CACHEPLUG_TIERS", value)
    assert _kinds(get_cache()) == kinds


def test_memory_only_default_keeps_nothing_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "never-created"
    monkeypatch.setenv("CACHEPLUG_DIR", str(directory))
    monkeypatch.setenv("CACHEPLUG_TIERS", "memory")

    @cached
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    assert f.cache_info().hits == 1
    assert not directory.exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CACHEPLUG_DEFAULT_TTL", "soon"),
        ("CACHEPLUG_DEFAULT_TTL", "-1"),
        ("CACHEPLUG_MAX_ENTRIES", "many"),
        ("CACHEPLUG_MAX_ENTRIES", "0"),
        ("CACHEPLUG_MAX_ENTRIES", "1.5"),
        ("CACHEPLUG_TIERS", "memory,redis"),
        ("CACHEPLUG_TIERS", "disk,memory"),
        ("CACHEPLUG_TIERS", "memory,memory"),
        ("CACHEPLUG_ENABLED", "maybe"),
    ],
)
def test_invalid_variable_raises_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        get_cache()
    with pytest.raises(ConfigurationError, match=name):
        configure()


def test_variables_are_read_when_the_cache_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_cache()
    monkeypatch.setenv("CACHEPLUG_DEFAULT_TTL", "12")
    assert get_cache() is first
    assert first.default_ttl is None
    rebuilt = configure()
    assert rebuilt is not first
    assert rebuilt.default_ttl == 12.0
    assert first.closed  # cacheplug built it, so configure() closed it


def test_configure_with_a_cache_replaces_the_default(clock: FakeClock) -> None:
    mine = Cache([MemoryTier()], clock=clock)
    assert configure(cache=mine) is mine
    assert get_cache() is mine
    calls: list[int] = []

    @cached
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)
    assert mine.stats()["hits"] == 1
    other = Cache([MemoryTier()], clock=clock)
    configure(cache=other)
    assert not mine.closed  # the caller built it: the caller closes it
    mine.close()


def test_configure_rejects_bad_arguments(memory_cache: Cache) -> None:
    with pytest.raises(ConfigurationError):
        configure(cache="not a cache")
    with pytest.raises(ConfigurationError):
        configure(cache=memory_cache, default_ttl=5)
    with pytest.raises(ConfigurationError, match="colour"):
        configure(colour="blue")


def test_disabled_turns_cached_functions_into_pass_throughs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_ENABLED", "false")
    calls: list[int] = []

    @cached
    def f(x: int) -> int:
        calls.append(x)
        return x

    assert [f(1), f(1), f(1)] == [1, 1, 1]
    assert calls == [1, 1, 1]
    assert not get_cache().enabled


def test_disabled_cache_still_records_invalidations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A disabled process's invalidations reach the entries other (enabled) caches persisted."""
    monkeypatch.setenv("CACHEPLUG_DIR", str(tmp_path / "shared"))
    calls: list[int] = []

    @cached
    def f(x: int) -> int:
        calls.append(x)
        return x

    configure()
    f(1)
    f(2)
    f(1)
    assert calls == [1, 2]

    monkeypatch.setenv("CACHEPLUG_ENABLED", "off")
    disabled = configure()
    assert not disabled.enabled
    f(1)
    assert calls == [1, 2, 1]  # pass-through
    f.invalidate(1)
    disabled.invalidate(tags=["report"])

    monkeypatch.setenv("CACHEPLUG_ENABLED", "on")
    configure()  # a fresh memory tier over the same disk tier
    f(2)
    assert calls == [1, 2, 1]  # untouched entry: served from disk
    f(1)
    assert calls == [1, 2, 1, 1]  # invalidated while disabled: recomputed


def test_default_directory_is_per_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHEPLUG_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "alpha").mkdir()
    (tmp_path / "beta").mkdir()
    monkeypatch.chdir(tmp_path / "alpha")
    alpha = default_directory()
    assert alpha.startswith(str(tmp_path / "xdg"))
    assert "alpha" in os.path.basename(alpha)
    assert alpha in repr(get_cache())
    monkeypatch.chdir(tmp_path / "beta")
    beta = default_directory()
    assert beta != alpha
    assert beta in repr(configure())


def test_disk_directory_is_created_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_umask = os.umask(0o022)
    try:
        explicit = tmp_path / "explicit" / "nested"
        tier = DiskTier(explicit)
        tier.close()
        assert stat.S_IMODE(explicit.stat().st_mode) == 0o700

        via_env = tmp_path / "via-env"
        monkeypatch.setenv("CACHEPLUG_DIR", str(via_env))
        get_cache()
        assert stat.S_IMODE(via_env.stat().st_mode) == 0o700
    finally:
        os.umask(old_umask)


def test_uncreatable_directory_leaves_the_disk_tier_down_not_raising(tmp_path: Path) -> None:
    """Issue 6 item 4: an uncreatable path is a fault (the tier is down), not an error."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    tier = DiskTier(blocker / "sub")
    with pytest.raises(TierUnavailable, match="CACHEPLUG_DIR"):
        tier.get("k")
    with pytest.raises(TierUnavailable, match="CACHEPLUG_DIR"):
        tier.set("k", Entry(1, 0.0, None, 0))
    # The call path through a Cache is covered in tests/test_disk_faults.py.


def test_public_api_names_are_exported() -> None:
    for name in (
        "cached",
        "Cache",
        "MemoryTier",
        "DiskTier",
        "get_cache",
        "configure",
        "get_or_compute",
        "CacheKeys",
        "CacheplugError",
        "ConfigurationError",
    ):
        assert name in cacheplug.__all__
        assert hasattr(cacheplug, name)


def test_module_get_or_compute_uses_the_default_cache(memory_cache: Cache) -> None:
    configure(cache=memory_cache)
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return "v"

    assert cacheplug.get_or_compute("key", compute) == "v"
    assert cacheplug.get_or_compute("key", compute) == "v"
    assert calls == [1]
    assert memory_cache.get("key") == "v"


def test_redis_fixture_gives_a_reachable_server(redis_url: str) -> None:
    import redis  # the dev extra's client

    client: Any = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        client.set("cacheplug-test", b"ok")
        assert client.get("cacheplug-test") == b"ok"
        client.delete("cacheplug-test")
    finally:
        client.close()
