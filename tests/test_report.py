"""The performance report: its dict from real snapshots, the text and the HTML page.

Snapshots come from a real ``Cache([MemoryTier(), DiskTier(...)])`` on the fake clock,
driven by cached functions called in scripted patterns: each computation advances the clock
by a chosen duration, so computations land in known histogram buckets and the percentiles
are exact; the clock moves a minute between snapshots. A second process (a real subprocess
over the same disk tier) publishes its snapshots as JSON, as processes do, to check what a
report over several processes adds up. The HTML page is opened in headless Chromium, whose
rendered DOM must hold the charts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cacheplug import Cache, CacheStats, DiskTier, MemoryTier, cached
from cacheplug.histogram import bucket_bound
from cacheplug.observe.html import render_html
from cacheplug.observe.report import build_report, render_text

from .conftest import FakeClock

ROOT = Path(__file__).resolve().parents[1]
F = TypeVar("F", bound=Callable[..., Any])
NAME = "reportdemo.lookup"  # the function's qualified name, in this process and the other one
COST = {1: 0.25, 2: 0.25, 3: 0.25, 4: 1.0, 5: 0.5, 6: 0.5}  # seconds each computation takes


def named(module: str, qualname: str) -> Callable[[F], F]:
    def rename(func: F) -> F:
        func.__module__, func.__qualname__ = module, qualname
        return func

    return rename


@pytest.fixture
def cache(clock: FakeClock, disk_dir: Path) -> Iterator[Cache]:
    """Memory holds 2 entries: calls cycling over 4 arguments are disk hits, each one timed."""
    disk = DiskTier(disk_dir)
    cache = Cache([MemoryTier(max_entries=2), disk], clock=clock)
    yield cache
    cache.close()
    disk.close()


def lookup_on(cache: Cache, clock: FakeClock) -> Callable[[int], int]:
    @cached(cache=cache, version=1)  # a closure: say what identifies it, so it reaches the disk
    @named("reportdemo", "lookup")
    def lookup(x: int) -> int:
        clock.advance(COST[x])
        return x * x

    return lookup


def scripted(cache: Cache, clock: FakeClock) -> list[CacheStats]:
    """Four one-minute intervals: 4 misses; 8 hits; 2 hits and 2 misses; nothing."""
    lookup = lookup_on(cache, clock)
    snapshots = [cache.stats()]

    def interval(*calls: int) -> None:
        for x in calls:
            lookup(x)
        clock.advance(60)
        snapshots.append(cache.stats())

    interval(1, 2, 3, 4)
    interval(1, 2, 3, 4, 1, 2, 3, 4)
    interval(1, 5, 2, 6)
    interval()
    return snapshots


def test_interval_hit_rates_totals_and_percentiles(cache: Cache, clock: FakeClock) -> None:
    snapshots = scripted(cache, clock)
    report = build_report(snapshots, trends={NAME: "improving"})
    json.dumps(report, allow_nan=False)  # JSON-ready as it is

    assert report["version"] == 1
    assert report["snapshots"] == 5
    assert report["pids"] == [os.getpid()]
    assert report["processes"] == [
        {
            "pid": os.getpid(),
            "namespace": "",
            "snapshots": 5,
            "start": snapshots[0].time,
            "end": snapshots[-1].time,
        }
    ]
    assert report["span"] == {"start": snapshots[0].time, "end": snapshots[-1].time}
    assert report["totals"]["calls"] == 16
    assert report["totals"]["outcomes"] == {"hit": 10, "miss": 6, "stale": 0, "coalesced": 0, "error": 0}
    assert report["totals"]["hit_rate"] == 10 / 16

    f = report["functions"][NAME]
    assert (f["calls"], f["hits"], f["misses"], f["errors"], f["stale"], f["coalesced"]) == (
        16,
        10,
        6,
        0,
        0,
        0,
    )
    assert f["hit_rate"] == 10 / 16
    assert f["trend"] == "improving"
    [run] = f["series"]
    assert run["pid"] == os.getpid()
    # Each interval's own hit rate, not the running total (which would be 0, 2/3, 10/16, 10/16).
    assert [(p["calls"], p["hits"], p["hit_rate"]) for p in run["points"]] == [
        (4, 0, 0.0),
        (8, 8, 1.0),
        (4, 2, 0.5),
        (0, 0, None),
    ]
    assert [p["end"] - p["start"] for p in run["points"]] == [61.75, 60.0, 61.0, 60.0]

    # Six computations: 0.25 s three times, 1 s once, 0.5 s twice (each exactly a bucket bound).
    compute = f["compute"]
    assert (compute["count"], compute["mean"]) == (6, 2.75 / 6)
    assert (compute["p50"], compute["p95"], compute["p99"]) == (0.25, 1.0, 1.0)
    assert [(b["le"], b["count"]) for b in compute["buckets"]] == [(0.25, 3), (0.5, 2), (1.0, 1)]

    # Every hit came from the disk (memory holds 2 of the 4 arguments cycled over), and every
    # disk hit is timed; the fake clock does not move during one: the first bucket.
    assert f["tier_hits"] == {"memory": 0, "disk": 10}
    disk = f["hit_latency"]["disk"]
    assert (disk["count"], disk["p50"], disk["p95"], disk["p99"]) == (10, *[bucket_bound(0)] * 3)
    assert disk["buckets"] == [{"index": 0, "le": bucket_bound(0), "count": 10}]
    assert f["hit_latency"].get("memory", {"p50": None})["p50"] is None


def test_tiers_sizes_and_series(clock: FakeClock, disk_dir: Path) -> None:
    disk = DiskTier(disk_dir)
    cache = Cache([MemoryTier(max_entries=2), disk], clock=clock)
    lookup = lookup_on(cache, clock)
    snapshots = [cache.stats()]
    for calls in ((1, 2, 3, 4), (1, 2)):  # 4 misses (2 evictions), then 2 disk hits
        for x in calls:
            lookup(x)
        clock.advance(60)
        snapshots.append(cache.stats())
    report = build_report(snapshots)
    cache.close()
    disk.close()

    last = snapshots[-1]
    memory, shared = report["tiers"]["memory"], report["tiers"]["disk"]
    assert list(report["tiers"]) == ["memory", "disk"]
    assert (memory["shared"], shared["shared"]) == (False, True)
    assert shared["hits"] == last.tiers["disk"].hits == 2
    assert shared["entries"] == 4 and shared["bytes"] == last.tiers["disk"].bytes
    assert memory["entries"] == 2 and memory["evictions"] == last.tiers["memory"].evictions >= 2
    assert memory["faults"] == shared["faults"] == {}
    [run] = shared["series"]
    assert [p["entries"] for p in run["points"]] == [0, 4, 4]
    assert [p["time"] for p in run["points"]] == [s.time for s in snapshots]
    f = report["functions"][NAME]
    assert f["tier_hits"] == {"memory": 0, "disk": 2}
    assert f["hit_latency"]["disk"]["count"] == 2  # every shared-tier hit is timed

    text = render_text(report)
    assert "disk (shared)" in text and "memory" in text


_OTHER_PROCESS = """
import json, sys
from cacheplug import Cache, DiskTier, MemoryTier, cached

class Clock:
    now = 1_800_000_000.0
    def __call__(self):
        return self.now

clock = Clock()
disk = DiskTier(sys.argv[1])
cache = Cache([MemoryTier(), disk], clock=clock)

def named(func):
    func.__module__, func.__qualname__ = "reportdemo", "lookup"
    return func

@cached(cache=cache)
@named
def lookup(x):
    clock.now += 0.5
    return -x

snapshots = [cache.stats()]
for x in (11, 11, 11, 12):
    lookup(x)
clock.now += 60
snapshots.append(cache.stats())
print(json.dumps([s.to_dict() for s in snapshots]))
cache.close()
disk.close()
"""


def other_process(disk_dir: Path) -> list[CacheStats]:
    """The snapshots of a second process over the same disk tier, read back from its JSON."""
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, str(disk_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    return [CacheStats.from_dict(d) for d in json.loads(done.stdout)]


def test_several_processes(cache: Cache, clock: FakeClock, disk_dir: Path) -> None:
    mine = scripted(cache, clock)
    theirs = other_process(disk_dir)
    assert theirs[0].pid != os.getpid()
    assert NAME in theirs[-1].functions
    report = build_report([*theirs, *mine])  # any order

    assert report["pids"] == sorted({os.getpid(), theirs[0].pid})
    assert report["snapshots"] == 7
    f = report["functions"][NAME]
    assert (f["calls"], f["hits"], f["misses"]) == (16 + 4, 10 + 2, 6 + 2)  # latest per process, summed
    assert report["totals"]["calls"] == 20
    assert f["compute"]["count"] == 8 and f["compute"]["buckets"][1] == {"index": 92, "le": 0.5, "count": 4}
    series = {run["pid"]: [p["hit_rate"] for p in run["points"]] for run in f["series"]}
    assert series == {os.getpid(): [0.0, 1.0, 0.5, None], theirs[0].pid: [0.5]}
    # The disk tier is one store both processes measure: its latest reading, not a sum; the
    # memory tiers are each process's own: summed.
    disk = report["tiers"]["disk"]
    assert disk["entries"] == theirs[-1].tiers["disk"].entries == 8
    assert report["tiers"]["memory"]["entries"] == mine[-1].tiers["memory"].entries + 2
    assert len(disk["series"]) == 2

    html = render_html(report)
    assert f"pid {theirs[0].pid}" in html  # a hit-rate line per process


def test_text_report_rows(cache: Cache, clock: FakeClock) -> None:
    alert = {
        "rule": "HitRateBelow(0.5)",
        "subject": NAME,
        "state": "firing",
        "value": 0.25,
        "threshold": 0.5,
    }
    report = build_report(scripted(cache, clock), alerts=[{**alert, "message": "hit rate 25% below 50%"}])
    text = render_text(report)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("function "))
    row = next(line for line in lines if line.startswith(NAME))
    assert header.split()[:8] == [
        "function",
        "calls",
        "hits",
        "misses",
        "stale",
        "coalesced",
        "errors",
        "hit",
    ]
    cells = [NAME, "16", "10", "6", "0", "0", "0", "62.5%", "250", "ms", "1", "s", "1", "s", "-"]
    assert row.split() == cells
    assert len(header) == len(row)  # aligned
    assert "totals: 16 calls, hit rate 62.5% (hit 10, miss 6, stale 0, coalesced 0, error 0)" in text
    tier_rows = [line.split()[0] for line in lines[lines.index("Tiers") + 3 : lines.index("Alerts") - 1]]
    assert tier_rows == ["memory", "disk"]
    assert "- hit rate 25% below 50% (state=firing, rule=HitRateBelow(0.5), subject=reportdemo.lookup" in text
    assert render_text(build_report([])).splitlines()[-1] == "(none)"


# -- HTML -----------------------------------------------------------------------------------------

EVIL = "<script>alert('x')</script>"


class Elements(HTMLParser):
    """Every start tag with its attributes, and the chart (``data-chart``) each lies in."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None], str | None]] = []
        self._charts: list[str | None] = []
        self._depth: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg":
            self._charts.append(found.get("data-chart"))
        self.tags.append((tag, found, self._charts[-1] if self._charts else None))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self._charts:
            self._charts.pop()

    def charts(self) -> list[str | None]:
        return [a.get("data-chart") for t, a, _ in self.tags if t == "svg"]

    def inside(self, chart: str, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a, c in self.tags if c == chart and t == tag]


def parsed(page: str) -> Elements:
    elements = Elements()
    elements.feed(page)
    return elements


def evil_report(cache: Cache, clock: FakeClock) -> dict[str, Any]:
    snapshots = scripted(cache, clock)

    @cached(cache=cache, version=1)
    @named("evil", EVIL)
    def evil(x: int) -> int:
        clock.advance(0.125)
        return x

    evil(1)
    evil(1)
    clock.advance(60)
    snapshots.append(cache.stats())
    return build_report(
        snapshots,
        trends={f"evil.{EVIL}": "<b>up</b>"},
        alerts=[{"message": '<img src=x onerror="alert(1)">', "subject": f"evil.{EVIL}"}],
    )


def test_html_charts_and_escaping(cache: Cache, clock: FakeClock) -> None:
    report = evil_report(cache, clock)
    page = render_html(report)
    elements = parsed(page)

    assert [t for t, _, _ in elements.tags if t in ("script", "img", "b", "link", "iframe")] == []
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and "&lt;b&gt;up&lt;/b&gt;" in page
    assert f'data-function="evil.{EVIL}"' not in page
    # Self-contained: nothing to fetch, and the page forbids itself any load.
    assert "http://" not in page and "https://" not in page and "src=" not in page.replace("img src=x", "")
    assert '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;' in page

    charts = elements.charts()
    assert charts.count("hit-rate") == 1
    timed = [
        f["name"] for f in report["functions"].values() if any(r["count"] for r in f["hit_latency"].values())
    ]
    assert timed[0] == NAME  # evil's one hit was timed only if the memory tier's sampling picked it
    assert charts.count("compute-latency") == 2 and charts.count("hit-latency") == len(timed)
    assert "tier-entries" in charts and "tier-bytes" in charts
    lines = elements.inside("hit-rate", "path")
    assert [
        a["data-series"] for t, a, c in elements.tags if c == "hit-rate" and t == "g" and "data-series" in a
    ] == [
        NAME,
        f"evil.{EVIL}",
    ]
    assert all(a["class"] == "cp-line" and a["d"] for a in lines) and len(lines) == 2
    # The first line: a point per interval with calls (the empty one breaks it off).
    assert lines[0]["d"] is not None and lines[0]["d"].count("M") == 1 and lines[0]["d"].count("L") == 2
    bars = elements.inside("compute-latency", "rect")
    assert len([b for b in bars if b.get("class") == "cp-bar"]) == 3 + 1  # lookup's 3 buckets, evil's 1
    functions = [a.get("data-function") for t, a, _ in elements.tags if t == "svg" and a.get("data-function")]
    assert functions == [NAME, NAME, f"evil.{EVIL}", *([f"evil.{EVIL}"] if len(timed) == 2 else [])]


def test_html_of_an_empty_report() -> None:
    page = render_html(build_report([]))
    assert "cacheplug performance report" in page and parsed(page).charts() == []


# -- headless Chromium ------------------------------------------------------------------------------


def find_chromium() -> str:
    """Chromium's path; else skip, or fail when ``CACHEPLUG_REQUIRE_SERVICES=1`` (as CI sets)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium on PATH (Debian: apt-get install chromium) to render the HTML report"
        if os.environ.get("CACHEPLUG_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (CACHEPLUG_REQUIRE_SERVICES=1 makes this a failure, not a skip)")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def test_a_missing_chromium_skips_or_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CACHEPLUG_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        find_chromium()
    monkeypatch.setenv("CACHEPLUG_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="CACHEPLUG_REQUIRE_SERVICES=1"):
        find_chromium()


def test_chromium_renders_the_charts(chromium: str, cache: Cache, clock: FakeClock, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(evil_report(cache, clock)), encoding="utf-8")
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = parsed(done.stdout)
    charts = dom.charts()
    assert {"hit-rate", "compute-latency", "hit-latency", "tier-entries", "tier-bytes"} <= set(charts)
    assert [a["class"] for a in dom.inside("hit-rate", "path")] == ["cp-line", "cp-line"]
    assert all(a["d"] for a in dom.inside("hit-rate", "path"))
    assert len([a for a in dom.inside("compute-latency", "rect") if a.get("class") == "cp-bar"]) == 4
    assert [a for a in dom.inside("hit-latency", "rect") if a.get("class") == "cp-bar"]
    assert dom.inside("tier-entries", "path") and dom.inside("tier-bytes", "path")
    assert [t for t, _, _ in dom.tags if t in ("script", "img", "b")] == []  # escaped names stayed text
    assert EVIL in done.stdout.replace("&lt;", "<").replace("&gt;", ">")
