"""The ticks domain's data checks as SQL over the ACTIVE loads (the `active_loads` view: what every
read view shows), scoped to what a run loaded: `slice_scopes` (the checked slices), `source_scope`
(the days' slices a source's run wrote, from the ingest log), `latest_book_scope`. `count` runs a
rule over its scopes and returns the violations, the rows checked and a sample."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from marketdata_assets.lib.identifiers import sql_identifier
from marketdata_assets.lib.ticks.engine import SliceKey
from marketdata_assets.lib.ticks.frames import spec_for


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


def slice_scopes(database: str, dataset: str, slices: Iterable[SliceKey]) -> list[tuple[str, dict]]:
    """One load-id subquery per day of the checked slices."""
    by_day: dict[date, list[str]] = {}
    for key in slices:
        by_day.setdefault(key.day, []).append(f"{key.venue}:{key.instrument}")
    sql = (f"SELECT load_id FROM {_db(database)}.active_loads WHERE kind = {{kind:String}} AND day = {{day:Date}} "
           "AND concat(venue, ':', instrument) IN {keys:Array(String)}")
    return [(sql, {"kind": spec_for(dataset).code, "day": day, "keys": keys}) for day, keys in sorted(by_day.items())]


def source_scope(database: str, dataset: str, source: str, days: list[date]) -> list[tuple[str, dict]]:
    """The days' slices whose active load was written by `source` (ingest_log)."""
    db = _db(database)
    sql = (f"SELECT load_id FROM {db}.active_loads WHERE kind = {{kind:String}} AND day IN {{days:Array(Date)}} "
           f"AND load_id IN (SELECT load_id FROM {db}.ingest_log WHERE provider = {{provider:String}} "
           "AND kind = {kind:String} AND day IN {days:Array(Date)} AND outcome = 'ok')")
    return [(sql, {"kind": spec_for(dataset).code, "days": days, "provider": source})]


def latest_book_scope(database: str, partition_keys) -> list[tuple[str, dict]]:
    db = _db(database)
    match = "kind = 'books' AND concat(venue, ':', instrument) IN {keys:Array(String)}"
    sql = (f"SELECT load_id FROM {db}.active_loads WHERE {match} AND day = "
           f"(SELECT max(day) FROM {db}.active_loads WHERE {match})")
    return [(sql, {"keys": list(partition_keys)})]


@dataclass(frozen=True)
class RuleResult:
    violations: int
    rows_checked: int
    sample_columns: list[str]
    sample: list[list]


def count(client, database: str, rule: Rule, scopes: list[tuple[str, dict]], sample_rows: int = 10) -> RuleResult:
    """The rule's violations over the scopes, the rows checked, and a sample of the violations."""
    table_sql = f"{_db(database)}.`{spec_for(rule.dataset).table}`"
    violations, rows_checked, sample, columns = 0, 0, [], []
    for scope, params in scopes:
        query = rule.violations.format(table=table_sql, scope=scope)
        violations += int(client.query(f"SELECT count() FROM ({query})", parameters=params).result_rows[0][0])
        rows_checked += int(client.query(f"SELECT count() FROM {table_sql} WHERE load_id IN ({scope})",
                                         parameters=params).result_rows[0][0])
        if len(sample) < sample_rows:
            found = client.query(f"{query} LIMIT {sample_rows - len(sample)}", parameters=params)
            columns = list(found.column_names)
            sample += [list(r) for r in found.result_rows]
    return RuleResult(violations, rows_checked, columns, sample)
