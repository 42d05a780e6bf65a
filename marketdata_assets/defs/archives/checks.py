"""Asset checks of the Binance dump and archive assets (declared in quality/slice_checks.py, made
asset checks by defs/_common/checks.py): the trades and bars rules over the dumps' slices and trade-id
continuity where the files number trades one by one, each day x venue partition judged by its
instruments' slices."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.archives.archives import ARCHIVE_ASSETS, UNIVERSE, binance_archive_partitions
from marketdata_assets.defs.archives.dumps import DUMP_ASSETS
from marketdata_assets.defs.archives.partitions import binance_dump_partitions
from marketdata_assets.quality.continuity import CHECKED_DATASETS
from marketdata_assets.quality.slice_checks import BINANCE_DUMP_CHECKS, by_venue, trade_id_check

DUMP_DATASETS = {asset: dataset for dataset, asset in DUMP_ASSETS.items()}
# each day x BINANCE partition judged by the instruments stored that day
dump_checks = asset_checks(
    [by_venue(check, DUMP_DATASETS[check.asset], dict) for check in BINANCE_DUMP_CHECKS],
    binance_dump_partitions,
)
archive_checks = asset_checks(
    [
        by_venue(trade_id_check(ARCHIVE_ASSETS[dataset], dataset), dataset, lambda: UNIVERSE)
        for dataset in CHECKED_DATASETS
        if dataset in ARCHIVE_ASSETS
    ],
    binance_archive_partitions,
)
