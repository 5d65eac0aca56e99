"""``make demo``: the main job of cacheplug on the embedded default (memory + disk tiers).

A slow service function is served cold (computed), then warm from the memory tier, then —
in a second process with an empty memory tier — from the disk tier shared by every process
of the host; a tag invalidation makes it recompute, and invalidating a key makes what was
derived from it stale. Then: an ORM-style save hook (a blinker signal) invalidating one row
and a bulk write invalidating a whole table; 32 threads missing one key at once (one
computation); an expired value served while it refreshes in the background; entries warmed
before anyone asks. Timings and stats are printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time

import cacheplug
from cacheplug import cached
from cacheplug.observe.html import render_html


@cached(ttl=600, tags=["report:{region}"])
def sales_report(region: str, year: int) -> dict[str, object]:
    """A slow service call: pretend to aggregate a year of orders."""
    time.sleep(0.4)
    return {"region": region, "year": year, "total": sum(range(year)) % 100_000}


PRICES = {7: 19.99, 8: 5.49}
COMPUTED: list[int] = []


@cached(ttl=600, tags=["order:{order_id}"])
def order_total(order_id: int) -> float:
    """What a save hook keeps fresh: a value read from the 'order' table."""
    COMPUTED.append(order_id)
    return PRICES[order_id]


@cached(ttl=600, warm=[("eu",), ("us",), ("apac",)])
def region_dashboard(region: str) -> str:
    """Warmed before anyone asks (cacheplug.warm_now(), or start_warming() in a service)."""
    time.sleep(0.1)
    return f"{region}: 1,204 orders"


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
    _writes()
    _stampede()
    _freshness()
    _warming()
    _observed(cache)


def _orders() -> str:
    totals = f"order 7 = {order_total(7)}, order 8 = {order_total(8)}"
    return f"{totals}; recomputed {COMPUTED}"


def _writes() -> None:
    """An ORM save hook sends cacheplug.signals.written; cacheplug invalidates by entity."""
    print("\nwrites reported by a save hook (cacheplug.signals.written, as the ORM integrations send):")
    for order_id in (7, 8):
        order_total.invalidate(order_id)  # start cold every time the demo runs
        order_total(order_id)
    PRICES[7] = 24.99
    COMPUTED.clear()
    cacheplug.signals.written.send("orm", entity="order", id=7)  # one row was saved
    print(f"  a save of order 7:  {_orders()}")
    PRICES.update({7: 22.49, 8: 4.99})
    COMPUTED.clear()
    cacheplug.signals.written.send("orm", entity="order", id=None)  # a bulk UPDATE of the table
    print(f"  a bulk table write: {_orders()}")


@cached(ttl=600)
def exchange_rates(day: str) -> dict[str, float]:
    """A slow upstream call that 32 request threads want at the same moment."""
    time.sleep(0.3)
    return {"EUR": 1.08, "GBP": 1.27}


def _stampede() -> None:
    exchange_rates.invalidate("2026-12-01")
    before = cacheplug.get_cache().stats().functions.get(f"{__name__}.exchange_rates")
    start = threading.Barrier(32)

    def request() -> None:
        start.wait()
        exchange_rates("2026-12-01")

    began = time.perf_counter()
    threads = [threading.Thread(target=request) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    after = cacheplug.get_cache().stats().functions[f"{__name__}.exchange_rates"]
    misses = after.misses - (before.misses if before else 0)
    coalesced = after.coalesced - (before.coalesced if before else 0)
    print("\na stampede: 32 threads miss one key at the same moment (single-flight):")
    print(f"  {misses} computation; {coalesced} callers waited for it and shared its value")
    print(f"  {took * 1e3:.0f} ms for all 32 (the computation takes 300 ms)")


QUOTES = {"ACME": 101.5}


@cached(ttl=1, stale_ttl=60)
def stock_quote(symbol: str) -> float:
    """A slow quote service: after expiry, callers get the last quote while one refresh runs."""
    time.sleep(0.2)
    return QUOTES[symbol]


def _freshness() -> None:
    stock_quote.invalidate("ACME")  # start cold every time the demo runs
    stock_quote("ACME")
    QUOTES["ACME"] = 104.25
    time.sleep(1.05)  # the entry expires (ttl=1)
    start = time.perf_counter()
    stale = stock_quote("ACME")
    took = time.perf_counter() - start
    cacheplug.get_cache().background.wait(10)  # the refresh runs in the cache's own pool
    print("\nafter expiry, @cached(ttl=1, stale_ttl=60) serves the last value and refreshes it:")
    print(f"  the call after expiry: {stale} in {took * 1e6:.0f} µs (not a 200 ms computation)")
    print(f"  once the background refresh landed: {stock_quote('ACME')}")


def _warming() -> None:
    for region in ("eu", "us", "apac"):
        region_dashboard.invalidate(region)  # start cold every time the demo runs
    report = cacheplug.warm_now()
    start = time.perf_counter()
    region_dashboard("apac")
    took = time.perf_counter() - start
    print("\nwarming (@cached(warm=[...]) registered a task; cacheplug.warm_now() ran it):")
    print(f"  {report.warmed} entries warmed in {report.duration * 1e3:.0f} ms (4 workers)")
    print(f"  the first request for apac: {took * 1e6:.0f} µs (a memory hit, not a 100 ms computation)")


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
