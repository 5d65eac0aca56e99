"""The SQLAlchemy integration with AsyncSession: aiosqlite and psycopg's async driver.

The events live on the Session an AsyncSession runs on; a commit's invalidation is recorded
in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import require_framework

require_framework("sqlalchemy")
require_framework("greenlet", "sqlalchemy")
require_framework("aiosqlite")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from cacheplug import Cache, DiskTier, InvalidationError, MemoryTier, cached, signals  # noqa: E402
from cacheplug.integrations.sqlalchemy import track  # noqa: E402

from .sqla_support import Base, Group, Sent, User, recording, sqlite_savepoints  # noqa: E402

BACKENDS = ("aiosqlite", "psycopg-async")


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AsyncEngine]:
    if request.param == "aiosqlite":
        made = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
        sqlite_savepoints(made.sync_engine)
    else:
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        made = create_async_engine(url, connect_args={"options": f"-csearch_path={schema}"})

    async def create() -> None:
        async with made.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)

    async def drop() -> None:
        async with made.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
        await made.dispose()

    asyncio.run(create())
    try:
        yield made
    finally:
        asyncio.run(drop())


@pytest.fixture
def sent() -> Iterator[Sent]:
    with recording() as made:
        yield made


def test_an_async_sessionmaker_commit_invalidates_and_a_rollback_does_not(
    engine: AsyncEngine, tmp_path: Path, sent: Sent
) -> None:
    factory = async_sessionmaker(engine, expire_on_commit=False)
    cache = Cache([MemoryTier(), DiskTier(tmp_path / "cache")])
    computed: list[int] = []

    @cached(cache=cache, tags=["user:{user_id}"])
    async def name(user_id: int) -> str | None:
        computed.append(user_id)
        async with factory() as session:
            user = await session.get(User, user_id)
            return None if user is None else user.name

    async def scenario() -> None:
        assert await name(1) is None and await name(1) is None and computed == [1]
        async with factory.begin() as session:
            session.add(User(id=1, name="ada"))
        assert await name(1) == "ada" and computed == [1, 1]
        async with factory() as session:
            (await session.get(User, 1)).name = "lost"
            await session.flush()
            await session.rollback()
        assert await name(1) == "ada" and computed == [1, 1]
        async with factory() as session:
            user = await session.get(User, 1)
            user.name = "grace"
            nested = await session.begin_nested()
            session.add(User(id=2, name="dropped"))
            await session.flush()
            await nested.rollback()
            await session.commit()
        assert await name(1) == "grace" and computed == [1, 1, 1]

    with track(factory) as tracking:
        assert track(factory) is tracking
        asyncio.run(scenario())
    assert sent.writes() == {("user", 1)} and len(sent.invalidations) == 2
    assert all(isinstance(s, Session) for s in sent.senders)  # the Session under the AsyncSession
    cache.close()


def test_the_invalidation_is_recorded_off_the_event_loop(engine: AsyncEngine, sent: Sent) -> None:
    factory = async_sessionmaker(engine)
    threads: list[int] = []

    def on_written(sender: Any, **kwargs: Any) -> None:
        threads.append(threading.get_ident())

    async def scenario() -> int:
        async with factory.begin() as session:
            session.add(Group(id=1))
        return threading.get_ident()

    signals.written.connect(on_written)
    try:
        with track(factory):
            loop_thread = asyncio.run(scenario())
    finally:
        signals.written.disconnect(on_written)
    assert sent.written == [("groups", 1)]
    assert threads and loop_thread not in threads


def test_statements_through_an_async_session_send_their_table(engine: AsyncEngine, sent: Sent) -> None:
    factory = async_sessionmaker(engine)

    async def scenario() -> None:
        async with factory.begin() as session:
            await session.execute(sa.insert(Group), [{"id": 1}, {"id": 2}])
            await session.execute(sa.update(User.__table__).values(name="x"))
            await session.execute(sa.text("UPDATE groups SET title = 'raw'"))  # not covered

    with track(factory):
        asyncio.run(scenario())
    assert sent.writes() == {("groups", None), ("user", None)}


def test_track_an_async_session_class(engine: AsyncEngine, sent: Sent) -> None:
    class AppSession(AsyncSession):
        pass

    base = AppSession.sync_session_class

    async def scenario() -> None:
        async with AppSession(engine) as session, session.begin():
            session.add(Group(id=1))
        async with AsyncSession(engine) as other, other.begin():  # not tracked
            other.add(Group(id=2))

    with track(AppSession):
        assert AppSession.sync_session_class is not base
        asyncio.run(scenario())
    assert AppSession.sync_session_class is base and "sync_session_class" not in vars(AppSession)
    assert sent.written == [("groups", 1)]


def test_untracking_an_async_sessionmaker_restores_it(engine: AsyncEngine, sent: Sent) -> None:
    factory = async_sessionmaker(engine)
    tracking = track(factory)
    assert "sync_session_class" in factory.kw
    tracking.untrack()
    assert "sync_session_class" not in factory.kw

    async def scenario() -> None:
        async with factory.begin() as session:
            session.add(Group(id=1))

    asyncio.run(scenario())
    assert sent.written == []


def test_an_async_commit_whose_invalidation_fails_raises_but_is_committed(
    engine: AsyncEngine, tmp_path: Path, sent: Sent
) -> None:
    directory = tmp_path / "cache"
    cache = Cache([MemoryTier(), DiskTier(directory)])
    factory = async_sessionmaker(engine)
    shutil.rmtree(directory)
    directory.write_text("not a folder any more")  # the store cannot be reopened there

    async def scenario() -> list[int]:
        with pytest.raises(InvalidationError, match="was committed"):
            async with factory.begin() as session:
                session.add(Group(id=1))
        async with factory() as session:
            return list((await session.scalars(sa.select(Group.id))).all())

    with track(factory):
        assert asyncio.run(scenario()) == [1]
    assert sent.written == [("groups", 1)]
    assert cache.judge.owed
    cache.close()
