"""The ticks domain's data checks as SQL over the ACTIVE loads (the `active_loads` view: what every
read view shows), scoped to what a run loaded: `slice_scope` (the checked slices), `source_scope`
(the days' slices a source's run wrote, from the ingest log), `latest_scope` (snapshots). A scope also
names the Dagster partition of each load, so `count` runs a rule over a whole range run at once and
returns, per partition, the violations, the rows checked and a sample."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from marketdata_assets.core import calendars, plausibility
from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.sources.config import load_sources_config


@dataclass(frozen=True)
class SliceRule:
    name: str
    dataset: str
    description: str
    # SELECT load_id, <shown columns> over `{table}` restricted by `{scope}` (a load_id subquery;
    # `{neighbours}`: the active loads of the same instruments within a month of the scope's days,
    # for rules that look at a series); load_id places a violation in its partition and is left
    # out of the sample
    violations: str
    severity: str = "ERROR"  # or "WARN": something to look at, not proof of a bad load
    params: Callable[[], dict] | None = None  # the rule's own query parameters, computed when it runs (a
    # scope's parameters of the same name win)


NO_DUPLICATE_TRADE_IDS = SliceRule(
    "no_duplicate_trade_ids",
    "trades",
    "No trade id appears twice in an instrument-day.",
    "SELECT load_id, venue, instrument, day, trade_id, count() AS copies FROM {table} "
    "WHERE load_id IN ({scope}) GROUP BY load_id, venue, instrument, day, trade_id HAVING copies > 1",
)


def plausible_window_params(now: datetime | None = None) -> dict:
    """TIMESTAMPS_INSIDE_DAY's parameters: every configured venue's earliest plausible instant, the
    default one for other venues and now + the tolerance (core.plausibility), as epoch microseconds."""
    days = plausibility.earliest_days()

    def micros(moment: datetime) -> int:
        return int(moment.timestamp()) * 1_000_000

    return {
        "plausible_venues": sorted(days),
        "plausible_earliest": [micros(plausibility.window(v, now).earliest) for v in sorted(days)],
        "plausible_default": micros(plausibility.window("", now).earliest),
        "plausible_latest": micros(plausibility.window("", now).latest),
    }


_EARLIEST_OF_VENUE = (
    "if(has({{plausible_venues:Array(String)}}, venue), {{plausible_earliest:Array(Int64)}}"
    "[indexOf({{plausible_venues:Array(String)}}, venue)], {{plausible_default:Int64}})"
)
TIMESTAMPS_INSIDE_DAY = {
    dataset: SliceRule(
        "timestamps_inside_day",
        dataset,
        "Every timestamp lies inside its partition's (UTC) day, and inside its venue's plausible window "
        "(core/plausibility.py: not after now + the tolerance, not before the venue's earliest plausible "
        "day).",
        "SELECT load_id, venue, instrument, day, ts, multiIf(toDate(ts, 'UTC') != day, 'outside its day', "
        "toUnixTimestamp64Micro(ts) > {{plausible_latest:Int64}}, 'after now + the tolerance', "
        "'before its venue earliest plausible day') AS crosses FROM {table} WHERE load_id IN ({scope}) "
        "AND (toDate(ts, 'UTC') != day OR toUnixTimestamp64Micro(ts) > {{plausible_latest:Int64}} "
        f"OR toUnixTimestamp64Micro(ts) < {_EARLIEST_OF_VENUE})",
        params=plausible_window_params,
    )
    for dataset in (
        "trades",
        "bars_1m",
        "daily_bars",
        "funding",
        "open_interest",
        "liquidations",
        "mark_bars_1m",
        "index_bars_1m",
    )
}
PRICES_POSITIVE = {
    "trades": SliceRule(
        "prices_positive",
        "trades",
        "Every trade price is positive.",
        "SELECT load_id, venue, instrument, ts, trade_id, price FROM {table} "
        "WHERE load_id IN ({scope}) AND NOT (price > 0)",
    ),
    "bars_1m": SliceRule(
        "prices_positive",
        "bars_1m",
        "Open, high, low and close are positive.",
        "SELECT load_id, venue, instrument, ts, open, high, low, close FROM {table} "
        "WHERE load_id IN ({scope}) AND NOT (least(open, high, low, close) > 0)",
    ),
    "books": SliceRule(
        "prices_positive",
        "books",
        "Every book level's price is positive.",
        "SELECT load_id, venue, instrument, ts, side, level, price FROM {table} "
        "WHERE load_id IN ({scope}) AND NOT (price > 0)",
    ),
}
BOOK_NOT_CROSSED = SliceRule(
    "book_not_crossed",
    "books",
    "In every snapshot the best bid is below the best ask, and every level's size is positive.",
    "SELECT load_id, venue, instrument, ts, update_id, maxIf(price, side = 'bid' AND level = 0) AS best_bid, "
    "minIf(price, side = 'ask' AND level = 0) AS best_ask, min(quantity) AS least_size FROM {table} "
    "WHERE load_id IN ({scope}) GROUP BY load_id, venue, instrument, ts, update_id "
    "HAVING (countIf(side = 'bid' AND level = 0) > 0 AND countIf(side = 'ask' AND level = 0) > 0 "
    "AND best_bid >= best_ask) OR NOT (least_size > 0)",
)
BARS_CONSISTENT = {
    dataset: SliceRule(
        "bar_high_low_consistent",
        dataset,
        "high >= max(open, close) and low <= min(open, close).",
        "SELECT load_id, venue, instrument, ts, open, high, low, close FROM {table} WHERE load_id IN "
        "({scope}) AND (high < greatest(open, close) OR low > least(open, close))",
    )
    for dataset in ("bars_1m", "daily_bars", "mark_bars_1m", "index_bars_1m")
}


# The other crypto datasets. The funding cap is per venue, as an 8-hour rate (the sources
# config's funding_caps, the rule's own parameters; a scope's `funding_caps` replace them); a venue
# without a configured cap is not checked.
def funding_caps(caps: dict[str, float] | None = None) -> dict:
    """FUNDING_INSIDE_CAP's query parameters for {venue: cap}, by default the sources config's
    (`with_params(scope, **funding_caps(caps))` checks against others)."""
    caps = load_sources_config().funding_caps if caps is None else caps
    return {"cap_venues": list(caps), "caps": [float(c) for c in caps.values()]}


FUNDING_INSIDE_CAP = SliceRule(
    "funding_inside_cap",
    "funding",
    "Every funding rate, normalized to 8 hours, lies inside its venue's cap (sources config funding_caps).",
    "SELECT load_id, venue, instrument, ts, rate, interval_hours, rate_8h, "
    "{{caps:Array(Float64)}}[indexOf({{cap_venues:Array(String)}}, venue)] AS cap FROM {table} "
    "WHERE load_id IN ({scope}) AND has({{cap_venues:Array(String)}}, venue) AND abs(rate_8h) > cap",
    params=funding_caps,
)
OPEN_INTEREST_NOT_NEGATIVE = SliceRule(
    "open_interest_not_negative",
    "open_interest",
    "Open interest (contracts, base and quote value) is >= 0.",
    "SELECT load_id, venue, instrument, ts, contracts, base, quote FROM {table} WHERE load_id IN ({scope}) "
    "AND NOT (contracts >= 0 AND base >= 0 AND quote >= 0 AND contract_size > 0)",
)
MARK_INDEX_BAND = 0.03
MARK_NEAR_INDEX = SliceRule(
    "mark_near_index",
    "mark_bars_1m",
    f"Every 1-minute mark close lies within {MARK_INDEX_BAND:.0%} of the index close of the same minute.",
    "SELECT m.load_id AS load_id, m.venue AS venue, m.instrument AS instrument, m.ts AS ts, m.close AS mark, "
    "i.close AS index, round(m.close / i.close - 1, 6) AS premium FROM {table} AS m INNER JOIN "
    "(SELECT venue, instrument, ts, close FROM {db}.index_bars_1m_v WHERE (venue, instrument, toDate(ts)) IN "
    "(SELECT venue, instrument, day FROM {db}.active_loads WHERE load_id IN ({scope}))) AS i "
    "ON m.venue = i.venue AND m.instrument = i.instrument AND m.ts = i.ts "
    f"WHERE m.load_id IN ({{scope}}) AND abs(m.close / i.close - 1) > {MARK_INDEX_BAND}",
)
NO_DUPLICATE_LIQUIDATION_IDS = SliceRule(
    "no_duplicate_liquidation_ids",
    "liquidations",
    "No liquidation id appears twice in an instrument-day.",
    "SELECT load_id, venue, instrument, day, liquidation_id, count() AS copies FROM {table} "
    "WHERE load_id IN ({scope}) GROUP BY load_id, venue, instrument, day, liquidation_id HAVING copies > 1",
)
TICKER_NOT_CROSSED = SliceRule(
    "ticker_not_crossed",
    "tickers",
    "Every ticker's best bid is below its best ask, and its prices are positive.",
    "SELECT load_id, venue, instrument, ts, bid, ask, last FROM {table} WHERE load_id IN ({scope}) "
    "AND NOT (ifNull(bid, 0) < ifNull(ask, inf) AND ifNull(bid, 1) > 0 AND ifNull(last, 1) > 0)",
)
# An option's name says its currency, expiry, strike and type (BTC-27DEC24-100000-C); the stored
# columns must say the same, and its IVs must be positive.
_OPTION_NAME = (
    "concat(splitByChar('-', instrument)[1], '-', toString(toDayOfMonth(expiry, 'UTC')), "
    "upper(formatDateTime(expiry, '%b%y', 'UTC')), '-', toString(strike), '-', "
    "if(option_type = 'call', 'C', 'P'))"
)
OPTIONS_SANE = SliceRule(
    "options_iv_positive_and_names_parse",
    "option_chain",
    "Every option's mark IV (and bid/ask IV where quoted) is > 0, its strike > 0, its expiry not before the "
    "snapshot's day, and its name spells its currency, expiry, strike and type.",
    f"SELECT load_id, instrument, ts, option, expiry, strike, option_type, mark_iv, bid_iv, ask_iv, "
    f"{_OPTION_NAME} AS expected_name FROM {{table}} WHERE load_id IN ({{scope}}) AND NOT (mark_iv > 0 "
    "AND ifNull(bid_iv, 1) > 0 AND ifNull(ask_iv, 1) > 0 AND strike > 0 AND expiry >= toStartOfDay(ts) "
    "AND option = expected_name)",
)


# A 1-minute bar table holds 1-minute bars: stamped on the minute, and a day of them has bars one
# minute apart. A slice whose bars (ten or more) are never closer than two minutes is another
# interval's body (1h klines answered to a 1m request) even when every stamp is on the minute.
ON_THE_MINUTE_GRID = SliceRule(
    "bars_on_the_1m_grid",
    "bars_1m",
    "Bars are stamped on the minute, and a day of ten or more bars has bars one minute apart (not "
    "another interval's body).",
    "SELECT load_id, venue, instrument, day, count() AS bars, countIf(toStartOfMinute(ts) != ts) AS "
    "off_the_minute, min(gap_s) AS smallest_gap_s FROM (SELECT load_id, venue, instrument, day, ts, "
    "if(row_number() OVER w = 1, NULL, dateDiff('second', lagInFrame(ts) OVER w, ts)) AS gap_s FROM {table} "
    "WHERE load_id IN ({scope}) WINDOW w AS (PARTITION BY load_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND "
    "CURRENT ROW)) GROUP BY load_id, venue, instrument, day HAVING off_the_minute > 0 OR (bars >= 10 AND "
    "smallest_gap_s > 60)",
)

# A price stepping by ~100x and stepping back later is a unit error (pence quoted as pounds for a
# stretch, cents as dollars); a 100x move that stays is left alone. Over each instrument's series of
# active bars (its neighbouring days too), between consecutive jumps in opposite directions.
_JUMP = "(ratio BETWEEN 80 AND 125 OR ratio BETWEEN 0.008 AND 0.0125)"
UNIT_STEP_REVERTS = {
    dataset: SliceRule(
        "no_unit_step",
        dataset,
        (
            "No close steps by ~100x (or ~1/100) and back later: a stretch quoted in another unit (pence as "
            "pounds)."
        ),
        "SELECT load_id, venue, instrument, ts AS jump_at, prev_close, close, round(ratio, 4) AS ratio, "
        "stretch_from, stretch_until FROM ("
        "SELECT *, leadInFrame(ratio) OVER j AS next_ratio, lagInFrame(ratio) OVER j AS prev_ratio, "
        "leadInFrame(ts) OVER j AS next_ts, lagInFrame(ts) OVER j AS prev_ts, "
        "if(next_ratio != 0 AND (ratio > 1) != (next_ratio > 1), ts, prev_ts) AS stretch_from, "
        "if(next_ratio != 0 AND (ratio > 1) != (next_ratio > 1), next_ts, ts) AS stretch_until FROM ("
        "SELECT load_id, venue, instrument, ts, close, lagInFrame(close) OVER s AS prev_close, "
        "if(prev_close > 0, close / prev_close, 0) AS ratio FROM {table} WHERE load_id IN ({neighbours}) "
        "WINDOW s AS (PARTITION BY venue, instrument ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)) "
        f"WHERE {_JUMP} "
        "WINDOW j AS (PARTITION BY venue, instrument ORDER BY ts ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)) "
        "WHERE load_id IN ({scope}) AND ((next_ratio != 0 AND (ratio > 1) != (next_ratio > 1)) "
        "OR (prev_ratio != 0 AND (ratio > 1) != (prev_ratio > 1)))",
        severity="WARN",
    )
    for dataset in ("bars_1m", "daily_bars")
}


@dataclass(frozen=True)
class Scope:
    """The checked loads: `sql` selects (load_id, partition_key), the Dagster partition each load
    belongs to; `params` are its query parameters; `provisional` the (venue, day)s `minute_grid`
    judged on a provisional calendar (after the last session exchange-calendars knows)."""

    sql: str
    params: dict
    provisional: tuple[tuple[str, date], ...] = ()


# Every minute of the venue's sessions (core.calendars) is there, for each instrument-day a stock
# source loaded: `grid_keys` ('VENUE|YYYY-MM-DD') and `grid_minutes` (that day's expected bar opens,
# epoch seconds) are the query parameters `minute_grid` adds. A day's missing minutes beyond the
# rows the parser dropped for a documented reason (a null minute: no trade) fail it, and so do bars
# outside the sessions or on a non-trading day. A day with no bars at all (a suspended instrument;
# its load holds 0 rows) is not a violation.
_EXPECTED = (
    "{{grid_minutes:Array(Array(Int64))}}[indexOf({{grid_keys:Array(String)}}, concat(venue, '|', "
    "toString(day)))]"
)
_AS_TIMES = "arrayMap(x -> toDateTime(x, 'UTC'), arraySlice({}, 1, 5))"
MINUTES_COMPLETE = SliceRule(
    "minutes_complete",
    "bars_1m",
    "Every trading day has every session minute (beyond null minutes the parser dropped and counted), "
    "and no bar lies outside the sessions.",
    "SELECT load_id, venue, instrument, day, length(expected) AS expected_bars, bars, "
    f"length(missing) AS missing_bars, {_AS_TIMES.format('missing')} AS first_missing, explained_by_drops, "
    f"length(outside) AS off_session, {_AS_TIMES.format('outside')} AS first_off_session FROM ("
    "SELECT l.load_id AS load_id, l.venue AS venue, l.instrument AS instrument, l.day AS day, l.expected AS "
    "expected, b.bars AS bars, d.explained AS explained_by_drops, arrayFilter(x -> NOT has(b.got, x), "
    "expected) AS missing, arrayFilter(x -> NOT has(expected, x), b.got) AS outside "
    f"FROM (SELECT load_id, venue, instrument, day, {_EXPECTED} AS expected FROM {{db}}.active_loads "
    "WHERE load_id IN ({scope}) AND has({{grid_keys:Array(String)}}, concat(venue, '|', toString(day)))) AS "
    "l LEFT JOIN (SELECT load_id, count() AS bars, groupArray(toUnixTimestamp(ts)) AS got FROM {table} "
    "WHERE load_id IN ({scope}) GROUP BY load_id) AS b ON l.load_id = b.load_id "
    "LEFT JOIN (SELECT load_id, max(dropped['null_rows'] + dropped['partial_rows']) AS explained FROM "
    "{db}.ingest_log WHERE load_id IN ({scope}) GROUP BY load_id) AS d ON l.load_id = d.load_id) "
    "WHERE bars > 0 AND (length(missing) > explained_by_drops OR length(outside) > 0)",
)


def minute_grid(
    client, database: str, scope: Scope, expected: Callable[[str, date], list[datetime]]
) -> Scope:
    """`scope` with the parameters `MINUTES_COMPLETE` reads: `expected(venue, day)`, the bar opens a
    full day has, for each venue-day the scope holds; a venue without a calendar (or a day before
    it) is left out of the check. Days after a calendar's last known session are judged on its
    provisional grid (core/calendars) and listed in the returned scope's `provisional`."""
    rows = client.query(
        f"WITH scope AS ({scope.sql}) SELECT DISTINCT venue, day FROM "
        f"{clickhouse_database(database)}.active_loads WHERE load_id IN (SELECT load_id FROM scope)",
        parameters=scope.params,
    ).result_rows
    keys, minutes, provisional = [], [], []
    for venue, day in rows:
        try:
            opens = expected(venue, day)
            if calendars.is_provisional(venue, day):
                provisional.append((venue, day))
        except ValueError:  # no calendar for the venue, or a day before it
            continue
        keys.append(f"{venue}|{day.isoformat()}")
        minutes.append([int(t.timestamp()) for t in opens])
    return Scope(
        scope.sql, {**scope.params, "grid_keys": keys, "grid_minutes": minutes}, tuple(sorted(provisional))
    )


def slice_scope(database: str, dataset: str, slices: Iterable[SliceKey]) -> Scope:
    """The active loads of the slices, each in its day x instrument partition
    ('YYYY-MM-DD|VENUE:INSTRUMENT')."""
    slices = list(slices)
    sql = (
        "SELECT load_id, concat(toString(day), '|', venue, ':', instrument) AS partition_key "
        f"FROM {clickhouse_database(database)}.active_loads WHERE dataset = {{code:String}} AND day IN "
        "{days:Array(Date)} AND partition_key IN {keys:Array(String)}"
    )
    return Scope(
        sql,
        {
            "code": spec_for(dataset).code,
            "days": sorted({s.day for s in slices}),
            "keys": [f"{s.day.isoformat()}|{s.venue}:{s.instrument}" for s in slices],
        },
    )


def source_scope(database: str, dataset: str, source: str, days: list[date]) -> Scope:
    """The days' slices whose active load was written by `source` (ingest_log), each in its day's
    partition ('YYYY-MM-DD')."""
    db = clickhouse_database(database)
    sql = (
        f"SELECT load_id, toString(day) AS partition_key FROM {db}.active_loads "
        "WHERE dataset = {code:String} AND day IN {days:Array(Date)} "
        f"AND load_id IN (SELECT load_id FROM {db}.ingest_log WHERE source = {{source:String}} "
        "AND dataset = {code:String} AND day IN {days:Array(Date)} AND outcome = 'ok')"
    )
    return Scope(sql, {"code": spec_for(dataset).code, "days": days, "source": source})


def latest_scope(database: str, dataset: str, partition_keys) -> Scope:
    """Each instrument's ('VENUE:INSTRUMENT') snapshots of `dataset` (books, tickers, ...) of its latest
    day."""
    db = clickhouse_database(database)
    match = "dataset = {code:String} AND concat(venue, ':', instrument) IN {keys:Array(String)}"
    sql = (
        f"SELECT load_id, concat(venue, ':', instrument) AS partition_key FROM {db}.active_loads "
        f"WHERE {match} AND (venue, instrument, day) IN "
        f"(SELECT venue, instrument, max(day) FROM {db}.active_loads WHERE {match} "
        "GROUP BY venue, instrument)"
    )
    return Scope(sql, {"code": spec_for(dataset).code, "keys": [str(k) for k in partition_keys]})


def with_params(scope: Scope, **params) -> Scope:
    """The scope with more query parameters (a rule's own, e.g. FUNDING_INSIDE_CAP's `caps`)."""
    return replace(scope, params={**scope.params, **params})


@dataclass(frozen=True)
class RuleResult:
    violations: int = 0
    rows_checked: int = 0
    sample_columns: list[str] = field(default_factory=list)
    sample: list[list] = field(default_factory=list)


def count(
    client, database: str, rule: SliceRule, scope: Scope, sample_rows: int = 10
) -> dict[str, RuleResult]:
    """The rule's violations, the rows checked and a sample of the violations, by partition key: three
    queries whatever the number of partitions (two when nothing is violated). Partitions without
    an active load are left out."""
    db, spec = clickhouse_database(database), spec_for(rule.dataset)
    if rule.params is not None:
        scope = replace(scope, params={**rule.params(), **scope.params})
    table_sql = f"{db}.`{spec.table}`"
    loads = "SELECT load_id FROM scope"
    with_scope = f"WITH scope AS ({scope.sql}) "
    checked = f"SELECT venue, instrument, day FROM {db}.active_loads WHERE load_id IN ({loads})"
    neighbours = (
        f"SELECT load_id FROM {db}.active_loads WHERE dataset = '{spec.code}' AND (venue, instrument) IN "
        f"(SELECT venue, instrument FROM ({checked})) AND day BETWEEN (SELECT min(day) - 31 FROM "
        f"({checked})) AND (SELECT max(day) + 31 FROM ({checked}))"
    )
    by_partition = (
        f"{with_scope}SELECT s.partition_key AS partition_key, v.* EXCEPT (load_id) FROM "
        f"({rule.violations.format(table=table_sql, scope=loads, neighbours=neighbours, db=db)}) AS v "
        "INNER JOIN scope AS s ON v.load_id = s.load_id"
    )

    def per_partition(sql: str) -> dict[str, int]:
        return {key: int(n) for key, n in client.query(sql, parameters=scope.params).result_rows}

    violations = per_partition(f"SELECT partition_key, count() FROM ({by_partition}) GROUP BY partition_key")
    rows_checked = per_partition(
        f"{with_scope}SELECT s.partition_key, sum(t.rows) FROM (SELECT load_id, count() AS rows "
        f"FROM {table_sql} WHERE load_id IN ({loads}) GROUP BY load_id) AS t "
        "INNER JOIN scope AS s ON t.load_id = s.load_id "
        "GROUP BY s.partition_key"
    )
    samples: dict[str, list[list]] = {}
    columns: list[str] = []
    if any(violations.values()):
        found = client.query(
            f"SELECT * FROM ({by_partition}) ORDER BY partition_key "
            f"LIMIT {int(sample_rows)} BY partition_key",
            parameters=scope.params,
        )
        columns = list(found.column_names)[1:]
        for row in found.result_rows:
            samples.setdefault(row[0], []).append(list(row[1:]))
    return {
        key: RuleResult(violations.get(key, 0), rows_checked.get(key, 0), columns, samples.get(key, []))
        for key in rows_checked.keys() | violations.keys()
    }
