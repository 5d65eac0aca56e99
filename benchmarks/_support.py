"""Shared helpers of the benchmark suite (imported by conftest.py and the bench_*.py files).

Every timed figure is the median of a number of *rounds*; a round runs ``ops`` operations in
a tight loop and its time is divided by ``ops`` in ``check_ratios.py``. The loop is unrolled
ten times so that loop overhead (a few ns per call) hardly counts on either side of a ratio.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

# How many times each micro-benchmark pair is repeated; passes are interleaved (every pair of
# pass 0, then every pair of pass 1, ...) and check_ratios.py takes the median ratio.
PASSES = int(os.environ.get("CACHEPLUG_BENCH_PASSES", "3"))
# Scales the number of rounds (1.0 by default; 0.2 gives a quick smoke run).
SCALE = float(os.environ.get("CACHEPLUG_BENCH_SCALE", "1.0"))

TTL = 300.0
# The value a benchmarked function returns: a small JSON-like record.
VALUE: dict[str, Any] = {"id": 1, "name": "x" * 40, "scores": [1, 2, 3, 4, 5], "active": True}

UNROLL = 10


def rounds(n: int) -> int:
    return max(1, round(n * SCALE))


def full_and_churning(funcs: Sequence[Callable[..., Any]], capacity: int, churn: int) -> Callable[[], None]:
    """Fill each ``f(key, "x")`` past its memory bound with new keys (the steady state of a full
    cache that evicts, not its first fill), leave ``f(1, "x")`` cached, and return the setup
    that stores ``churn`` more new keys in each between timed rounds (off the clock)."""
    import itertools

    fresh = itertools.count(10_000)
    for f in funcs:
        for _ in range(3 * capacity):
            f(next(fresh), "x")
        assert f(1, "x") is VALUE

    def setup() -> None:
        keys = [next(fresh) for _ in range(churn)]
        for f in funcs:
            for k in keys:
                f(k, "x")

    return setup


def call_loop(func: Callable[..., Any], args: Sequence[Any], ops: int) -> Callable[[], None]:
    """A function calling ``func(*args)`` ``ops`` times (loop unrolled ten times)."""
    if ops % UNROLL:
        raise ValueError(f"ops must be a multiple of {UNROLL}")
    names = ", ".join(f"a{i}" for i in range(len(args)))
    body = f"        func({names})\n" * UNROLL
    src = (
        f"def make(func, repeat, {names}):\n"
        f"    def run():\n"
        f"        for _ in repeat(None, {ops // UNROLL}):\n"
        + body.replace("        func", "            func")
        + "    return run\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(src, f"<call_loop {getattr(func, '__name__', func)!s}>", "exec"), namespace)
    import itertools

    run: Callable[[], None] = namespace["make"](func, itertools.repeat, *args)
    return run


def await_loop(func: Callable[..., Any], args: Sequence[Any], ops: int) -> Callable[[], Any]:
    """A coroutine function awaiting ``func(*args)`` ``ops`` times (unrolled ten times)."""
    if ops % UNROLL:
        raise ValueError(f"ops must be a multiple of {UNROLL}")
    names = ", ".join(f"a{i}" for i in range(len(args)))
    body = f"            await func({names})\n" * UNROLL
    src = (
        f"def make(func, repeat, {names}):\n"
        f"    async def run():\n"
        f"        for _ in repeat(None, {ops // UNROLL}):\n" + body + "    return run\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(src, f"<await_loop {getattr(func, '__name__', func)!s}>", "exec"), namespace)
    import itertools

    run: Callable[[], Any] = namespace["make"](func, itertools.repeat, *args)
    return run


def keys_loop(func: Callable[..., Any], keys: Sequence[int], second: Any, repeat: int) -> Callable[[], None]:
    """A function calling ``func(k, second)`` for every ``k`` of ``keys``, ``repeat`` times."""

    def run() -> None:
        for _ in range(repeat):
            for k in keys:
                func(k, second)

    return run


def record(benchmark: Any, ident: str, ops: int, **extra: Any) -> None:
    """Label a benchmark for check_ratios.py: ``ident`` names the figure, ``ops`` per round."""
    benchmark.extra_info["id"] = ident
    benchmark.extra_info["ops"] = ops
    benchmark.extra_info.update(extra)


def timed(
    benchmark: Any,
    ident: str,
    target: Callable[[], Any],
    ops: int,
    n_rounds: int,
    *,
    clock: str = "wall",
    extra: dict[str, Any] | None = None,
    warmup: int = 1,
    **kw: Any,
) -> None:
    """Time ``target`` (which performs ``ops`` operations) for ``n_rounds`` rounds.

    ``clock="cpu"`` times with ``time.process_time`` instead of the wall clock: for
    single-threaded, CPU-bound loops (no I/O, no other thread) it is the same cost without
    the time the process spent preempted by other processes, which on a shared two-core
    machine is most of the noise. Both sides of a ratio always use the same clock.
    """
    record(benchmark, ident, ops, clock=clock, **(extra or {}))
    if clock == "cpu":
        # pytest-benchmark has one timer per session (--benchmark-timer); this sets it for
        # this benchmark only (the fixture reads ``_timer`` when it builds its runner).
        assert hasattr(benchmark, "_timer"), "pytest-benchmark internals changed"
        benchmark._timer = time.process_time
    elif clock != "wall":
        raise ValueError(clock)
    benchmark.pedantic(target, rounds=rounds(n_rounds), iterations=1, warmup_rounds=warmup, **kw)


class Stopwatch:
    """Wall time of a setup step, in seconds (reported in extra_info, never a figure)."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def interleaved(
    benchmark: Any,
    group: str,
    sides: dict[str, Callable[[], Any]],
    ops: int,
    n_rounds: int,
    *,
    lead: str = "cacheplug",
    clock: str = "wall",
    setup: Callable[[], None] | None = None,
    before: Callable[[str], None] | None = None,
    after: Callable[[str], None] | None = None,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Time the ``sides`` of one comparison round by round, alternating between them.

    Every round runs each side once: the peers first (in pytest-benchmark's untimed
    ``setup`` hook, timed here with the same clock), then ``lead``, which pytest-benchmark
    times (and which is timed here too). Each side's per-round ns per operation is stored in
    ``extra_info["series"]`` under ``"{group}.{side}"``; check_ratios.py divides the two
    sides' figures round by round, so that both numbers of a ratio always come from the same
    fraction of a second (on a shared VM the speed of the machine drifts by up to 2x over
    seconds, which no amount of separate measuring averages out). ``setup`` runs before
    each round (fresh keys for misses); ``before``/``after`` bracket each side's run.
    """
    timer = time.process_time if clock == "cpu" else time.perf_counter
    series: dict[str, list[float]] = {name: [] for name in sides}

    def run_side(name: str) -> None:
        if before is not None:
            before(name)
        start = timer()
        sides[name]()
        elapsed = timer() - start
        if after is not None:
            after(name)
        series[name].append(elapsed / ops * 1e9)

    def peers() -> None:
        if setup is not None:
            setup()
        for name in sides:
            if name != lead:
                run_side(name)

    def lead_round() -> None:
        run_side(lead)

    timed(benchmark, f"{group}.{lead}", lead_round, ops, n_rounds, clock=clock, setup=peers, warmup=warmup)
    kept = {f"{group}.{name}": values[warmup:] for name, values in series.items()}
    benchmark.extra_info["series"] = kept
    return kept
