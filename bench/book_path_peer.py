"""The peer's side of `bench book_path`: cryptofeed's Binance book path (its `_book`: each level read as two
Decimals and set in order_book's C `SortedDict`) over the diffs `diffs()` makes; run by the peer venv's
python (bench/peer_venv.py), never the project's. `diffs` is also bench/book_path.py's data: no project
import here. Prints one JSON line: CPU µs a diff of each measured round."""

from __future__ import annotations

import json
import random
import sys
import time

LEVELS = 10  # levels a side a diff (the sender's depth diffs, bench/live_sender.py)
PRICES = 401  # distinct prices a side the diffs draw from: a side of ~400 levels once warm


def diffs(books: int, per_book: int, rounds: int, seed: int = 7) -> list[list[list[str]]]:
    """`rounds` rounds; each gives every book `per_book` depthUpdate events (as text) of `LEVELS` levels a
    side, prices drawn from `PRICES` a side, sizes from 0 to 5 (0 once in 50,001: a removal)."""
    rng = random.Random(seed)

    def side(sign: int) -> list[list[str]]:
        return [
            [f"{95000 + sign * (1 + rng.randrange(PRICES)) / 10:.2f}", f"{rng.randint(0, 50000) / 10000:.5f}"]
            for _ in range(LEVELS)
        ]

    def event(book: int) -> str:
        body = {"e": "depthUpdate", "E": 1, "s": f"S{book}", "U": 1, "u": 1, "b": side(-1), "a": side(1)}
        return json.dumps(body, separators=(",", ":"))

    return [[[event(book) for _ in range(per_book)] for book in range(books)] for _ in range(rounds)]


def snapshot(sign: int) -> list[tuple[str, str]]:
    """A book's starting side: 20 levels of size 1 next to the middle."""
    return [(f"{95000 + sign * k / 10:.2f}", "1.00000") for k in range(1, 21)]


def main() -> None:
    from decimal import Decimal

    from order_book import OrderBook
    from yapic import json as yjson

    books, per_book, rounds, measured, depth = (int(arg) for arg in sys.argv[1:6])
    kept = [OrderBook(max_depth=0) for _ in range(books)]
    for book in kept:
        book.bids = {Decimal(p): Decimal(q) for p, q in snapshot(-1)}
        book.asks = {Decimal(p): Decimal(q) for p, q in snapshot(1)}
    results = []
    for at, texts_of in enumerate(diffs(books, per_book, rounds)):
        c0 = time.process_time()
        for book, texts in zip(kept, texts_of, strict=True):
            sides = {"bid": book.bids, "ask": book.asks}
            for text in texts:  # cryptofeed 2.4.1 exchanges/binance.py `_book`, its callback a no-op
                msg = yjson.loads(text)
                delta = {"bid": [], "ask": []}
                for key, name in (("b", "bid"), ("a", "ask")):
                    for update in msg[key]:
                        price, amount = Decimal(update[0]), Decimal(update[1])
                        delta[name].append((price, amount))
                        if amount == 0:
                            if price in sides[name]:
                                del sides[name][price]
                        else:
                            sides[name][price] = amount
            [book.bids.index(k) for k in range(depth)], [book.asks.index(k) for k in range(depth)]
        if at >= rounds - measured:
            results.append((time.process_time() - c0) / (books * per_book) * 1e6)
    print(json.dumps({"us_a_diff": [round(r, 2) for r in results], "levels": len(kept[0].bids)}))


if __name__ == "__main__":
    main()
