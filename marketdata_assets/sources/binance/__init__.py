"""Binance: spot REST market data (`rest`), USD-M futures REST (`futures`, venue BINANCE_UM),
data.binance.vision dump files dropped in the landing directory (`dumps`) and the same site's
verified archives (`archives`)."""

from marketdata_assets.sources.binance import archives, dumps
from marketdata_assets.sources.binance.futures import BinanceFuturesClient
from marketdata_assets.sources.binance.rest import *  # noqa: F403
from marketdata_assets.sources.binance.rest import BinanceClient
from marketdata_assets.sources.interface import FILES, Source, venue_source

SPOT = venue_source("BINANCE", BinanceClient, "binance")
USD_M = venue_source("BINANCE_UM", BinanceFuturesClient, "binance_um")
DUMPS = Source(dumps.SOURCE, (dumps.VENUE,), {dataset: FILES for dataset, _, _ in dumps.DUMP_DATASETS.values()})
ARCHIVES = Source(archives.SOURCE, tuple(archives.VENUE_MARKETS), {d: FILES for d in archives.ARCHIVED_DATASETS},
                  archives.ArchiveClient)
