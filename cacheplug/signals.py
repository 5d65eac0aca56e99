"""Blinker signals in cacheplug's own namespace.

* :data:`written`: send it (or let an ORM save hook send it) after a write, with
  ``entity=`` and ``id=``; cacheplug's receiver, held strongly, applies the write rules and
  invalidates on every open cache of the process.
* :data:`invalidated`: sent by a cache after every invalidation it applies, with
  ``tags=`` and ``keys=`` (frozensets of str); the sender is the cache.
"""

from __future__ import annotations

from typing import Any

import blinker

__all__ = ["invalidated", "namespace", "written"]

namespace = blinker.Namespace()
written = namespace.signal("written", doc="A write happened: send with entity= and id=.")
invalidated = namespace.signal("invalidated", doc="Sent after an invalidation with tags= and keys=.")


def _on_written(sender: Any, **kwargs: Any) -> None:
    from .api import invalidate_by_write

    if "entity" not in kwargs:
        raise TypeError("cacheplug.signals.written needs entity= (and usually id=)")
    invalidate_by_write(kwargs["entity"], kwargs.get("id"))


written.connect(_on_written, weak=False)
