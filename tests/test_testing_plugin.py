"""The pytest plugin (``cacheplug.testing``), run by pytest itself through ``pytester``.

Each test writes a small test suite and runs it in a fresh pytest session with the plugin
loaded (``-p cacheplug.testing``, as the entry point does once installed), then checks the
outcomes and the output. The entry point itself is checked in a subprocess, with a
distribution declaring it put on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
# The plugin module is imported already in this process, so pytest cannot rewrite its asserts
# (it has none) and says so: that warning is noise here.
PLUGIN = (
    "-p",
    "cacheplug.testing",
    "-p",
    "no:randomly",
    "-p",
    "no:cacheprovider",
    "-W",
    "ignore::pytest.PytestAssertRewriteWarning",
    # The inner sessions run in this process: pytest-django, set up already by this suite's
    # Django tests, must not set Django's test environment up a second time there.
    "-p",
    "no:django",
)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, *args)


# -- the fixtures -------------------------------------------------------------------------


def test_cacheplug_cache_is_the_default_with_memory_and_disk_on_a_temp_dir(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        from pathlib import Path
        import cacheplug
        from cacheplug import DiskTier, MemoryTier, cached

        SEEN = []

        @cached
        def double(x):
            return 2 * x

        def test_installed(cacheplug_cache, tmp_path_factory):
            SEEN.append(cacheplug_cache)
            assert cacheplug.get_cache() is cacheplug_cache
            memory, disk = cacheplug_cache.tiers
            assert isinstance(memory, MemoryTier) and isinstance(disk, DiskTier)
            assert Path(tmp_path_factory.getbasetemp()) in Path(disk.directory).parents
            assert os.environ["CACHEPLUG_DIR"] == str(disk.directory)
            double(2)
            assert cacheplug_cache.stats().misses == 1  # the @cached function used it

        def test_closed_and_fresh_in_the_next_test(cacheplug_cache):
            assert SEEN[0].closed and cacheplug_cache is not SEEN[0]
            assert cacheplug_cache.stats().calls == 0
            assert double.cache_info().misses == 0
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_cacheplug_clock_drives_the_ttls_of_default_cache_functions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import cacheplug
        from cacheplug import cached
        from cacheplug.testing import FakeClock

        calls = []

        @cached(ttl=60)
        def load(x):
            calls.append(x)
            return x

        def test_clock_alone_installs_the_cache(cacheplug_clock):
            assert isinstance(cacheplug_clock, FakeClock)
            assert cacheplug.get_cache().clock is cacheplug_clock
            load(1); load(1)
            cacheplug_clock.advance(59.9)
            load(1)
            assert calls == [1]
            cacheplug_clock.advance(0.2)
            load(1)
            assert calls == [1, 1]

        def test_both_fixtures_share_the_clock(cacheplug_cache, cacheplug_clock):
            assert cacheplug_cache.clock is cacheplug_clock
            before = cacheplug_clock()
            assert cacheplug_clock.advance(10) == before + 10

        def test_without_the_clock_the_cache_uses_the_wall_clock(cacheplug_cache):
            import time
            assert cacheplug_cache.clock is time.time
        """
    )
    run(pytester).assert_outcomes(passed=3)


def test_fake_clock_refuses_to_go_back_or_to_nan() -> None:
    from cacheplug import ConfigurationError
    from cacheplug.testing import FakeClock

    clock = FakeClock(100)
    assert clock() == 100.0
    with pytest.raises(ConfigurationError, match="forward only"):
        clock.advance(-1)
    with pytest.raises(ConfigurationError, match="finite"):
        clock.advance(float("nan"))
    with pytest.raises(ConfigurationError, match="finite"):
        FakeClock(float("inf"))
    assert clock() == 100.0


# -- the marker ---------------------------------------------------------------------------


def test_marker_turns_caching_off_for_one_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import cacheplug
        from cacheplug import Cache, MemoryTier, cached

        calls = []
        MODULE_CACHE = Cache([MemoryTier()])  # open before every test

        @cached
        def f(x):
            calls.append(x)
            return x

        @cached(cache=MODULE_CACHE)
        def g(x):
            calls.append(("g", x))
            return x

        @pytest.mark.cacheplug(enabled=False)
        def test_off_with_the_fixture(cacheplug_cache):
            assert not cacheplug_cache.enabled
            f(1); f(1)
            assert calls == [1, 1]

        @pytest.mark.cacheplug(enabled=False)
        def test_off_for_the_default_built_from_the_environment_and_open_caches():
            calls.clear()
            f(2); f(2); g(3); g(3)
            assert calls == [2, 2, ("g", 3), ("g", 3)]
            assert not cacheplug.get_cache().enabled and not MODULE_CACHE.enabled

        def test_on_again_in_the_next_test():
            calls.clear()
            assert MODULE_CACHE.enabled
            g(4); g(4)
            assert calls == [("g", 4)]

        @pytest.mark.cacheplug(enabled=True)
        def test_enabled_true_changes_nothing(cacheplug_cache):
            assert cacheplug_cache.enabled

        @pytest.mark.cacheplug
        class TestAClassMarked:
            @pytest.mark.cacheplug(enabled=False)
            def test_closest_marker_wins(self, cacheplug_cache):
                assert not cacheplug_cache.enabled
        """
    )
    result = run(pytester, "--strict-markers")
    result.assert_outcomes(passed=5)


def test_marker_with_a_wrong_argument_errors_with_what_to_write(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cacheplug(disabled=True)
        def test_typo():
            pass

        @pytest.mark.cacheplug(enabled="no")
        def test_not_a_bool():
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*the cacheplug marker takes one keyword, enabled=True or False*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.cacheplug(enabled=True): enabled=False turns caching off*"])


# -- process state between tests ----------------------------------------------------------


def test_state_from_one_test_never_reaches_the_next(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import warnings
        import cacheplug
        from cacheplug import Cache, InvalidationRule, MemoryTier, state
        from cacheplug.cache import open_caches

        LEFT = {}

        def test_a_leaves_everything_behind():
            LEFT["default"] = cacheplug.configure(tiers="memory")
            LEFT["cache"] = Cache([MemoryTier()])
            cacheplug.add_rule(InvalidationRule("user", tags=["dashboard:{id}"]))
            cacheplug.get_cache().set("k", 1)

        def test_b_sees_none_of_it():
            assert LEFT["default"].closed, "the default cache cacheplug built was closed"
            assert cacheplug.get_cache() is not LEFT["default"]
            assert cacheplug.get_cache().get("k") is None
            assert LEFT["cache"] not in open_caches() and not LEFT["cache"].closed
            assert state.RULES == [] and cacheplug.get_cache().write_tags("user", 1) == ["user", "user:1"]
            LEFT["cache"].close()
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_state_from_before_the_test_is_kept(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        import cacheplug
        from cacheplug import Cache, InvalidationRule, MemoryTier

        # Configured when the conftest is imported, as suites often do.
        APP_DEFAULT = cacheplug.configure(tiers="memory")
        APP_CACHE = Cache([MemoryTier()])
        cacheplug.add_rule(InvalidationRule("order", tags=["report:{id}"]))

        @pytest.fixture(scope="session")
        def session_cache():
            return Cache([MemoryTier()])
        """
    )
    pytester.makepyfile(
        """
        import cacheplug
        from cacheplug.cache import open_caches
        from conftest import APP_CACHE, APP_DEFAULT

        def test_first(session_cache):
            assert cacheplug.get_cache() is APP_DEFAULT
            cacheplug.configure(cache=session_cache)  # replaced for this test only
            cacheplug.add_rule(cacheplug.InvalidationRule("order", tags=["extra:{id}"]))

        def test_second_sees_what_existed_before_the_first(session_cache):
            assert cacheplug.get_cache() is APP_DEFAULT and not APP_DEFAULT.closed
            assert {APP_CACHE, session_cache} <= set(open_caches())
            assert APP_DEFAULT.write_tags("order", 3) == ["order", "order:3", "report:3"]
            APP_CACHE.set("k", 1, tags=["t"])
            cacheplug.invalidate(tags=["t"])  # module-level invalidate still reaches it
            assert APP_CACHE.get("k") is None
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_a_failing_test_is_undone_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import cacheplug

        def test_fails_after_configuring():
            cacheplug.configure(tiers="memory").set("k", 1)
            raise RuntimeError("boom")

        def test_next_starts_clean():
            assert cacheplug.get_cache().get("k") is None
        """
    )
    run(pytester).assert_outcomes(passed=1, failed=1)


# -- the assertion helpers ----------------------------------------------------------------

HELPERS_SUITE = """
import asyncio
import pytest
import cacheplug
from cacheplug import cached
from cacheplug.testing import (
    aassert_hit, aassert_miss, assert_hit, assert_invalidated, assert_miss,
)

calls = []

@cached(ttl=60, tags=["user:{uid}"])
def load(uid):
    calls.append(uid)
    return {"uid": uid}

@cached
async def aload(uid):
    return uid

class Repo:
    def __cache_key__(self):
        return "repo"

    @cached
    def find(self, x):
        calls.append(("find", x))
        return x
"""


def test_helpers_pass_on_what_they_assert(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS_SUITE
        + """
def test_miss_hit_invalidated(cacheplug_cache, cacheplug_clock):
    assert assert_miss(load, 1) == {"uid": 1}
    assert assert_hit(load, 1) == {"uid": 1}
    assert calls == [1], "assert_hit did not compute"
    cacheplug.invalidate(tags=["user:1"])
    assert_invalidated(load, 1)
    assert calls == [1], "assert_invalidated did not call the function"
    assert_miss(load, uid=1)
    cacheplug_clock.advance(61)
    assert_invalidated(load, 1)

def test_hit_from_the_disk_tier(cacheplug_cache):
    load(2)
    cacheplug_cache.memory.clear()
    assert_hit(load, 2)

def test_bound_methods(cacheplug_cache):
    repo = Repo()
    assert_miss(repo.find, 3)
    assert_hit(repo.find, 3)
    repo.find.invalidate(3)
    assert_invalidated(repo.find, 3)

def test_async_twins(cacheplug_cache):
    async def main():
        await aassert_miss(aload, 1)
        await aassert_hit(aload, 1)
    asyncio.run(main())
"""
    )
    run(pytester).assert_outcomes(passed=4)


def test_assert_hit_failure_says_what_happened(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS_SUITE
        + """
def test_never_cached(cacheplug_cache, cacheplug_clock):
    assert_hit(load, 7)
"""
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: assert_hit: load(7) was expected to be served from the cache without "
            "computing, but it computed (miss).",
            "E*key:*fn:test_assert_hit_failure_says_what_happened.load@*(i7)",
            "E*before the call: no fresh entry in any tier (memory, disk)",
            "E*after the call:*a fresh entry in memory (stored 0 s ago by the cache's clock; "
            "expires in 60 s)",
            "E*counted:*hits +0, misses +1, stale +0, coalesced +0, errors +0",
        ]
    )
    # The helper's own frames are hidden: the traceback points at the test's line.
    result.stdout.fnmatch_lines(["*test_assert_hit_failure_says_what_happened.py:*: AssertionError"])
    assert "asserts.py" not in result.stdout.str()


def test_assert_miss_and_assert_invalidated_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS_SUITE
        + """
def test_miss_but_hit(cacheplug_cache):
    load(1)
    assert_miss(load, 1)

def test_invalidated_but_fresh(cacheplug_cache):
    load(1)
    cacheplug.invalidate(tags=["user:2"])  # not this entry's tag
    assert_invalidated(load, 1)
"""
    )
    result = run(pytester)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E*assert_miss: load(1) was expected to compute (a miss), but it was served from the "
            "cache (hit).",
            "E*before the call: a fresh entry in memory*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E*assert_invalidated: load(1) was expected to have no fresh entry (invalidated), but "
            "the cache still serves one.",
            "E*held:*a fresh entry in memory*",
        ]
    )


def test_helpers_say_when_caching_is_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS_SUITE
        + """
@pytest.mark.cacheplug(enabled=False)
def test_off(cacheplug_cache):
    assert_hit(load, 1)
"""
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*but no outcome was counted — caching is off for this cache (enabled=False, or the "
            "cacheplug(enabled=False) marker), so the function ran plainly."
        ]
    )


def test_helpers_refuse_what_they_cannot_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS_SUITE
        + """
def plain(x):
    return x

def test_not_cached():
    with pytest.raises(TypeError, match="assert_hit\\\\(\\\\) takes a @cached function"):
        assert_hit(plain, 1)

def test_sync_function_in_the_async_twin(cacheplug_cache):
    with pytest.raises(TypeError, match="load is not async: use assert_hit"):
        asyncio.run(aassert_hit(load, 1))
"""
    )
    run(pytester).assert_outcomes(passed=2)


def test_the_outcomes_other_than_hit_and_miss_are_named() -> None:
    """Stale and coalesced calls fail assert_hit with their name (no cache path makes them yet:
    cacheplug counts them once early refresh and stampede locks exist)."""
    from cacheplug.testing.asserts import _outcome

    assert _outcome({"hits": 0, "misses": 0, "stale": 1, "coalesced": 0, "errors": 0}) == (
        "it was served a stale value (stale)"
    )
    assert _outcome({"hits": 0, "misses": 0, "stale": 0, "coalesced": 1, "errors": 0}) == (
        "it waited for another caller's computation (coalesced)"
    )
    assert _outcome({"hits": 2, "misses": 1, "stale": 0, "coalesced": 0, "errors": 0}) == (
        "it counted +2 hits, +1 misses (did other calls of the function run meanwhile?)"
    )


# -- the entry point ----------------------------------------------------------------------


def _entry_point_path(tmp_path: Path) -> Path:
    """A directory holding a distribution that declares the pytest11 entry point, as setup.cfg does."""
    site = tmp_path / "site"
    dist = site / "cacheplug_entry_point-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cacheplug-entry-point\nVersion: 0.0.0\n")
    section = _setup_cfg_pytest11()
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{section}\n")
    return site


def _setup_cfg_pytest11() -> str:
    """The pytest11 line of setup.cfg (so this test checks what will be installed)."""
    lines = (ROOT / "setup.cfg").read_text().splitlines()
    start = lines.index("pytest11 =")
    return lines[start + 1].strip()


def _pytest_subprocess(
    tmp_path: Path, *args: str, entry_point: bool = True
) -> subprocess.CompletedProcess[str]:
    paths = [str(ROOT)] + ([str(_entry_point_path(tmp_path))] if entry_point else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEPLUG_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["CACHEPLUG_DIR"] = str(tmp_path / "cachedir")
    if not entry_point:
        # As where cacheplug is not installed: no entry point at all is loaded (an editable
        # install of this checkout, as `make dev` makes, declares the real one).
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _suite(tmp_path: Path) -> None:
    (tmp_path / "test_uses_fixtures.py").write_text(
        textwrap.dedent(
            """
            import cacheplug

            def test_fixture(cacheplug_cache, cacheplug_clock):
                assert cacheplug.get_cache() is cacheplug_cache
            """
        )
    )


def test_the_entry_point_loads_the_plugin(tmp_path: Path) -> None:
    assert _setup_cfg_pytest11() == "cacheplug.testing = cacheplug.testing"
    _suite(tmp_path)
    proc = _pytest_subprocess(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_without_the_entry_point_the_fixtures_are_unknown(tmp_path: Path) -> None:
    """The check above can fail: without the entry point nothing provides the fixtures."""
    _suite(tmp_path)
    proc = _pytest_subprocess(tmp_path, entry_point=False)
    assert proc.returncode == 1 and "fixture 'cacheplug_cache' not found" in proc.stdout


def test_the_entry_point_and_an_explicit_load_do_not_clash(tmp_path: Path) -> None:
    _suite(tmp_path)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["cacheplug.testing"]\n')
    proc = _pytest_subprocess(tmp_path, "-p", "cacheplug.testing")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_entry_point_can_be_disabled(tmp_path: Path) -> None:
    _suite(tmp_path)
    proc = _pytest_subprocess(tmp_path, "-p", "no:cacheplug.testing")
    assert proc.returncode == 1 and "fixture 'cacheplug_cache' not found" in proc.stdout
