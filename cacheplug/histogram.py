"""Latency histograms: cheap to record, exact to merge, honest about their resolution.

A :class:`Histogram` counts durations in log-scale buckets, 4 per power of two (each bucket's
upper bound is 2^(1/4), about 19%, above its lower one), from 2^-24 s (60 ns) to 2^8 s
(256 s); shorter durations land in the first bucket, longer ones in the last. Recording is
one bisection of the bounds and one increment under an uncontended lock (about 0.3 µs), so
it is done for every computation and shared-tier hit, and for 1 in 64 memory hits.

:meth:`Histogram.read` gives a :class:`Latency`: an immutable reading that can be
subtracted (an interval's durations are ``now.minus(before)``), added (several processes)
and asked for percentiles. A percentile is the upper bound of the bucket holding it, so it
errs high by at most 19%, never low.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BUCKETS", "SAMPLES_MAX", "Histogram", "Latency", "bucket_bound"]

_PER_OCTAVE = 4
_LOWEST = -24  # 2**-24 s: 59.6 ns
_HIGHEST = 8  # 2**8 s: 256 s
BUCKETS = (_HIGHEST - _LOWEST) * _PER_OCTAVE + 2
"""How many buckets a histogram has (the last one also holds every longer duration)."""


SAMPLES_MAX = 256
"""How many appended samples wait, at most, before the fast path folds them in."""


def bucket_bound(index: int) -> float:
    """The upper bound, in seconds, of bucket ``index`` (``inf`` for the last)."""
    if index >= BUCKETS - 1:
        return math.inf
    return float(2.0 ** (_LOWEST + index / _PER_OCTAVE))


# The finite upper bounds, in index order: a duration's bucket is the first whose bound is at
# least the duration (a bisection, exact where ``ceil(log2(...))`` can be one ulp off and
# put a duration just above a bound into the bucket below it, so a percentile read low).
_BOUNDS = tuple(bucket_bound(i) for i in range(BUCKETS - 1))


class Histogram:
    """Durations (seconds) counted in log-scale buckets; safe across threads."""

    __slots__ = ("_counts", "_lock", "_total", "samples")

    def __init__(self) -> None:
        # Sparse: a function's durations fill a few buckets (and most functions have few).
        self._counts: dict[int, int] = {}
        self._total = 0.0
        self._lock = threading.Lock()
        # Durations appended by the hit fast path (``list.append`` is atomic and costs a
        # tenth of ``record``), folded in by ``drain``: at every read, and by the fast path
        # when SAMPLES_MAX are waiting.
        self.samples: list[float] = []

    def drain(self) -> None:
        """Fold the appended ``samples`` into the buckets (one lock for the whole batch)."""
        samples = self.samples
        find, bounds = bisect.bisect_left, _BOUNDS
        with self._lock:
            # Taken under the lock: two threads draining at once must not both fold one batch.
            batch = samples[:]
            del samples[: len(batch)]  # appends made meanwhile are at the end: kept for next time
            counts = self._counts
            total = 0.0
            for seconds in batch:
                if seconds > 0.0:
                    total += seconds
                    index = find(bounds, seconds)
                else:
                    index = 0  # NaN and durations <= 0
                counts[index] = counts.get(index, 0) + 1
            self._total += total

    def record(self, seconds: float) -> None:
        """Count one duration (appended, folded in batches: a miss records one, and taking the
        lock and the bucket for each cost a memory-only miss about 15%)."""
        samples = self.samples
        samples.append(seconds)
        if len(samples) >= SAMPLES_MAX:
            self.drain()

    def read(self) -> Latency:
        """An immutable reading of everything recorded so far."""
        if self.samples:
            self.drain()
        with self._lock:
            buckets = tuple(sorted(self._counts.items()))
            total = self._total
        return Latency(count=sum(n for _, n in buckets), total=total, buckets=buckets)


@dataclass(frozen=True, slots=True)
class Latency:
    """A reading of a :class:`Histogram`: how many durations, their sum, and their buckets.

    ``buckets``: ``(index, count)`` pairs of the non-empty buckets, in index order
    (:func:`bucket_bound` gives an index's upper bound in seconds).
    """

    count: int = 0
    total: float = 0.0
    buckets: tuple[tuple[int, int], ...] = ()

    @property
    def mean(self) -> float | None:
        """The mean duration in seconds, or ``None`` when nothing was recorded."""
        return self.total / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0 < q <= 100) in seconds, high by at most 19%; ``None`` if empty."""
        if not 0 < q <= 100:
            raise ValueError(f"a percentile is in (0, 100], got {q!r}")
        if not self.count:
            return None
        rank = math.ceil(self.count * q / 100)
        seen = 0
        for index, n in self.buckets:
            seen += n
            if seen >= rank:
                return bucket_bound(index)
        return bucket_bound(self.buckets[-1][0])  # pragma: no cover - ranks never exceed count

    def minus(self, earlier: Latency) -> Latency:
        """The durations recorded since ``earlier`` (a reading of the same histogram)."""
        before = dict(earlier.buckets)
        buckets = tuple((i, n - before.get(i, 0)) for i, n in self.buckets if n > before.get(i, 0))
        return Latency(
            count=max(self.count - earlier.count, 0),
            total=max(self.total - earlier.total, 0.0),
            buckets=buckets,
        )

    def plus(self, other: Latency) -> Latency:
        """Both readings' durations together (e.g. two processes, or two tiers)."""
        merged = dict(self.buckets)
        for i, n in other.buckets:
            merged[i] = merged.get(i, 0) + n
        return Latency(self.count + other.count, self.total + other.total, tuple(sorted(merged.items())))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (with the p50/p95/p99 for readers that do not compute them)."""
        return {
            "count": self.count,
            "total": self.total,
            "buckets": [[i, n] for i, n in self.buckets],
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Latency:
        """Read back :meth:`to_dict`'s form (``ValueError`` when it is malformed)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a latency reading must be a mapping, got {data!r}")
        count, total, raw = data.get("count", 0), data.get("total", 0.0), data.get("buckets", ())
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"a latency reading's 'count' must be an int >= 0, got {count!r}")
        if (
            isinstance(total, bool)
            or not isinstance(total, (int, float))
            or not 0 <= total < math.inf  # NaN fails too
        ):
            raise ValueError(f"a latency reading's 'total' must be a finite number >= 0, got {total!r}")
        if not isinstance(raw, (list, tuple)):
            raise ValueError(f"a latency reading's 'buckets' must be a list of [index, count], got {raw!r}")
        buckets = _checked_buckets(raw)
        if count != sum(n for _, n in buckets):
            raise ValueError(f"inconsistent latency reading (count is not the buckets' sum): {data!r}")
        return cls(count, float(total), buckets)


def _checked_buckets(raw: Iterable[Any]) -> tuple[tuple[int, int], ...]:
    buckets: list[tuple[int, int]] = []
    for item in raw:
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or any(isinstance(x, bool) or not isinstance(x, int) for x in item)
        ):
            raise ValueError(f"bad bucket {item!r}: a bucket is [index, count], two ints")
        index, n = item
        if not 0 <= index < BUCKETS or n <= 0 or (buckets and index <= buckets[-1][0]):
            raise ValueError(f"bad bucket {item!r}: indexes in 0..{BUCKETS - 1}, increasing, with counts > 0")
        buckets.append((index, n))
    return tuple(buckets)
