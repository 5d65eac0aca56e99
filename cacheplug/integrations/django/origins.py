"""Which rows a write statement writes, when Django's own code issued it for known rows.

The execute wrapper (``statements``) sees SQL, and the SQL alone names only the table: on
its own it would make every ``save()`` a write of the whole table, which (a table write
reaches every row's entries) drops every cached row of that table at each save. Django's
writes of known rows all go through four functions whose frame holds the rows:

- ``Model._do_update`` (``save()`` of a row that exists, and of each parent's row with
  multi-table inheritance): the row ``pk_val`` of ``base_qs``'s model;
- ``Model._do_insert`` (``save()`` of a new row): the instance, whose primary key Django
  reads back only after the statement (an :class:`Insert`, settled by ``writes``);
- ``DeleteQuery.delete_batch`` (``delete()`` and ``QuerySet.delete()`` through the
  collector, cascades included) and ``UpdateQuery.update_batch`` (the collector's
  ``SET_DEFAULT`` and ``SET(callable)`` updates of the rows it loaded that pointed at them;
  ``SET_NULL`` and ``SET(value)`` are one ``QuerySet.update()``): the primary keys of the
  statement's batch.

A statement is given rows only when the nearest of these frames on the stack of the thread
that runs it issued it, for the same table and verb, and (an UPDATE or a DELETE) when its
SQL is filtered by exactly those keys (``statements.by_key``: custom code run inside one of
these frames, a base manager's ``QuerySet._update()``, may write other rows). Anything else
(``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``, raw SQL, a Django whose
functions are not these) gets no rows, and is recorded as a write of the whole table: when
in doubt, more is invalidated. The frames are found by their code objects and only read
(nothing of Django is patched); the search costs a few microseconds per write statement,
none on a read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from django.db.models import Model
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE
from django.db.models.sql.subqueries import DeleteQuery, UpdateQuery

__all__ = ["Insert", "Rows", "origin"]

# Frames searched above the execute wrapper: Django's own chain from _do_update to the
# wrapper is about a dozen (more with DEBUG's cursor and other execute wrappers).
_DEPTH = 64


@dataclass(frozen=True)
class Rows:
    """The statement writes these rows of ``model`` (primary keys as Django holds them)."""

    model: type[Model]
    pks: tuple[Any, ...]


@dataclass(frozen=True)
class Insert:
    """The statement inserts ``instance``'s row of ``model`` (its key is read back after)."""

    instance: Model
    model: type[Model]


Origin = Rows | Insert


def _saved_row(scope: Mapping[str, Any]) -> tuple[type[Model], Origin]:
    model = scope["base_qs"].model
    return model, Rows(model, (scope["pk_val"],))


def _inserted_row(scope: Mapping[str, Any]) -> tuple[type[Model], Origin]:
    model = scope["manager"].model
    return model, Insert(scope["self"], model)


def _batch(scope: Mapping[str, Any]) -> tuple[type[Model], Origin]:
    model = scope["self"].model
    pks = scope["pk_list"]
    offset = scope.get("offset")
    if isinstance(offset, int):  # the chunk this statement deletes or updates, not all of them
        pks = pks[offset : offset + GET_ITERATOR_CHUNK_SIZE]
    return model, Rows(model, tuple(pks))


_Reader = Callable[[Mapping[str, Any]], tuple[type[Model], Origin]]


def _sources() -> dict[CodeType, tuple[str, _Reader]]:
    found: dict[CodeType, tuple[str, _Reader]] = {}
    readers: tuple[tuple[Any, str, _Reader], ...] = (
        (Model._do_update, "UPDATE", _saved_row),
        (Model._do_insert, "INSERT", _inserted_row),
        (DeleteQuery.delete_batch, "DELETE", _batch),
        (UpdateQuery.update_batch, "UPDATE", _batch),
    )
    for function, verb, reader in readers:
        code = getattr(function, "__code__", None)
        if isinstance(code, CodeType):  # else: that write keeps its table write
            found[code] = (verb, reader)
    return found


_SOURCES = _sources()


def origin(verb: str, table: str) -> Origin | None:
    """The rows the statement being run writes (``verb`` on ``table``), when Django's code
    for known rows issued it; ``None``: unknown, a write of the whole table."""
    frame: FrameType | None = sys._getframe(1) if hasattr(sys, "_getframe") else None
    for _ in range(_DEPTH):
        if frame is None:
            return None
        source = _SOURCES.get(frame.f_code)
        if source is not None:
            expected, read = source
            if expected != verb:
                return None
            try:
                model, found = read(frame.f_locals)
            except (KeyError, AttributeError, TypeError):  # not the frame Django's code makes
                return None
            return found if model._meta.db_table == table else None
        frame = frame.f_back
    return None
