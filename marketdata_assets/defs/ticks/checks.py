"""Asset checks of the ticks domain, run on the ACTIVE loads only (the `active_loads` view: what every
read view shows) and scoped to the checked partitions:

- crypto (day x instrument): the slices of those instruments and days;
- A-shares / Yahoo (day): the day's slices whose active load this provider wrote (ingest_log);
- book snapshots (instrument): those instruments' latest day.

Checks: no duplicate trade ids per instrument-day; every timestamp inside its slice's (UTC) day (the
partition's day); crypto prices positive; bars with high >= max(open, close) and low <= min(open,
close). The checks are partitioned like their assets, so a run checks exactly what it loaded.
"""

import warnings
from dataclasses import dataclass
from datetime import date, datetime, timezone

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
from marketdata_assets.lib.identifiers import sql_identifier
from marketdata_assets.lib.markdown import table
from marketdata_assets.lib.ticks.frames import spec_for
from marketdata_assets.resources import ClickHouseResource


@dataclass(frozen=True)
class Rule:
    name: str
    dataset: str
    description: str
    violations: str   # SELECT over `{table}` restricted by `{scope}` (a load_id subquery)


NO_DUPLICATE_TRADE_IDS = Rule(
    "no_duplicate_trade_ids", "trades", "No trade id appears twice in an instrument-day.",
    "SELECT venue, instrument, day, trade_id, count() AS copies FROM {table} WHERE load_id IN ({scope}) "
    "GROUP BY venue, instrument, day, trade_id HAVING copies > 1")
TIMESTAMPS_INSIDE_DAY = {dataset: Rule(
    "timestamps_inside_day", dataset, "Every timestamp lies inside its partition's (UTC) day.",
    "SELECT venue, instrument, day, ts FROM {table} WHERE load_id IN ({scope}) AND toDate(ts, 'UTC') != day")
    for dataset in ("trades", "bars_1m", "daily_bars")}
PRICES_POSITIVE = {
    "trades": Rule("prices_positive", "trades", "Every trade price is positive.",
                   "SELECT venue, instrument, ts, trade_id, price FROM {table} WHERE load_id IN ({scope}) AND "
                   "NOT (price > 0)"),
    "bars_1m": Rule("prices_positive", "bars_1m", "Open, high, low and close are positive.",
                 "SELECT venue, instrument, ts, open, high, low, close FROM {table} WHERE load_id IN ({scope}) "
                 "AND NOT (least(open, high, low, close) > 0)"),
    "books": Rule("prices_positive", "books", "Every book level's price is positive.",
                  "SELECT venue, instrument, ts, side, level, price FROM {table} WHERE load_id IN ({scope}) "
                  "AND NOT (price > 0)"),
}
BARS_CONSISTENT = {dataset: Rule(
    "bar_high_low_consistent", dataset, "high >= max(open, close) and low <= min(open, close).",
    "SELECT venue, instrument, ts, open, high, low, close FROM {table} WHERE load_id IN ({scope}) "
    "AND (high < greatest(open, close) OR low > least(open, close))") for dataset in ("bars_1m", "daily_bars")}


def _db(database: str) -> str:
    return f"`{sql_identifier(database, 'ClickHouse database')}`"


def crypto_scopes(database: str, dataset: str, partition_keys) -> list[tuple[str, dict]]:
    """One load-id subquery per day of the checked (day, instrument) partitions."""
    by_day: dict[date, list[str]] = {}
    for key in slice_keys(partition_keys, [dataset]):
        by_day.setdefault(key.day, []).append(f"{key.venue}:{key.instrument}")
    sql = (f"SELECT load_id FROM {_db(database)}.active_loads WHERE kind = {{kind:String}} AND day = {{day:Date}} "
           "AND concat(venue, ':', instrument) IN {keys:Array(String)}")
    return [(sql, {"kind": spec_for(dataset).code, "day": day, "keys": keys}) for day, keys in sorted(by_day.items())]


def provider_scope(database: str, dataset: str, provider: str, days: list[date]) -> list[tuple[str, dict]]:
    """The days' slices whose active load was written by `provider` (ingest_log)."""
    db = _db(database)
    sql = (f"SELECT load_id FROM {db}.active_loads WHERE kind = {{kind:String}} AND day IN {{days:Array(Date)}} "
           f"AND load_id IN (SELECT load_id FROM {db}.ingest_log WHERE provider = {{provider:String}} "
           "AND kind = {kind:String} AND day IN {days:Array(Date)} AND outcome = 'ok')")
    return [(sql, {"kind": spec_for(dataset).code, "days": days, "provider": provider})]


def latest_book_scope(database: str, partition_keys) -> list[tuple[str, dict]]:
    db = _db(database)
    match = "kind = 'books' AND concat(venue, ':', instrument) IN {keys:Array(String)}"
    sql = (f"SELECT load_id FROM {db}.active_loads WHERE {match} AND day = "
           f"(SELECT max(day) FROM {db}.active_loads WHERE {match})")
    return [(sql, {"keys": list(partition_keys)})]


def evaluate(clickhouse: ClickHouseResource, rule: Rule, scopes: list[tuple[str, dict]],
             checked: str) -> dg.AssetCheckResult:
    """Count the rule's violations over the scopes; a sample of them in the metadata."""
    table_sql = f"{_db(clickhouse.database)}.`{spec_for(rule.dataset).table}`"
    violations, rows_checked, sample, columns = 0, 0, [], []
    with clickhouse.get_client() as client:
        for scope, params in scopes:
            query = rule.violations.format(table=table_sql, scope=scope)
            violations += int(client.query(f"SELECT count() FROM ({query})", parameters=params).result_rows[0][0])
            rows_checked += int(client.query(f"SELECT count() FROM {table_sql} WHERE load_id IN ({scope})",
                                             parameters=params).result_rows[0][0])
            if len(sample) < 10:
                found = client.query(f"{query} LIMIT {10 - len(sample)}", parameters=params)
                columns = list(found.column_names)
                sample += [list(r) for r in found.result_rows]
    metadata = {"violations": violations, "rows_checked": rows_checked, "checked": checked,
                "rule": rule.description}
    if sample:
        metadata["sample"] = dg.MetadataValue.md(table(columns, sample))
    return dg.AssetCheckResult(passed=violations == 0, metadata=metadata, severity=dg.AssetCheckSeverity.ERROR,
                               description=rule.description)


def _partition_keys(context: dg.AssetCheckExecutionContext) -> list:
    return list(context.op_execution_context.partition_keys)


def _checked_text(keys: list, limit: int = 6) -> str:
    names = [str(k) for k in keys]
    return ", ".join(names) if len(names) <= limit else f"{', '.join(names[:limit])} ... ({len(names)} partitions)"


def _crypto_check(asset: str, rule: Rule, partitions_def) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        keys = _partition_keys(context)
        return evaluate(clickhouse, rule, crypto_scopes(clickhouse.database, rule.dataset, keys), _checked_text(keys))

    return check


def _stock_check(asset: str, rule: Rule, provider: str, partitions_def) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
        days = days_of(_partition_keys(context))
        return evaluate(clickhouse, rule, provider_scope(clickhouse.database, rule.dataset, provider, days),
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
