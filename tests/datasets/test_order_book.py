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


def by_value(side: dict[str, str], levels: list[list[str]]) -> None:
    """The book's rule, spelled plainly: each level in turn, a size of value 0 removes its price, a size
    that is no number is skipped."""
    for price, size in levels:
        try:
            zero = Decimal(size) == 0
        except ArithmeticError:
            continue
        if zero:
            side.pop(price, None)
        else:
            side[price] = size


def test_the_price_order_kept_between_reads_equals_a_fresh_sort_through_every_change():
    """Once read, a book keeps its price order as levels come and go (`_reorder`), and takes its deferred
    levels in at once (`_take_in`): after any mix of eager and deferred changes, removals, ties spelled
    differently, sizes a float reads as 0 and bad sizes, its levels are the plain rule's and `top` equals
    a sort."""
    rng, kept = random.Random(11), 0
    spellings = {"10": ["10", "1e1", "10.0"], "9.5": ["9.5", "9.50"]}
    for trial in range(40):
        book = OrderBook()
        start = ([["9", "1"], ["8", "1"]], [["11", "1"], ["12", "1"]])
        book.reset(0, *start)
        ref = ({"9": "1", "8": "1"}, {"11": "1", "12": "1"})
        for step in range(60):
            levels = []
            for _ in range(rng.randint(0, 12)):
                base = rng.choice(["10", "9.5", *(f"{rng.randint(1, 400) / 10:.1f}" for _ in range(3))])
                price = rng.choice(spellings.get(base, [base]))
                size = rng.choice(
                    [
                        "0",
                        "0.000",
                        "-0",
                        "1e-400",
                        "1.5",
                        "2",
                        f"{rng.random():.4f}",
                        "x" if step % 17 == 5 else "3",
                    ]
                )
                levels.append([price, size])
            half = len(levels) // 2
            change = book.apply if rng.random() < 0.5 else book.defer
            try:
                change(step, levels[:half], levels[half:])
                book.settle()  # a deferred change taken in
            except (
                ValueError
            ):  # a size that is no number: the book is not to be trusted, its keeper resets it
                book.reset(step, *start)
                ref = ({"9": "1", "8": "1"}, {"11": "1", "12": "1"})
            else:
                by_value(ref[0], levels[:half])
                by_value(ref[1], levels[half:])
            assert (book.bids, book.asks) == ref, (trial, step)
            kept += book._order is not None
            depth = rng.choice((1, 3, 20, 400))
            got = book.top(depth)
            assert got == (by_decimal(book.bids, depth, True), by_decimal(book.asks, depth, False)), (
                trial,
                step,
            )


def test_a_read_book_keeps_its_order_and_a_bad_price_is_still_a_value_error_at_the_read():
    book = OrderBook()
    book.reset(1, [["10", "1"], ["9", "1"]], [["11", "1"]])
    assert book.top(5)[0] == [("10", "1"), ("9", "1")]
    book.apply(2, [["9.5", "2"], ["10", "0"]], [["10.5", "1"]])
    assert book._order == (["9", "9.5"], ["10.5", "11"])  # kept, not rebuilt
    assert book.top(5) == ([("9.5", "2"), ("9", "1")], [("10.5", "1"), ("11", "1")])
    book.defer(3, [["abc", "1"]], [])
    with pytest.raises(ValueError):
        book.top(1)
