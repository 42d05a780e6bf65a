"""Asset checks of the Binance dump and archive assets (declared in quality/slice_checks.py, made
asset checks by defs/_common/checks.py): the trades and bars rules over each (day, instrument)
partition's slices, and trade-id continuity where the files number trades one by one."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.archives.archives import ARCHIVE_ASSETS, binance_archive_partitions
from marketdata_assets.defs.archives.partitions import binance_dump_partitions
from marketdata_assets.quality.continuity import CHECKED_DATASETS
from marketdata_assets.quality.slice_checks import BINANCE_DUMP_CHECKS, trade_id_check

dump_checks = asset_checks(BINANCE_DUMP_CHECKS, binance_dump_partitions)
archive_checks = asset_checks([trade_id_check(ARCHIVE_ASSETS[dataset], dataset)
                               for dataset in CHECKED_DATASETS if dataset in ARCHIVE_ASSETS],
                              binance_archive_partitions)
