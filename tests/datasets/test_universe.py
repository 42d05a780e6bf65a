"""A universe is a rule over the point-in-time master (datasets/universe.py): resolved per day, a
listing joins on its day, a delisted instrument belongs to the days it traded, excludes win."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketdata_assets.datasets.instruments import Master, changes
from marketdata_assets.datasets.universe import Rule, explain, resolve
from tests.datasets.test_instruments import T0, swap


def master() -> Master:
    listed = T0 + timedelta(days=3)
    items = [swap(), swap("ETH-USDT-SWAP", 0.1, base="ETH", listed=listed),
             swap("BTC-USD-SWAP", 100.0, quote="USD", settle="BTC", inverse=True),
             swap("BTC-USDT", 1.0, type="spot")]
    book = Master(changes({}, items, T0))
    book.add(changes(book.current(), items[1:], T0 + timedelta(days=5)))  # BTC-USDT-SWAP left the listing
    return book


def test_a_rule_resolves_per_day_without_survivor_bias():
    book, rule = master(), Rule("OKX", types=("perpetual",), settles=("USDT",))
    assert resolve(book, rule, T0.date()) == ["BTC-USDT-SWAP"]  # ETH not listed yet
    assert resolve(book, rule, (T0 + timedelta(days=3)).date()) == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]
    assert resolve(book, rule, (T0 + timedelta(days=4)).date()) == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]  # its last day
    assert resolve(book, rule, (T0 + timedelta(days=5)).date()) == ["ETH-USDT-SWAP"]  # missed at 00:00 that day
    assert explain(book, rule, T0.date()) == {"listed": 3, "by rule": 1, "explicit": 0, "in the universe": 1}


def test_explicit_lists_include_and_exclude():
    book = master()
    assert resolve(book, Rule("OKX", explicit=("BTC-USDT",)), T0.date()) == ["BTC-USDT"]  # today's lists still work
    rule = Rule("OKX", types=("perpetual",), exclude=("BTC-USD-SWAP",), include=("BTC-USDT",))
    assert resolve(book, rule, T0.date()) == ["BTC-USDT", "BTC-USDT-SWAP"]
    with pytest.raises(ValueError, match="type.*swap"):
        Rule("OKX", types=("swap",))
