"""The 24 h volumes the crypto replays' ticker endpoints serve for every instrument of the reference universe
(Binance `ticker/24hr`, OKX `market/tickers`, Deribit `get_book_summary_by_currency`): deterministic from the
seed and the replay's day, over five orders of magnitude as on a real venue (the majors on top, a long tail,
perpetuals above spot, options far below), and moving from day to day (x0.5 .. x2), so snapshots of two days
rank the instruments differently. Each venue module writes them in its own documented shape.
"""

from __future__ import annotations

from marketdata_assets.replay.crypto.reference import Instrument, base_price, day_start_us, unit

MAJORS = {"BTC": 60.0, "ETH": 25.0, "SOL": 8.0, "BNB": 5.0, "XRP": 4.0, "DOGE": 3.0}  # x the tail's ceiling
QUOTES = {"USDT": 1.0, "USD": 1.0, "USDC": 0.25, "FDUSD": 0.2, "BTC": 0.08, "ETH": 0.03}  # the quote's share
KINDS = {"spot": 1.0, "perpetual": 2.5, "future": 0.15, "option": 0.01}
DOLLARS = ("USD", "USDT", "USDC", "FDUSD")


def usd_volume(seed: int, item: Instrument, now_us: int) -> float:
    """The instrument's traded value over the 24 hours before now, in USD (options: the premiums)."""
    major = MAJORS.get(item.base)
    level = (
        1e7 * major if major else 10 ** (3.0 + 4.0 * unit("volume", seed, item.venue, item.name))
    )  # 1 k .. 10 M
    today = 2.0 ** (2 * unit("volume-day", seed, item.venue, item.name, day_start_us(now_us)) - 1)
    return round(level * QUOTES.get(item.quote, 0.05) * KINDS.get(item.kind, 1.0) * today, 2)


def usd_price(currency: str) -> float:
    """What one unit of `currency` is worth in USD in the replay (a stablecoin 1, a coin its price)."""
    return 1.0 if currency in DOLLARS else base_price(currency)


def quote_volume(seed: int, item: Instrument, now_us: int) -> float:
    """The 24 h volume in the instrument's quote currency (BTC for a BTC-quoted pair)."""
    return usd_volume(seed, item, now_us) / usd_price(item.quote)


def last_price(item: Instrument) -> float:
    """The last price the tickers give: the instrument's starting price (options: its premium, in the
    coin)."""
    return item.terms.base_price


__all__ = ["last_price", "quote_volume", "usd_price", "usd_volume"]
