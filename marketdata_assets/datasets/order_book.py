"""A local L2 order book kept from a venue's snapshot and diffs, prices and sizes as the venue's strings.

Why strings: venues' checksums (OKX's CRC32) are computed over the exact strings they sent, and a
float round trip would change them; equality of two books (the collector's against the replay's
truth) is exact too. Levels are keyed by the price string; ordering converts to Decimal only when
the top of the book is asked for. The venue's sequencing rules live with the venue (for Binance:
sources/binance/stream.py `DepthSync`); this is only the book.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any


def _is_zero(size: Any) -> bool:
    """Whether a level's size is zero: a plain decimal string ("0.00000000", "1.5") by its digits (a
    Decimal for each level of a diff cost more than the rest of the book), anything else by value;
    ValueError naming it if it is no number."""
    if isinstance(size, str) and size.isascii() and size.replace(".", "", 1).isdigit():
        return not size.strip("0.")
    try:
        return Decimal(size) == 0
    except (ArithmeticError, TypeError, ValueError):
        raise ValueError(f"book level size {size!r} is not a number") from None


class OrderBook:
    """Bids and asks as {price string: size string}, and the update id they stand at."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.update_id: int | None = None

    def reset(self, update_id: int, bids: Iterable, asks: Iterable) -> None:
        """Replace the book by a snapshot ([price, size] pairs)."""
        self.bids = {str(p): str(q) for p, q, *_ in bids if not _is_zero(str(q))}
        self.asks = {str(p): str(q) for p, q, *_ in asks if not _is_zero(str(q))}
        self.update_id = update_id

    def apply(self, update_id: int, bids: Iterable, asks: Iterable) -> None:
        """Set each level to its new absolute size (0 removes it; removing an absent level is normal).
        A level is [price, size, ...]; a plain decimal size (ASCII digits and a point) is weighed by its
        digits, any other by value (`_is_zero`): a diff has tens of levels, this loop is a book's whole cost."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            pop = side.pop
            for level in levels:
                price, size = level[0], level[1]
                if size.__class__ is str and size.isascii() and size.replace(".", "", 1).isdigit():
                    zero = not size.strip("0.")
                else:
                    zero = _is_zero(size)
                if zero:
                    pop(price, None)
                else:
                    side[price] = size
        self.update_id = update_id

    def top(self, depth: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The best `depth` levels of each side, best first."""
        bids = sorted(self.bids.items(), key=lambda level: Decimal(level[0]), reverse=True)[:depth]
        asks = sorted(self.asks.items(), key=lambda level: Decimal(level[0]))[:depth]
        return bids, asks

    def levels(self) -> dict[str, dict[Decimal, Decimal]]:
        """Both sides as numbers (prices and sizes compared by value, not by their spelling)."""
        return {"bids": {Decimal(p): Decimal(q) for p, q in self.bids.items()},
                "asks": {Decimal(p): Decimal(q) for p, q in self.asks.items()}}
