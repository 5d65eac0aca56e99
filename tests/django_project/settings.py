"""Settings of the test project: PostgreSQL (``CACHEPLUG_TEST_POSTGRES_URL``), the cache backend, sessions.

pytest-django creates its own database, ``test_cacheplug_django_<pid>``, and drops it at the
end; the database named in the URL (``test``) is only connected to, never written.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

POSTGRES_URL = os.environ.get("CACHEPLUG_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
_url = urlsplit(POSTGRES_URL)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(_url.path.lstrip("/")) or "test",
        "USER": unquote(_url.username or "postgres"),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": str(_url.port or 5432),
        "OPTIONS": {"connect_timeout": 5},
        "TEST": {"NAME": f"test_cacheplug_django_{os.getpid()}"},
    }
}
INSTALLED_APPS = ["cacheplug.integrations.django", "tests.django_project.shop"]
# No LOCATION: the cache directory is the default cache's (CACHEPLUG_DIR: a fresh one per test).
CACHES = {"default": {"BACKEND": "cacheplug.integrations.django.cache.CacheplugCache"}}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
ROOT_URLCONF = "tests.django_project.urls"
SECRET_KEY = "cacheplug-tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
