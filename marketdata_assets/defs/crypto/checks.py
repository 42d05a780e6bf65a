"""Asset checks of the crypto assets: the declarations of quality/slice_checks.py (the SQL rules and
trade-id continuity), made asset checks by defs/_common/checks.py and partitioned like their assets:
day x instrument assets check the slices of those instruments and days; snapshots (instrument;
option chains: chain) those instruments' latest day."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.crypto.partitions import crypto_instruments, crypto_partitions, option_chains
from marketdata_assets.quality.slice_checks import CRYPTO_CHECKS, CRYPTO_SNAPSHOT_CHECKS, OPTION_CHAIN_CHECKS

crypto_checks = [*asset_checks(CRYPTO_CHECKS, crypto_partitions),
                 *asset_checks(CRYPTO_SNAPSHOT_CHECKS, crypto_instruments),
                 *asset_checks(OPTION_CHAIN_CHECKS, option_chains)]
