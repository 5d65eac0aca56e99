"""The typed snapshot of a cache's counters: :class:`CacheStats`, per function and per tier.

``Cache.stats()`` returns a :class:`CacheStats`. Every field is documented below; the
snapshot is immutable and also answers ``stats["hits"]`` (it is a read-only mapping of its
fields), so code written against the old dict keeps working. :meth:`CacheStats.to_dict`
gives a JSON-ready dict (processes publish it for the CLI and reports; never pickled) and
:meth:`CacheStats.from_dict` reads it back, refusing malformed input with ``ValueError``.

Outcomes: every call of a cached function ends in exactly one of ``hit`` (served by a
tier), ``miss`` (computed, returned), ``stale`` (a stale value served), ``coalesced`` (it
waited for another caller's computation and got its value) or ``error`` (the call raised).
Their counts sum to the calls made. Counters are exact across threads.
Besides the outcomes, ``refreshes`` and ``refresh_errors`` count the work done off the
callers' path to keep values fresh (see :class:`FunctionStats`); they are not calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .histogram import Latency

__all__ = ["OUTCOMES", "SUMMED_COUNTS", "CacheStats", "FunctionStats", "TierStats"]

OUTCOMES = ("hit", "miss", "stale", "coalesced", "error")
"""The outcomes of a call, each counted once per call."""

_NO_LATENCY = Latency()
# The counts of a FunctionStats: the outcomes, then the background work.
_FUNCTION_COUNTS = ("hits", "misses", "stale", "coalesced", "errors", "refreshes", "refresh_errors")


def _rate(hits: int, calls: int) -> float:
    return hits / calls if calls else 0.0


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """One cached function's counters (functions of one qualified name are summed).

    ``hits``: calls served by a tier, by tier in ``tier_hits``; ``misses``: calls that
    computed and returned; ``stale``: calls served a stale value; ``coalesced``: calls that
    waited for another caller's computation and got its value; ``errors``: calls that raised
    (their computation, or the one they waited for, raised).
    ``refreshes``: background refreshes run (``stale_ttl``, ``early_refresh``);
    ``refresh_errors``: recomputations that raised while the stale value stayed served
    (failed background refreshes and failed ``stale_if_error`` retries); neither is a call.
    ``compute``: the computations' durations (every one). ``hit_latency``: per tier, the
    durations of hits (every shared-tier hit; 1 in 64 memory hits, sampled by the hit
    counter). Durations are in seconds, by ``time.perf_counter`` (or the cache's clock when
    one was given).
    """

    name: str
    hits: int = 0
    misses: int = 0
    stale: int = 0
    coalesced: int = 0
    errors: int = 0
    refreshes: int = 0
    refresh_errors: int = 0
    tier_hits: Mapping[str, int] = field(default_factory=dict)
    compute: Latency = _NO_LATENCY
    hit_latency: Mapping[str, Latency] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """Every call: the sum of the outcomes."""
        return self.hits + self.misses + self.stale + self.coalesced + self.errors

    @property
    def hit_rate(self) -> float:
        """Hits (stale values included) over calls; 0.0 before the first call."""
        return _rate(self.hits + self.stale, self.calls)

    def outcomes(self) -> dict[str, int]:
        """The count of each outcome, keyed as in :data:`OUTCOMES`."""
        return dict(
            zip(OUTCOMES, (self.hits, self.misses, self.stale, self.coalesced, self.errors), strict=True)
        )

    def plus(self, other: FunctionStats) -> FunctionStats:
        """Both snapshots' counts together (two function objects of one name, two processes)."""
        return FunctionStats(
            name=self.name,
            hits=self.hits + other.hits,
            misses=self.misses + other.misses,
            stale=self.stale + other.stale,
            coalesced=self.coalesced + other.coalesced,
            errors=self.errors + other.errors,
            refreshes=self.refreshes + other.refreshes,
            refresh_errors=self.refresh_errors + other.refresh_errors,
            tier_hits=_summed(self.tier_hits, other.tier_hits),
            compute=self.compute.plus(other.compute),
            hit_latency={
                tier: self.hit_latency.get(tier, _NO_LATENCY).plus(other.hit_latency.get(tier, _NO_LATENCY))
                for tier in {**self.hit_latency, **other.hit_latency}
            },
        )

    def minus(self, earlier: FunctionStats) -> FunctionStats:
        """What happened since ``earlier`` (a snapshot of the same function)."""
        return FunctionStats(
            name=self.name,
            hits=max(self.hits - earlier.hits, 0),
            misses=max(self.misses - earlier.misses, 0),
            stale=max(self.stale - earlier.stale, 0),
            coalesced=max(self.coalesced - earlier.coalesced, 0),
            errors=max(self.errors - earlier.errors, 0),
            refreshes=max(self.refreshes - earlier.refreshes, 0),
            refresh_errors=max(self.refresh_errors - earlier.refresh_errors, 0),
            tier_hits={t: max(n - earlier.tier_hits.get(t, 0), 0) for t, n in self.tier_hits.items()},
            compute=self.compute.minus(earlier.compute),
            hit_latency={
                tier: reading.minus(earlier.hit_latency.get(tier, _NO_LATENCY))
                for tier, reading in self.hit_latency.items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            **{name: getattr(self, name) for name in _FUNCTION_COUNTS},
            "calls": self.calls,
            "hit_rate": self.hit_rate,
            "tier_hits": dict(self.tier_hits),
            "compute": self.compute.to_dict(),
            "hit_latency": {tier: reading.to_dict() for tier, reading in self.hit_latency.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionStats:
        """Read back :meth:`to_dict`'s form; ``ValueError`` when it is malformed."""
        return cls(
            name=_name(data, "function"),
            **{name: _count(data, name) for name in _FUNCTION_COUNTS},
            tier_hits={str(k): _nonnegative(v, k) for k, v in _mapping(data, "tier_hits").items()},
            compute=Latency.from_dict(_mapping(data, "compute")),
            hit_latency={str(k): Latency.from_dict(v) for k, v in _mapping(data, "hit_latency").items()},
        )


@dataclass(frozen=True, slots=True)
class TierStats:
    """One tier's counters: ``hits`` it answered, its ``entries`` and ``bytes`` (``None``
    where the tier does not know: a memory tier tracks bytes only with ``max_bytes``),
    ``evictions`` (``None`` where not counted) and ``faults`` by operation (``get``,
    ``set``...)."""

    name: str
    hits: int = 0
    entries: int | None = None
    bytes: int | None = None
    evictions: int | None = None
    faults: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "hits": self.hits,
            "entries": self.entries,
            "bytes": self.bytes,
            "evictions": self.evictions,
            "faults": dict(self.faults),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierStats:
        """Read back :meth:`to_dict`'s form; ``ValueError`` when it is malformed."""
        return cls(
            name=_name(data, "tier"),
            hits=_count(data, "hits"),
            entries=_optional_count(data, "entries"),
            bytes=_optional_count(data, "bytes"),
            evictions=_optional_count(data, "evictions"),
            faults={str(k): _nonnegative(v, k) for k, v in _mapping(data, "faults").items()},
        )


@dataclass(frozen=True, slots=True)
class CacheStats(Mapping[str, Any]):
    """A snapshot of a cache's counters.

    Totals over every function (and the direct ``Cache`` API): ``hits``, ``misses``,
    ``stale``, ``coalesced``, ``errors`` (the outcomes, as in :class:`FunctionStats`),
    ``hit_rate``, ``refreshes`` and ``refresh_errors`` (as in :class:`FunctionStats`);
    ``tier_hits``: hits by tier name. ``entries`` and ``evictions``: the
    memory tier's. ``faults``: tier faults by ``"<tier>.<operation>"`` (``"lock.<operation>"``:
    the host lease store). ``stale_sets``: stores refused because the value was computed
    before an invalidation, or by a host-lease holder that was taken over; ``degraded``: why
    the shared tiers are not used, or ``None``; ``unserializable``: values no shared tier
    could store; ``corrupt``, ``tampered``, ``foreign``: unreadable entries met, by kind;
    ``invalidations``: invalidations this cache recorded; ``epoch``: the version store's
    epoch. ``functions``: per function (:class:`FunctionStats`, by qualified name;
    ``"<direct>"`` is the ``Cache.get``/``set`` API), ``tiers``: per tier
    (:class:`TierStats`, by name). ``time``: the cache's clock when taken; ``pid``: the
    process; ``namespace``: the cache's.

    It is also a read-only mapping of these fields: ``stats["hits"]``, ``dict(stats)``.
    """

    hits: int = 0
    misses: int = 0
    stale: int = 0
    coalesced: int = 0
    errors: int = 0
    hit_rate: float = 0.0
    refreshes: int = 0
    refresh_errors: int = 0
    tier_hits: Mapping[str, int] = field(default_factory=dict)
    entries: int = 0
    evictions: int = 0
    faults: Mapping[str, int] = field(default_factory=dict)
    stale_sets: int = 0
    degraded: str | None = None
    unserializable: int = 0
    corrupt: int = 0
    tampered: int = 0
    foreign: int = 0
    invalidations: int = 0
    epoch: int = 0
    functions: Mapping[str, FunctionStats] = field(default_factory=dict)
    tiers: Mapping[str, TierStats] = field(default_factory=dict)
    time: float = 0.0
    pid: int = 0
    namespace: str = ""

    @property
    def calls(self) -> int:
        """Every call of every function: the sum of the outcomes."""
        return self.hits + self.misses + self.stale + self.coalesced + self.errors

    def __getitem__(self, name: str) -> Any:
        if name in _FIELDS:
            return getattr(self, name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``json.dumps`` takes it as is)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        data["tier_hits"] = dict(self.tier_hits)
        data["faults"] = dict(self.faults)
        data["functions"] = {name: stats.to_dict() for name, stats in self.functions.items()}
        data["tiers"] = {name: stats.to_dict() for name, stats in self.tiers.items()}
        data["calls"] = self.calls
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CacheStats:
        """Read back :meth:`to_dict`'s form; ``ValueError`` when it is malformed."""
        try:
            counts = {name: _count(data, name) for name in _COUNTS}
            degraded = data.get("degraded")
            return cls(
                **counts,
                hit_rate=_number(data, "hit_rate", 0.0),
                tier_hits={str(k): _nonnegative(v, k) for k, v in _mapping(data, "tier_hits").items()},
                faults={str(k): _nonnegative(v, k) for k, v in _mapping(data, "faults").items()},
                degraded=None if degraded is None else str(degraded),
                functions={
                    str(k): FunctionStats.from_dict(v) for k, v in _mapping(data, "functions").items()
                },
                tiers={str(k): TierStats.from_dict(v) for k, v in _mapping(data, "tiers").items()},
                time=_number(data, "time", 0.0),
                namespace=str(data.get("namespace", "")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a cacheplug stats snapshot ({exc!r})") from exc


_FIELDS = tuple(f.name for f in fields(CacheStats))
SUMMED_COUNTS = (
    "hits",
    "misses",
    "stale",
    "coalesced",
    "errors",
    "refreshes",
    "refresh_errors",
    "entries",
    "evictions",
    "stale_sets",
    "unserializable",
    "corrupt",
    "tampered",
    "foreign",
    "invalidations",
)
"""The count fields of :class:`CacheStats` that add up across processes."""
_COUNTS = (*SUMMED_COUNTS, "epoch", "pid")


def _summed(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in {**a, **b}}


def _name(data: Mapping[str, Any], what: str) -> str:
    if not isinstance(data, Mapping):
        raise ValueError(f"a {what}'s stats must be a mapping, got {data!r}")
    name = data.get("name")
    if not isinstance(name, str):
        raise ValueError(f"a {what}'s stats need a 'name' (a str), got {name!r}")
    return name


def _number(data: Mapping[str, Any], name: str, default: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{name!r} must be a number, got {value!r}")
    return float(value)


def _mapping(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"{name!r} must be a mapping, got {value!r}")
    return value


def _nonnegative(value: Any, name: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name!r} must be a count (an int >= 0), got {value!r}")
    return value


def _count(data: Mapping[str, Any], name: str) -> int:
    return _nonnegative(data.get(name, 0), name)


def _optional_count(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    return None if value is None else _nonnegative(value, name)
