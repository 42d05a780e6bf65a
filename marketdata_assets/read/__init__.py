"""The read API: the stores' data as Polars frames, without Dagster (docs/read.md has the examples).

    from marketdata_assets import read

    with read.Reader() as r:                      # one session: each store opened on first use
        trades = r.trades("BINANCE", "BTCUSDT", "2025-01-15", "2025-01-16")
        bars = r.bars("BINANCE", ["BTCUSDT", "ETHUSDT"], "2025-01-01", "2025-02-01")
        before = r.trades("BINANCE", "BTCUSDT", "2025-01-15", "2025-01-16", as_of="2025-01-16T06:00")
        minutes = r.minute_bars(["600000.SH", "000001.SZ"], "2025-01-02", "2025-01-03")
        monthly = r.kline("600000.SH", "2024-01-01", "2025-01-01")
        alphas = r.alphas("REGULAR", "2025-07-01", "2025-08-01", region="USA")

    read.trades("BINANCE", "BTCUSDT", "2025-01-15", "2025-01-16")   # the same, one session per call

ClickHouse datasets (``Reader.dataset(name, venue, instrument, start, end, *, as_of, columns)`` and
the shortcuts ``trades``, ``agg_trades``, ``bars`` (bars_1m), ``daily_bars``, ``books``,
``funding``, ``open_interest``, ``factors``, ``tickers``, ``liquidations``, ``mark_bars``,
``index_bars``, ``option_chain``): ``instrument`` is one name, a list, or None (every instrument of
the venue); ``[start, end)`` in UTC (naive = UTC, a date = its 00:00); only the active loads,
filtered in the store; the frame has the dataset's schema (datasets.frames) in the table's key
order. ``as_of``: what the store showed at that time, from the load history
(stores/clickhouse/history.py); superseded rows that compaction dropped raise
:class:`CompactedAway`. ``Reader.loads(...)`` lists the flips themselves, ``catalog()`` what is stored per
dataset x venue x instrument; a venue or instrument with nothing of the dataset stored is a ValueError
naming the closest stored names.

Bars state their convention (read.conventions: an aware time column, ``label`` and ``adjustment``) and
read in another with ``label=`` / ``tz=``; days with nothing stored warn (:class:`MissingDays`).
TimescaleDB (``minute_bars``, ``kline``; Beijing times) and MongoDB (``alphas``) keep no earlier
versions: ``as_of`` there raises :class:`AsOfUnsupported`.

The Parquet export of the same data: :mod:`marketdata_assets.read.export`.
"""

from __future__ import annotations

import functools

from marketdata_assets.read.gaps import MissingDays
from marketdata_assets.read.reader import AsOfUnsupported, Reader
from marketdata_assets.stores.clickhouse.connection import EmbeddedLockTimeout
from marketdata_assets.stores.clickhouse.history import CompactedAway

__all__ = ["AsOfUnsupported", "CompactedAway", "EmbeddedLockTimeout", "MissingDays", "Reader", "agg_trades", "alphas", "bars",
           "books", "catalog", "daily_bars", "dataset", "factors", "funding", "index_bars", "kline", "liquidations", "loads",
           "mark_bars", "minute_bars", "open_interest", "option_chain", "tickers", "trades"]


def _one_session(name: str):
    """``read.<name>(...)``: ``Reader().<name>(...)`` in a session of its own, closed at once."""
    method = getattr(Reader, name)

    @functools.wraps(method)
    def call(*args, **kwargs):
        with Reader() as reader:
            return method(reader, *args, **kwargs)

    return call


dataset = _one_session("dataset")
catalog = _one_session("catalog")
loads = _one_session("loads")
minute_bars = _one_session("minute_bars")
kline = _one_session("kline")
alphas = _one_session("alphas")
trades = _one_session("trades")
agg_trades = _one_session("agg_trades")
bars = _one_session("bars")
daily_bars = _one_session("daily_bars")
books = _one_session("books")
funding = _one_session("funding")
open_interest = _one_session("open_interest")
factors = _one_session("factors")
tickers = _one_session("tickers")
liquidations = _one_session("liquidations")
mark_bars = _one_session("mark_bars")
index_bars = _one_session("index_bars")
option_chain = _one_session("option_chain")
