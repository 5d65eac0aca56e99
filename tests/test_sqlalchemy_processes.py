"""The SQLAlchemy integration across processes, and when the invalidation cannot be recorded.

* Another process, with its own cache on the same directory, stops serving a row once a
  tracked commit that wrote it has returned here.
* A commit whose invalidation cannot be recorded (the cache directory is read-only for the
  process: tests run as root, which ignores permission bits, so those processes run as
  ``nobody``) raises from the commit call; the data is committed; the process serves nothing
  stale and reads no shared tier until the invalidation is recorded.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import require_framework

require_framework("sqlalchemy")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

import cacheplug.state  # noqa: E402
from cacheplug import Cache, DiskTier, InvalidationError, MemoryTier, cached, get_cache  # noqa: E402
from cacheplug.integrations.sqlalchemy import track  # noqa: E402

from .disk_support import drop_privileges, in_child  # noqa: E402
from .peer_support import Peer  # noqa: E402
from .sqla_support import Base, User, postgres_engine  # noqa: E402

NOBODY = 65534


def _database(backend: str, folder: Path, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(SQLAlchemy URL, PostgreSQL schema or None) of a database both processes can open."""
    if backend == "sqlite-file":
        return f"sqlite:///{folder / 'app.db'}", None
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_schema")


def _engine(url: str, schema: str | None) -> sa.Engine:
    return sa.create_engine(url) if schema is None else postgres_engine(url, schema)


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder that ``nobody`` can reach (pytest's own temp root is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="cacheplug-sqla-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for top, dirs, _files in os.walk(base):
            for name in [top, *(os.path.join(top, d) for d in dirs)]:
                os.chmod(name, 0o700)
        shutil.rmtree(base)


@pytest.mark.parametrize("backend", ["sqlite-file", "postgresql"])
def test_another_process_sees_the_commit_once_it_returned(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    url, schema = _database(backend, tmp_path, request)
    engine = _engine(url, schema)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    directory = tmp_path / "cache"
    monkeypatch.setenv("CACHEPLUG_DIR", str(directory))
    get_cache()  # this process's cache on the directory: what the commit invalidates
    factory = sessionmaker(engine)
    with factory.begin() as session:
        session.add(User(id=1, name="ada"))
    env = {"CACHEPLUG_DIR": str(directory), "CACHEPLUG_TEST_DB_URL": url}
    if schema is not None:
        env["CACHEPLUG_TEST_DB_SCHEMA"] = schema
    peer = Peer("from tests.sqla_peer import serve; serve()", env)
    try:
        assert peer.ask("1") == ["ada", "computed"]
        assert peer.ask("1") == ["ada", "cached"]
        with track(factory), factory.begin() as session:
            session.get(User, 1).name = "grace"
        assert peer.ask("1") == ["grace", "computed"]
        assert peer.ask("1") == ["grace", "cached"]
    finally:
        peer.stop()
        Base.metadata.drop_all(engine)
        engine.dispose()


def _view(cache: Cache, engine: sa.Engine, computed: list[int]) -> Any:
    @cached(cache=cache, tags=["user:{user_id}"], version="1")
    def view(user_id: int) -> str | None:
        computed.append(user_id)
        with Session(engine) as session:
            user = session.get(User, user_id)
            return None if user is None else user.name

    return view


def _fill(place: Path, url: str, schema: str | None) -> dict[str, Any]:
    """As ``nobody``: the tables, user 1, and its cached view on the disk tier."""
    drop_privileges(place, NOBODY)
    cacheplug.state.reset()  # a new process: none of the parent's caches
    engine = _engine(url, schema)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add(User(id=1, name="ada"))
    computed: list[int] = []
    with Cache([MemoryTier(), DiskTier(place / "cache")]) as cache:
        view = _view(cache, engine, computed)
        return {"view": view(1), "computed": len(computed)}


def _commit_read_only(place: Path, url: str, schema: str | None) -> dict[str, Any]:
    """As ``nobody``, over the read-only cache directory: commit a write to user 1."""
    drop_privileges(place, NOBODY)
    log = io.StringIO()
    logging.getLogger("cacheplug").addHandler(logging.StreamHandler(log))
    cacheplug.state.reset()
    engine = _engine(url, schema)
    computed: list[int] = []
    out: dict[str, Any] = {}
    with Cache([MemoryTier(), DiskTier(place / "cache")]) as cache:
        view = _view(cache, engine, computed)
        out["before"] = view(1)
        out["from_disk"] = not computed
        factory = sessionmaker(engine)
        with track(factory):
            try:
                with factory.begin() as session:
                    session.get(User, 1).name = "grace"
                out["commit"] = "returned"
            except InvalidationError as exc:
                out["commit"] = "raised"
                out["error"] = str(exc)
        with Session(engine) as session:
            out["in_database"] = session.get(User, 1).name
        out["after"] = view(1)
        out["recomputed"] = computed == [1]
        out["owed"] = bool(cache.judge.owed)
    out["log"] = log.getvalue()
    return out


@pytest.mark.parametrize("backend", ["sqlite-file", "postgresql"])
def test_a_commit_whose_invalidation_cannot_be_recorded_raises_and_serves_nothing_stale(
    backend: str, place: Path, request: pytest.FixtureRequest
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the process as another user (permission bits apply anyway)")
    url, schema = _database(backend, place, request)
    filled = in_child(lambda: _fill(place, url, schema))
    assert filled == {"view": "ada", "computed": 1}
    # The version store becomes read-only; the entries stay readable (and writable), so a
    # stale entry could be served from the disk tier if the process did not fail closed.
    directory = place / "cache" / "versions"
    assert (directory / "journal").is_dir(), sorted(p.name for p in directory.parent.iterdir())
    for top, _dirs, files in os.walk(directory):
        for name in [top, *(os.path.join(top, f) for f in files)]:
            os.chmod(name, os.stat(name).st_mode & ~0o222)
    out = in_child(lambda: _commit_read_only(place, url, schema))
    assert out["before"] == "ada" and out["from_disk"], out["log"]  # reads are served from the read-only tier
    assert out["commit"] == "raised"
    assert "was committed" in out["error"] and "read-only" in out["error"]
    assert out["in_database"] == "grace"  # the data is committed
    assert out["after"] == "grace" and out["recomputed"]  # not the stale "ada" from the disk tier
    assert out["owed"]  # and so no shared tier is read until it is recorded
    assert "reads no shared tier" in out["log"]
    if schema is not None:
        with _engine(url, schema).begin() as conn:
            Base.metadata.drop_all(conn)
