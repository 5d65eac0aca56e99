"""cacheplug: decorator-first caching for Python services.

``@cached`` serves a call from the fastest tier holding a fresh value (process memory, a
disk tier shared by every process of the host), stays correct when data changes (tags,
dependencies, write rules, blinker signals) and never serves a value after an
invalidation of what it was computed from.
"""

from . import signals
from .api import add_dependency, add_rule, ainvalidate, get_or_compute, invalidate, invalidate_by_write
from .cache import Cache
from .codec import (
    Codec,
    CorruptEntryError,
    ForeignEntryError,
    PickleCodec,
    TamperedEntryError,
    UnreadableEntryError,
)
from .decorator import CachedFunction, CacheInfo, cached
from .defaults import configure, get_cache
from .envelope import MISS, Entry
from .errors import (
    CacheplugError,
    ConfigurationError,
    InvalidationError,
    SerializationError,
    TierUnavailable,
    UnkeyableArgumentError,
)
from .faults import FaultLedger
from .forkgate import install as _install_fork_gate
from .histogram import Latency
from .invalidation import InvalidationRule, batch
from .keys import CacheKeys
from .middleware import Middleware, Op
from .observe.monitor import Monitor, performance_report, start_monitoring
from .observe.rules import Alert, HitRateBelow, InvalidationRateAbove, LatencyAbove, SizeAbove
from .registry import RegisteredFunction, cached_functions
from .statistics import CacheStats, FunctionStats, TierStats
from .tiers import CircuitBreaker, DiskTier, FaultTolerant, MemoryTier, ProxyTier, Tier
from .warming import (
    WarmingScheduler,
    WarmingStats,
    WarmingTask,
    WarmReport,
    register_warming_task,
    start_warming,
    warm_for_user,
    warm_from_history,
    warm_now,
    warming_tasks,
)

_install_fork_gate()  # last: see cacheplug.forkgate

__version__ = "0.1.0"

__all__ = [
    "MISS",
    "Alert",
    "Cache",
    "CacheInfo",
    "CacheKeys",
    "CacheStats",
    "CachedFunction",
    "CacheplugError",
    "CircuitBreaker",
    "Codec",
    "ConfigurationError",
    "CorruptEntryError",
    "DiskTier",
    "Entry",
    "FaultLedger",
    "FaultTolerant",
    "ForeignEntryError",
    "FunctionStats",
    "HitRateBelow",
    "InvalidationError",
    "InvalidationRateAbove",
    "InvalidationRule",
    "Latency",
    "LatencyAbove",
    "MemoryTier",
    "Middleware",
    "Monitor",
    "Op",
    "PickleCodec",
    "ProxyTier",
    "RegisteredFunction",
    "SerializationError",
    "SizeAbove",
    "TamperedEntryError",
    "Tier",
    "TierStats",
    "TierUnavailable",
    "UnkeyableArgumentError",
    "UnreadableEntryError",
    "WarmReport",
    "WarmingScheduler",
    "WarmingStats",
    "WarmingTask",
    "add_dependency",
    "add_rule",
    "ainvalidate",
    "batch",
    "cached",
    "cached_functions",
    "configure",
    "get_cache",
    "get_or_compute",
    "invalidate",
    "invalidate_by_write",
    "performance_report",
    "register_warming_task",
    "signals",
    "start_monitoring",
    "start_warming",
    "warm_for_user",
    "warm_from_history",
    "warm_now",
    "warming_tasks",
]
