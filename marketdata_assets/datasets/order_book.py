"""A local L2 order book kept from a venue's snapshot and diffs, prices and sizes as the venue's strings.

Why strings: venues' checksums (OKX's CRC32) are computed over the exact strings they sent, and a
float round trip would change them; equality of two books (the collector's against the replay's
truth) is exact too. Levels are keyed by the price string; ordering reads prices as numbers only when
the top of the book is asked for. The venue's sequencing rules live with the venue (for Binance:
sources/binance/stream.py `DepthSync`); this is only the book.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort_left, insort_right
from collections.abc import Iterable
from decimal import Decimal
from itertools import compress
from typing import Any

import msgspec

from marketdata_assets.datasets.wire import decimal_floats

NOTED_LIMIT = 4096  # deferred levels (distinct prices) a book takes in at once, if nobody read it before
REORDER_SHARE, REORDER_FLOOR = 16, 8  # a read book's price order is kept through at most 8 + 1/16 of its
# prices joining or leaving at once (beyond: sorted afresh at the next read, the cheaper)


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
    """Bids and asks as {price string: size string}, and the update id they stand at.

    `apply` sets levels at once (a venue whose checksum reads the book after every update); `defer`
    only notes them, last one winning per price (`dict.update`, in C; a compiled reader notes them as
    bytes: datasets/_noted.pyx), and the book takes them in at its next read (`bids`, `asks`, `top`,
    `levels`): between two reads a price moves many times and is weighed once, which makes a fast
    stream's book several times cheaper. Either way the book read is the one the updates in order make."""

    def __init__(self) -> None:
        self._bids: dict[str, str] = {}
        self._asks: dict[str, str] = {}
        # deferred levels, not yet taken in: the original's dicts, or a compiled reader's `NotedLevels`
        # (datasets/_noted.pyx: the same levels kept as bytes, taken in by its own `take_in`)
        self._noted: Any = None
        # each side's prices in price order once read (`top`), ascending; None: sorted at the next read
        self._order: tuple[list[str], list[str]] | None = None
        self.update_id: int | None = None

    @property
    def bids(self) -> dict[str, str]:
        if self._noted is not None:
            self.settle()
        return self._bids

    @property
    def asks(self) -> dict[str, str]:
        if self._noted is not None:
            self.settle()
        return self._asks

    def reset(self, update_id: int, bids: Iterable, asks: Iterable) -> None:
        """Replace the book by a snapshot ([price, size] pairs)."""
        self._bids = {str(p): str(q) for p, q, *_ in bids if not _is_zero(str(q))}
        self._asks = {str(p): str(q) for p, q, *_ in asks if not _is_zero(str(q))}
        self._noted, self._order = None, None
        self.update_id = update_id

    def apply(self, update_id: int, bids: Iterable, asks: Iterable) -> None:
        """Set each level to its new absolute size (0 removes it; removing an absent level is normal)."""
        if self._noted is not None:
            self.settle()
        self._set(bids, asks)
        self.update_id = update_id

    def defer(self, update_id: int, bids: Iterable, asks: Iterable) -> None:
        """`apply`, taken in at the next read. Each level must be a [price, size] pair (ValueError or
        TypeError here if not, the update id unchanged); a size that is no number raises ValueError at
        that read (`settle`)."""
        noted = self._noted
        if noted is None:
            noted = self._noted = ({}, {})
        elif noted.__class__ is not tuple:  # a compiled reader's notes: as the original's dicts from here on
            noted = self._noted = noted.sides()
        noted[0].update(bids)
        noted[1].update(asks)
        if len(noted[0]) + len(noted[1]) > NOTED_LIMIT:  # a book nobody reads stays bounded (a bad size
            self.settle()  # raises here, the id stays: the next diff is a gap, as after a bad `apply`)
        self.update_id = update_id

    def settle(self) -> None:
        """Take the deferred levels in. A size that is no number: ValueError naming it, after the
        others are in (the book is then not to be trusted: its keeper drops it)."""
        noted, self._noted = self._noted, None
        if noted.__class__ is tuple:
            self._set(noted[0], noted[1], _take_in)
        elif noted is not None:  # a compiled reader's notes (`NotedLevels`): `_take_in`'s steps in C
            self._set(noted.bids, noted.asks, noted.take_in)

    def _set(self, bids: Iterable, asks: Iterable, setter=None) -> None:
        """Levels set on both sides (`setter`: `_set_levels`, or `_take_in` for the deferred ones), the price
        order kept if there is one (`_reorder`)."""
        order, setter = self._order, setter or _set_levels
        if order is None:
            setter(self._bids, bids)
            setter(self._asks, asks)
            return
        moved: tuple[list, list] = ([], [])
        try:
            setter(self._bids, bids, moved[0])
            setter(self._asks, asks, moved[1])
        finally:  # a size that is no number raises after the others are set: the order follows them
            if not (_reorder(order[0], moved[0], True) and _reorder(order[1], moved[1], False)):
                self._order = None

    def top(self, depth: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The best `depth` levels of each side, best first, ordered by price value (ties: in the order the
        prices came). The first read sorts each side's prices as floats (`float` in C: a sixth of a Decimal
        sort; a venue's decimal prices have far fewer than the 15 significant digits a float keeps
        exactly, and the conversion is monotonic); from then on the order is kept as prices come and go
        (`_reorder`), so a read is a slice: a collector snapshots thousands of books a second, an OKX book
        is read at every update for its checksum. A price that is no number: ValueError."""
        bids, asks = self.bids, self.asks
        order = self._order
        if order is None:
            order = self._order = (sorted(bids, key=float, reverse=True)[::-1], sorted(asks, key=float))
        bid_prices, ask_prices = order
        return (
            [(p, bids[p]) for p in bid_prices[: -depth - 1 : -1]] if depth > 0 else [],
            [(p, asks[p]) for p in ask_prices[:depth]],
        )

    def levels(self) -> dict[str, dict[Decimal, Decimal]]:
        """Both sides as numbers (prices and sizes compared by value, not by their spelling)."""
        return {
            "bids": {Decimal(p): Decimal(q) for p, q in self.bids.items()},
            "asks": {Decimal(p): Decimal(q) for p, q in self.asks.items()},
        }


def _set_levels(side: dict[str, str], levels: Iterable, moved: list | None = None) -> None:
    """Each level ([price, size, ...]) into `side`; a plain decimal size (ASCII digits and a point) is
    weighed by its digits, any other by value (`_is_zero`): a diff has tens of levels, this loop is an
    eager book's whole cost. Sizes that are no number: ValueError naming them, after the others are set.
    `moved`: each price that joined (price, True) or left (price, False) the side, in order."""
    pop, bad = side.pop, []
    for level in levels:
        price, size = level[0], level[1]
        if size.__class__ is str and size.isascii() and size.replace(".", "", 1).isdigit():
            zero = not size.strip("0.")
        else:
            try:
                zero = _is_zero(size)
            except ValueError:
                bad.append(size)
                continue
        if zero:
            if pop(price, None) is not None and moved is not None:
                moved.append((price, False))
        else:
            if moved is not None and price not in side:
                moved.append((price, True))
            side[price] = size
    if bad:
        raise ValueError(
            f"book level size {bad[0]!r} is not a number" + (f" (and {len(bad) - 1} more)" if bad[1:] else "")
        )


def _take_in(side: dict[str, str], noted: dict[str, str], moved: list | None = None) -> None:
    """`_set_levels` of a book's deferred levels (one size a price), their sizes weighed at once: read as
    floats in C (`decimal_floats`), a zero confirmed by `_is_zero` (a float reads 1e-400 as 0), the others set
    with one `dict.update`. Sizes it does not read as decimals ("1_000", "abc"): `_set_levels`, level by
    level, which names the bad ones. The side (its order too) is the one `_set_levels` makes: each price
    comes once, so removals and sets never meet."""
    prices, sizes = list(noted), list(noted.values())
    try:
        values = decimal_floats(sizes)
    except msgspec.ValidationError:
        _set_levels(side, noted.items(), moved)
        return
    if 0.0 in values:  # removals (rare but for a thin book): those levels one by one
        keep = [value != 0.0 or not _is_zero(size) for value, size in zip(values, sizes, strict=True)]
        for price in compress(prices, [not k for k in keep]):
            if side.pop(price, None) is not None and moved is not None:
                moved.append((price, False))
        prices, sizes = list(compress(prices, keep)), list(compress(sizes, keep))
    if moved is not None and not (len(prices) == len(noted) and noted.keys() <= side.keys()):  # new prices
        moved += [(price, True) for price in prices if price not in side]
    side.update(zip(prices, sizes))


def _reorder(prices: list[str], moved: list[tuple[str, bool]], bids: bool) -> bool:
    """A side's ascending price order (`OrderBook._order`) after `moved` prices joined or left it: each new
    price after its equals on the asks, before them on the bids (read from the end: ties in the order the
    prices came, as a stable sort gives them). False where a fresh sort is cheaper or right: many moves
    (each costs a search and a shift), or a price that is no finite number (the sort at the next read
    raises or orders it as `top` always did)."""
    if len(moved) > REORDER_FLOOR + len(prices) // REORDER_SHARE:
        return False
    for price, joined in moved:
        try:
            value = float(price)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(value):
            return False
        if joined:
            (insort_left if bids else insort_right)(prices, price, key=float)
            continue
        at = bisect_left(prices, value, key=float)
        while at < len(prices) and prices[at] != price and float(prices[at]) == value:
            at += 1
        if at == len(prices) or prices[at] != price:
            return False
        del prices[at]
    return True
