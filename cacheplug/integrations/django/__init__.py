"""cacheplug for Django (``pip install 'cacheplug[django]'``): an app, a cache backend, a command.

- The app (``INSTALLED_APPS = [..., "cacheplug.integrations.django"]``): every statement
  that writes (``statements``), and ``post_save``, ``post_delete`` and ``m2m_changed``,
  become ``cacheplug.signals.written`` writes delivered after the transaction commits
  (``writes``): row writes for the rows of ``save()`` and ``delete()`` (``origins``), table
  writes for ``QuerySet.update()``, ``bulk_create()``, raw SQL...; the entity of a model is
  its table, or its class attribute ``__cacheplug_entity__``.
  ``settings.CACHEPLUG = {...}`` configures the default cache (``config``).
- The cache backend ``cacheplug.integrations.django.cache.CacheplugCache`` for ``CACHES``.
- The management command ``python manage.py cacheplug ...``: the ``cacheplug`` command line
  on the project's cache directory.

See docs/guide/django.md.
"""

from .._require import require

require("django", "django")

from .config import SettingsError, apply_settings  # noqa: E402  # after the check above
from .locks import LockTimeout  # noqa: E402
from .writes import entity_of  # noqa: E402

__all__ = ["LockTimeout", "SettingsError", "apply_settings", "entity_of"]
