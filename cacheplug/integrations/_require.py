"""Importing an integration's framework, with an error that says which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigurationError

__all__ = ["MissingDependency", "require"]


class MissingDependency(ConfigurationError, ImportError):
    """An integration's framework is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``pip install 'cacheplug[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"this cacheplug integration needs {module.split('.')[0]!r}, which is not installed: "
            f"pip install 'cacheplug[{extra}]'"
        ) from exc
