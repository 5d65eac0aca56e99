"""The dashboard under Streamlit's AppTest, on the isolated cache of cacheplug's pytest plugin."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import shop

APP = str(Path(__file__).with_name("app.py"))


@pytest.fixture
def app(cacheplug_cache):
    shop.QUERIES.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def total(at):
    return at.metric[0].value


def test_the_order_is_queried_once_across_reruns(app):
    app.run()
    app.run()
    assert shop.QUERIES == [1]
    assert total(app) == "30.00"


def test_a_sale_invalidates_the_order_and_only_it(app):
    app.selectbox[0].select(2).run()
    app.selectbox[0].select(1).run()
    assert shop.QUERIES == [1, 2]
    app.button[0].click().run()  # record_sale(1, 10.0): a write of order 1
    assert total(app) == "40.00"
    assert shop.QUERIES == [1, 2, 1]
    app.selectbox[0].select(2).run()
    assert shop.QUERIES == [1, 2, 1], "order 2 is still cached"


def test_the_entry_expires_after_ten_minutes(app, cacheplug_clock):
    cacheplug_clock.advance(599)
    app.run()
    cacheplug_clock.advance(1)
    app.run()
    assert shop.QUERIES == [1, 1]


def test_the_sidebar_shows_the_cache_figures(app):
    app.run()
    metrics = {m.label: m.value for m in app.sidebar.metric}
    assert metrics["Hit rate"] == "50.0%"
    assert (metrics["Hits"], metrics["Misses"]) == ("1", "1")
