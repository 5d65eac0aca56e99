"""Make docs/images/report.png: a report of a scripted run, rendered by headless Chromium.

Run from the repository root: ``python docs/images/make_report_screenshot.py`` (needs
``chromium`` on PATH). The run is scripted but its durations are real: the cache's clock is
``perf_counter`` plus an offset that jumps a minute between snapshots, so twenty "minutes" of
traffic take a few seconds and the latencies are what this machine measured.
"""

from __future__ import annotations

import contextlib
import gc
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cacheplug import Cache, CacheStats, DiskTier, MemoryTier, cached
from cacheplug.observe.html import render_html
from cacheplug.observe.report import build_report

F = TypeVar("F", bound=Callable[..., Any])
HERE = Path(__file__).resolve().parent
INTERVALS = 20


class MinuteClock:
    """Real time, plus whole minutes skipped between snapshots."""

    def __init__(self) -> None:
        self.offset = 1_764_590_400.0 - time.perf_counter()  # 2025-12-01 12:00 UTC

    def __call__(self) -> float:
        return time.perf_counter() + self.offset

    def skip(self, seconds: float) -> None:
        self.offset += seconds


def trend(points: list[float]) -> str:
    """A stand-in for the monitor's trend: the least-squares slope per interval, dead band 0.02."""
    n = len(points)
    mean_x, mean_y = (n - 1) / 2, sum(points) / n
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(points)) / sum(
        (i - mean_x) ** 2 for i in range(n)
    )
    return "stable" if abs(slope * n) < 0.02 else "improving" if slope > 0 else "degrading"


def run(workdir: Path) -> dict[str, Any]:
    """Twenty scripted minutes of traffic on three functions; the report over them."""
    random.seed(8)
    clock = MinuteClock()
    disk = DiskTier(workdir / "disk")
    cache = Cache([MemoryTier(max_entries=60), disk], clock=clock)

    def named(module: str) -> Callable[[F], F]:
        """Give a function of this script the name it would have in an application."""

        def rename(func: F) -> F:
            func.__module__, func.__qualname__ = module, func.__name__
            return func

        return rename

    @cached(ttl=3600, cache=cache)
    @named("shop.users")
    def load_user(user_id: int) -> dict[str, int]:
        time.sleep(0.002 + random.random() * 0.004)
        return {"id": user_id}

    @cached(ttl=600, tags=["page:{page}"], cache=cache)
    @named("shop.pages")
    def render_page(page: int) -> str:
        time.sleep(0.012 + random.random() * 0.02)
        return "<p>" * 400

    @cached(ttl=120, cache=cache)
    @named("shop.search")
    def search(query: str) -> list[str]:
        time.sleep(0.001 + random.random() * 0.002)
        if random.random() < 0.03:
            raise TimeoutError("search backend")
        return [query] * 20

    snapshots: list[CacheStats] = [cache.stats()]
    for minute in range(INTERVALS):
        for _ in range(120):  # a working set that the memory tier cannot hold: disk hits
            load_user(int(random.paretovariate(1.2)) % 150)
        for _ in range(40):
            render_page(random.randrange(12))
        for _ in range(60):  # ever more distinct queries: a degrading hit rate
            with contextlib.suppress(TimeoutError):
                search(f"q{random.randrange(10 + minute * 12)}")
        if minute % 5 == 4:
            cache.invalidate(tags=[f"page:{p}" for p in range(6)])
        clock.skip(60.0)
        snapshots.append(cache.stats())

    report = build_report(
        snapshots,
        trends={
            name: trend([p["hit_rate"] or 0.0 for p in run["points"]])
            for name, f in build_report(snapshots)["functions"].items()
            for run in f["series"]
        },
        alerts=[
            {
                "time": snapshots[-1].time,
                "state": "firing",
                "rule": "HitRateBelow(0.5)",
                "subject": "shop.search.search",
                "value": 0.41,
                "threshold": 0.5,
                "message": "shop.search.search: hit rate 41% below 50% over the last interval",
            }
        ],
    )
    cache.close()
    disk.close()
    return report


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cacheplug-report-"))
    report = run(workdir)
    # The closed cache's invalidation-store watcher stops once the store is collected; let it,
    # or it would notice the directory going and recreate it.
    gc.collect()
    for thread in threading.enumerate():
        if thread.name.startswith("cacheplug-versions-watcher"):
            thread.join(timeout=5)
    shutil.rmtree(workdir)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium on PATH to take the screenshot (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as scratch:
        page, profile = Path(scratch) / "report.html", Path(scratch) / "profile"
        page.write_text(render_html(report), encoding="utf-8")
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--run-all-compositor-stages-before-draw",
                "--virtual-time-budget=5000",
                f"--user-data-dir={profile}",
                f"--screenshot={HERE / 'report.png'}",
                "--window-size=1200,1600",
                page.as_uri(),
            ],
            check=True,
            timeout=120,
            capture_output=True,
        )
    print(f"wrote {HERE / 'report.png'}")


if __name__ == "__main__":
    main()
