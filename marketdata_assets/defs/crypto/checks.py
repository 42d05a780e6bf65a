"""Asset checks of the crypto assets: the declarations of quality/slice_checks.py (the SQL rules and
trade-id continuity), made asset checks by defs/_common/checks.py and partitioned like their assets:
day x instrument assets check the slices of those instruments and days; snapshots (instrument;
option chains: chain) those instruments' latest day. The WARN checks `within_rest_reach`
(quality/reach.py: slices past a venue's REST history and not stored) run in one step."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.crypto.partitions import crypto_instruments, crypto_partitions, option_chains
from marketdata_assets.quality.reach import CRYPTO_REACH_CHECKS
from marketdata_assets.quality.slice_checks import CRYPTO_CHECKS, CRYPTO_SNAPSHOT_CHECKS, OPTION_CHAIN_CHECKS

crypto_checks = [
    *asset_checks(CRYPTO_CHECKS, crypto_partitions),
    *asset_checks(CRYPTO_REACH_CHECKS, crypto_partitions, step="crypto_rest_reach"),
    *asset_checks(CRYPTO_SNAPSHOT_CHECKS, crypto_instruments),
    *asset_checks(OPTION_CHAIN_CHECKS, option_chains),
]
