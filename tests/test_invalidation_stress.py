"""Threaded stress: 8 threads, 100,000+ calls, 5%+ of them invalidations, 0 stale reads.

The source of truth is a version per id. A writer bumps it under a lock, invalidates, then
*announces* the version (the invalidation for it has returned). A read records the announced
version before it calls; the value it gets back must not be older: an older value was
computed before an invalidation that had returned when the read began -- a stale read.

The values come from three cached functions: one tagged per id, one that reads it (automatic
capture) and one that declares a dependency on it (``depends_on``). The interpreter's switch
interval is shortened so that threads are preempted in the middle of computations, and the
computations that an invalidation raced are counted, or the 0 would prove little.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, cached

from .invalidation_support import Truth, make_cache

__all__ = ["make_cache"]

THREADS = 8
CALLS_PER_THREAD = 12_500
WRITE_RATE = 0.06
IDS = 48
DEADLINE = 60.0


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["memory", "memory+disk"])
def test_no_stale_read_under_threaded_invalidation(
    make_cache: Callable[..., Cache], kind: str, tmp_path: Path
) -> None:
    cache = make_cache(kind)
    truth = Truth(IDS)
    epoch = cache.epoch
    tally_lock = threading.Lock()
    tally = {"reads": 0, "invalidations": 0, "computations": 0, "raced": 0, "stale": 0}
    stale: list[tuple[Any, ...]] = []
    errors: list[BaseException] = []

    def add(name: str) -> None:
        with tally_lock:
            tally[name] += 1

    def computing(read: Callable[[], int]) -> int:
        before = epoch[0]
        value = read()
        sum(range(400))  # a little work after the read: room for an invalidation to land
        if epoch[0] != before:
            add("raced")
        add("computations")
        return value

    @cached(cache=cache, tags=["item:{i}"])
    def item(i: int) -> int:
        return computing(lambda: truth.version[i])

    @cached(cache=cache, tags=["page:{i}"])
    def page(i: int) -> int:
        return computing(lambda: item(i))  # captured: stale when item(i) is

    @cached(cache=cache, depends_on=[item])
    def summary(i: int) -> int:
        return computing(lambda: truth.version[i])  # declared: stale when any item is

    functions = (item, item, item, page, page, summary)

    def invalidate(rng: random.Random, i: int) -> None:
        how = rng.randrange(4)
        if how == 0:
            cache.invalidate(tags=[f"item:{i}"])
        elif how == 1:
            cacheplug.invalidate(tags=[f"item:{i}"])
        elif how == 2:
            item.invalidate(i)
        else:
            cacheplug.invalidate_by_write("item", i)

    start = threading.Barrier(THREADS)
    deadline = time.monotonic() + DEADLINE

    def run(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait(30)
            for _ in range(CALLS_PER_THREAD):
                i = rng.randrange(IDS)
                if rng.random() < WRITE_RATE:
                    version = truth.bump(i)
                    invalidate(rng, i)
                    truth.announce(i, version)
                    add("invalidations")
                    continue
                floor = truth.announced[i]
                fn = rng.choice(functions)
                got = fn(i)
                add("reads")
                if got < floor:
                    add("stale")
                    if len(stale) < 10:
                        stale.append((fn.__name__, i, got, floor, truth.version[i]))
                if time.monotonic() > deadline:
                    raise TimeoutError("the stress test ran past its deadline")
        except BaseException as exc:
            errors.append(exc)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # preempt threads mid-computation as often as possible
    began = time.monotonic()
    try:
        threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE + 30)
    finally:
        sys.setswitchinterval(previous)
    elapsed = time.monotonic() - began
    assert not any(thread.is_alive() for thread in threads), "a stress thread hung"
    assert not errors, errors[:3]

    calls = tally["reads"] + tally["invalidations"]
    print(f"\n[{kind}] {calls} calls in {elapsed:.1f}s: {tally}, stale_sets={cache.stats()['stale_sets']}")
    assert tally["stale"] == 0, f"{tally['stale']} stale reads, e.g. (fn, id, got, floor, truth) {stale}"
    assert calls >= 100_000
    assert tally["invalidations"] >= 0.05 * calls
    # The interleavings the guarantee is about did happen (many times) during the run.
    assert tally["raced"] >= 50, tally
    assert elapsed < DEADLINE
