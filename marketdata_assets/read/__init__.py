"""The read API: the stores' data as Polars frames, without Dagster: a :class:`Reader` (one session,
each store opened on first use) and one-call functions (``read.trades(...)``, a session per call) over
the ClickHouse datasets (with ``as_of``), the TimescaleDB minute bars and K-line and the MongoDB alphas.
The Parquet export of the same data: :mod:`marketdata_assets.read.export`.

Arguments, conventions, ``as_of`` and examples: docs/read.md, "The API".
"""

from __future__ import annotations

import functools

from marketdata_assets.read.gaps import MissingDays, StoreNotRead
from marketdata_assets.read.reader import AsOfUnsupported, Reader
from marketdata_assets.stores.clickhouse.connection import EmbeddedLockTimeout
from marketdata_assets.stores.clickhouse.history import CompactedAway

__all__ = [
    "AsOfUnsupported",
    "CompactedAway",
    "EmbeddedLockTimeout",
    "MissingDays",
    "Reader",
    "StoreNotRead",
    "agg_trades",
    "alphas",
    "bars",
    "books",
    "catalog",
    "daily_bars",
    "dataset",
    "factors",
    "funding",
    "index_bars",
    "instruments",
    "kline",
    "liquidations",
    "loads",
    "mark_bars",
    "minute_bars",
    "open_interest",
    "option_chain",
    "tickers",
    "trades",
]


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
instruments = _one_session("instruments")
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
