"""`OrderBook.top`: the best levels by price value (prices ordered as floats), as a Decimal sort orders
them."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from marketdata_assets.datasets.order_book import OrderBook


def by_decimal(side: dict[str, str], depth: int, best_high: bool) -> list[tuple[str, str]]:
    return sorted(side.items(), key=lambda level: Decimal(level[0]), reverse=best_high)[:depth]


def test_top_orders_by_value_whatever_the_spelling_and_equals_a_decimal_sort():
    book = OrderBook()
    book.reset(
        7,
        [["9.5", "1"], ["10", "2"], ["1e1", "3"], ["0.00001234", "4"], ["10.0000001", "5"]],
        [["11", "1"], ["9.75", "2"], ["100.5", "3"], ["1.2345678901", "4"]],
    )
    bids, asks = book.top(3)
    assert bids == [
        ("10.0000001", "5"),
        ("10", "2"),
        ("1e1", "3"),
    ]  # 10 and 1e1 tie: insertion order, as sorted
    assert asks == [("1.2345678901", "4"), ("9.75", "2"), ("11", "1")]
    rng = random.Random(3)
    for _ in range(50):
        mid = rng.uniform(0.0001, 100_000)
        decimals = rng.randint(0, 8)
        levels = [
            [f"{mid * rng.uniform(0.9, 1.1):.{decimals}f}", f"{rng.random():.5f}"]
            for _ in range(rng.randint(1, 300))
        ]
        book.reset(1, levels[: len(levels) // 2], levels[len(levels) // 2 :])
        depth = rng.choice((1, 5, 20, 400))
        assert book.top(depth) == (by_decimal(book.bids, depth, True), by_decimal(book.asks, depth, False))


def test_a_price_that_is_no_number_is_a_value_error():
    book = OrderBook()
    book.reset(1, [["abc", "1"], ["1", "1"]], [])
    with pytest.raises(ValueError):
        book.top(1)
