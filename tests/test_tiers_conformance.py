"""One conformance suite for the Tier protocol, run against every tier."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import MISS, Cache, DiskTier, Entry, MemoryTier, Tier
from tests.conftest import FakeClock


@pytest.fixture(params=["memory", "disk"])
def tier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: Any = MemoryTier() if request.param == "memory" else DiskTier(tmp_path / "tier")
    yield made
    made.close()


def _entry(value: Any, **overrides: Any) -> Entry:
    fields: dict[str, Any] = {
        "created": 100.0,
        "expires": 160.0,
        "seq": 3,
        "tags": ("user:1", "\x00fn::mod.f"),
    }
    fields.update(overrides)
    return Entry(value, **fields)


def test_tier_satisfies_the_protocol(tier: Any) -> None:
    assert isinstance(tier, Tier)
    assert isinstance(tier.name, str) and tier.name
    assert isinstance(tier.shared, bool)


def test_missing_key_is_the_miss_sentinel(tier: Any) -> None:
    found = tier.get("absent")
    assert found is MISS
    assert not found
    assert found is not None


@pytest.mark.parametrize(
    "value",
    [None, 0, "text", b"bytes", [1, {"a": (2, 3)}], {"nested": {1, 2}}, dt.datetime(2024, 1, 1), 1.5],
)
def test_set_then_get_round_trips_value_and_metadata(tier: Any, value: Any) -> None:
    tier.set("k", _entry(value))
    got = tier.get("k")
    assert isinstance(got, Entry)
    assert got.value == value
    assert (got.created, got.expires, got.seq, got.tags) == (100.0, 160.0, 3, ("user:1", "\x00fn::mod.f"))


def test_entry_without_expiry_round_trips(tier: Any) -> None:
    tier.set("k", _entry("v", expires=None, tags=()))
    got = tier.get("k")
    assert got.expires is None
    assert tuple(got.tags) == ()


def test_tier_does_not_judge_expiry(tier: Any) -> None:
    """Expiry is the coordinator's decision, through its clock; the tier just stores."""
    tier.set("k", _entry("old", created=1.0, expires=2.0))
    assert tier.get("k").value == "old"


def test_set_overwrites(tier: Any) -> None:
    tier.set("k", _entry("a"))
    tier.set("k", _entry("b", seq=4))
    got = tier.get("k")
    assert (got.value, got.seq) == ("b", 4)


def test_keys_are_independent(tier: Any) -> None:
    tier.set("a", _entry(1))
    tier.set("b", _entry(2))
    assert tier.get("a").value == 1
    assert tier.get("b").value == 2


def test_delete_reports_whether_something_was_removed(tier: Any) -> None:
    tier.set("k", _entry("v"))
    assert tier.delete("k") is True
    assert tier.get("k") is MISS
    assert tier.delete("k") is False


def test_clear_empties_the_tier(tier: Any) -> None:
    for i in range(5):
        tier.set(f"k{i}", _entry(i))
    tier.clear()
    assert all(tier.get(f"k{i}") is MISS for i in range(5))


def test_unicode_and_separator_keys(tier: Any) -> None:
    keys = ["ns|k:a:b", "ns|k:a\\:b", "ключ", "x" * 500]
    for i, key in enumerate(keys):
        tier.set(key, _entry(i))
    assert [tier.get(k).value for k in keys] == list(range(len(keys)))


def test_one_tier_instance_backs_two_caches(tier: Any, clock: FakeClock) -> None:
    first = Cache([tier], clock=clock)
    second = Cache([tier], clock=clock)
    other_ns = Cache([tier], clock=clock, namespace="other")
    try:
        first.set("shared", {"v": 1}, ttl=30)
        assert second.get("shared") == {"v": 1}
        assert other_ns.get("shared") is None
        clock.advance(30)
        assert second.get("shared") is None
        second.set("back", 2)
        assert first.get("back") == 2
        assert first.delete("back") is True
        assert second.get("back") is None
    finally:
        for cache in (first, second, other_ns):
            cache.close()


def test_closing_a_cache_does_not_close_a_tier_it_was_given(tier: Any, clock: FakeClock) -> None:
    with Cache([tier], clock=clock) as cache:
        cache.set("k", 1)
    with Cache([tier], clock=clock) as again:
        assert again.get("k") == 1
