"""Django writes as ``cacheplug.signals.written``, delivered once the transaction commits.

The model signals ``post_save``, ``post_delete`` and ``m2m_changed`` (and the statements the
execute wrapper of ``cacheplug.integrations.django.statements`` recognises) become writes
``(entity, id)``: the entity is the model's table (``Meta.db_table``), or its class
attribute ``__cacheplug_entity__``; the id is the primary key (``None``: some rows of the
table). Where each is delivered:

- **inside** ``atomic()``: collected for the connection, and delivered by one
  ``transaction.on_commit`` callback after the commit, in one ``cacheplug.batch()`` (one
  invalidation per cache). A rollback drops them with the callback; a savepoint rolled
  back drops the callback if it was registered inside it, and the next write registers a
  new one (writes of a rolled-back savepoint that share a callback with earlier writes are
  delivered with them: more is invalidated, never less);
- **in autocommit**: at once, right after the write;
- **in manual transactions** (``set_autocommit(False)``), which have no commit hook: at
  once, with a warning (the cache may be refilled from the old rows before the commit).

If delivering fails (an invalidation cannot be recorded), the error is raised from the
commit (the ``atomic()`` exit) or the write; the data is committed, and cacheplug stops
serving the process's older values (``InvalidationError``: it fails closed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import connections, transaction
from django.db.models import Model, signals

from ... import signals as cacheplug_signals
from ...invalidation import batch
from .config import SettingsError

__all__ = ["SENDER", "Write", "connect", "deliver", "entity_of", "record"]

log = logging.getLogger("cacheplug")

SENDER = "cacheplug.integrations.django"
Write = tuple[str, Any]
_PENDING = "_cacheplug_pending"  # the attribute of a connection holding its open transaction's writes
_WARNED = "_cacheplug_warned_manual"  # ... and whether it was warned about manual transactions


def entity_of(model: type[Model] | Model) -> str:
    """The entity a write of ``model`` invalidates: ``__cacheplug_entity__``, else the table.

    Proxy models write their concrete model's table and share its entity. The attribute is
    read from the class itself, not inherited: a child table has its own entity.
    """
    concrete = model._meta.concrete_model
    declared = vars(concrete).get("__cacheplug_entity__")
    if declared is None:
        return str(concrete._meta.db_table)
    if not isinstance(declared, str) or not declared:
        raise SettingsError(
            f"{concrete.__module__}.{concrete.__qualname__}.__cacheplug_entity__ must be a non-empty str "
            f"(the entity its writes invalidate, e.g. 'order'), not {declared!r}"
        )
    return declared


class _Pending:
    """The writes of one transaction on one connection, delivered by one on-commit callback."""

    __slots__ = ("delivered", "hooks", "writes")

    def __init__(self) -> None:
        self.writes: dict[Write, None] = {}  # ordered, without repeats
        self.delivered = False
        self.hooks: Any = None

    def deliver(self) -> None:
        self.delivered = True
        deliver(self.writes)


def record(using: str, writes: Iterable[Write]) -> None:
    """Deliver ``writes`` made on the connection ``using`` when its transaction commits."""
    connection = connections[using]
    if connection.in_atomic_block:
        pending = getattr(connection, _PENDING, None)
        # Django replaces its list of commit hooks when a transaction or savepoint rolls
        # back or commits: a list other than this pending's means its callback may be gone.
        if pending is None or pending.delivered or pending.hooks is not connection.run_on_commit:
            pending = _Pending()
            transaction.on_commit(pending.deliver, using=using)
            pending.hooks = connection.run_on_commit
            setattr(connection, _PENDING, pending)
        pending.writes.update(dict.fromkeys(writes))
        return
    if not connection.get_autocommit() and not getattr(connection, _WARNED, False):
        setattr(connection, _WARNED, True)
        log.warning(
            "cacheplug: a write on the database %r in a manual transaction (set_autocommit(False)) "
            "is invalidated before the commit, which Django gives no hook for; use atomic() instead",
            using,
        )
    deliver(writes)


def deliver(writes: Iterable[Write]) -> None:
    """Send ``signals.written`` for each write now, in one batch (one invalidation per cache)."""
    with batch():
        for entity, id in writes:
            cacheplug_signals.written.send(SENDER, entity=entity, id=id)


# -- the model signals ------------------------------------------------------------------------


def _row_writes(model: type[Model], pk: Any) -> list[Write]:
    """The row and, with multi-table inheritance, its parents' rows (same primary key)."""
    concrete = model._meta.concrete_model  # a proxy's parents are its concrete model's
    return [(entity_of(m), pk) for m in (concrete, *concrete._meta.get_parent_list())]


def _saved(sender: type[Model], instance: Model, using: str, **_: Any) -> None:
    record(using, _row_writes(sender, instance.pk))


def _deleted(sender: type[Model], instance: Model, using: str, **_: Any) -> None:
    # The instance's pk is still set in post_delete (Django clears it after the signals).
    record(using, _row_writes(sender, instance.pk))


def _m2m_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    model: type[Model],
    pk_set: set[Any] | None,
    using: str,
    **_: Any,
) -> None:
    """The instance, the rows on the other side (their table for a clear) and the link table."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    writes = [(entity_of(instance), instance.pk), (entity_of(sender), None)]
    if pk_set is None:
        writes.append((entity_of(model), None))  # a clear: which rows were linked is not told
    else:
        writes.extend((entity_of(model), pk) for pk in pk_set)
    record(using, writes)


_RECEIVERS = (
    (signals.post_save, _saved),
    (signals.post_delete, _deleted),
    (signals.m2m_changed, _m2m_changed),
)


def connect() -> None:
    """Connect the receivers to every model's signals (idempotent)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, weak=False, dispatch_uid=f"cacheplug.{receiver.__name__}")
