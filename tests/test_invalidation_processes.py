"""Host-wide coherence: 4 processes x 4 threads over one disk directory, memory tiers on.

Every process has its own memory tier over the shared disk tier. The source of truth is a
pair of shared arrays (versions and announced versions per id) behind one cross-process
lock. Writers, in any process, bump a version, call ``invalidate()`` (three different ways)
and announce the version once it returned. Readers, in every process, note the announced
version before each call and check the value they get: a value older than that was computed
before an invalidation that had returned in some process -- a stale read.

Runs for ``CACHEPLUG_STRESS_SECONDS`` (default 60) and counts the computations during which
the host-wide epoch moved (fills that raced an invalidation); at least 1,000 must have
happened for the 0 stale reads to mean something.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from pathlib import Path
from typing import Any

import pytest

from .invalidation_support import env_seconds, process_worker

PROCESSES = 4
THREADS = 4
IDS = 32
SECONDS = env_seconds("CACHEPLUG_STRESS_SECONDS", 60.0)
MIN_RACED_FILLS = 1000


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 240)
def test_no_stale_read_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    versions = ctx.Array("q", IDS, lock=False)
    announced = ctx.Array("q", IDS, lock=False)
    lock = ctx.Lock()
    start = ctx.Event()
    results: Any = ctx.Queue()
    directory = str(tmp_path / "shared")
    processes = [
        ctx.Process(
            target=process_worker,
            args=(n, directory, versions, announced, lock, IDS, THREADS, SECONDS, start, results),
            daemon=True,
        )
        for n in range(PROCESSES)
    ]
    reports: list[tuple[int, dict[str, int], list[Any]]] = []
    began = time.monotonic()
    try:
        for process in processes:
            process.start()
        start.set()
        deadline = time.monotonic() + SECONDS + 120
        while len(reports) < PROCESSES:
            try:
                reports.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                raise AssertionError(
                    f"only {len(reports)} of {PROCESSES} processes reported in time (exit codes {dead})"
                ) from None
        for process in processes:
            process.join(60)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(10)
            if process.is_alive():
                process.kill()
                process.join(10)
        results.close()
        results.join_thread()
    elapsed = time.monotonic() - began

    totals: dict[str, int] = {}
    violations: list[Any] = []
    for _, counters, found in reports:
        for name, value in counters.items():
            totals[name] = totals.get(name, 0) + value
        violations.extend(found)
    print(f"\n{PROCESSES} processes x {THREADS} threads, {elapsed:.1f}s: {totals}")
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    assert totals["errors"] == 0, violations[:10]
    assert totals["stale"] == 0, f"stale reads (process, fn, id, got, announced, truth): {violations[:10]}"
    assert all(counters["reads"] > 0 and counters["writes"] > 0 for _, counters, _ in reports)
    assert totals["raced_fills"] >= MIN_RACED_FILLS, totals
    assert elapsed >= SECONDS
