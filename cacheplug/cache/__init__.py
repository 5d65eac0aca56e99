"""The cache: a thin facade (:class:`Cache`) over the freshness judge, tiering, the compute
flow, invalidation, bindings and stats (one module each)."""

from ..statistics import CacheStats
from .calls import Tally
from .facade import Cache
from .lifecycle import open_caches

__all__ = ["Cache", "CacheStats", "Tally", "open_caches"]
