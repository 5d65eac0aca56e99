"""Models, databases and a signal recorder for the SQLAlchemy integration's tests.

The databases are real: an SQLite file, an in-memory SQLite database, and the machine's
PostgreSQL (in the test session's own schema, see ``postgres_schema`` in conftest.py). Each
test gets freshly created tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .conftest import require_framework

require_framework("sqlalchemy")

from sqlalchemy import Column, ForeignKey, String, Table, create_engine, event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship  # noqa: E402
from sqlalchemy.pool import StaticPool  # noqa: E402

from cacheplug import signals  # noqa: E402


class Base(DeclarativeBase):
    pass


members = Table(
    "members",
    Base.metadata,
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("group_id", ForeignKey("groups.id"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"
    __cacheplug_entity__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    groups: Mapped[list[Group]] = relationship(secondary=members, back_populates="users")
    addresses: Mapped[list[Address]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50), default="")
    users: Mapped[list[User]] = relationship(secondary=members, back_populates="groups")


class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str] = mapped_column(String(80), default="")
    user: Mapped[User] = relationship(back_populates="addresses")


class Note(Base):
    """A foreign key column and no relationship."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Category(Base):
    """A tree: a many-to-one onto its own table."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    parent: Mapped[Category | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Category]] = relationship(back_populates="parent")


class OrderLine(Base):
    __tablename__ = "order_lines"
    __cacheplug_entity__ = "order_line"

    order_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    line_no: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    qty: Mapped[int] = mapped_column(default=1)


class Employee(Base):
    __tablename__ = "employees"
    __cacheplug_entity__ = "employee"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50), default="")
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}


class Manager(Employee):
    __tablename__ = "managers"

    id: Mapped[int] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    level: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"polymorphic_identity": "manager"}


BACKENDS = ("sqlite-file", "sqlite-memory", "postgresql")


def sqlite_savepoints(engine: Engine) -> Engine:
    """Let pysqlite run SAVEPOINTs for real (SQLAlchemy's documented recipe)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def postgres_engine(url: str, schema: str, **kwargs: Any) -> Engine:
    return create_engine(url, connect_args={"options": f"-csearch_path={schema}"}, **kwargs)


def sync_engine(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Engine:
    if backend == "sqlite-file":
        return sqlite_savepoints(create_engine(f"sqlite:///{tmp_path / 'app.db'}"))
    if backend == "sqlite-memory":
        return sqlite_savepoints(
            create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        )
    url = request.getfixturevalue("postgres_url")
    return postgres_engine(url, request.getfixturevalue("postgres_schema"))


@contextmanager
def tables(engine: Engine) -> Iterator[Engine]:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        yield engine
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


class Sent:
    """Records every ``written`` signal (entity, id) and every ``invalidated`` one (its tags)."""

    def __init__(self) -> None:
        self.written: list[tuple[str, Any]] = []
        self.senders: list[Any] = []
        self.invalidations: list[frozenset[str]] = []

    def on_written(self, sender: Any, **kwargs: Any) -> None:
        self.written.append((kwargs["entity"], kwargs.get("id")))
        self.senders.append(sender)

    def on_invalidated(self, sender: Any, tags: frozenset[str], keys: frozenset[str]) -> None:
        self.invalidations.append(tags)

    def writes(self) -> set[tuple[str, Any]]:
        return set(self.written)

    def clear(self) -> None:
        self.written.clear()
        self.senders.clear()
        self.invalidations.clear()


@contextmanager
def recording() -> Iterator[Sent]:
    sent = Sent()
    signals.written.connect(sent.on_written)
    signals.invalidated.connect(sent.on_invalidated)
    try:
        yield sent
    finally:
        signals.written.disconnect(sent.on_written)
        signals.invalidated.disconnect(sent.on_invalidated)
