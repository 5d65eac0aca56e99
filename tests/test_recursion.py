"""Recursion: a cached recursive function pays a fixed, small number of levels per call.

Issue 6, item 12 (before: depth 164 where the plain function reaches 995; ``fib(300)``
raised ``RecursionError``). The interpreter charges one recursion level per Python frame
and one per call of an object through its type (the wrapper object). The sync fast path
adds exactly 2 levels per call (the wrapper object's call and its generated ``__call__``,
which calls the function itself); methods, the general path and async functions at most 4.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, cached

ROOT = Path(__file__).resolve().parent.parent


def _frames() -> int:
    frame, count = sys._getframe(1), 0
    while frame is not None:
        frame, count = frame.f_back, count + 1
    return count


def _frames_per_level(depths: list[int]) -> int:
    """Python frames between consecutive levels (the first level may bind the function)."""
    steps = {b - a for a, b in itertools.pairwise(depths[1:])}
    assert len(steps) == 1, depths
    return steps.pop()


@pytest.fixture(params=["memory", "memory+disk"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        with Cache([MemoryTier()]) as made:
            yield made
    else:
        with closing(DiskTier(tmp_path / "d")) as disk, Cache([MemoryTier(), disk]) as made:
            yield made


def test_fast_path_recursion_adds_one_python_frame_per_level(cache: Cache) -> None:
    depths: list[int] = []

    @cached(cache=cache)
    def down(n: int) -> int:
        depths.append(_frames())
        return 0 if n == 0 else down(n - 1) + 1

    assert down(5) == 5
    assert _frames_per_level(depths) == 2  # the function's own frame and the generated __call__


def test_general_path_method_and_async_recursion_add_at_most_two_python_frames(cache: Cache) -> None:
    general: list[int] = []

    @cached(cache=cache)
    def down(n: int, *, step: int = 1) -> int:  # keyword-only: not the fast path
        general.append(_frames())
        return 0 if n <= 0 else down(n - step, step=step) + 1

    assert down(5) == 5
    assert _frames_per_level(general) <= 3

    methods: list[int] = []

    class Walker:
        def __cache_key__(self) -> str:
            return "walker"

        @cached(cache=cache)
        def down(self, n: int) -> int:
            methods.append(_frames())
            return 0 if n == 0 else self.down(n - 1) + 1

    assert Walker().down(5) == 5
    assert _frames_per_level(methods) <= 3

    coroutines: list[int] = []

    @cached(cache=cache)
    async def adown(n: int) -> int:
        coroutines.append(_frames())
        return 0 if n == 0 else await adown(n - 1) + 1

    assert asyncio.run(adown(5)) == 5
    assert _frames_per_level(coroutines) <= 3


def test_fib_300_works_under_the_default_recursion_limit(cache: Cache) -> None:
    assert sys.getrecursionlimit() == 1000

    @cached(cache=cache)
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(300) == 222232244629420445529739893461909967206666939096499764990979600


_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from cacheplug import Cache, MemoryTier, cached

    def plain():
        def down(n):
            return 0 if n == 0 else down(n - 1)
        return down

    def fast():
        @cached(cache=Cache([MemoryTier()]))
        def down(n):
            return 0 if n == 0 else down(n - 1)
        return down

    def general():
        @cached(cache=Cache([MemoryTier()]))
        def down(n, *, step=1):
            return 0 if n <= 0 else down(n - step, step=step)
        return down

    def method():
        cache = Cache([MemoryTier()])
        class Walker:
            def __cache_key__(self):
                return "w"
            @cached(cache=cache)
            def down(self, n):
                return 0 if n == 0 else self.down(n - 1)
        return Walker().down

    def coroutine():
        @cached(cache=Cache([MemoryTier()]))
        async def down(n):
            return 0 if n == 0 else await down(n - 1)
        return lambda n: asyncio.run(down(n))

    def deepest(make, limit):
        sys.setrecursionlimit(limit)
        low, high = 0, limit
        while low < high:
            mid = (low + high + 1) // 2
            try:
                make()(mid)
                low = mid
            except RecursionError:
                high = mid - 1
        sys.setrecursionlimit(1000)
        return low

    out = {}
    for make in (plain, fast, general, method, coroutine):
        out[make.__name__] = 600 / (deepest(make, 800) - deepest(make, 200))
    print(json.dumps(out))
    """
)


def test_recursion_levels_charged_per_call_of_each_path() -> None:
    """Measured by the interpreter itself: the depth reached under two recursion limits."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    levels = json.loads(done.stdout)
    assert round(levels["plain"], 2) == 1.0
    assert round(levels["fast"], 1) == 3.0, levels  # 2 more than the plain function
    for path in ("general", "method", "coroutine"):
        assert levels[path] <= 5.05, levels  # at most 4 more
