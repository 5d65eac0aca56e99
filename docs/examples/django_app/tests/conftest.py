import pytest
from django.test import override_settings


@pytest.fixture(autouse=True)
def cache_dir(tmp_path):
    """Each test on a fresh cache directory (the app applies CACHEPLUG again when it changes)."""
    with override_settings(CACHEPLUG={"directory": str(tmp_path / "cache"), "default_ttl": 600}):
        yield tmp_path / "cache"
