"""Storage tiers: each one storage behind the small :class:`Tier` protocol.

Optional capabilities are declared by the protocols of :mod:`.capabilities`; behaviour
around a tier (fault tolerance, circuit breaking) is a proxy tier wrapped around it.
"""

from .base import Tier
from .breaker import CircuitBreaker
from .capabilities import AsyncTier, CountsDamage, HasVersions, KeyListing, Measured, SelfChecking
from .disk import DiskTier
from .memory import MemoryTier
from .proxy import FaultTolerant, ProxyTier

__all__ = [
    "AsyncTier",
    "CircuitBreaker",
    "CountsDamage",
    "DiskTier",
    "FaultTolerant",
    "HasVersions",
    "KeyListing",
    "Measured",
    "MemoryTier",
    "ProxyTier",
    "SelfChecking",
    "Tier",
]
