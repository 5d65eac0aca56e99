"""Which keys are hot: hit counts that decay over time, in bounded memory.

:class:`HotKeys` is the algorithm behind ``Cache(learn=True)``, with no cache in it: it is
told "key K was hit n times" and answers "which keys are hot now, and how hot". Its memory
is fixed at construction, however many distinct keys it is told about:

* **Count-min sketch** (Cormode & Muthukrishnan, 2005): ``depth`` rows of ``width``
  counters (a power of two); a count is added to one counter per row and a key's estimate
  is the smallest of its counters. The counter is chosen by multiply-shift hashing of the
  key's ``hash()`` with a different odd multiplier per row (Dietzfelbinger et al., 1997), so
  the rows are independent even for keys whose hashes are consecutive integers. It never
  underestimates, and overestimates by at most ``e·N/width`` with probability
  ``1 - e^-depth`` (``N``: the total count).
* **Top-k**: at most ``capacity`` keys with their score. A key not held is admitted when its
  sketch estimate beats the smallest score held (or there is room); from then on its score
  is exact. Admissions are merged in batches (:meth:`settle`), so telling it about a key
  costs O(depth), not O(capacity).
* **Forward decay** (Cormode, Shkapenyuk, Srivastava & Xu, ICDE 2009): a count observed at
  time ``t`` is added with the weight ``2^((t - t0) / half_life)`` and every score read at
  time ``now`` is divided by ``2^((now - t0) / half_life)``: each count halves every
  ``half_life`` seconds without any counter being touched. When the weights grow large the
  landmark ``t0`` moves to ``now`` (every counter is rescaled once, O(width·depth)).

Scores are in hits: a key hit 10 times just now scores 10, and 5 one half-life later. Keys
whose score falls below ``floor`` leave the top-k. Not thread-safe: its one user (the cache's
learner) calls it from one thread at a time.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["HotKeys"]

K = TypeVar("K", bound=Hashable)

# The weights are rescaled (the landmark moved) before they reach 2 to this power: far from
# overflow, with room for 2^64 hits per counter on top.
_RESCALE_AT = 128.0
_MASK = (1 << 64) - 1
# Odd 64-bit multipliers, one per row (the first of splitmix64's outputs, made odd).
_MULTIPLIERS = (
    0xE220A8397B1DCDAF,
    0x6E789E6AA1B965F5,
    0x06C45D188009454F,
    0xF88BB8A8724C81ED,
    0x1B39896A51A8749B,
    0x53CB9F0C747EA2EB,
    0x2C829ABE1F4532E1,
    0xC584133AC916AB3D,
)


class HotKeys(Generic[K]):
    """Decayed hit counts of keys: a count-min sketch and the top ``capacity`` keys."""

    def __init__(
        self,
        capacity: int = 1024,
        *,
        half_life: float = 60.0,
        width: int = 2048,
        depth: int = 4,
        floor: float = 0.05,
        now: float = 0.0,
    ) -> None:
        for name, value in (("capacity", capacity), ("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"HotKeys {name}= must be an int >= 1, got {value!r}")
        if depth > len(_MULTIPLIERS):
            raise ValueError(f"HotKeys depth= is at most {len(_MULTIPLIERS)}, got {depth}")
        width = 1 << (width - 1).bit_length()  # a power of two, for multiply-shift hashing
        if not (isinstance(half_life, (int, float)) and math.isfinite(half_life) and half_life > 0):
            raise ValueError(f"HotKeys half_life= must be a number of seconds > 0, got {half_life!r}")
        self.capacity, self.half_life, self.width, self.depth, self.floor = (
            capacity,
            float(half_life),
            width,
            depth,
            floor,
        )
        self._rows = [array("d", bytes(8 * width)) for _ in range(depth)]
        self._shift = 64 - (width.bit_length() - 1)
        self._slots = tuple(zip(self._rows, _MULTIPLIERS, strict=False))
        self._top: dict[K, float] = {}  # scaled scores (divide by the weight to read)
        self._pending: dict[K, float] = {}  # candidates for the top-k, with their estimates
        self._landmark = self._now = float(now)
        self._weight = 1.0

    # -- time -------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move the clock to ``now`` (seconds; a clock that goes back is ignored)."""
        if now <= self._now:
            return
        self._now = now
        exponent = (now - self._landmark) / self.half_life
        if exponent < _RESCALE_AT:
            self._weight = 2.0**exponent
        else:
            self._rescale(2.0 ** max(-exponent, -1074.0))  # may be 0.0: everything decayed away

    def _rescale(self, factor: float) -> None:
        for row in self._rows:
            for i, value in enumerate(row):
                if value:
                    row[i] = value * factor
        for table in (self._top, self._pending):
            for key in table:
                table[key] *= factor
        self._landmark, self._weight = self._now, 1.0

    # -- counting ---------------------------------------------------------------------------

    def add(self, key: K, count: float = 1.0) -> None:
        """Count ``count`` hits of ``key`` now."""
        scaled = count * self._weight
        h, shift = hash(key), self._shift
        estimate = math.inf
        for row, multiplier in self._slots:
            j = ((h * multiplier) & _MASK) >> shift
            value = row[j] + scaled
            row[j] = value
            if value < estimate:
                estimate = value
        top = self._top
        if key in top:
            top[key] += scaled
        else:
            self._pending[key] = estimate
            if len(self._pending) > 4 * self.capacity:
                self.settle()

    def settle(self) -> None:
        """Merge the keys counted since the last call into the top-k (keep the hottest)."""
        pending, top = self._pending, self._top
        if not pending:
            return
        self._pending = {}
        top.update(pending)
        if len(top) > self.capacity:
            kept = heapq.nlargest(self.capacity, top.items(), key=lambda item: item[1])
            self._top = dict(kept)
        self._forget_cold()

    def _forget_cold(self) -> None:
        lowest = self.floor * self._weight
        cold = [key for key, score in self._top.items() if score < lowest]
        for key in cold:
            del self._top[key]

    # -- reading ----------------------------------------------------------------------------

    def score(self, key: K) -> float:
        """``key``'s decayed hit count now (its exact score if held, else the sketch's estimate)."""
        found = self._top.get(key)
        if found is None:
            h, shift = hash(key), self._shift
            found = min(row[((h * multiplier) & _MASK) >> shift] for row, multiplier in self._slots)
        return found / self._weight

    def hot(self, threshold: float = 0.0) -> list[tuple[K, float]]:
        """The keys held with a score of at least ``threshold``, hottest first."""
        self.settle()
        lowest = threshold * self._weight
        weight = self._weight
        found = [(key, score / weight) for key, score in self._top.items() if score >= lowest]
        found.sort(key=lambda item: item[1], reverse=True)
        return found

    def discard(self, keep: Callable[[K], bool]) -> int:
        """Drop the held keys for which ``keep(key)`` is false; return how many went."""
        self.settle()
        gone = [key for key in self._top if not keep(key)]
        for key in gone:
            del self._top[key]
        return len(gone)

    def __len__(self) -> int:
        """Keys held in the top-k (at most ``capacity``, once settled)."""
        return len(self._top)

    @property
    def counters(self) -> int:
        """The sketch's counters: ``width * depth``, whatever the number of keys seen."""
        return sum(len(row) for row in self._rows)

    def __repr__(self) -> str:
        return (
            f"HotKeys(capacity={self.capacity}, held={len(self._top)}, half_life={self.half_life}, "
            f"sketch={self.depth}x{self.width})"
        )
