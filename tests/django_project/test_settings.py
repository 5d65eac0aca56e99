"""``settings.CACHEPLUG`` configures the default cache; bad settings fail naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import cacheplug
from cacheplug import ConfigurationError, DiskTier, MemoryTier
from cacheplug.integrations.django import SettingsError

from .processes import ROOT


def test_the_setting_maps_onto_configure(tmp_path: Path) -> None:
    given = {
        "directory": tmp_path / "cache",
        "namespace": "shop",
        "default_ttl": 60,
        "max_entries": 50,
        "tiers": "memory, disk",
    }
    with override_settings(CACHEPLUG=given):
        cache = cacheplug.get_cache()
        assert (cache.namespace, cache.default_ttl) == ("shop", 60.0)
        memory, disk = cache.tiers
        assert isinstance(memory, MemoryTier) and memory.max_entries == 50
        assert isinstance(disk, DiskTier) and disk.directory == str(tmp_path / "cache")
        assert cache.enabled
        # The backend's defaults follow the setting too (no LOCATION in the test project).
        assert caches["default"].directory == str(tmp_path / "cache")
    assert cacheplug.get_cache().namespace == ""  # the setting is gone: the environment's cache
    assert caches["default"].directory == os.environ["CACHEPLUG_DIR"]


def test_enabled_false_turns_cached_functions_into_pass_throughs(tmp_path: Path) -> None:
    with override_settings(CACHEPLUG={"enabled": False, "directory": str(tmp_path)}):
        assert cacheplug.get_cache().enabled is False


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"DIRECTORY": "/tmp/x"}, r"unknown key 'DIRECTORY' \(did you mean 'directory'\?\)"),
        ({"ttl": 5}, r"unknown key 'ttl'; the keys are directory, namespace, default_ttl"),
        ({"directory": 5}, r"\['directory'\] must be a folder path"),
        ({"namespace": "a|b"}, r"\['namespace'\] must be a str without"),
        ({"default_ttl": "300"}, r"\['default_ttl'\] must be None \(never expire\), seconds"),
        ({"default_ttl": -1}, r"\['default_ttl'\]"),
        ({"enabled": "yes"}, r"\['enabled'\] must be True or False"),
        ({"max_entries": 0}, r"\['max_entries'\] must be an int >= 1"),
        ({"tiers": "redis"}, r"\['tiers'\] must be one of 'memory,disk', 'memory', 'disk'"),
        ({"secret": ""}, r"\['secret'\] must be a non-empty str"),
    ],
)
def test_garbage_settings_are_refused_naming_the_key(given: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised, override_settings(CACHEPLUG=given):
        pass
    assert isinstance(raised.value, ImproperlyConfigured) and isinstance(raised.value, ConfigurationError)


def test_a_setting_that_is_not_a_dict_is_refused() -> None:
    with pytest.raises(SettingsError, match="must be a dict"), override_settings(CACHEPLUG=["directory"]):
        pass


def _start_django(cacheplug_setting: Any, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings_configured",
        "CACHEPLUG_TEST_DJANGO_CACHEPLUG": json.dumps(cacheplug_setting),
    }
    code = "import django, cacheplug; django.setup(); print(cacheplug.get_cache().tiers[-1].directory)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_app_applies_the_setting_when_django_starts(tmp_path: Path) -> None:
    started = _start_django({"directory": str(tmp_path / "project-cache")}, tmp_path)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == str(tmp_path / "project-cache")


def test_a_bad_setting_stops_django_from_starting(tmp_path: Path) -> None:
    started = _start_django({"default_ttl": "five minutes"}, tmp_path)
    assert started.returncode != 0
    assert "SettingsError: settings.CACHEPLUG['default_ttl'] must be None" in started.stderr
