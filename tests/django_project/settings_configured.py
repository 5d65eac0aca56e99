"""The test project with ``settings.CACHEPLUG`` taken from ``CACHEPLUG_TEST_DJANGO_CACHEPLUG`` (JSON)."""

from __future__ import annotations

import json
import os

from .settings import *  # noqa: F403

CACHEPLUG = json.loads(os.environ.get("CACHEPLUG_TEST_DJANGO_CACHEPLUG", "{}"))
