"""data.binance.vision: Binance's daily dump files dropped in the landing directory (`dumps`) and the same
site's verified archives (`archives`, `archive_settings`): sources of their own, read whole (FILES), not
the venue's API (sources/binance). Their trades carry Binance's individual trade ids, the sequence the
venue's live trade streams carry too (declared here for these sources' loads)."""

from marketdata_assets.sources.binance_vision import archives, dumps
from marketdata_assets.sources.interface import FILES, IdSequence, Source

TRADE_IDS = (
    "Binance trade ids (dump files, archives and the live trade streams: every individual trade; "
    "historicalTrades)"
)
DUMPS = Source(
    dumps.SOURCE,
    (dumps.VENUE,),
    {dataset: FILES for dataset, _, _ in dumps.DUMP_DATASETS.values()},
    id_sequences=(IdSequence("trade", "BINANCE", (dumps.SOURCE,), "trades_by_id", 1000, True, TRADE_IDS),),
)
ARCHIVES = Source(
    archives.SOURCE,
    tuple(archives.VENUE_MARKETS),
    {d: FILES for d in archives.ARCHIVED_DATASETS},
    archives.ArchiveClient,
    id_sequences=(
        IdSequence("trade", "BINANCE", (archives.SOURCE,), "trades_by_id", 1000, True, TRADE_IDS),
        IdSequence(
            "trade",
            "BINANCE_UM",
            (archives.SOURCE,),
            "trades_by_id",
            1000,
            False,
            "Binance USD-M trade ids (archives: every individual trade; historicalTrades)",
        ),
        IdSequence(
            "aggTrade",
            "BINANCE",
            (archives.SOURCE,),
            "agg_trades_by_id",
            1000,
            True,
            "Binance aggregate trade ids (archives of aggTrades, their own dataset)",
            dataset="agg_trades",
        ),
    ),
)
