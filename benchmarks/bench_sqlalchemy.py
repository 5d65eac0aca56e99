"""Issue 10 ("SQLAlchemy"): what tracking adds to a commit of 100 ORM rows on SQLite.

Each round commits 100 new ORM objects in a new session (``session.add_all``, ``commit``) on
an in-memory SQLite database (the file system's fsync would hide the overhead), three ways,
each on its own database so that every side's table grows alike:

* **bare**: an untracked ``sessionmaker``;
* **collecting**: tracked (``cacheplug.integrations.sqlalchemy.track``), with the sending
  after the commit replaced by a no-op while it runs: what the session's hooks cost to
  record the written rows;
* **invalidating**: tracked, with a cache open (memory + a disk tier in a temp directory):
  the rows recorded, then 100 ``written`` signals, their tags and families, and one batched
  invalidation recorded in the host's version store, per commit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _support import interleaved
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

import cacheplug.integrations.sqlalchemy as tracking_module
from cacheplug import Cache, DiskTier, MemoryTier, signals
from cacheplug.integrations.sqlalchemy import track

ROWS = 100
ROUNDS = 40


class _Base(DeclarativeBase):
    pass


class Item(_Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    price: Mapped[int]


def _factory() -> sessionmaker[Session]:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    _Base.metadata.create_all(engine)
    return sessionmaker(engine)


def _commit_loop(factory: sessionmaker[Session], ids: itertools.count[int]) -> Callable[[], None]:
    def run() -> None:
        with factory() as session:
            session.add_all(Item(id=next(ids), name="item", price=3) for _ in range(ROWS))
            session.commit()

    return run


def bench_sqlalchemy_commit(benchmark: Any, bench_pass: int, workdir: Path, closing: list[Any]) -> None:
    factories = {side: _factory() for side in ("bare", "collecting", "invalidating")}
    cache = Cache([MemoryTier(), DiskTier(workdir / "cache")])
    closing.append(cache)
    trackings = [track(factories["collecting"]), track(factories["invalidating"])]
    invalidations: list[frozenset[str]] = []

    def counted(sender: Any, tags: frozenset[str], keys: frozenset[str]) -> None:
        invalidations.append(tags)

    send = tracking_module._send

    def before(side: str) -> None:
        if side == "collecting":
            tracking_module._send = lambda session, written: None

    def after(side: str) -> None:
        tracking_module._send = send

    ids = itertools.count(1)
    sides = {side: _commit_loop(factory, ids) for side, factory in factories.items()}
    signals.invalidated.connect(counted)
    try:
        series = interleaved(
            benchmark,
            "sqla_commit",
            sides,
            1,
            ROUNDS,
            lead="invalidating",
            clock="cpu",
            before=before,
            after=after,
        )
    finally:
        signals.invalidated.disconnect(counted)
        for tracking in trackings:
            tracking.untrack()
    rounds = len(series["sqla_commit.invalidating"]) + 1  # the warm-up round too
    # One invalidation per commit of the invalidating side, none from the collecting one.
    assert len(invalidations) == rounds, (len(invalidations), rounds)
    assert all(len([t for t in tags if t.startswith("items:")]) == ROWS for tags in invalidations)
    for factory in factories.values():
        with factory() as session:
            assert session.query(Item).count() == rounds * ROWS
