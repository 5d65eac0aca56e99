"""The cache backend across processes of one host: visibility, invalidation, atomic add and incr."""

from __future__ import annotations

from django.core.cache import cache

from .processes import workers


def test_a_set_in_one_process_is_seen_in_another_and_a_delete_invalidates_it() -> None:
    with workers(1) as (other,):
        cache.set("k", "v1")
        assert other.call("get", "k") == "v1"  # the other process now holds it in memory too
        cache.set("k", "v2")
        assert other.call("get", "k") == "v2"  # not its own older copy
        other.call("set", "k", "v3")
        assert cache.get("k") == "v3"
        cache.delete("k")
        assert other.call("get", "k") is None
        other.call("set_tagged", "page", "<html>", ["user:1"])
        assert cache.get("page") == "<html>"
        cache.invalidate_tags(["user:1"])
        assert other.call("get", "page") is None
        cache.set("gone", 1)
        assert other.call("get", "gone") == 1
        cache.clear()
        assert other.call("get", "gone") is None


def test_incr_is_atomic_across_processes() -> None:
    cache.set("n", 0, timeout=None)
    with workers(3) as others:
        for worker in others:
            worker.send("incr_many", "n", 150)
        for _ in range(150):
            cache.incr("n")
        for worker in others:
            assert worker.answer() is None
    assert cache.get("n") == 600


def test_add_is_atomic_across_processes() -> None:
    keys = [f"race-{i}" for i in range(60)]
    with workers(3) as others:
        for worker in others:
            worker.send("add_many", keys, worker.pid)
        won = [set(worker.answer()) for worker in others]
        mine = {key for key in keys if cache.add(key, "here")}
        owners = {key: cache.get(key) for key in keys}
    assert sum(len(w) for w in won) + len(mine) == len(keys)  # each key added exactly once
    for worker, keys_won in zip(others, won, strict=True):
        assert all(owners[key] == worker.pid for key in keys_won)
