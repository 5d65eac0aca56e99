"""This folder can run: Django is set up (skipped, with the reason, when it cannot be)."""

from __future__ import annotations


def test_django_is_set_up_for_this_folder() -> None:
    from django.apps import apps
    from django.conf import settings

    assert apps.ready and settings.SETTINGS_MODULE == "tests.django_project.settings"
