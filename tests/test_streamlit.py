"""The Streamlit integration, run by Streamlit's own ``AppTest`` on real app scripts.

The scripts (``tests/streamlit_apps/``) run in this process, in AppTest's script thread, on
the default cache: a memory + disk cache on a temporary directory whose clock is a
``FakeClock``, so TTLs expire when the test moves it. An invalidation from another process
is a real ``python`` subprocess on the same cache directory.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, HitRateBelow, Monitor
from tests.conftest import FakeClock

if importlib.util.find_spec("streamlit") is None:  # pragma: no cover - the dev extra has it
    if os.environ.get("CACHEPLUG_REQUIRE_SERVICES") == "1":
        raise RuntimeError("streamlit is not installed (CACHEPLUG_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip("streamlit is not installed: pip install 'cacheplug[streamlit]'", allow_module_level=True)

from streamlit.testing.v1 import AppTest

from cacheplug.integrations.streamlit import ALL_TAG, cache_data

ROOT = Path(__file__).resolve().parents[1]
APPS = Path(__file__).resolve().parent / "streamlit_apps"
TIMEOUT = 60  # seconds AppTest waits for one run (the machine may be busy)


@pytest.fixture
def cache(tiered_cache: Cache) -> Iterator[Cache]:
    """The default cache while the app runs: memory + disk on a temp dir, on the fake clock."""
    cacheplug.configure(cache=tiered_cache)
    yield tiered_cache


def orders(cache: Cache, **state: Any) -> AppTest:
    at = AppTest.from_file(str(APPS / "orders_app.py"), default_timeout=TIMEOUT)
    for name, value in state.items():
        at.session_state[name] = value
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def computed(at: AppTest) -> list[int]:
    log: list[int] = at.session_state["log"]
    return log


def shown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("order ")]


# -- computing once ---------------------------------------------------------------------


def test_computes_once_across_reruns_and_returns_a_copy_to_each_caller(cache: Cache) -> None:
    at = run(orders(cache))
    for _ in range(3):
        run(at)
    assert computed(at) == [1], "one computation for four runs of the script"
    # The app appended to its copy; the second call of each run got a clean one.
    assert shown(at) == ["order 1: [10]"]
    stats = cache.stats()
    assert (stats.misses, stats.hits) == (1, 7)


def test_underscore_arguments_are_left_out_of_the_key(cache: Cache) -> None:
    at = run(orders(cache))
    # A new session: a new _log list, the same key.
    other = run(orders(cache))
    assert computed(at) == [1] and computed(other) == []
    assert shown(other) == ["order 1: [10]"]


def test_a_fresh_process_of_the_app_is_served_from_the_disk_tier(cache: Cache) -> None:
    at = run(orders(cache))
    assert cache.memory is not None
    cache.memory.clear()  # as if the server restarted: only the disk tier holds the entry
    run(at)
    assert computed(at) == [1]
    assert cache.stats().tier_hits["disk"] == 1


# -- expiry and bounds ------------------------------------------------------------------


def test_ttl_string_expires_on_the_caches_clock(cache: Cache, clock: FakeClock) -> None:
    at = run(orders(cache))
    clock.advance(3599)  # ttl="1h"
    run(at)
    assert computed(at) == [1]
    clock.advance(2)
    run(at)
    assert computed(at) == [1, 1]


def test_max_entries_evicts_the_least_recently_used_entry(cache: Cache) -> None:
    at = run(orders(cache, ids=[1, 2, 3]))  # max_entries=3
    at.session_state["ids"] = [1, 4]  # 1 is used again, so 2 is the oldest when 4 arrives
    run(at)
    assert computed(at) == [1, 2, 3, 4]
    at.session_state["ids"] = [1, 3, 4]
    run(at)
    assert computed(at) == [1, 2, 3, 4], "1, 3 and 4 are kept"
    at.session_state["ids"] = [2]
    run(at)
    assert computed(at) == [1, 2, 3, 4, 2], "2 was evicted, in every tier"
    assert cache.memory is not None and len(cache.memory) == 3


# -- invalidation -----------------------------------------------------------------------


def test_tags_and_entity_writes_invalidate_it(cache: Cache) -> None:
    at = run(orders(cache, ids=[1, 2]))
    cacheplug.invalidate(tags=["order:1"])
    run(at)
    assert computed(at) == [1, 2, 1]
    cacheplug.invalidate_by_write("order", 2)  # what an ORM save hook sends
    run(at)
    assert computed(at) == [1, 2, 1, 2]
    cacheplug.signals.written.send(None, entity="order", id=1)
    run(at)
    assert computed(at) == [1, 2, 1, 2, 1]


def test_an_invalidation_in_another_process_reaches_the_app(cache: Cache, disk_dir: Path) -> None:
    at = run(orders(cache, ids=[1, 2]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env["CACHEPLUG_DIR"] = str(disk_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    writer = subprocess.run(
        [sys.executable, "-c", "import cacheplug; cacheplug.invalidate_by_write('order', 1)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    run(at)
    assert computed(at) == [1, 2, 1], "order 1 recomputed, order 2 still cached"


def test_clear_one_call_the_function_or_every_cache_data_function(cache: Cache) -> None:
    """The buttons come after the calls: what they clear is computed again on the next run."""
    at = run(orders(cache, ids=[1, 2]))
    at.button[0].click()
    run(at)  # load_order.clear(1, log)
    run(at)
    assert computed(at) == [1, 2, 1]
    at.button[1].click()
    run(at)  # load_order.clear()
    run(at)
    assert computed(at) == [1, 2, 1, 1, 2]
    at.button[2].click()
    run(at)  # cache_data.clear()
    run(at)
    assert computed(at) == [1, 2, 1, 1, 2, 1, 2]


def test_cache_data_clear_reaches_other_processes(cache: Cache, disk_dir: Path) -> None:
    at = run(orders(cache))
    cache_data.clear()
    run(at)
    assert computed(at) == [1, 1]
    assert cache.versions.epoch[0] >= 1, "recorded in the host's version store"


# -- two apps, one host ------------------------------------------------------------------


def test_two_scripts_with_the_same_function_never_share_entries(cache: Cache) -> None:
    a = run(AppTest.from_file(str(APPS / "inventory_a.py"), default_timeout=TIMEOUT))
    b = run(AppTest.from_file(str(APPS / "inventory_b.py"), default_timeout=TIMEOUT))
    assert [m.value for m in a.markdown] == ["stock of warehouse A"]
    assert [m.value for m in b.markdown] == ["stock of warehouse B"]


# -- the panel -----------------------------------------------------------------------------


def test_cache_panel_shows_the_figures(cache: Cache) -> None:
    at = run(orders(cache, ids=[1, 2]))  # 2 misses, 2 hits
    at.session_state["panel"] = True
    run(at)  # 4 more hits, then the panel
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "Hit rate": "75.0%",
        "Calls": "8",
        "Hits": "6",
        "Misses": "2",
        "Stale": "0",
        "Coalesced": "0",
        "Errors": "0",
    }
    functions, latencies, tiers = (t.value for t in at.table)
    row = functions.iloc[0]
    assert row["function"].endswith("__main__.load_order")
    assert (row["calls"], row["hit rate"], row["hits"], row["misses"]) == ("8", "75.0%", "6", "2")
    assert set(latencies["latency of"]) >= {"compute"}
    assert list(tiers["tier"]) == ["memory", "disk"]
    assert list(tiers["entries"]) == ["2", "2"]
    assert tiers.set_index("tier").loc["memory", "hits"] == "6"
    assert any("Alerts come from a monitor" in c.value for c in at.caption)


def test_cache_panel_shows_the_monitors_alerts(cache: Cache, clock: FakeClock) -> None:
    monitor = Monitor(cache, rules=[HitRateBelow(0.9, min_calls=1)])
    monitor.check()
    at = run(orders(cache, ids=[1, 2], monitor=monitor, panel=True))  # hit rate 50%
    clock.advance(60)
    monitor.check()
    run(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "hit rate" in errors[0].lower()
    alerts = at.table[3].value
    assert list(alerts["state"]) == ["firing"] and list(alerts["rule"]) == ["HitRateBelow"]


def test_cache_panel_refuses_what_it_cannot_show(cache: Cache) -> None:
    from cacheplug.integrations.streamlit import cache_panel

    with pytest.raises(ConfigurationError, match=r"takes a cacheplug\.Monitor"):
        cache_panel(cache)  # type: ignore[arg-type]
    other = Cache(cache.tiers[:1])
    with pytest.raises(ConfigurationError, match="not both"):
        cache_panel(Monitor(cache), cache=other)
    other.close()


# -- the call shape ------------------------------------------------------------------------


def script(body: str) -> AppTest:
    return AppTest.from_string(textwrap.dedent(body), default_timeout=TIMEOUT)


def test_bare_decorator_timedelta_and_number_ttls(cache: Cache, clock: FakeClock) -> None:
    at = script(
        """
        import datetime
        import streamlit as st
        from cacheplug.integrations.streamlit import cache_data

        log = st.session_state.setdefault("log", [])

        @cache_data
        def forever():
            log.append("forever")
            return 1

        @cache_data(ttl=datetime.timedelta(minutes=1))
        def minute():
            log.append("minute")
            return 2

        @cache_data(ttl=30)
        def half():
            log.append("half")
            return 3

        st.markdown(str(forever() + minute() + half()))
        """
    )
    run(at)
    clock.advance(31)
    run(at)
    clock.advance(30)
    run(at)
    assert at.session_state["log"] == ["forever", "minute", "half", "half", "minute", "half"]
    assert at.markdown[0].value == "6"


def test_max_size_evicts_by_pickled_bytes(cache: Cache) -> None:
    at = script(
        """
        import streamlit as st
        from cacheplug.integrations.streamlit import cache_data

        log = st.session_state.setdefault("log", [])

        @cache_data(max_size="2KiB")
        def blob(n):
            log.append(n)
            return b"x" * 900

        for n in st.session_state["ns"]:
            blob(n)
        """
    )
    at.session_state["ns"] = [1, 2, 3]  # ~0.9 KiB each: 3 do not fit in 2 KiB
    run(at)
    at.session_state["ns"] = [2, 3, 1]
    run(at)
    assert at.session_state["log"] == [1, 2, 3, 1], "1 was evicted when 3 arrived; 2 and 3 kept"


def test_a_result_that_cannot_be_pickled_raises(cache: Cache) -> None:
    at = script(
        """
        import threading
        from cacheplug.integrations.streamlit import cache_data

        @cache_data
        def lock():
            return threading.Lock()

        lock()
        """
    )
    at.run()
    assert len(at.exception) == 1
    assert "cannot be pickled" in at.exception[0].message
    assert "st.cache_resource" in at.exception[0].message


def test_hash_funcs_key_arguments_cacheplug_cannot(cache: Cache) -> None:
    at = script(
        """
        import streamlit as st
        from cacheplug.integrations.streamlit import cache_data

        class Connection:
            def __init__(self, url):
                self.url = url

        log = st.session_state.setdefault("log", [])

        @cache_data(hash_funcs={Connection: lambda c: c.url})
        def rows(conn, table):
            log.append((conn.url, table))
            return [table]

        @cache_data
        def unkeyed(conn):
            return 1

        rows(Connection("db1"), "users")
        rows(Connection("db1"), "users")
        rows(Connection("db2"), "users")
        rows([Connection("db1")][0], table="users")
        if st.session_state.get("unkeyed"):
            unkeyed(Connection("db1"))
        """
    )
    run(at)
    assert at.session_state["log"] == [("db1", "users"), ("db2", "users")]
    at.session_state["unkeyed"] = True
    at.run()
    message = at.exception[0].message
    assert message.startswith("cache_data unkeyed(): cannot build a cache key from parameter 'conn'")
    assert "start the parameter's name with '_'" in message and "key=" not in message


def test_async_functions(cache: Cache) -> None:
    at = script(
        """
        import asyncio
        import streamlit as st
        from cacheplug.integrations.streamlit import cache_data

        log = st.session_state.setdefault("log", [])

        @cache_data(ttl=60)
        async def fetch(n):
            log.append(n)
            return {"n": n}

        async def main():
            first = await fetch(1)
            first["n"] = "changed"
            return await fetch(1)

        st.markdown(str(asyncio.run(main())))
        """
    )
    run(at)
    run(at)
    assert at.session_state["log"] == [1]
    assert at.markdown[0].value == "{'n': 1}"


def test_methods_take_the_instance_as_an_argument(cache: Cache) -> None:
    calls: list[int] = []

    class Repo:
        def __cache_key__(self) -> str:
            return "repo"

        @cache_data
        def find(self, n: int) -> list[int]:
            calls.append(n)
            return [n]

    repo = Repo()
    assert repo.find(1) == repo.find(1) == [1] and calls == [1]
    repo.find.clear(1)
    assert repo.find(1) == [1] and calls == [1, 1]


def test_options_streamlit_has_and_cacheplug_does_not(cache: Cache) -> None:
    with pytest.raises(ConfigurationError, match=r"scope='session'.* is not supported"):
        cache_data(scope="session")
    with pytest.raises(ConfigurationError, match=r"refresh_mode='background'.* is not supported"):
        cache_data(refresh_mode="background")
    with pytest.raises(ConfigurationError, match="persist"):
        cache_data(persist="s3")
    cache_data(persist="disk")(lambda: 1)  # accepted, ignored
    cache_data(persist=True)(lambda: 1)


@pytest.mark.parametrize(
    ("ttl", "message"),
    [("soon", "not a duration Streamlit accepts"), (-1, "seconds >= 0"), ("-1h", ">= 0"), (True, "seconds")],
)
def test_bad_ttls_say_what_to_give(ttl: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        cache_data(ttl=ttl)(lambda: 1)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (500, 500),
        ("1KB", 1024),
        ("1.5 KiB", 1536),
        ("1.1kb", 1126),
        ("2MB", 2 * 1024**2),
        (".5GB", 1024**3 // 2),
    ],
)
def test_max_size_reads_streamlits_units(size: Any, expected: int) -> None:
    from cacheplug.integrations.streamlit.options import byte_size as _byte_size

    assert _byte_size(size) == expected


@pytest.mark.parametrize("size", [0, -1, "1", "1 KB ", "1XB", True, 1.5])
def test_bad_max_sizes_say_what_to_give(size: Any) -> None:
    with pytest.raises(ConfigurationError, match="positive byte size"):
        cache_data(max_size=size)(lambda: 1)


@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_bad_max_entries_say_what_to_give(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        cache_data(max_entries=value)(lambda: 1)


def test_ttl_strings_follow_pandas_timedelta() -> None:
    from cacheplug.integrations.streamlit.options import ttl_seconds as _ttl_seconds

    assert _ttl_seconds("1h") == 3600
    assert _ttl_seconds("1h23s") == 3623
    assert _ttl_seconds("1.5 days") == 129600
    assert _ttl_seconds(datetime.timedelta(minutes=2)) == 120


def test_every_entry_carries_the_clear_all_tag(cache: Cache) -> None:
    @cache_data(tags=["t"])
    def one() -> int:
        return 1

    one()
    assert cacheplug.cached_functions()  # the underlying @cached function is registered
    key = one.cache_key()
    entry = cache.tiers[1].get(key)
    assert {"t", ALL_TAG} <= set(entry.tags)


def test_a_redefinition_keeps_its_entries_and_computes_with_the_newest_code(cache: Cache) -> None:
    """What a rerun does: the same def again (new globals) finds the entries of the last one."""
    made = []

    def define(suffix: str) -> Any:
        @cache_data
        def label(n: int) -> str:
            made.append(suffix)
            return f"{n}{suffix}"

        return label

    first = define("a")
    assert first(1) == "1a"
    second = define("b")
    assert second(1) == "1a" and made == ["a"]
    assert second(2) == "2b", "a miss runs the newest definition"
    assert first.cache_info().hits == second.cache_info().hits == 1


def test_missing_streamlit_names_the_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "streamlit"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no streamlit here')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    proc = subprocess.run(
        [sys.executable, "-c", "import cacheplug.integrations.streamlit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "pip install 'cacheplug[streamlit]'" in proc.stderr


def test_the_pytest_plugins_helpers_check_cache_data_functions(cache: Cache, clock: FakeClock) -> None:
    from cacheplug.testing import assert_hit, assert_invalidated, assert_miss

    @cache_data(ttl=10, tags=["order:{n}"])
    def order(n: int) -> dict[str, int]:
        return {"n": n}

    assert assert_miss(order, 1) == {"n": 1}
    assert assert_hit(order, 1) == {"n": 1}
    cacheplug.invalidate_by_write("order", 1)
    assert_invalidated(order, 1)
    with pytest.raises(AssertionError, match=r"assert_hit: .*order\(1\) was expected"):
        assert_hit(order, 1)


def test_spinners_show_for_the_outermost_computation_only(cache: Cache) -> None:
    """st.spinner is wrapped (it still runs) to record the spinners a run shows."""
    at = script(
        """
        import contextlib
        import streamlit as st
        from cacheplug.integrations.streamlit import cache_data

        shown = st.session_state.setdefault("shown", [])
        real = st.spinner

        @contextlib.contextmanager
        def recording(text, **options):
            shown.append((text, options))
            with real(text, **options):
                yield

        st.spinner = recording

        @cache_data(show_spinner="Loading the inner part", show_time=True)
        def inner(n):
            return n + 1

        @cache_data
        def outer(n):
            return inner(n) * 2

        @cache_data(show_spinner=False)
        def quiet(n):
            return n

        @cache_data
        def bare():
            return 0

        try:
            st.markdown(str(outer(1) + outer(1) + quiet(1) + inner(5) + bare()))
        finally:
            st.spinner = real
        """
    )
    run(at)
    assert at.markdown[0].value == "15"
    assert at.session_state["shown"] == [
        ("Running `outer(...)`.", {}),  # inner ran inside outer: no second spinner
        ("Loading the inner part", {"show_time": True}),  # inner(5) on its own
        ("Running `bare()`.", {}),
    ]
    run(at)
    assert len(at.session_state["shown"]) == 3, "hits show no spinner"
    with pytest.raises(ConfigurationError, match="show_spinner"):
        cache_data(show_spinner=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="show_time"):
        cache_data(show_time="yes")  # type: ignore[arg-type]


def test_dataframes_series_and_arrays_are_keyed_by_content(cache: Cache) -> None:
    import numpy as np
    import pandas as pd

    seen: list[str] = []

    @cache_data
    def describe(frame: pd.DataFrame, column: pd.Series, values: np.ndarray) -> str:
        seen.append("computed")
        return f"{len(frame)}:{column.sum()}:{values.sum()}"

    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    column, values = pd.Series([1.5, 2.5], name="p"), np.arange(6).reshape(2, 3)
    assert describe(frame, column, values) == "3:4.0:15"
    assert describe(frame.copy(), column.copy(), values.copy()) == "3:4.0:15"
    assert seen == ["computed"], "equal content, one entry"
    changed = frame.copy()
    changed.loc[2, "b"] = "w"
    describe(changed, column, values)
    describe(frame.rename(columns={"a": "c"}), column, values)
    describe(frame, column.rename("q"), values)
    describe(frame, column, values.astype("float64"))
    describe(frame, column, values.T)
    assert len(seen) == 6, "a value, a column name, a series name, a dtype or a shape changes the key"


def test_a_hash_function_that_raises_names_the_type(cache: Cache) -> None:
    import pandas as pd

    @cache_data
    def rows(frame: pd.DataFrame) -> int:
        return len(frame)

    unhashable = pd.DataFrame({"a": [[1], [2]]})  # lists in cells: pandas cannot hash them
    raised = r"parameter 'frame': .* of type pandas(\.core\.frame)?\.DataFrame: its hash function raised"
    with pytest.raises(cacheplug.UnkeyableArgumentError, match=raised):
        rows(unhashable)


def test_tags_may_be_a_callable_of_the_arguments(cache: Cache) -> None:
    computed: list[int] = []

    @cache_data(tags=lambda order_id: [f"order:{order_id}"])
    def load(order_id: int) -> int:
        computed.append(order_id)
        return order_id

    load(1), load(2)
    cacheplug.invalidate(tags=["order:2"])
    load(1), load(2)
    assert computed == [1, 2, 2]
    cache_data.clear()  # the ALL_TAG joins what the callable returns
    load(1)
    assert computed == [1, 2, 2, 1]
