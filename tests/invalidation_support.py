"""Shared pieces of the invalidation proof suite: cache factories, counting tiers, truth tables.

The tier doubles (broken, counting, gated) are proxies in ``tests.tier_doubles``.

The multi-process worker lives here too, so that ``multiprocessing`` (spawn) can import it
by name in the child processes.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, DiskTier, MemoryTier

from .tier_doubles import BrokenTier

KINDS = ("memory", "memory+disk", "disk")


def build_cache(
    kind: str,
    directory: Path | str | None,
    *,
    clock: Callable[[], float] | None = None,
    max_entries: int = 100_000,
    namespace: str = "",
    disk_timeout: float = 2.0,
    memory: MemoryTier | None = None,
) -> tuple[Cache, list[Any]]:
    """A cache of ``kind`` (see :data:`KINDS`) and the tiers it was built from (to close them)."""
    tiers: list[Any] = []
    if kind in ("memory", "memory+disk"):
        tiers.append(memory if memory is not None else MemoryTier(max_entries=max_entries))
    if kind in ("memory+disk", "disk"):
        assert directory is not None
        tiers.append(DiskTier(directory, timeout=disk_timeout))
    if not tiers:
        raise ValueError(kind)
    return Cache(tiers, clock=clock, namespace=namespace), tiers


@pytest.fixture
def make_cache(tmp_path: Path) -> Iterator[Callable[..., Cache]]:
    """Factory fixture: ``make_cache(kind, directory=None, **options)``; everything is closed after."""
    made: list[tuple[Cache, list[Any]]] = []

    def factory(kind: str, directory: Path | str | None = None, **options: Any) -> Cache:
        if directory is None:
            directory = tmp_path / "disk"
        cache, tiers = build_cache(kind, directory, **options)
        made.append((cache, tiers))
        return cache

    yield factory
    for cache, tiers in made:
        cache.close()
        for tier in tiers:
            tier.close()


class Calls:
    """Counts computations per key, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[Any, int] = {}

    def hit(self, key: Any) -> int:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]

    def __getitem__(self, key: Any) -> int:
        return self.counts.get(key, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class CountingMemoryTier(MemoryTier):
    """A memory tier that counts every write-side operation (reads are plain dict lookups)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: dict[str, int] = {}
        super().__init__(*args, **kwargs)
        self.reset()

    def reset(self) -> None:
        self.calls = {"put": 0, "discard": 0, "drop": 0, "sweep": 0, "clear": 0, "evict": 0}

    def put(self, *args: Any, **kwargs: Any) -> None:
        self.calls["put"] += 1
        super().put(*args, **kwargs)

    def discard(self, *args: Any, **kwargs: Any) -> bool:
        self.calls["discard"] += 1
        return super().discard(*args, **kwargs)

    def drop(self, *args: Any, **kwargs: Any) -> int:
        self.calls["drop"] += 1
        return super().drop(*args, **kwargs)

    def sweep(self, *args: Any, **kwargs: Any) -> int:
        self.calls["sweep"] += 1
        return super().sweep(*args, **kwargs)

    def clear(self) -> None:
        self.calls["clear"] += 1
        super().clear()

    def _evict(self) -> None:
        self.calls["evict"] += 1
        super()._evict()


class FaultyTier(BrokenTier):
    """A lower tier whose every operation raises (a broken disk, a dead server)."""

    def __init__(self) -> None:
        super().__init__(name="faulty", error=OSError("simulated tier fault"))


# -- the source of truth shared by the threaded and multi-process stress tests ------------------


class Truth:
    """Versions per id, and per id the newest version whose invalidation has returned.

    A writer bumps ``version`` under the lock, invalidates, then raises ``announced`` to the
    version it bumped to. A read that begins when ``announced[i] == v`` must return a value of
    version ``>= v``: anything older was computed before an invalidation that had returned.
    """

    def __init__(self, ids: int) -> None:
        self.version = [0] * ids
        self.announced = [0] * ids
        self.lock = threading.Lock()

    def bump(self, i: int) -> int:
        with self.lock:
            self.version[i] += 1
            return self.version[i]

    def announce(self, i: int, v: int) -> None:
        with self.lock:
            if v > self.announced[i]:
                self.announced[i] = v


# -- the multi-process worker ---------------------------------------------------------------------


def process_worker(
    index: int,
    directory: str,
    versions: Any,
    announced: Any,
    lock: Any,
    ids: int,
    threads: int,
    seconds: float,
    start: Any,
    results: Any,
) -> None:
    """One process of the host: ``threads`` threads calling, writing and invalidating for ``seconds``.

    ``versions``/``announced`` are shared arrays (the source of truth, see :class:`Truth`)
    guarded by ``lock``. Each thread reads mostly and writes sometimes: a write bumps the
    truth, calls ``invalidate()`` and then announces the version. Every read checks the value
    it got against the announced version read when the call began. The result put on
    ``results``: ``(index, counters, first violations)``.
    """
    import sys

    import cacheplug

    sys.setswitchinterval(1e-4)  # preempt threads mid-computation often
    cache = Cache([MemoryTier(max_entries=ids * 4), DiskTier(directory, timeout=30.0)])
    epoch = cache.epoch
    lock_local = threading.Lock()
    counters = {"reads": 0, "writes": 0, "computations": 0, "raced_fills": 0, "stale": 0, "errors": 0}
    violations: list[tuple[Any, ...]] = []

    def count(name: str, n: int = 1) -> None:
        with lock_local:
            counters[name] += n

    def truth_now(i: int) -> int:
        with lock:
            return int(versions[i])

    @cacheplug.cached(cache=cache, tags=["item:{i}"])
    def item(i: int) -> tuple[int, int]:
        before = epoch[0]
        v = truth_now(i)
        # A little work between reading the truth and returning, as a real query would do.
        digest = sum(range(200 + (v % 7)))
        after = epoch[0]
        count("computations")
        if after != before:
            count("raced_fills")
        return v, digest

    @cacheplug.cached(cache=cache, tags=["page:{i}"])
    def page(i: int) -> tuple[int, int]:
        # Depends on item(i) by automatic capture: invalidating item:i makes it stale.
        before = epoch[0]
        v, digest = item(i)
        after = epoch[0]
        count("computations")
        if after != before:
            count("raced_fills")
        return v, digest + 1

    def writer_step(rng: random.Random) -> None:
        i = rng.randrange(ids)
        with lock:
            versions[i] += 1
            v = int(versions[i])
        how = rng.random()
        if how < 0.6:
            cacheplug.invalidate(tags=[f"item:{i}"])
        elif how < 0.8:
            cache.invalidate(tags=[f"item:{i}"])
        else:
            item.invalidate(i)
        with lock:
            if v > announced[i]:
                announced[i] = v
        count("writes")

    def run(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if rng.random() < 0.1:
                    writer_step(rng)
                    continue
                i = rng.randrange(ids)
                with lock:
                    floor = int(announced[i])
                fn = item if rng.random() < 0.7 else page
                got, _ = fn(i)
                count("reads")
                if got < floor:
                    count("stale")
                    if len(violations) < 20:
                        violations.append((index, fn.__name__, i, got, floor, truth_now(i)))
            except Exception as exc:  # recorded: the parent fails the test on any error
                count("errors")
                if len(violations) < 20:
                    violations.append((index, "error", repr(exc)))

    workers = [threading.Thread(target=run, args=(index * 1000 + t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cache.close()
    for tier in cache.tiers:
        tier.close()
    results.put((index, counters, violations))


def env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default
