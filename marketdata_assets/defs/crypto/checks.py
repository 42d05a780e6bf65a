"""Asset checks of the crypto assets (the rules and their SQL: quality/slices.py), partitioned like
their assets so a run checks exactly what it loaded: day x instrument assets the slices of those
instruments and days; snapshots (instrument; option chains: chain) those instruments' latest day.
The shell (record, evaluate, slice_check): defs/_common/checks.py."""

from collections.abc import Iterator
from datetime import datetime, timezone

import dagster as dg

from marketdata_assets.defs._common.checks import (
    CRYPTO_BAR_RULES,
    TRADE_RULES,
    evaluate,
    preview,
    slice_check,
)
from marketdata_assets.defs._common.partitions import slice_keys
from marketdata_assets.defs.crypto.partitions import crypto_instruments, crypto_partitions, option_chains
from marketdata_assets.quality.slices import (
    BARS_CONSISTENT,
    FUNDING_INSIDE_CAP,
    MARK_NEAR_INDEX,
    NO_DUPLICATE_LIQUIDATION_IDS,
    OPEN_INTEREST_NOT_NEGATIVE,
    OPTIONS_SANE,
    PRICES_POSITIVE,
    TICKER_NOT_CROSSED,
    TIMESTAMPS_INSIDE_DAY,
    Rule,
    funding_caps,
    latest_scope,
    slice_scope,
    with_params,
)
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.sources import load_sources_config


def _snapshot_check(asset: str, rule: Rule, partitions_def=crypto_instruments) -> dg.AssetChecksDefinition:
    """A rule over each instrument's (or chain's) snapshots of its latest day."""

    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> Iterator:
        today = f"{datetime.now(timezone.utc):%Y-%m-%d}"
        scope = latest_scope(clickhouse.database, rule.dataset, context.partition_keys)
        yield from evaluate(context, clickhouse, rule, scope,
                            lambda key: f"{key} (its latest day, {today} or before)")

    return check


def _funding_check() -> dg.AssetChecksDefinition:
    rule = FUNDING_INSIDE_CAP

    @dg.asset_check(asset="crypto_funding", name=rule.name, description=rule.description,
                    partitions_def=crypto_partitions)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> Iterator:
        slices = slice_keys(context.partition_keys, [rule.dataset])
        scope = with_params(slice_scope(clickhouse.database, rule.dataset, slices),
                            **funding_caps(load_sources_config().funding_caps))
        yield from evaluate(context, clickhouse, rule, scope)

    return check


with preview():
    crypto_checks = [
        *(slice_check("crypto_trades", rule, crypto_partitions) for rule in TRADE_RULES),
        *(slice_check("crypto_bars_1m", rule, crypto_partitions) for rule in CRYPTO_BAR_RULES),
        _snapshot_check("crypto_book_snapshots", PRICES_POSITIVE["books"]),
        _snapshot_check("crypto_tickers", TICKER_NOT_CROSSED),
        _snapshot_check("crypto_open_interest_snapshots", OPEN_INTEREST_NOT_NEGATIVE),
        _snapshot_check("crypto_option_chains", OPTIONS_SANE, option_chains),
        _funding_check(),
        slice_check("crypto_open_interest", OPEN_INTEREST_NOT_NEGATIVE, crypto_partitions),
        slice_check("crypto_liquidations", NO_DUPLICATE_LIQUIDATION_IDS, crypto_partitions),
        *(slice_check(asset, TIMESTAMPS_INSIDE_DAY[dataset], crypto_partitions)
          for dataset, asset in (("funding", "crypto_funding"), ("open_interest", "crypto_open_interest"),
                                 ("liquidations", "crypto_liquidations"), ("mark_bars_1m", "crypto_mark_bars_1m"),
                                 ("index_bars_1m", "crypto_index_bars_1m"))),
        *(slice_check(asset, BARS_CONSISTENT[dataset], crypto_partitions)
          for dataset, asset in (("mark_bars_1m", "crypto_mark_bars_1m"),
                                 ("index_bars_1m", "crypto_index_bars_1m"))),
        slice_check("crypto_mark_bars_1m", MARK_NEAR_INDEX, crypto_partitions),
    ]
