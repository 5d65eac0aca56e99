"""Turn a pytest-benchmark JSON file into the ratio table of the performance targets.

Usage: ``python benchmarks/check_ratios.py [bench.json] [--markdown out.md]``
(default file: ``.venv/bench.json``, written by ``make bench``).

Each figure is a ratio between cacheplug and a peer measured in the same run. Per
benchmark the **median** round is used (converted to ns per operation): the median is what
a typical call costs, including periodic work (eviction, garbage collection) that a
minimum would hide, and it is robust to the occasional round disturbed by another process.
Micro-benchmarks run in several interleaved passes; the ratio is computed per pass and the
median of the per-pass ratios is reported, with their spread. Exit status 1 when a target
is missed or a figure is missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

MIN_INVALIDATION_RATE = 900.0  # the background load must really reach ~1,000/s


@dataclass(frozen=True)
class Target:
    name: str
    cacheplug: str
    peer: str
    op: str  # "<=": ratio = cacheplug / peer time; ">=": ratio = peer / cacheplug time;
    # "max": the cacheplug figure itself must not exceed ``target`` (in ``unit``; no peer)
    target: float | None  # None: printed for reference only
    issue: str
    unit: str = "ns"


_T = Target
TARGETS = [
    _T("memory hit vs cachebox cached(TTLCache)", "hit.cacheplug", "hit.cachebox_ttl", "<=", 1.0, "#2"),
    _T(
        "memory hit vs cachetools cached(LRUCache, lock)",
        "hit.cacheplug",
        "hit.cachetools_lru_lock",
        "<=",
        0.6,
        "#2",
    ),
    _T(
        "memory hit vs cachetools cached(TTLCache, lock)",
        "hit.cacheplug",
        "hit.cachetools_ttl_lock",
        "<=",
        0.6,
        "#2",
    ),
    _T("memory hit vs functools.lru_cache", "hit.cacheplug", "hit.lru_cache", "<=", None, "ref"),
    _T(
        "async memory hit vs aiocache (timeout=0)",
        "async_hit.cacheplug",
        "async_hit.aiocache",
        "<=",
        0.2,
        "#2",
    ),
    _T(
        "memory miss+store vs cachetools TTLCache(lock)",
        "miss.cacheplug",
        "miss.cachetools_ttl_lock",
        "<=",
        0.6,
        "#2",
    ),
    _T(
        "evicting miss+store vs cachetools LRUCache",
        "evict_miss.cacheplug",
        "evict_miss.cachetools_lru",
        "<=",
        0.8,
        "#7",
    ),
    _T(
        "evicting miss+store vs cachebox TTLCache",
        "evict_miss.cacheplug",
        "evict_miss.cachebox_ttl",
        "<=",
        0.9,
        "#7",
    ),
    _T("hit, miss-only middleware / no middleware", "mw_hit.cacheplug", "mw_hit.none", "<=", 1.05, "#7"),
    _T(
        "hit, OTel middleware (SDK, trace_hits=0) / none",
        "otel_hit.cacheplug",
        "otel_hit.none",
        "<=",
        1.10,
        "#8",
    ),
    _T(
        "miss, OTel middleware (SDK span+histogram) / none",
        "otel_miss.cacheplug",
        "otel_miss.none",
        "<=",
        None,
        "#8",
    ),
    _T(
        "memory hit, stats recording / without",
        "stats_hit.recording",
        "stats_hit.bare",
        "<=",
        1.10,
        "#8",
    ),
    _T(
        "memory hit, learning usage / not learning",
        "learn_hit.learning",
        "learn_hit.plain",
        "<=",
        1.10,
        "#9",
    ),
    _T(
        "memory hit far from expiry, early_refresh / off",
        "fresh_hit.early_refresh",
        "fresh_hit.off",
        "<=",
        1.05,
        "#9",
    ),
    _T(
        "memory hit, stale_ttl + stale_if_error / off",
        "fresh_hit.stale_options",
        "fresh_hit.off",
        "<=",
        1.05,
        "#9",
    ),
    _T("disk hit vs diskcache get", "disk_hit.cacheplug", "disk_hit.diskcache_get", "<=", 1.3, "#2"),
    _T(
        "miss, store memory+disk vs diskcache set",
        "disk_miss.cacheplug",
        "disk_miss.diskcache_set",
        "<=",
        1.4,
        "#2",
    ),
    _T(
        "2 threads total throughput / 1 thread (hot set)",
        "threads.cacheplug.threads2",
        "threads.cacheplug.threads1",
        ">=",
        0.9,
        "#2",
    ),
    _T(
        "cachetools(LRU, lock): 2 threads / 1 thread",
        "threads.cachetools_lru_lock.threads2",
        "threads.cachetools_lru_lock.threads1",
        ">=",
        None,
        "ref",
    ),
    _T(
        "bytes per entry vs cachetools TTLCache",
        "bytes.cacheplug",
        "bytes.cachetools_ttl_lock",
        "<=",
        1.0,
        "#2",
        "B",
    ),
    _T(
        "bytes per entry vs functools.lru_cache", "bytes.cacheplug", "bytes.lru_cache", "<=", None, "ref", "B"
    ),
    _T("invalidate tag on 1M entries / on 1 entry", "invalidate.million", "invalidate.one", "<=", 2.0, "#3"),
    _T(
        "coherent hit (4 tags+dep) vs core hit, f(1,'x')",
        "coherent.one.coherent",
        "coherent.one.core",
        "<=",
        1.2,
        "#3",
    ),
    _T(
        "coherent hit vs core hit, hot set of 1000",
        "coherent.hot1000.coherent",
        "coherent.hot1000.core",
        "<=",
        1.2,
        "#3",
    ),
    _T(
        "hit under 1000 inval/s vs core hit, f(1,'x')",
        "under_invalidation.one.under_invalidation",
        "under_invalidation.one.core",
        "<=",
        2.0,
        "#3",
    ),
    _T(
        "hit under 1000 inval/s vs core hit, hot 1000",
        "under_invalidation.hot1000.under_invalidation",
        "under_invalidation.hot1000.core",
        "<=",
        2.0,
        "#3",
    ),
    _T(
        "disk hit, 4 tags, version checks vs diskcache get",
        "disk_hit.cacheplug_tagged",
        "disk_hit.diskcache_get",
        "<=",
        1.3,
        "#3",
    ),
    _T(
        "signed disk hit (HMAC-SHA256) vs diskcache get",
        "disk_hit.cacheplug_signed",
        "disk_hit.diskcache_get",
        "<=",
        1.45,
        "#6",
    ),
    _T(
        "miss+store mem+disk, tags, no-stale-set vs dc set",
        "disk_miss.cacheplug_tagged",
        "disk_miss.diskcache_set",
        "<=",
        1.5,
        "#3",
    ),
    _T("memory hit, single-flight / without", "stampede_hit.on", "stampede_hit.off", "<=", 1.05, "#9"),
    _T(
        "uncontended memory miss, single-flight / without",
        "stampede_miss.on",
        "stampede_miss.off",
        "<=",
        1.10,
        "#9",
    ),
    _T(
        "uncontended general-path miss, single-flight / without",
        "stampede_general_miss.on",
        "stampede_general_miss.off",
        "<=",
        1.10,
        "#9",
    ),
    _T(
        "uncontended async miss, single-flight / without",
        "stampede_async_miss.on",
        "stampede_async_miss.off",
        "<=",
        1.10,
        "#9",
    ),
    _T(
        "uncontended memory+disk miss, single-flight / without",
        "stampede_disk_miss.on",
        "stampede_disk_miss.off",
        "<=",
        None,
        "#9",
    ),
    _T(
        "64 threads on a cold key: p99 wait / 200 ms compute",
        "stampede_wait.threads64",
        "stampede_wait.compute",
        "<=",
        1.25,
        "#9",
    ),
    _T(
        "500 tasks on a cold key: p99 wait / 200 ms compute",
        "stampede_wait.tasks500",
        "stampede_wait.compute",
        "<=",
        1.25,
        "#9",
    ),
    _T(
        "commit of 100 ORM rows, collecting / untracked",
        "sqla_commit.collecting",
        "sqla_commit.bare",
        "<=",
        1.05,
        "#10",
    ),
    _T(
        "commit of 100 ORM rows, + invalidation / untracked",
        "sqla_commit.invalidating",
        "sqla_commit.bare",
        "<=",
        1.3,
        "#10",
    ),
    _T(
        "invalidate 1M-entry tag vs diskcache evict 10k",
        "invalidate.million",
        "evict.10000",
        "<=",
        None,
        "ref",
    ),
    _T(
        "invalidate 1M-entry tag vs diskcache evict 100k",
        "invalidate.million",
        "evict.100000",
        "<=",
        None,
        "ref",
    ),
    _T(
        "invalidate 1M-entry tag vs diskcache evict 1M",
        "invalidate.million",
        "evict.1000000",
        "<=",
        None,
        "ref",
    ),
    _T(
        "ASGI cached response vs view computing 1 ms",
        "http_asgi.cacheplug",
        "http_asgi.uncached",
        ">=",
        20.0,
        "#10",
    ),
    _T("ASGI cached response, raw call", "http_asgi.cacheplug", "", "max", 50_000, "#10"),
    _T("ASGI miss+store vs view computing 1 ms", "http_asgi.miss", "http_asgi.uncached", "<=", None, "ref"),
    _T(
        "WSGI cached response vs view computing 1 ms",
        "http_wsgi.cacheplug",
        "http_wsgi.uncached",
        ">=",
        20.0,
        "#10",
    ),
    _T("WSGI cached response, raw call", "http_wsgi.cacheplug", "", "max", 50_000, "#10"),
    _T("WSGI miss+store vs view computing 1 ms", "http_wsgi.miss", "http_wsgi.uncached", "<=", None, "ref"),
    _T(
        "uvicorn (1 worker) req/s: cached / uncached",
        "rps.uvicorn.cached",
        "rps.uvicorn.uncached",
        "<=",
        None,
        "ref",
        "rps",
    ),
    _T(
        "gunicorn (2 workers) req/s: cached / uncached",
        "rps.gunicorn.cached",
        "rps.gunicorn.uncached",
        "<=",
        None,
        "ref",
        "rps",
    ),
]


Series = dict[str, dict[str, tuple[list[float], dict[str, Any]]]]


def load(path: str) -> tuple[dict[str, dict[int, dict[str, Any]]], Series, dict[str, Any]]:
    """Per-benchmark figures (by id and pass) and the interleaved per-round series."""
    with open(path) as fh:
        doc = json.load(fh)
    figures: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    series: Series = defaultdict(dict)
    for bench in doc["benchmarks"]:
        extra = bench.get("extra_info", {})
        ident = extra.get("id")
        if ident is None:
            continue
        for name, values in extra.get("series", {}).items():
            series[name][bench["fullname"]] = (values, extra)
        ops = extra.get("ops", 1)
        stats = bench["stats"]
        if "bytes_per_entry" in extra:
            median = minimum = float(extra["bytes_per_entry"])
        elif "per_second" in extra:  # a throughput measured once (requests per second)
            median = minimum = float(extra["per_second"])
        elif "value_ns" in extra:  # a figure measured by the benchmark itself (a percentile)
            median = minimum = float(extra["value_ns"])
        else:
            median = stats["median"] / ops * 1e9
            minimum = stats["min"] / ops * 1e9
        figures[ident][int(extra.get("pass", 0))] = {"median": median, "min": minimum, "extra": extra}
    return figures, series, doc


def fmt_value(value: float, unit: str) -> str:
    if unit == "rps":
        return f"{value:,.0f} req/s"
    if unit == "B":
        return f"{value:,.0f} B"
    if value >= 1e9:
        return f"{value / 1e9:,.2f} s"
    if value >= 1e6:
        return f"{value / 1e6:,.2f} ms"
    if value >= 1e4:
        return f"{value / 1e3:,.1f} µs"
    return f"{value:,.0f} ns"


def evaluate_series(target: Target, series: Series) -> dict[str, Any] | None:
    """Round-by-round ratios of two interleaved sides, pooled over every pass."""
    cp, peer = series.get(target.cacheplug, {}), series.get(target.peer, {})
    tests = sorted(set(cp) & set(peer))
    if not tests:
        return None
    ratios: list[float] = []
    per_test: list[float] = []
    cp_all: list[float] = []
    peer_all: list[float] = []
    notes = []
    rates = []
    for test in tests:
        a, extra = cp[test]
        b, _ = peer[test]
        pairs = [(x / y if target.op == "<=" else y / x) for x, y in zip(a, b, strict=True)]
        ratios += pairs
        per_test.append(statistics.median(pairs))
        cp_all += a
        peer_all += b
        if "invalidations_per_s" in extra:
            rates.append(extra["invalidations_per_s"])
    row: dict[str, Any] = {
        "target": target,
        "cp": statistics.median(cp_all),
        "peer": statistics.median(peer_all),
        "ratio": statistics.median(ratios),
        "spread": (min(per_test), max(per_test)),
        "clock": cp[tests[0]][1].get("clock", "wall"),
    }
    if target.target is None:
        row["status"] = "info"
    else:
        ok = row["ratio"] <= target.target if target.op == "<=" else row["ratio"] >= target.target
        row["status"] = "PASS" if ok else "FAIL"
    if rates:
        rate = statistics.median(rates)
        notes.append(
            f"background load {rate:,.0f} invalidations/s, passes {min(rates):,.0f}-{max(rates):,.0f}"
        )
        if rate < MIN_INVALIDATION_RATE and row["status"] == "PASS":
            row["status"] = "FAIL"
            notes.append(f"load below {MIN_INVALIDATION_RATE:.0f}/s: figure not valid")
    notes.append(f"{len(ratios)} paired rounds")
    row["note"] = "; ".join(notes)
    return row


def evaluate_limit(
    target: Target, figures: dict[str, dict[int, dict[str, Any]]], series: Series
) -> dict[str, Any]:
    """A figure against an absolute limit: the median of every round (or pass) measured."""
    assert target.target is not None
    rounds = [v for values, _ in series.get(target.cacheplug, {}).values() for v in values]
    if not rounds:
        rounds = [v["median"] for v in figures.get(target.cacheplug, {}).values()]
    row: dict[str, Any] = {"target": target}
    if not rounds:
        row["status"], row["note"] = "MISSING", f"no figure for {target.cacheplug}"
        return row
    row["cp"] = statistics.median(rounds)
    row["peer"] = target.target
    row["ratio"] = row["cp"] / target.target
    row["spread"] = (min(rounds) / target.target, max(rounds) / target.target)
    row["status"] = "PASS" if row["cp"] <= target.target else "FAIL"
    row["clock"] = "wall"
    row["note"] = f"figure / limit; {len(rounds)} rounds"
    return row


def evaluate(target: Target, figures: dict[str, dict[int, dict[str, Any]]], series: Series) -> dict[str, Any]:
    if target.op == "max":
        return evaluate_limit(target, figures, series)
    paired = evaluate_series(target, series)
    if paired is not None:
        return paired
    cp, peer = figures.get(target.cacheplug), figures.get(target.peer)
    row: dict[str, Any] = {"target": target}
    if not cp or not peer:
        row["status"] = "MISSING" if target.target is not None else "n/a"
        row["note"] = f"no figure for {target.cacheplug if not cp else target.peer}"
        return row
    common = sorted(set(cp) & set(peer)) or [None]

    def ratio(a: float, b: float) -> float:
        return a / b if target.op == "<=" else b / a

    if common == [None]:  # one-shot figures measured once (e.g. evict) vs per-pass figures
        cp_values = [v["median"] for v in cp.values()]
        peer_values = [v["median"] for v in peer.values()]
        ratios = [ratio(statistics.median(cp_values), statistics.median(peer_values))]
    else:
        cp_values = [cp[p]["median"] for p in common]
        peer_values = [peer[p]["median"] for p in common]
        ratios = [ratio(a, b) for a, b in zip(cp_values, peer_values, strict=True)]
    row["cp"] = statistics.median(cp_values)
    row["peer"] = statistics.median(peer_values)
    row["ratio"] = statistics.median(ratios)
    row["spread"] = (min(ratios), max(ratios))
    notes = []
    if target.target is None:
        row["status"] = "info"
    else:
        ok = row["ratio"] <= target.target if target.op == "<=" else row["ratio"] >= target.target
        row["status"] = "PASS" if ok else "FAIL"
    rates = [v["extra"].get("invalidations_per_s") for v in cp.values()]
    rates = [r for r in rates if r is not None]
    if rates:
        rate = statistics.median(rates)
        notes.append(
            f"background load {rate:,.0f} invalidations/s, passes {min(rates):,.0f}-{max(rates):,.0f}"
        )
        if rate < MIN_INVALIDATION_RATE and row["status"] == "PASS":
            row["status"] = "FAIL"
            notes.append(f"load below {MIN_INVALIDATION_RATE:.0f}/s: figure not valid")
    clocks = {
        v["extra"].get("clock", "wall")
        for v in (*cp.values(), *peer.values())
        if "bytes_per_entry" not in v["extra"]
    }
    row["clock"] = "/".join(sorted(clocks)) or "—"
    if len(clocks) > 1:
        notes.append("sides timed with different clocks")
    row["note"] = "; ".join(notes)
    return row


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    head = [
        "figure",
        "issue",
        "clock",
        "cacheplug",
        "peer",
        "ratio",
        "target",
        "result",
        "per-pass range, notes",
    ]
    lines = []
    for row in rows:
        t: Target = row["target"]
        if t.target is None:
            goal = "—"
        elif t.op == "max":
            goal = f"<= {fmt_value(t.target, t.unit)}"
        else:
            goal = f"{t.op} {t.target:g}x"
        if "ratio" in row:
            lo, hi = row["spread"]
            cells = [
                t.name,
                t.issue,
                row["clock"],
                fmt_value(row["cp"], t.unit),
                fmt_value(row["peer"], t.unit),
                f"{row['ratio']:.3g}x",
                goal,
                row["status"],
                f"{lo:.3g}-{hi:.3g}" + (f" ({row['note']})" if row["note"] else ""),
            ]
        else:
            cells = [t.name, t.issue, "—", "—", "—", "—", goal, row["status"], row["note"]]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head[:-1])]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths)) + "  {}"
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths), "-" * 15)]
    out += [fmt.format(*cells) for cells in lines]
    return "\n".join(out)


def extras(figures: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    notes = []
    for ident in ("invalidate.one", "invalidate.million"):
        if ident in figures:
            extra = next(iter(figures[ident].values()))["extra"]
            notes.append(
                f"{ident}: {extra.get('entries', '?'):,} entries carry the tag "
                f"({extra.get('disk_rows', '?'):,} also on disk); setup {extra.get('setup_s', 0):.1f} s"
            )
    for rows in (10_000, 100_000, 1_000_000):
        ident = f"evict.{rows}"
        if ident in figures:
            extra = next(iter(figures[ident].values()))["extra"]
            value = next(iter(figures[ident].values()))["median"]
            notes.append(
                f"diskcache evict(tag) on {rows:,} rows: {value / 1e9:.3f} s (build in one transaction: "
                f"{extra.get('setup_s', 0):.1f} s)"
            )
        elif rows == 1_000_000 and "evict.100000" in figures:
            extra = next(iter(figures["evict.100000"].values()))["extra"]
            notes.append(
                f"diskcache evict(tag) on 1,000,000 rows: omitted, building the rows would take "
                f"~{extra.get('estimated_1m_setup_s', 0):.0f} s here (CACHEPLUG_BENCH_EVICT_1M=1 runs it)"
            )
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", default=os.path.join(".venv", "bench.json"))
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    args = parser.parse_args(argv)
    if not os.path.exists(args.json):
        print(f"check_ratios: {args.json} not found; run `make bench` first", file=sys.stderr)
        return 2
    figures, series, doc = load(args.json)
    rows = [evaluate(t, figures, series) for t in TARGETS]
    machine = doc.get("machine_info", {})
    when = doc.get("datetime", datetime.datetime.now(datetime.UTC).isoformat())
    cpu = machine.get("cpu", {}).get("brand_raw") or platform.processor() or "?"
    header = (
        f"cacheplug benchmark ratios — {when[:19]} UTC — {cpu}, {os.cpu_count()} cores, "
        f"Python {machine.get('python_version', platform.python_version())}; medians, ns per operation"
    )
    print()
    print(header)
    print(table(rows, markdown=False))
    for note in extras(figures):
        print("  " + note)
    failed = [r for r in rows if r["status"] in ("FAIL", "MISSING")]
    print()
    print(
        f"{len(failed)} of {sum(1 for r in rows if r['target'].target is not None)} targets missed"
        if failed
        else "all targets met"
    )
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(header + "\n\n" + table(rows, markdown=True) + "\n\n")
            fh.writelines(f"- {note}\n" for note in extras(figures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
