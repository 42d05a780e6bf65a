"""The live collector for Binance spot: the venue-neutral core (collector.py) with Binance's stream
protocol (sources/binance/stream.py `BinanceSpotStream`: trades and diff-depth books, REST snapshots).
Kept as a name of its own because callers and tests know it. It collects trades and books only
(not the protocol's default, which adds tickers): `marketdata collect` (apps/live.py) feeds its
messages to the trades-only sinks (`ClickHouseTradeSink`, the `md.trades.>` consumer)."""

from __future__ import annotations

from marketdata_assets.ingest.live.collector import CollectorConfig, LiveCollector
from marketdata_assets.sources.registry import stream_protocol
from marketdata_assets.sources.stream import BOOKS, TRADES
from marketdata_assets.stores.jetstream import JetStreamStore
from marketdata_assets.stores.landing import LandingWriter

__all__ = ["BinanceSpotCollector", "CollectorConfig"]


class BinanceSpotCollector(LiveCollector):
    def __init__(
        self,
        config: CollectorConfig,
        writer: LandingWriter,
        store: JetStreamStore | None = None,
        *,
        snapshot_store: JetStreamStore | None = None,
        latest=None,
    ):
        super().__init__(
            stream_protocol("BINANCE", (TRADES, BOOKS)),
            config,
            writer,
            store,
            snapshot_store=snapshot_store,
            latest=latest,
        )
