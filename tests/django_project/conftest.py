"""Django for this folder only: set up when pytest collects it, and PostgreSQL for its database.

pytest-django is a plugin of the whole run, but it only acts once Django is configured.
Nothing configures it in pyproject.toml (no ``DJANGO_SETTINGS_MODULE`` there, no ``--ds``),
so the rest of the suite runs as before; this conftest, loaded when pytest collects this
folder, configures Django with ``tests.django_project.settings`` and removes
``DJANGO_SETTINGS_MODULE`` from the environment again (subprocesses of other tests, pytest
runs among them, must not inherit it). The folder is skipped, with its reason, when Django,
pytest-django or its plugin (``-p pytest_django`` under ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``)
is missing, or PostgreSQL is unreachable; with ``CACHEPLUG_REQUIRE_SERVICES=1`` each of those
fails instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import _service_unavailable

SETTINGS = "tests.django_project.settings"


def _missing(reason: str) -> None:
    if os.environ.get("CACHEPLUG_REQUIRE_SERVICES") == "1":
        raise pytest.UsageError(f"{reason} (CACHEPLUG_REQUIRE_SERVICES=1 makes this a failure, not a skip)")
    pytest.skip(reason, allow_module_level=True)


for _module in ("django", "pytest_django"):
    if importlib.util.find_spec(_module) is None:
        _missing(f"the Django tests need {_module}: pip install -e '.[dev]'")
if "pytest_django.plugin" not in sys.modules:
    _missing("pytest-django is not loaded (plugin autoload is off): run pytest with -p pytest_django")


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


_set_up_django()


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
