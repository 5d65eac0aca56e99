"""The Django app: ``INSTALLED_APPS = [..., "cacheplug.integrations.django"]``.

When Django starts, :meth:`CacheplugConfig.ready` checks every model's entity, applies
``settings.CACHEPLUG`` (``cacheplug.integrations.django.config``), connects the model
signals (``writes``) and puts the execute wrapper on every connection (``statements``).
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core.signals import setting_changed

from ...defaults import configure
from . import statements, writes
from .config import apply_settings

__all__ = ["CacheplugConfig"]


class CacheplugConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """cacheplug's app: writes invalidate after their commit; ``settings.CACHEPLUG`` applies."""

    name = "cacheplug.integrations.django"
    label = "cacheplug"
    verbose_name = "cacheplug"

    def ready(self) -> None:
        for model in apps.get_models(include_auto_created=True):
            writes.entity_of(model)  # a bad __cacheplug_entity__ fails here, not at a write
        apply_settings()
        if getattr(self, "watcher", None) is None:  # ready() again (a test) wraps nothing twice
            self.tables = statements.TableEntities()
            self.watcher = statements.WriteWatcher(self.tables)
        writes.connect()
        statements.install(self.watcher)
        setting_changed.connect(_setting_changed, weak=False, dispatch_uid="cacheplug.settings")


def _setting_changed(setting: str, **_: Any) -> None:
    """``override_settings(CACHEPLUG=...)`` (and its end) applies the setting again."""
    if setting != "CACHEPLUG":
        return
    from .cache import forget_shared  # deferred: the backend is loaded only by projects using it

    forget_shared()  # the backends' caches are built again, with the new defaults
    if apply_settings() is None:
        configure()  # the setting is gone: the default cache the environment describes
