"""Django for this folder only: set up when pytest collects it, and PostgreSQL for its database.

pytest-django is a plugin of the whole run, but it only acts once Django is configured.
Nothing configures it in pyproject.toml (no ``DJANGO_SETTINGS_MODULE`` there, no ``--ds``),
so the rest of the suite runs as before; this conftest, loaded when pytest collects this
folder, configures Django with ``tests.django_project.settings`` and removes
``DJANGO_SETTINGS_MODULE`` from the environment again (subprocesses of other tests, pytest
runs among them, must not inherit it). The folder's tests are skipped, with the reason, when
Django or pytest-django is missing or its plugin is not loaded (``-p django`` loads it under
``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), and the database tests when PostgreSQL is unreachable;
with ``CACHEPLUG_REQUIRE_SERVICES=1`` each of those fails instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _service_unavailable

SETTINGS = "tests.django_project.settings"
HERE = Path(__file__).resolve().parent
# Why this folder cannot run (None: it can). Django missing: the modules (they import it) are
# not collected, and test_requirements.py reports the reason.
_unusable: str | None = None
for _module in ("django", "pytest_django"):
    if _unusable is None and importlib.util.find_spec(_module) is None:
        _unusable = f"the Django tests need {_module}: pip install -e '.[dev]'"
if _unusable is not None:
    collect_ignore_glob = [f"{name}.py" for name in ("test_[!r]*", "worker", "processes")]


def _set_up_django() -> None:
    import django
    from django.conf import settings

    if settings.configured:
        return
    previous = os.environ.get("DJANGO_SETTINGS_MODULE")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    try:
        django.setup()
    finally:
        if previous is None:
            del os.environ["DJANGO_SETTINGS_MODULE"]
        else:
            os.environ["DJANGO_SETTINGS_MODULE"] = previous


if _unusable is None:
    _set_up_django()


def pytest_configure(config: pytest.Config) -> None:
    global _unusable
    if _unusable is None and not config.pluginmanager.hasplugin("django"):
        _unusable = "pytest-django's plugin is not loaded (plugin autoload is off): run pytest with -p django"
        # Its marker, so that the modules still import under --strict-markers (then skip).
        config.addinivalue_line("markers", "django_db: pytest-django's database marker")
    if _unusable is not None and os.environ.get("CACHEPLUG_REQUIRE_SERVICES") == "1":
        raise pytest.UsageError(
            f"{_unusable} (CACHEPLUG_REQUIRE_SERVICES=1 makes this a failure, not a skip)"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _unusable is None:
        return
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.skip(reason=_unusable))


@pytest.fixture(scope="session", autouse=True)
def _django_session(tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any) -> Iterator[None]:
    """A cache directory for what runs outside the tests (creating the database), and no
    database access outside ``django_db`` tests, as pytest-django does when it sets Django up."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CACHEPLUG_DIR", str(tmp_path_factory.mktemp("django-session")))
        with django_db_blocker.block():
            yield


@pytest.fixture(scope="session")
def postgres() -> None:
    """PostgreSQL answers (else skip, or fail with CACHEPLUG_REQUIRE_SERVICES=1)."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            host=db["HOST"],
            port=db["PORT"],
            user=db["USER"],
            password=db["PASSWORD"],
            dbname=db["NAME"],
            connect_timeout=5,
        ).close()
    except psycopg.Error as exc:
        _service_unavailable(
            f"no PostgreSQL at {db['HOST']}:{db['PORT']} ({exc}); set CACHEPLUG_TEST_POSTGRES_URL"
        )


@pytest.fixture(scope="session")
def django_db_setup(postgres: None, django_db_setup: None) -> None:
    """pytest-django's test database, once PostgreSQL is known to answer."""


class Written:
    """Every ``cacheplug.signals.written`` sent during a test: ``(entity, id)`` in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.writes.append((kwargs["entity"], kwargs.get("id")))

    def take(self) -> list[tuple[str, Any]]:
        """The writes since the last take, and forget them."""
        out, self.writes = self.writes, []
        return out


@pytest.fixture
def written() -> Iterator[Written]:
    from cacheplug import signals

    recorder = Written()
    signals.written.connect(recorder)
    yield recorder
    signals.written.disconnect(recorder)


@pytest.fixture
def invalidations() -> Iterator[list[frozenset[str]]]:
    """The tags of every invalidation applied during a test (one item per cache and batch)."""
    from cacheplug import signals

    seen: list[frozenset[str]] = []

    def heard(sender: Any, tags: frozenset[str], keys: frozenset[str]) -> None:
        seen.append(tags)

    signals.invalidated.connect(heard)
    yield seen
    signals.invalidated.disconnect(heard)
