"""Settings of the example shop: cacheplug's app, its cache backend, sessions in the cache."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "only-for-the-example")
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "cacheplug.integrations.django",  # model writes invalidate; manage.py cacheplug ...
    "shop",
]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
ROOT_URLCONF = "shopsite.urls"

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}

# One cache directory for the process's default cache (@cached) and for Django's cache
# backend (which keeps its own namespace, "django"). Every worker of the site shares it.
CACHEPLUG = {
    "directory": os.environ.get("SHOP_CACHE_DIR", str(BASE_DIR / ".cacheplug")),
    "default_ttl": 600,
}
CACHES = {
    "default": {
        "BACKEND": "cacheplug.integrations.django.cache.CacheplugCache",
        "TIMEOUT": 300,
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
