"""Asset checks of the Binance dump and archive assets: the trades and bars rules over each
(day, instrument) partition's slices (defs/_common/checks.py) and trade-id continuity where the files
number trades one by one (defs/_common/continuity.py)."""

from marketdata_assets.defs._common.checks import CRYPTO_BAR_RULES, TRADE_RULES, preview, slice_check
from marketdata_assets.defs._common.continuity import continuity_check
from marketdata_assets.defs.archives.archives import ARCHIVE_ASSETS, binance_archive_partitions
from marketdata_assets.defs.archives.partitions import binance_dump_partitions
from marketdata_assets.quality.continuity import CHECKED_DATASETS

with preview():
    dump_checks = [
        *(slice_check("binance_dump_trades", rule, binance_dump_partitions) for rule in TRADE_RULES),
        *(slice_check("binance_dump_bars_1m", rule, binance_dump_partitions) for rule in CRYPTO_BAR_RULES),
    ]
    continuity_checks = [
        continuity_check("binance_dump_trades", binance_dump_partitions),
        *(continuity_check(ARCHIVE_ASSETS[dataset], binance_archive_partitions, dataset)
          for dataset in CHECKED_DATASETS if dataset in ARCHIVE_ASSETS),
    ]
