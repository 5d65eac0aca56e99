"""Storage tiers: each one storage behind the small :class:`Tier` protocol."""

from .base import Tier
from .disk import DiskTier
from .memory import MemoryTier

__all__ = ["DiskTier", "MemoryTier", "Tier"]
