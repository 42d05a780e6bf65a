"""Which data.binance.vision archives the archive assets load: the `binance_archives` section of
data_providers.yaml as settings (parsed and validated by sources/config.py), and the markets,
families and kline intervals an archive can be of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from marketdata_assets.core.naming import InstrumentKey, normalize_instrument

ARCHIVE_MARKETS = {"spot": "BINANCE", "um": "BINANCE_UM"}  # market -> venue
ARCHIVE_FAMILIES = ("trades", "aggTrades", "klines", "liquidationSnapshot")
ARCHIVE_INTERVALS = (
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
)  # daily files


@dataclass(frozen=True)
class ArchiveSettings:
    """The `binance_archives` section: which data.binance.vision archives the archive assets load."""

    base_url: str  # resolved like a source's: the variable base_url_env if set
    default_base_url: str
    base_url_env: str
    start_date: date
    markets: tuple[str, ...]  # spot | um
    families: tuple[str, ...]  # trades | aggTrades | klines | liquidationSnapshot
    intervals: tuple[str, ...]  # klines intervals (empty without klines)
    instruments: tuple[str, ...]  # Binance instruments, in every market
    workers: int = 2
    timeout_s: float = 60.0
    max_retries: int = 5

    def instrument_keys(self) -> tuple[InstrumentKey, ...]:
        """Every (venue, instrument) the archives cover: BINANCE:BTCUSDT, BINANCE_UM:BTCUSDT, ..."""
        return tuple(
            normalize_instrument(ARCHIVE_MARKETS[m], i) for m in self.markets for i in self.instruments
        )

    def files(self) -> tuple[tuple[str, str], ...]:
        """(family, interval) of every configured archive file family ('' for trades and aggTrades)."""
        return tuple((f, i) for f in self.families for i in (self.intervals if f == "klines" else ("",)))
