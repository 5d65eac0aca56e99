"""Blinker signals in cacheplug's own namespace.

* :data:`written`: send it (or let an ORM save hook send it) after a write, with
  ``entity=`` and ``id=``; cacheplug's receiver (in ``cacheplug.api``, connected strongly
  when cacheplug is imported) applies the write rules and invalidates on every open cache
  of the process.
* :data:`invalidated`: sent by a cache after every invalidation it applies, with
  ``tags=`` and ``keys=`` (frozensets of str); the sender is the cache.
* :data:`alert`: sent by a monitor (``cacheplug.Monitor``) for each alert it raises or
  resolves, with ``alert=`` (a :class:`cacheplug.Alert`: rule, subject, measured value,
  threshold, state ``"firing"`` or ``"resolved"``); the sender is the monitored cache.
"""

from __future__ import annotations

import blinker

__all__ = ["alert", "invalidated", "namespace", "written"]

namespace = blinker.Namespace()
written = namespace.signal("written", doc="A write happened: send with entity= and id=.")
invalidated = namespace.signal("invalidated", doc="Sent after an invalidation with tags= and keys=.")
alert = namespace.signal(
    "alert", doc="Sent by a monitor for each alert raised or resolved, with alert= (a cacheplug.Alert)."
)
