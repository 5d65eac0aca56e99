"""Django writes as ``cacheplug.signals.written``, delivered once the transaction commits.

The statements that the execute wrapper of ``cacheplug.integrations.django.statements``
recognises, and the model signals ``post_save``, ``post_delete`` and ``m2m_changed``, become
writes ``(entity, id)``: the entity is the model's table (``Meta.db_table``), or its class
attribute ``__cacheplug_entity__``; the id is a primary key (a row write: the tags
``entity`` and ``f"{entity}:{id}"``), or ``None`` (a table write: ``entity`` and every
row's tags). Where each is delivered:

- **inside** ``atomic()``: collected for the connection, and delivered by one
  ``transaction.on_commit`` callback after the commit, in one ``cacheplug.batch()`` (one
  invalidation per cache). A rollback drops them with the callback; a savepoint rolled
  back drops the callback if it was registered inside it, and the next write registers a
  new one (writes of a rolled-back savepoint that share a callback with earlier writes are
  delivered with them: more is invalidated, never less);
- **in autocommit**: at once, right after the write;
- **in manual transactions** (``set_autocommit(False)``), which have no commit hook: at
  once, with a warning (the cache may be refilled from the old rows before the commit).

A row that ``save()`` inserts has no id until Django reads it back, after the statement:
its write is a :class:`Claim`, settled at the next event of the thread (or task) that made
it: normally the ``post_save`` right after, else its next statement, model signal or the
end of its request (``request_finished``), and, inside ``atomic()``, the commit at the
latest. The model signals' writes repeat what their statements' writes recorded; a signal
leaves out those already recorded since the last signal on the same connection, so that a
``save()`` in autocommit invalidates once.

If delivering fails (an invalidation cannot be recorded), the error is raised from the
commit (the ``atomic()`` exit) or the write; the data is committed, and cacheplug stops
serving the process's older values (``InvalidationError``: it fails closed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, NamedTuple

from django.core.signals import request_finished
from django.db import connections, transaction
from django.db.models import Model, signals

from ... import signals as cacheplug_signals
from ...invalidation import batch
from .config import SettingsError

__all__ = [
    "SENDER",
    "Claim",
    "Write",
    "connect",
    "deliver",
    "entity_of",
    "hold",
    "record",
    "record_statement",
    "settle",
]

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


class Claim:
    """The write of a row ``save()`` inserted, made once Django has read the row's key back."""

    __slots__ = ("atomic", "instance", "model", "using", "write")

    def __init__(self, using: str, instance: Model, model: type[Model], atomic: bool) -> None:
        self.using = using
        self.instance = instance
        self.model = model
        self.atomic = atomic  # made inside atomic(): its transaction's commit settles it at the latest
        self.write: Write | None = None

    def take(self) -> Write | None:
        """The row's write the first time (a table write if the key is still unknown), else None."""
        if self.write is not None:
            return None
        self.write = (entity_of(self.model), getattr(self.instance, self.model._meta.pk.attname, None))
        return self.write


class _Pending:
    """The writes of one transaction on one connection, delivered by one on-commit callback."""

    __slots__ = ("claims", "delivered", "hooks", "writes")

    def __init__(self) -> None:
        self.writes: dict[Write, None] = {}  # ordered, without repeats
        self.claims: list[Claim] = []
        self.delivered = False
        self.hooks: Any = None

    def deliver(self) -> None:
        self.delivered = True
        for claim in self.claims:  # those no event settled before the commit
            write = claim.take()
            if write is not None:
                self.writes[write] = None
        deliver(self.writes)


def _pending(using: str) -> _Pending | None:
    """The open transaction's writes on ``using`` (``None`` outside ``atomic()``)."""
    connection = connections[using]
    if not connection.in_atomic_block:
        return None
    pending = getattr(connection, _PENDING, None)
    # Django replaces its list of commit hooks when a transaction or savepoint rolls
    # back or commits: a list other than this pending's means its callback may be gone.
    if pending is None or pending.delivered or pending.hooks is not connection.run_on_commit:
        pending = _Pending()
        transaction.on_commit(pending.deliver, using=using)
        pending.hooks = connection.run_on_commit
        setattr(connection, _PENDING, pending)
    return pending


def record(using: str, writes: Iterable[Write]) -> None:
    """Deliver ``writes`` made on the connection ``using`` when its transaction commits."""
    pending = _pending(using)
    if pending is not None:
        pending.writes.update(dict.fromkeys(writes))
        return
    _warn_if_manual(using)
    deliver(writes)


def _warn_if_manual(using: str) -> None:
    connection = connections[using]
    if not connection.get_autocommit() and not getattr(connection, _WARNED, False):
        setattr(connection, _WARNED, True)
        log.warning(
            "cacheplug: a write on the database %r in a manual transaction (set_autocommit(False)) "
            "is invalidated before the commit, which Django gives no hook for; use atomic() instead",
            using,
        )


def deliver(writes: Iterable[Write]) -> None:
    """Send ``signals.written`` for each write now, in one batch (one invalidation per cache)."""
    with batch():
        for entity, id in writes:
            cacheplug_signals.written.send(SENDER, entity=entity, id=id)


# -- what this thread (or task) wrote since its last event -------------------------------------


class _Since(NamedTuple):
    claims: tuple[Claim, ...]  # rows inserted whose write is not settled yet
    recorded: frozenset[tuple[str, str, Any]]  # (using, entity, id) recorded since the last signal


_QUIET = _Since((), frozenset())
# A context variable: each thread and each asyncio task has its own (a task starts with a
# copy of its creator's, whose claims are settled once: Claim.take).
_SINCE: ContextVar[_Since] = ContextVar("cacheplug_django_since", default=_QUIET)
_REMEMBERED = 512  # past this many, recorded writes are not remembered: a signal repeats them


def _settle(claims: Iterable[Claim]) -> list[tuple[str, Write]]:
    """Deliver (in autocommit) or record (inside atomic) the claims not settled yet."""
    now: dict[Write, None] = {}
    settled = []
    for claim in claims:
        write = claim.take()
        if write is None:
            continue
        settled.append((claim.using, write))
        if claim.atomic:
            record(claim.using, [write])
        else:  # its row is committed: never into a transaction opened since
            now[write] = None
    if now:
        deliver(now)
    return settled


def _remember(since: _Since, writes: Iterable[tuple[str, Write]]) -> frozenset[tuple[str, str, Any]]:
    if len(since.recorded) >= _REMEMBERED:
        return since.recorded
    return since.recorded | {(using, entity, id) for using, (entity, id) in writes}


def hold(using: str, instance: Model, model: type[Model]) -> None:
    """A statement of ``save()`` inserted ``instance``'s row of ``model``: settle it later."""
    pending = _pending(using)
    claim = Claim(using, instance, model, atomic=pending is not None)
    if pending is not None:
        pending.claims.append(claim)
    else:
        _warn_if_manual(using)
    since = _SINCE.get()
    _SINCE.set(since._replace(claims=(*since.claims, claim)))


def record_statement(using: str, writes: list[Write]) -> None:
    """:func:`record` the writes of a statement, remembered until the next signal."""
    record(using, writes)
    since = _SINCE.get()
    _SINCE.set(since._replace(recorded=_remember(since, ((using, write) for write in writes))))


def settle() -> None:
    """An event of this thread: the claims it holds are settled (their keys are known now)."""
    since = _SINCE.get()
    if since.claims:
        _SINCE.set(since._replace(claims=()))
        settled = _settle(since.claims)
        now = _SINCE.get()  # delivering may have run statements (a receiver of signals.written)
        _SINCE.set(now._replace(recorded=_remember(now, settled)))


def _since_last_signal() -> frozenset[tuple[str, str, Any]]:
    """A signal: settle the claims, forget what was recorded, and return it (claims included)."""
    since = _SINCE.get()
    if since is _QUIET:
        return since.recorded
    _SINCE.set(_QUIET)
    _settle(since.claims)
    return since.recorded | {(c.using, *c.write) for c in since.claims if c.write is not None}


def _record_new(using: str, writes: Iterable[Write]) -> None:
    """Record a signal's writes but those its statements already recorded (a table write covers
    its rows), settling this thread's claims first, all in one batch."""
    with batch():
        recorded = _since_last_signal()
        new = [w for w in writes if (using, *w) not in recorded and (using, w[0], None) not in recorded]
        if new:
            record(using, new)


# -- the model signals ------------------------------------------------------------------------


def _row_writes(model: type[Model], instance: Model) -> list[Write]:
    """The row and, with multi-table inheritance, its parents' rows (each its own key)."""
    concrete = model._meta.concrete_model  # a proxy's parents are its concrete model's
    return [
        (entity_of(m), getattr(instance, m._meta.pk.attname))
        for m in (concrete, *concrete._meta.get_parent_list())
    ]


def _saved(sender: type[Model], instance: Model, using: str, **_: Any) -> None:
    _record_new(using, _row_writes(sender, instance))


def _deleted(sender: type[Model], instance: Model, using: str, **_: Any) -> None:
    # The instance's pk is still set in post_delete (Django clears it after the signals).
    _record_new(using, _row_writes(sender, instance))


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
        _since_last_signal()
        return
    writes = [(entity_of(instance), instance.pk), (entity_of(sender), None)]
    if pk_set is None:
        writes.append((entity_of(model), None))  # a clear: which rows were linked is not told
    else:
        writes.extend((entity_of(model), pk) for pk in pk_set)
    _record_new(using, writes)


def _request_finished(**_: Any) -> None:
    _since_last_signal()  # a save() the request left unfinished is delivered now


_RECEIVERS = (
    (signals.post_save, _saved),
    (signals.post_delete, _deleted),
    (signals.m2m_changed, _m2m_changed),
    (request_finished, _request_finished),
)


def connect() -> None:
    """Connect the receivers to every model's signals and to the end of requests (idempotent)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, weak=False, dispatch_uid=f"cacheplug.{receiver.__name__}")
