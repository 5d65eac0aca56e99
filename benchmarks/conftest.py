"""Benchmark suite configuration: passes, ordering, shared fixtures.

Each comparison is one benchmark that alternates its sides round by round (see
``_support.interleaved``). It takes a ``bench_pass`` parameter (0 .. CACHEPLUG_BENCH_PASSES-1)
and items are reordered so that every benchmark of pass 0 runs, then every benchmark of
pass 1, and so on. Benchmarks without a pass (the expensive one-shot ones) run last, so the
million entries they build never sit in memory while the micro-benchmarks run.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _support import PASSES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_pass" in metafunc.fixturenames:
        metafunc.parametrize("bench_pass", range(PASSES), ids=[f"pass{i}" for i in range(PASSES)])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def order(indexed: tuple[int, pytest.Item]) -> tuple[int, int, int]:
        index, item = indexed
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "bench_pass" in callspec.params:
            return (0, int(callspec.params["bench_pass"]), index)
        return (1, 0, index)

    items[:] = [item for _, item in sorted(enumerate(items), key=order)]


@pytest.fixture(autouse=True)
def _label_pass(request: pytest.FixtureRequest) -> None:
    """Record the pass number of every benchmark in its extra_info (used by check_ratios)."""
    if "benchmark" not in request.fixturenames:
        return
    callspec = getattr(request.node, "callspec", None)
    bench = request.getfixturevalue("benchmark")
    bench.extra_info["pass"] = int(callspec.params.get("bench_pass", 0)) if callspec is not None else 0
    gc.collect()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh directory on the same file system for cacheplug and its peers (removed after)."""
    base = os.environ.get("CACHEPLUG_BENCH_TMP") or None
    path = Path(tempfile.mkdtemp(prefix="cacheplug-bench-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def session_notes() -> dict[str, Any]:
    """Facts shared between benchmarks of one run (e.g. how fast diskcache rows build)."""
    return {}


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Objects with a ``close()`` (tiers, caches) to close when the benchmark ends."""
    opened: list[Any] = []
    try:
        yield opened
    finally:
        for thing in reversed(opened):
            thing.close()
