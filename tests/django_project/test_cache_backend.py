"""The cache backend keeps Django's cache API semantics (a slice of Django's own backend tests).

Each test builds the real backend on a temporary directory (memory tier + disk tier), its
expiries judged by a fake clock: ``clock.advance(seconds)`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pickle
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import CacheKeyWarning, caches

import cacheplug
from cacheplug import ConfigurationError, DiskTier, InvalidationError, MemoryTier, batch, cached, state
from cacheplug.integrations.django import SettingsError
from cacheplug.integrations.django.cache import CacheplugCache
from cacheplug.integrations.django.locks import KeyLocks, LockTimeout

from ..conftest import FakeClock
from ..versions_support import in_child

Make = Callable[..., CacheplugCache]


def answer() -> int:
    return 42


class Thing:
    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thing) and other.n == self.n


class Unpicklable:
    def __getstate__(self) -> Any:
        raise pickle.PickleError("no")


@pytest.fixture
def make(tmp_path: Path, clock: FakeClock) -> Make:
    def build(location: str | None = None, **params: Any) -> CacheplugCache:
        options = {"clock": clock, **params.pop("OPTIONS", {})}
        return CacheplugCache(location or str(tmp_path / "cache"), {**params, "OPTIONS": options})

    return build


@pytest.fixture
def cache(make: Make) -> CacheplugCache:
    return make()


# -- get, set, add, delete ------------------------------------------------------------------------


def test_simple_get_and_set(cache: CacheplugCache) -> None:
    cache.set("key", "value")
    assert cache.get("key") == "value"
    assert cache.get("missing") is None
    assert cache.get("missing", "bang!") == "bang!"


def test_a_stored_none_is_returned_instead_of_the_default(cache: CacheplugCache) -> None:
    cache.set("key", None)
    assert cache.get("key", default="default") is None
    assert cache.has_key("key") and "key" in cache


def test_add_stores_only_when_the_key_holds_nothing(cache: CacheplugCache) -> None:
    assert cache.add("addkey", "value") is True
    assert cache.add("addkey", "newvalue") is False
    assert cache.get("addkey") == "value"


def test_get_many_and_set_many(cache: CacheplugCache) -> None:
    assert cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"}) == []
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}
    assert cache.set_many({}) == []


def test_delete_and_delete_many(cache: CacheplugCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
    assert cache.delete("key1") is True
    assert cache.delete("key1") is False
    assert cache.get("key1") is None and cache.get("key2") == "eggs"
    assert cache.delete_many(["key2", "key3"]) is None
    assert cache.get_many(["key2", "key3"]) == {}
    assert cache.delete_many([]) is None


def test_has_key_and_in(cache: CacheplugCache) -> None:
    cache.set("hello", "goodbye")
    assert cache.has_key("hello") is True and "hello" in cache
    assert cache.has_key("goodbye") is False and "goodbye" not in cache
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True


def test_data_types_come_back_equal_and_as_copies(cache: CacheplugCache) -> None:
    values = {
        "string": "this is a string",
        "unicode_Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn",
        "bytes": b"\x00\xff",
        "int": 42,
        "bool": True,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "function": answer,
        "class": Thing,
        "instance": Thing(3),
    }
    for key, value in values.items():
        cache.set(key, value)
    assert cache.get_many(list(values)) == values
    got = cache.get("list")
    got.append(5)  # changing what get() returned changes nothing stored
    assert cache.get("list") == [1, 2, 3, 4]


def test_an_unpicklable_value_raises_and_stores_nothing(cache: CacheplugCache) -> None:
    cache.set("key", "old")
    with pytest.raises(pickle.PickleError):
        cache.set("key", Unpicklable())
    assert cache.get("key") == "old"


def test_incr_and_decr(cache: CacheplugCache) -> None:
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.incr("answer", -10) == 42
    assert cache.decr("answer") == 41
    assert cache.decr("answer", -1) == 42
    with pytest.raises(ValueError, match=r"Key ':1:missing' not found"):
        cache.incr("missing")
    with pytest.raises(ValueError):
        cache.decr("missing")
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.incr("null")


def test_incr_keeps_the_expiry_and_the_tags(cache: CacheplugCache, clock: FakeClock) -> None:
    cache.set("hits", 1, timeout=10, tags=["counter"])
    clock.advance(6)
    assert cache.incr("hits") == 2
    clock.advance(3)
    assert cache.get("hits") == 2
    clock.advance(2)  # 11 s after the set: expired, as the set said
    assert cache.get("hits") is None
    cache.set("hits", 1, timeout=None, tags=["counter"])
    cache.incr("hits")
    cache.invalidate_tags(["counter"])
    assert cache.get("hits") is None


# -- timeouts -------------------------------------------------------------------------------------


def test_values_expire_by_the_clock(cache: CacheplugCache, clock: FakeClock) -> None:
    cache.set("expire1", "very quickly", 1)
    cache.set("expire2", "very quickly", 1)
    cache.set("expire3", "very quickly", 1)
    clock.advance(2)
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert cache.has_key("expire3") is False


def test_the_default_timeout_is_the_timeout_setting(make: Make, clock: FakeClock) -> None:
    default = make()  # Django's default: 300 s
    default.set("key", "v")
    short = make(TIMEOUT=10)
    short.set("other", "v")
    clock.advance(11)
    assert short.get("other") is None and default.get("key") == "v"
    clock.advance(290)
    assert default.get("key") is None
    forever = make(TIMEOUT=None)
    forever.set("key", "v")
    clock.advance(10**9)
    assert forever.get("key") == "v"


def test_none_is_forever(cache: CacheplugCache, clock: FakeClock) -> None:
    cache.set("key1", "eggs", None)
    assert cache.add("key2", "ham", None) is True
    assert cache.add("key1", "new eggs", None) is False
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    cache.set("key5", "belgian fries", timeout=1)
    assert cache.touch("key5", timeout=None) is True
    clock.advance(10**9)
    assert cache.get_many(["key1", "key2", "key3", "key4", "key5"]) == {
        "key1": "eggs",
        "key2": "ham",
        "key3": "sausage",
        "key4": "lobster bisque",
        "key5": "belgian fries",
    }


def test_zero_or_less_stores_nothing_and_removes_what_was_there(cache: CacheplugCache) -> None:
    cache.set("key1", "old")
    cache.set("key1", "eggs", 0)
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", 0) is True
    assert cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
    assert cache.get_many(["key3", "key4"]) == {}
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=0) is True
    assert cache.get("key5") is None
    cache.set("key6", "negative", timeout=-1)
    assert cache.get("key6") is None


def test_float_and_long_timeouts(cache: CacheplugCache, clock: FakeClock) -> None:
    cache.set("float", "spam", 100.2)
    cache.set("long", "eggs", 60 * 60 * 24 * 30 + 1)  # no memcached "absolute time" rule here
    clock.advance(100)
    assert cache.get_many(["float", "long"]) == {"float": "spam", "long": "eggs"}
    clock.advance(0.3)
    assert cache.get("float") is None and cache.get("long") == "eggs"


def test_touch_sets_a_new_expiry(cache: CacheplugCache, clock: FakeClock) -> None:
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1", timeout=4) is True
    clock.advance(2)
    assert cache.has_key("expire1") is True
    clock.advance(3)
    assert cache.has_key("expire1") is False
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1") is True  # the default timeout: 300 s
    clock.advance(2)
    assert cache.has_key("expire1") is True
    assert cache.touch("nonexistent") is False


# -- keys -----------------------------------------------------------------------------------------


def test_keys_memcached_would_refuse_warn_for_every_operation(cache: CacheplugCache) -> None:
    cache.key_func = lambda key, *args: key
    key = "key with spaces and 清"
    message = f"Cache key contains characters that will cause errors if used with memcached: {key!r}"
    operations: list[tuple[str, list[Any]]] = [
        ("add", [key, 1]),
        ("get", [key]),
        ("set", [key, 1]),
        ("incr", [key]),
        ("decr", [key]),
        ("touch", [key]),
        ("delete", [key]),
        ("get_many", [[key, "b"]]),
        ("set_many", [{key: 1, "b": 2}]),
        ("delete_many", [[key, "b"]]),
    ]
    for operation, args in operations:
        with pytest.warns(CacheKeyWarning) as seen:
            getattr(cache, operation)(*args)
        assert str(seen[0].message) == message, operation
    with pytest.warns(CacheKeyWarning, match="longer than 250"):
        cache.get("a" * 251)


def test_versions_keep_keys_apart(make: Make) -> None:
    cache, v2 = make(), make(VERSION=2)
    cache.set("answer1", 42)
    assert cache.get("answer1", version=1) == 42 and cache.get("answer1", version=2) is None
    assert v2.get("answer1") is None and v2.get("answer1", version=1) == 42
    v2.set("answer2", 37)
    assert cache.get("answer2") is None and cache.get("answer2", version=2) == 37
    assert cache.add("answer1", 1, version=2) is True and cache.get("answer1") == 42
    assert cache.incr_version("answer1") == 2
    assert cache.get("answer1") is None and cache.get("answer1", version=2) == 42
    assert cache.decr_version("answer1", version=2) == 1
    assert cache.get("answer1") == 42
    with pytest.raises(ValueError):
        cache.incr_version("missing")


def test_a_key_prefix_and_a_key_function_keep_keys_apart(make: Make) -> None:
    cache, prefixed = make(), make(KEY_PREFIX="cacheprefix")
    custom = make(KEY_FUNCTION=lambda key, prefix, version: f"CUSTOM-{prefix}-{version}-{key}")
    cache.set("somekey", "value")
    assert prefixed.has_key("somekey") is False and custom.has_key("somekey") is False
    prefixed.set("somekey", "value2")
    custom.set("somekey", "value3")
    assert (cache.get("somekey"), prefixed.get("somekey"), custom.get("somekey")) == (
        "value",
        "value2",
        "value3",
    )


def test_get_or_set(cache: CacheplugCache) -> None:
    assert cache.get_or_set("mykey", "default") == "default"
    assert cache.get_or_set("mykey", "other") == "default"
    assert cache.get_or_set("projector", lambda: "called") == "called"
    assert cache.get_or_set("null", None) is None
    assert cache.has_key("null")


def test_clear_empties_the_backend_but_not_the_cached_functions(
    cache: CacheplugCache, clock: FakeClock
) -> None:
    calls: list[int] = []
    shared = cacheplug.Cache([MemoryTier(), DiskTier(cache.directory)], clock=clock)  # same folder

    @cached(cache=shared)
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    square(3)
    cache.set_many({"key1": "spam", "key2": "eggs"})
    cache.clear()
    assert cache.get_many(["key1", "key2"]) == {}
    assert square(3) == 9 and calls == [3]  # another namespace: untouched
    shared.close()


# -- tags, batches, cacheplug's invalidation ------------------------------------------------------


def test_tags_invalidate_entries_in_every_form(cache: CacheplugCache) -> None:
    cache.set("a", 1, tags=["user:1"])
    cache.add("b", 2, tags=["user:1", "team"])
    cache.set_many({"c": 3, "d": 4}, tags=["team"])
    assert cache.get_or_set("e", 5, tags=["user:2"]) == 5
    cache.invalidate_tags(["user:1"])
    assert cache.get_many(["a", "b", "c", "d", "e"]) == {"c": 3, "d": 4, "e": 5}
    cacheplug.invalidate(tags=["team"])  # the module-level call reaches the backend too
    assert cache.get_many(["c", "d", "e"]) == {"e": 5}


def test_tags_must_be_a_list_of_strings_and_nothing_happens_otherwise(cache: CacheplugCache) -> None:
    cache.set("key", "old")
    with pytest.raises(ConfigurationError, match="not the string"):
        cache.set("key", "new", tags="user:1")  # type: ignore[arg-type]
    assert cache.get("key") == "old"


def test_writes_apply_at_once_inside_a_batch_and_tags_wait_for_its_end(cache: CacheplugCache) -> None:
    cache.set("key", "old", tags=["t"])
    cache.set("gone", "soon")
    with batch():
        cache.set("key", "new", tags=["t"])
        assert cache.get("key") == "new"
        cache.delete("gone")
        assert cache.get("gone") is None
        cache.invalidate_tags(["t"])
        assert cache.get("key") == "new"  # collected: applied when the block exits
    assert cache.get("key") is None


def test_a_cached_function_reading_a_key_is_invalidated_by_its_set(cache: CacheplugCache) -> None:
    """A read is a captured dependency; the two caches share the host's version store."""
    calls: list[str] = []
    functions = cacheplug.Cache([MemoryTier(), DiskTier(cache.directory)])

    @cached(cache=functions)
    def greeting() -> str:
        calls.append("x")
        return f"hello {cache.get('name')}"

    cache.set("name", "ada")
    assert greeting() == "hello ada"
    assert greeting() == "hello ada" and calls == ["x"]
    cache.set("name", "grace")
    assert greeting() == "hello grace" and calls == ["x", "x"]
    functions.close()


def test_a_set_that_cannot_be_recorded_raises_and_the_old_value_is_not_served(cache: CacheplugCache) -> None:
    cache.set("key", "old")
    versions = cache.cacheplug.versions
    shutil.rmtree(versions.directory)
    Path(versions.directory).write_text("in the way")
    with pytest.raises(InvalidationError):
        cache.set("key", "new")
    assert cache.get("key") is None  # fails closed: neither the old value nor an unrecorded new one


# -- async ----------------------------------------------------------------------------------------


def test_the_async_methods_run_off_the_event_loop(make: Make) -> None:
    threads: set[int] = set()

    def key_func(key: str, prefix: str, version: int) -> str:
        threads.add(threading.get_ident())
        return f"{prefix}:{version}:{key}"

    cache = make(KEY_FUNCTION=key_func)

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        await cache.aset("a", 1, tags=["t"])
        assert await cache.aget("a") == 1
        assert await cache.aadd("a", 2) is False
        assert await cache.aadd("b", 2) is True
        assert await cache.aget_many(["a", "b", "c"]) == {"a": 1, "b": 2}
        assert await cache.aset_many({"c": 3}) == []
        assert await cache.ahas_key("c") is True
        assert await cache.aincr("a", 5) == 6
        assert await cache.adecr("a") == 5
        assert await cache.atouch("a", None) is True
        assert await cache.aget_or_set("d", lambda: 4) == 4
        assert await cache.adelete("d") is True
        await cache.adelete_many(["c"])
        await cache.ainvalidate_tags(["t"])
        assert await cache.aget("a") is None
        assert await cache.aincr_version("b") == 2
        assert await cache.adecr_version("b", version=2) == 1
        await cache.aclear()
        assert await cache.aget("b", "gone") == "gone"
        assert loop_thread not in threads

    asyncio.run(scenario())
    assert threads


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nope": 1}, r"OPTIONS\['nope'\] of the cacheplug backend is not an option"),
        ({"CULL_FREQUENCY": 3}, "evicts the least recently used entry"),
        ({"namespace": "a|b"}, r"OPTIONS\['namespace'\].*without '\|'"),
        ({"MAX_ENTRIES": "many"}, r"OPTIONS\['MAX_ENTRIES'\] .* must be an int"),
        ({"lock_timeout": 0}, r"OPTIONS\['lock_timeout'\] .* seconds > 0"),
        ({"tiers": ["memory"]}, r"OPTIONS\['tiers'\]"),
        ({"clock": 5}, r"OPTIONS\['clock'\] .* callable"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        CacheplugCache("", {"OPTIONS": options})


def test_a_bad_tiers_value_is_refused_when_the_cache_is_built(make: Make) -> None:
    cache = make(OPTIONS={"tiers": "disk,memory"})
    with pytest.raises(SettingsError, match="the memory tier must come first"):
        cache.get("key")


def test_options_shape_the_tiers(make: Make) -> None:
    small = make(OPTIONS={"MAX_ENTRIES": 30, "namespace": "small"})
    memory, disk = small.cacheplug.tiers
    assert isinstance(memory, MemoryTier) and memory.max_entries == 30
    assert isinstance(disk, DiskTier) and small.directory == disk.directory
    private = make(OPTIONS={"tiers": "memory", "namespace": "private"})
    assert private.directory is None and [t.name for t in private.cacheplug.tiers] == ["memory"]
    private.set("k", "v")
    assert private.get("k") == "v"


def test_clock_may_be_a_dotted_path(tmp_path: Path) -> None:
    cache = CacheplugCache(str(tmp_path), {"OPTIONS": {"clock": "time.monotonic"}})
    assert cache.cacheplug.clock is time.monotonic


def test_every_thread_shares_one_cache_and_a_reset_builds_it_again() -> None:
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(caches["default"].cacheplug))
    thread.start()
    thread.join(10)
    mine = caches["default"].cacheplug
    assert found == [mine] and caches["default"] is not None
    state.reset()
    assert mine.closed and caches["default"].cacheplug is not mine


def test_a_write_waits_for_its_key_lock_only_boundedly(make: Make) -> None:
    cache = make(OPTIONS={"lock_timeout": 0.2})
    skey = cache.make_key("key")
    assert cache.directory is not None
    path = Path(cache.directory, "locks", f"{cache._parts.locks.name}-{KeyLocks.stripe(skey)}.lock")
    cache.set("key", "first")  # the stripe's file exists now
    fd = os.open(path, os.O_RDWR)  # another open file: its lock excludes the backend's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(LockTimeout, match=r"waited over 0\.2 s"):
            cache.set("key", "second")
    finally:
        os.close(fd)
    assert cache.get("key") == "first"
    cache.set("key", "third")
    assert cache.get("key") == "third"


def test_a_forked_child_takes_its_own_key_locks(make: Make) -> None:
    """The child's lock files are its own: a lock its parent holds excludes it."""
    cache = make(OPTIONS={"lock_timeout": 0.3})
    cache.set("key", "parent")
    locks = cache._parts.locks
    stripe = KeyLocks.stripe(cache.make_key("key"))
    inherited = locks._fds[stripe]
    fcntl.flock(inherited, fcntl.LOCK_EX)  # the parent is in the middle of a write of the key

    def child() -> None:
        with pytest.raises(LockTimeout):
            cache.set("key", "child")  # on the inherited descriptor, this flock would succeed

    try:
        assert in_child(child) == ""
    finally:
        fcntl.flock(inherited, fcntl.LOCK_UN)
    assert cache.get("key") == "parent"


def test_threads_incr_one_key_atomically() -> None:
    caches["default"].set("n", 0, timeout=None)

    def work() -> None:
        for _ in range(200):
            caches["default"].incr("n")  # each thread its own backend instance, one cache

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert caches["default"].get("n") == 800


def test_deleted_lock_files_are_made_again(cache: CacheplugCache) -> None:
    cache.set("key", "one")
    assert cache.directory is not None
    shutil.rmtree(os.path.join(cache.directory, "locks"))
    cache.set("key", "two")
    assert cache.get("key") == "two" and os.listdir(os.path.join(cache.directory, "locks"))
