"""SQLAlchemy 2.x: the writes a session commits invalidate what was cached from them.

``track(factory)`` listens to the sessions a ``sessionmaker`` (or ``async_sessionmaker``,
``scoped_session``, ``Session`` or ``AsyncSession`` class or instance) makes. While a
transaction is open it only records what is written; once the outermost transaction has
committed, it sends :data:`cacheplug.signals.written` (sender: the ``Session``; for an
``AsyncSession``, the ``Session`` it runs on) once per written row or table, inside one
:func:`cacheplug.batch`, so a commit costs one invalidation per cache however many rows it
wrote. What is sent:

* an object inserted, updated (with a net change) or deleted by a flush: ``entity=`` the
  entity of each table its row lives in (two for joined-table inheritance) and ``id=`` its
  primary key (a :class:`CompositeKey` for a composite one);
* the objects on the other side of a relationship that changed (added to or removed from a
  collection, an orphan deleted, a many-to-one set), with their ids: their collections
  changed too;
* a many-to-many association (``secondary``) table whose rows a flush changed, and every
  table written by a statement executed through the session rather than by a flush (Core
  ``insert()``/``update()``/``delete()``, ``session.execute(update(Model)...)``,
  ``Query.update()``/``delete()``, ORM bulk inserts and updates, the legacy ``bulk_*``
  methods): ``entity=`` the table's entity and ``id=None``, which invalidates the entity's
  tag (``"order"``) and every entry tagged with one of its rows (``"order:5"``);
* nothing for ``text()`` and ``exec_driver_sql()`` statements, nor for rows that the
  database changes by itself (``ON DELETE CASCADE``, triggers): invalidate those by hand.

A rollback sends nothing; a savepoint rolled back drops what was written inside it, one
released keeps it for the outer commit. The entity of a table is its name, or the
``__cacheplug_entity__`` attribute of the model class mapped to it (:func:`entity_of`); the
tags invalidated are those of :func:`cacheplug.invalidate_by_write`: ``entity`` and
``f"{entity}:{id}"``, plus the registered rules'.

Fails closed: when the invalidation cannot be recorded, the commit call raises
:class:`~cacheplug.errors.InvalidationError` (the data *is* committed) and the process reads
no shared tier until the invalidation is recorded (``cacheplug.cache.invalidating``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from ._require import require

require("sqlalchemy", "sqlalchemy")  # raises MissingDependency naming the extra when missing

from sqlalchemy import event  # noqa: E402  (imported once the check above passed)
from sqlalchemy.engine import Connection, Engine  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_sessionmaker  # noqa: E402
from sqlalchemy.orm import Session, SessionTransaction, scoped_session, sessionmaker  # noqa: E402
from sqlalchemy.orm.attributes import instance_state  # noqa: E402
from sqlalchemy.util import await_only  # noqa: E402

from .. import signals  # noqa: E402
from ..errors import ConfigurationError, InvalidationError  # noqa: E402
from ..invalidation import batch  # noqa: E402
from ._sqlalchemy_rows import (  # noqa: E402
    CompositeKey,
    Pending,
    Plan,
    Write,
    entity_of,
    flushed,
    mappers,
    named,
    statement_tables,
    table_entity,
)

__all__ = ["CompositeKey", "Tracking", "entity_of", "track"]

_INFO_KEY = "cacheplug.writes"  # the session.info entry holding its open transaction's writes

# -- one session's writes, by transaction ---------------------------------------------------


class _Writes:
    """What one session wrote in its open transaction, by savepoint, until it ends."""

    __slots__ = ("buckets", "committed", "connections", "flush")

    def __init__(self) -> None:
        # Keyed by the savepoint (or the outermost transaction) the writes belong to.
        self.buckets: dict[SessionTransaction, set[Pending]] = {}
        self.committed: set[SessionTransaction] = set()
        self.flush: Any = None  # the UOWTransaction of the flush running now, if any
        self.connections: list[Connection] = []  # the connections the session used

    def flushing(self) -> bool:
        transaction = getattr(self.flush, "transaction", None)
        return transaction is not None and transaction.is_active


def _writes(session: Session) -> _Writes:
    found = session.info.get(_INFO_KEY)
    if found is None:
        found = session.info[_INFO_KEY] = _Writes()
    return found


def _level(transaction: SessionTransaction | None) -> SessionTransaction | None:
    """The savepoint or outermost transaction ``transaction`` belongs to."""
    while transaction is not None and not transaction.nested and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def _bucket(session: Session, writes: _Writes) -> set[Pending] | None:
    level = session.get_nested_transaction() or session.get_transaction()
    if level is None:
        return None
    bucket = writes.buckets.get(level)
    if bucket is None:
        bucket = writes.buckets[level] = set()
    return bucket


# The connections of tracked sessions' open transactions, and those sessions (weakly): a
# statement one of them runs that no flush ran is a write by table.
_CONNECTIONS: weakref.WeakKeyDictionary[Connection, list[weakref.ref[Session]]] = weakref.WeakKeyDictionary()


def _after_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    writes = _writes(session)
    if connection not in writes.connections:
        writes.connections.append(connection)
        _CONNECTIONS.setdefault(connection, []).append(weakref.ref(session))


def _after_execute(conn: Connection, clause: Any, *args: Any) -> None:
    """A statement ran on some connection (every engine's, while anything is tracked)."""
    if not getattr(clause, "is_dml", False):
        return  # queries, DDL, text() and driver SQL
    sessions = _CONNECTIONS.get(conn)
    for ref in sessions or ():
        session = ref()
        writes = None if session is None else session.info.get(_INFO_KEY)
        if session is None or writes is None or writes.flushing():
            continue  # a flush's rows are sent as the objects they are
        bucket = _bucket(session, writes)
        if bucket is not None:
            bucket.update((table_entity(t), None) for t in statement_tables(clause))


def _release(session: Session, writes: _Writes) -> None:
    for connection in writes.connections:
        refs = _CONNECTIONS.get(connection)
        if refs is not None:
            refs[:] = [r for r in refs if r() is not session and r() is not None]
            if not refs:
                del _CONNECTIONS[connection]


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    _writes(session).flush = flush_context


def _after_flush(session: Session, flush_context: Any) -> None:
    """The flush's SQL ran; the session still lists what it flushed (new, dirty, deleted)."""
    writes = _writes(session)
    writes.flush = None
    bucket = _bucket(session, writes)
    if bucket is None:
        return
    plans: dict[type, Plan] = {}
    for obj in session.new:
        flushed(instance_state(obj), False, bucket, plans)
    for obj in session.dirty:
        if session.is_modified(obj):
            flushed(instance_state(obj), False, bucket, plans)
    for obj in session.deleted:
        flushed(instance_state(obj), True, bucket, plans)


def _after_commit(session: Session) -> None:
    level = session.get_nested_transaction() or session.get_transaction()
    if level is not None:
        _writes(session).committed.add(level)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint keeps its writes for its parent or drops them; the outermost sends them."""
    if not transaction.nested and transaction.parent is not None:
        return  # a flush's or a bulk operation's own subtransaction
    writes = session.info.get(_INFO_KEY)
    if writes is None:
        return
    bucket = writes.buckets.pop(transaction, None)
    committed = transaction in writes.committed
    writes.committed.discard(transaction)
    if transaction.nested:
        parent = _level(transaction.parent)
        if committed and bucket and parent is not None:
            writes.buckets.setdefault(parent, set()).update(bucket)
        return
    del session.info[_INFO_KEY]
    _release(session, writes)
    if committed and bucket:
        _send(session, named(bucket))


# -- sending ---------------------------------------------------------------------------------


# Whether this runs inside an AsyncSession's greenlet (SQLAlchemy's, not re-exported).
_GREENLET_CHECK = getattr(importlib.import_module("sqlalchemy.util.concurrency"), "in_greenlet", None)


def _in_greenlet() -> bool:
    try:
        return _GREENLET_CHECK is not None and bool(_GREENLET_CHECK())
    except Exception:  # greenlet is not installed: no AsyncSession either
        return False


def _send(session: Session, written: set[Write]) -> None:
    """Send the writes of a committed transaction; an AsyncSession's are recorded off its loop."""
    if _in_greenlet():
        await_only(asyncio.to_thread(_deliver, session, written))
    else:
        _deliver(session, written)


def _deliver(session: Session, written: set[Write]) -> None:
    """``signals.written.send(session, entity=..., id=...)`` for each write, inside one batch.

    The receivers are looked up once per commit rather than once per write (a commit of 100
    rows would spend a third of its invalidation in blinker's lookup), and a receiver that
    raises does not keep the others, or the other writes, from being told.
    """
    signal = signals.written
    receivers = [] if signal.is_muted else list(signal.receivers_for(session))
    if any(inspect.iscoroutinefunction(r) for r in receivers):
        receivers = [signal.send]  # an async receiver: let blinker refuse it as it does
    failures: list[Exception] = []
    try:
        with batch():
            for entity, row in written:
                for receiver in receivers:
                    try:
                        receiver(session, entity=entity, id=row)
                    except Exception as exc:  # the other receivers and writes still go out
                        failures.append(exc)
    except InvalidationError as exc:
        raise InvalidationError(
            f"the transaction was committed (its writes are in the database), but their "
            f"invalidation could not be recorded: {exc}. Until it is, this process reads no "
            f"shared cache tier, and other processes may still serve the values it made stale"
        ) from exc
    if failures:
        raise failures[0]


# -- tracking --------------------------------------------------------------------------------

_EVENTS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("after_begin", _after_begin),
    ("before_flush", _before_flush),
    ("after_flush", _after_flush),
    ("after_commit", _after_commit),
    ("after_transaction_end", _after_transaction_end),
)


class Tracking:
    """The handle :func:`track` returns: the session events it listens to, until :meth:`untrack`.

    Usable as a context manager (``with track(Session): ...`` untracks at the end).
    """

    def __init__(self, target: Any, listen_on: Any, restore: Callable[[], None] | None) -> None:
        self.target = target
        self._listen_on = listen_on
        self._restore = restore
        for name, listener in _EVENTS:
            event.listen(listen_on, name, listener)
        if not _ACTIVE:
            # Every engine's statements, from now until nothing is tracked: one dictionary
            # lookup per statement finds those run on tracked sessions' connections.
            event.listen(Engine, "after_execute", _after_execute)
        _ACTIVE.add(self)
        self.active = True

    def untrack(self) -> None:
        """Stop listening (sessions in a transaction now send nothing for it); idempotent."""
        if not self.active:
            return
        self.active = False
        _TRACKINGS.pop(self.target, None)
        for name, listener in _EVENTS:
            if event.contains(self._listen_on, name, listener):
                event.remove(self._listen_on, name, listener)
        _ACTIVE.discard(self)
        if not _ACTIVE and event.contains(Engine, "after_execute", _after_execute):
            event.remove(Engine, "after_execute", _after_execute)
        if self._restore is not None:
            self._restore()

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.untrack()

    def __repr__(self) -> str:
        return f"<cacheplug Tracking of {self.target!r}{'' if self.active else ' (untracked)'}>"


_TRACKINGS: weakref.WeakKeyDictionary[Any, Tracking] = weakref.WeakKeyDictionary()
_ACTIVE: set[Tracking] = set()  # the trackings not undone


def track(target: Any) -> Tracking:
    """Invalidate, after each commit, what the sessions of ``target`` wrote (see the module docs).

    ``target``: a ``sessionmaker``, ``async_sessionmaker``, ``scoped_session`` or
    ``async_scoped_session``, a ``Session`` or ``AsyncSession`` subclass (``Session`` itself
    tracks every session of the process), or one session. Tracking the same target again
    returns the same :class:`Tracking`.
    """
    if isinstance(target, (scoped_session, async_scoped_session)):
        target = target.session_factory
    try:
        found = _TRACKINGS.get(target)
    except TypeError:  # not weakly referenceable: not something sessions come from either
        found = None
    if found is not None and found.active:
        return found
    for mapper in mappers():  # a bad __cacheplug_entity__ fails here, not in a flush
        for table in mapper.tables:
            table_entity(table)
    listen_on, restore = _listen_target(target)
    tracking = _TRACKINGS[target] = Tracking(target, listen_on, restore)
    return tracking


def _listen_target(target: Any) -> tuple[Any, Callable[[], None] | None]:
    """Where the events of ``target``'s sessions are listened to, and how to undo any change."""
    if isinstance(target, (sessionmaker, Session)) or (
        isinstance(target, type) and issubclass(target, Session)
    ):
        return target, None
    if isinstance(target, AsyncSession):
        return target.sync_session, None
    if isinstance(target, async_sessionmaker):
        # Events live on the Session an AsyncSession runs on; a class of its own keeps them
        # to this factory's sessions.
        factory = target
        had = "sync_session_class" in factory.kw
        base = factory.kw.get("sync_session_class") or factory.class_.sync_session_class
        own = type(f"Tracked{base.__name__}", (base,), {})
        factory.configure(sync_session_class=own)

        def restore_factory() -> None:
            if had:
                factory.configure(sync_session_class=base)
            else:
                factory.kw.pop("sync_session_class", None)

        return own, restore_factory
    if isinstance(target, type) and issubclass(target, AsyncSession):
        cls = target
        previous = vars(cls).get("sync_session_class")
        own = type(f"Tracked{cls.sync_session_class.__name__}", (cls.sync_session_class,), {})
        cls.sync_session_class = own

        def restore_class() -> None:
            if previous is None:
                del cls.sync_session_class
            else:
                cls.sync_session_class = previous

        return own, restore_class
    raise ConfigurationError(
        f"track() takes a sessionmaker, an async_sessionmaker, a scoped_session, a Session or "
        f"AsyncSession class, or a session; got {target!r}"
    )
