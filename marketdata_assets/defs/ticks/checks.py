"""Asset checks of the ticks domain (the rules and their SQL: lib/ticks/checks.py), partitioned like
their assets so a run checks exactly what it loaded:

- crypto and dumps (day x instrument): the slices of those instruments and days;
- A-shares / Yahoo (day): the day's slices whose active load this source wrote (ingest_log);
- book snapshots (instrument): those instruments' latest day.
"""

import warnings
from datetime import datetime, timezone

import dagster as dg

from marketdata_assets.defs.ticks.partitions import (
    a_share_days,
    binance_dump_partitions,
    crypto_instruments,
    crypto_partitions,
    days_of,
    slice_keys,
    yahoo_days,
)
from marketdata_assets.lib.markdown import table
from marketdata_assets.lib.ticks.checks import (
    BARS_CONSISTENT,
    NO_DUPLICATE_TRADE_IDS,
    PRICES_POSITIVE,
    TIMESTAMPS_INSIDE_DAY,
    Rule,
    count,
    latest_book_scope,
    slice_scopes,
    source_scope,
)
from marketdata_assets.resources import ClickHouseResource


def evaluate(clickhouse: ClickHouseResource, rule: Rule, scopes: list[tuple[str, dict]],
             checked: str) -> dg.AssetCheckResult:
    """The rule's violations over the scopes as a check result, with a sample in the metadata."""
    with clickhouse.get_client() as client:
        result = count(client, clickhouse.database, rule, scopes)
    metadata = {"violations": result.violations, "rows_checked": result.rows_checked, "checked": checked,
                "rule": rule.description}
    if result.sample:
        metadata["sample"] = dg.MetadataValue.md(table(result.sample_columns, result.sample))
    return dg.AssetCheckResult(passed=result.violations == 0, metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR, description=rule.description)


def _partition_keys(context: dg.AssetCheckExecutionContext) -> list:
    return list(context.op_execution_context.partition_keys)


def _checked_text(keys: list, limit: int = 6) -> str:
    names = [str(k) for k in keys]
    return ", ".join(names) if len(names) <= limit else f"{', '.join(names[:limit])} ... ({len(names)} partitions)"


def _crypto_check(asset: str, rule: Rule, partitions_def) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        keys = _partition_keys(context)
        scopes = slice_scopes(clickhouse.database, rule.dataset, slice_keys(keys, [rule.dataset]))
        return evaluate(clickhouse, rule, scopes, _checked_text(keys))

    return check


def _stock_check(asset: str, rule: Rule, source: str, partitions_def) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        days = days_of(_partition_keys(context))
        return evaluate(clickhouse, rule, source_scope(clickhouse.database, rule.dataset, source, days),
                        _checked_text(days))

    return check


def _book_check() -> dg.AssetChecksDefinition:
    rule = PRICES_POSITIVE["books"]

    @dg.asset_check(asset="crypto_book_snapshots", name=rule.name, description=rule.description,
                    partitions_def=crypto_instruments)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        keys = [str(k) for k in _partition_keys(context)]
        return evaluate(clickhouse, rule, latest_book_scope(clickhouse.database, keys),
                        f"{_checked_text(keys)} (latest day, {datetime.now(timezone.utc):%Y-%m-%d} or before)")

    return check


# Partitioned asset checks are a preview feature of Dagster 1.13 (checked: context.partition_keys
# is the run's keys, single partitions and ranges); the warning would print on every load.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    ticks_checks = [
        *(_crypto_check(asset, rule, crypto_partitions) for asset in ("crypto_trades",)
          for rule in (NO_DUPLICATE_TRADE_IDS, TIMESTAMPS_INSIDE_DAY["trades"], PRICES_POSITIVE["trades"])),
        *(_crypto_check("crypto_bars_1m", rule, crypto_partitions)
          for rule in (BARS_CONSISTENT["bars_1m"], TIMESTAMPS_INSIDE_DAY["bars_1m"], PRICES_POSITIVE["bars_1m"])),
        *(_crypto_check("binance_dump_trades", rule, binance_dump_partitions)
          for rule in (NO_DUPLICATE_TRADE_IDS, TIMESTAMPS_INSIDE_DAY["trades"], PRICES_POSITIVE["trades"])),
        *(_crypto_check("binance_dump_bars_1m", rule, binance_dump_partitions)
          for rule in (BARS_CONSISTENT["bars_1m"], TIMESTAMPS_INSIDE_DAY["bars_1m"], PRICES_POSITIVE["bars_1m"])),
        *(_stock_check("a_share_bars_1m", rule, "TUSHARE", a_share_days)
          for rule in (BARS_CONSISTENT["bars_1m"], TIMESTAMPS_INSIDE_DAY["bars_1m"])),
        *(_stock_check("a_share_daily_bars", rule, "TUSHARE", a_share_days)
          for rule in (BARS_CONSISTENT["daily_bars"], TIMESTAMPS_INSIDE_DAY["daily_bars"])),
        *(_stock_check("yahoo_bars_1m", rule, "YAHOO", yahoo_days)
          for rule in (BARS_CONSISTENT["bars_1m"], TIMESTAMPS_INSIDE_DAY["bars_1m"])),
        _book_check(),
    ]
