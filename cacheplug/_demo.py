"""``make demo``: the main job of cacheplug on the embedded default (memory + disk tiers).

A slow service function is served cold (computed), then warm from the memory tier, then —
in a second process with an empty memory tier — from the disk tier shared by every process
of the host; a tag invalidation makes it recompute, and invalidating a key makes what was
derived from it stale. Timings and stats are printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import cacheplug
from cacheplug import cached
from cacheplug.observe.html import render_html


@cached(ttl=600, tags=["report:{region}"])
def sales_report(region: str, year: int) -> dict[str, object]:
    """A slow service call: pretend to aggregate a year of orders."""
    time.sleep(0.4)
    return {"region": region, "year": year, "total": sum(range(year)) % 100_000}


def _timed(label: str) -> None:
    start = time.perf_counter()
    value = sales_report("eu", 2026)
    took = time.perf_counter() - start
    print(f"  {label:<38} {took * 1e3:10.3f} ms   -> {value}")


def second_process() -> None:
    print(f"process {__import__('os').getpid()} (fresh memory tier):")
    _timed("from the disk tier (other process)")
    _timed("then from memory")
    stats = cacheplug.get_cache().stats()
    print(f"  tier hits: {stats['tier_hits']}")


def main() -> None:
    cache = cacheplug.get_cache()
    print(f"cacheplug demo on {cache!r}\n")
    sales_report.cache_clear()  # start cold every time the demo runs
    print(f"process {__import__('os').getpid()}:")
    _timed("cold (computed)")
    _timed("warm (memory tier)")
    _timed("warm again")
    print(f"  {sales_report.cache_info()}")
    print(f"  stats: hits={cache.stats()['hits']} misses={cache.stats()['misses']}\n")
    sys.stdout.flush()
    subprocess.run([sys.executable, "-m", "cacheplug._demo", "--second"], check=True)
    print("\nafter cacheplug.invalidate(tags=['report:eu']):")
    cacheplug.invalidate(tags=["report:eu"])
    _timed("recomputed (the tag was invalidated)")

    print("\na derived key (Cache.set(..., depends_on=[...])):")
    cache.set("fx:eur", 1.08)
    cache.set("summary:eu", "51,325 EUR = 55,431 USD", depends_on=["fx:eur"])
    print(f"  summary:eu                               {cache.get('summary:eu')!r}")
    cache.invalidate(keys=["fx:eur"])  # the rate changed: what was derived from it goes stale
    print(f"  after invalidating fx:eur                {cache.get('summary:eu')!r}")
    _observed(cache)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _observed(cache: cacheplug.Cache) -> None:
    """What the cache saw: per-function outcomes and latencies, a monitor round, a report."""
    for _ in range(640):
        sales_report("eu", 2026)  # a burst of hits: 1 in 64 is timed
    stats = cache.stats()
    report = stats.functions[f"{__name__}.sales_report"]
    print("\nwhat this process's cache saw (cache.stats()):")
    print(
        f"  sales_report: {report.calls} calls, hit rate {report.hit_rate:.1%}, outcomes {report.outcomes()}"
    )
    print(
        f"  compute p95 {_ms(report.compute.percentile(95))}, "
        f"memory hit p95 {_ms(report.hit_latency['memory'].percentile(95))} "
        f"({report.hit_latency['memory'].count} hits timed)"
    )
    for name, tier in stats.tiers.items():
        size = "size not tracked" if tier.bytes is None else f"{tier.bytes:,} bytes"
        print(f"  tier {name}: {tier.hits} hits, {tier.entries} entries, {size}")

    # A monitor round: this interval's hit rate of each function against a rule. (A real
    # service calls monitor.start(): one round per interval in a background thread.)
    monitor = cacheplug.Monitor(cache, interval=60, rules=[cacheplug.HitRateBelow(0.99, min_calls=1)])
    monitor.check()  # the baseline
    for year in range(2000, 2003):
        sales_report("us", year)  # three misses: the hit rate of this interval drops
    sales_report("us", 2000)
    print("\na monitor round (its alerts are logged and sent as cacheplug.signals.alert):")
    sys.stdout.flush()
    alerts = monitor.check()
    print(f"  {len(alerts)} alert(s): {[alert.state for alert in alerts]}")
    path = os.path.join(tempfile.mkdtemp(prefix="cacheplug-demo-"), "report.html")
    with open(path, "w", encoding="utf-8") as out:
        out.write(render_html(monitor.report()))
    monitor.stop()
    print(f"HTML report (no network needed): {path}")
    print("the same from the command line: python -m cacheplug stats / top / report --html out.html")


if __name__ == "__main__":
    if "--second" in sys.argv:
        second_process()
    else:
        main()
