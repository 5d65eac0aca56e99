"""Tests of pricing.py with cacheplug's pytest plugin: fixtures, marker and assertion helpers."""

import pytest

import pricing
from cacheplug.testing import assert_hit, assert_invalidated, assert_miss


@pytest.fixture(autouse=True)
def catalog():
    saved = dict(pricing.CATALOG)
    pricing.LOOKUPS.clear()
    yield
    pricing.CATALOG.clear()
    pricing.CATALOG.update(saved)


def test_a_price_is_looked_up_once(cacheplug_cache):
    assert assert_miss(pricing.price, "apple") == 0.5
    assert assert_hit(pricing.price, "apple") == 0.5
    assert pricing.LOOKUPS == ["apple"]


def test_a_new_price_invalidates_the_price_and_the_baskets(cacheplug_cache):
    assert_miss(pricing.basket_total, ("apple", "pear"))
    assert_hit(pricing.price, "pear")
    pricing.set_price("pear", 1.0)  # the rule registered at import time still applies
    assert_invalidated(pricing.price, "pear")
    assert_invalidated(pricing.basket_total, ("apple", "pear"))
    assert_hit(pricing.price, "apple")  # another product's entry is untouched
    assert assert_miss(pricing.basket_total, ("apple", "pear")) == 1.5


def test_basket_totals_expire_after_a_minute(cacheplug_clock):
    assert_miss(pricing.basket_total, ("apple",))
    cacheplug_clock.advance(59)
    assert_hit(pricing.basket_total, ("apple",))
    cacheplug_clock.advance(1)
    assert_invalidated(pricing.basket_total, ("apple",))
    assert_hit(pricing.price, "apple")  # its own ttl is an hour


@pytest.mark.cacheplug(enabled=False)
def test_without_caching_every_call_reads_the_catalog(cacheplug_cache):
    pricing.price("apple")
    pricing.price("apple")
    assert pricing.LOOKUPS == ["apple", "apple"]


def test_each_test_starts_from_an_empty_cache(cacheplug_cache):
    assert_miss(pricing.price, "apple")
