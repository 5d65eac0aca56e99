"""Sync twins: the plain function generated from a step generator does what the driver does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cacheplug import MISS, DiskTier, Entry, SerializationError
from cacheplug.cache.flow import run
from cacheplug.cache.steps import DELETE, GET, SET, sync_twin


class Walker:
    """Step generators of the shapes the tiering uses."""

    def __init__(self, tiers: list[Any]) -> None:
        self.tiers = tiers

    def first(self, key: str) -> Any:
        for tier in self.tiers:
            found = yield (GET, tier, key, None)
            if found is not MISS:
                return found
            yield (DELETE, tier, key, None)
        return MISS

    def copy(self, key: str, entry: Entry) -> Any:
        refused = []
        for tier in self.tiers:
            answer = yield (SET, tier, key, entry)
            if isinstance(answer, SerializationError):
                refused.append(tier.name)
        return refused

    def both(self, key: str, entry: Entry) -> Any:
        refused = yield from self.copy(key, entry)
        found = yield from self.first(key)
        return refused, found.value


for _name in ("first", "copy", "both"):
    setattr(Walker, f"{_name}_now", sync_twin(getattr(Walker, _name)))


def test_a_twin_returns_what_the_sync_driver_returns(tmp_path: Path) -> None:
    disk = DiskTier(tmp_path / "d")
    walker: Any = Walker([disk])
    entry = Entry("v", 0.0, None, 0)
    assert run(walker.both("k", entry)) == walker.both_now("k", entry) == ([], "v")
    assert run(walker.first("nope")) is MISS and walker.first_now("nope") is MISS
    unpicklable = Entry(lambda: None, 0.0, None, 0)
    assert run(walker.copy("bad", unpicklable)) == walker.copy_now("bad", unpicklable) == ["disk"]
    disk.close()


def test_a_twin_keeps_the_generator_s_name_and_file() -> None:
    twin = Walker.first_now  # type: ignore[attr-defined]
    assert twin.__qualname__ == "Walker.first_now"
    assert twin.__code__.co_filename == __file__
    assert twin.__code__.co_firstlineno == Walker.first.__code__.co_firstlineno


def test_a_step_of_unknown_shape_has_no_twin() -> None:
    def odd() -> Any:
        yield 42

    with pytest.raises(TypeError, match="steps"):
        sync_twin(odd)
