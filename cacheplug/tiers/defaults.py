"""The tiers the settings describe: what ``Cache()`` without ``tiers`` and the default cache get.

Memory first, then the disk tier in the configured directory. When that directory is the
per-project default (none was given anywhere) and it is unsafe for unsigned entries, the
tiers stay in memory and say so once in the log; an unsafe directory that *was* given is
refused earlier, by :func:`cacheplug.settings.settings_from_env`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from .. import state
from ..private_files import directory_problem
from ..settings import Settings, settings_from_env
from .base import Tier
from .disk import DiskTier
from .memory import MemoryTier

__all__ = ["build_tiers", "default_tiers"]

log = logging.getLogger("cacheplug")


def _safe_default(directory: str) -> bool:
    """Is the per-project default directory (and the folder holding it) safe to use?"""
    problem = directory_problem(directory) or directory_problem(os.path.dirname(directory))
    if problem is None:
        return True
    if directory not in state.WARNED:
        state.WARNED.add(directory)
        log.warning(
            "cacheplug: the default cache directory is unsafe (%s); the default cache stays in "
            "memory. Set CACHEPLUG_DIR to a folder only you own, or CACHEPLUG_SECRET to sign entries",
            problem,
        )
    return False


def build_tiers(settings: Settings) -> list[Tier]:
    """The tiers that ``settings`` describe, fastest first."""
    tiers: list[Tier] = []
    for name in settings.tiers:
        if name == "memory":
            tiers.append(MemoryTier(max_entries=settings.max_entries))
        elif (
            settings.secret is not None or not settings.default_directory or _safe_default(settings.directory)
        ):
            tiers.append(DiskTier(settings.directory, secret=settings.secret))
    return tiers or [MemoryTier(max_entries=settings.max_entries)]


def default_tiers(secret: str | Sequence[str] | None = None) -> list[Tier]:
    """The tiers ``Cache()`` gets when none are given (from the environment; ``secret`` overrides)."""
    return build_tiers(settings_from_env(secret=secret))
