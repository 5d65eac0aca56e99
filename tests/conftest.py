"""Shared fixtures: a fake clock, temp directories, ready-made caches and a Redis server.

Every test runs with ``CACHEPLUG_DIR`` pointing at a fresh temp directory, the other
``CACHEPLUG_*`` settings unset and cacheplug's process-global state reset
(``cacheplug.state.reset()``: no default cache, no global write rules, no one-time warnings
given), so no test sees another's state (or the user's real cache directory).
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, state
from cacheplug.cache import open_caches

_CONFIG_VARS = (
    "CACHEPLUG_DEFAULT_TTL",
    "CACHEPLUG_MAX_ENTRIES",
    "CACHEPLUG_TIERS",
    "CACHEPLUG_ENABLED",
    "CACHEPLUG_OTEL",
    "CACHEPLUG_LEARN",
    "CACHEPLUG_WARMING",
    "CACHEPLUG_LATENCY_TARGET_MS",
)


class FakeClock:
    """A clock for TTL tests: ``clock()`` returns seconds, ``clock.advance(s)`` moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self.now})"


@pytest.fixture(autouse=True)
def _isolated_cacheplug(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Point CACHEPLUG_DIR at a temp dir and reset cacheplug's global state around each test."""
    for name in _CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CACHEPLUG_DIR", str(tmp_path_factory.mktemp("cacheplug-default")))
    state.reset()
    yield
    # reset() closes the default cache only if cacheplug built it, and forgets (does not
    # close) the caches a test made: close those a test left open, with what they hold.
    default = state.DEFAULT_CACHE[0]
    for cache in {*open_caches(), *([default] if default is not None else [])}:
        cache.close()
    state.reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    path = tmp_path / "disk"
    path.mkdir()
    return path


@pytest.fixture
def memory_cache(clock: FakeClock) -> Iterator[Cache]:
    cache = Cache([MemoryTier()], clock=clock)
    yield cache
    cache.close()


@pytest.fixture
def tiered_cache(clock: FakeClock, disk_dir: Path) -> Iterator[Cache]:
    disk = DiskTier(disk_dir)
    cache = Cache([MemoryTier(), disk], clock=clock)
    yield cache
    cache.close()
    disk.close()


# -- services --------------------------------------------------------------------------------


def _service_unavailable(reason: str) -> None:
    if os.environ.get("CACHEPLUG_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (CACHEPLUG_REQUIRE_SERVICES=1 makes this a failure, not a skip)")
    pytest.skip(reason)


def require_framework(module: str, extra: str = "dev") -> None:
    """Skip the calling test module when ``module`` is not installed (fail with
    CACHEPLUG_REQUIRE_SERVICES=1). Call it before importing the framework."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        reason = f"{module} is not installed: pip install 'cacheplug[{extra}]'"
        if os.environ.get("CACHEPLUG_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (CACHEPLUG_REQUIRE_SERVICES=1 makes this a failure, not a skip)")
        pytest.skip(reason, allow_module_level=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(proc: subprocess.Popen[bytes], deadline: float) -> str:
    """Read redis-server's log until it accepts connections; return the log read so far."""
    assert proc.stdout is not None
    seen = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"Ready to accept connections" not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise TimeoutError("redis-server did not become ready in time")
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("redis-server exited during startup")
            seen += chunk
    return seen.decode(errors="replace")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: CACHEPLUG_TEST_REDIS_URL, else a throwaway local redis-server, else skip.

    With ``CACHEPLUG_REQUIRE_SERVICES=1`` a missing server fails the test instead of skipping it.
    """
    given = os.environ.get("CACHEPLUG_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = shutil.which("redis-server")
    if server is None:
        _service_unavailable("no Redis: set CACHEPLUG_TEST_REDIS_URL or install redis-server")
    assert server is not None
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    drain: threading.Thread | None = None
    try:
        try:
            _wait_ready(proc, time.monotonic() + 15)
        except (TimeoutError, RuntimeError) as exc:
            _service_unavailable(f"could not start redis-server on port {port}: {exc}")
        # Keep draining the server's log so a full pipe can never block it.
        assert proc.stdout is not None
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        drain.start()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if drain is not None:
            drain.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


# The machine's PostgreSQL (trust auth, database ``test``), as an SQLAlchemy URL.
POSTGRES_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """CACHEPLUG_TEST_POSTGRES_URL, else the local server; skip (fail with
    CACHEPLUG_REQUIRE_SERVICES=1) when it cannot be reached. An SQLAlchemy URL (psycopg 3)."""
    given = os.environ.get("CACHEPLUG_TEST_POSTGRES_URL") or POSTGRES_DEFAULT_URL
    try:
        import sqlalchemy
    except ImportError:
        _service_unavailable("SQLAlchemy is not installed: pip install 'cacheplug[dev]'")
    parsed = sqlalchemy.engine.make_url(given.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":  # a libpq URL (as Django's settings take it): psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    url = parsed.render_as_string(hide_password=False)
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:
        _service_unavailable(
            f"no PostgreSQL at {url} ({exc.__class__.__name__}: {exc}); set CACHEPLUG_TEST_POSTGRES_URL"
        )
    return url


@pytest.fixture(scope="session")
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A schema of this test session's own in the test database, dropped (only it) at the end."""
    import uuid

    import sqlalchemy

    schema = f"cacheplug_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
