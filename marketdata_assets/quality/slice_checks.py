"""The checks of the ClickHouse datasets, declared (quality/checks.py's `Check`): the SQL rules of
quality/slices.py and trade-id continuity (quality/continuity.py), each on the assets it guards,
partitioned like them so a run checks exactly what it loaded:

- crypto, dumps and archives (day x instrument): the slices of those instruments and days;
- A-shares / Yahoo (day): the day's slices whose active load this source wrote (ingest_log);
- snapshots (instrument; option chains: chain): those instruments' latest day;
- live hours (hour, `by_hour`): the day slices of the instruments each hour's load rewrote.

A judge covers a whole range run in one ClickHouse query per measure, grouped by partition, and
gives one verdict per partition: the violations, the rows checked and a sample of the violations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from marketdata_assets.core import calendars
from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.markdown import table
from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.datasets.slices import SliceKey, slices_of
from marketdata_assets.quality.checks import (
    CLICKHOUSE,
    DAY,
    DAY_INSTRUMENT,
    DAY_VENUE,
    HOUR,
    INSTRUMENT,
    WARN,
    Check,
    ClickHouse,
    Judge,
    Verdict,
    instruments_verdict,
)
from marketdata_assets.quality.continuity import SliceIds, find_holes, with_capture
from marketdata_assets.quality.slices import (
    BARS_CONSISTENT,
    FUNDING_INSIDE_CAP,
    MARK_NEAR_INDEX,
    MINUTES_COMPLETE,
    NO_DUPLICATE_LIQUIDATION_IDS,
    NO_DUPLICATE_TRADE_IDS,
    ON_THE_MINUTE_GRID,
    OPEN_INTEREST_NOT_NEGATIVE,
    OPTIONS_SANE,
    PRICES_POSITIVE,
    TICKER_NOT_CROSSED,
    TIMESTAMPS_INSIDE_DAY,
    UNIT_STEP_REVERTS,
    RuleResult,
    Scope,
    SliceRule,
    count,
    latest_scope,
    minute_grid,
    slice_scope,
    source_scope,
)
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.registry import STOCK_FEEDS, source

# each stock source's bar convention: the bar opens a full day has (core.calendars underneath)
SESSION_BAR_OPENS = {name: feed.session_bar_opens for name, feed in STOCK_FEEDS.items()}


def venue_day_keys(
    store: ClickHouse, dataset: str, partition_keys: Iterable[str], instruments: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Each day x venue key ('YYYY-MM-DD|VENUE') -> the day x instrument keys of the venue's configured
    instruments and of every other instrument of the venue with an active load of `dataset` that day."""
    keys = [str(key) for key in partition_keys]
    out = {key: {f"{key}:{i}" for i in instruments.get(key.split("|")[1], ())} for key in keys}
    stored = stored_day_keys(
        store, dataset, sorted({k.split("|")[0] for k in keys}), sorted({k.split("|")[1] for k in keys})
    )
    for day_keys in stored.values():
        for day_key in day_keys:
            if day_key.split(":")[0] in out:
                out[day_key.split(":")[0]].add(day_key)
    return {key: sorted(found) for key, found in out.items()}


def by_venue(check: Check, dataset: str, instruments: Callable[[], Mapping[str, Sequence[str]]]) -> Check:
    """A day x instrument check of `dataset` as a check of a day x venue asset: each day x venue partition
    judged by its instruments' slices (`instruments()`: venue -> the configured instruments; and any
    other stored that day), in one judge call."""

    def judge(store: ClickHouse, partitions: list[str]) -> dict[str, Verdict]:
        keys = venue_day_keys(store, dataset, partitions, instruments())
        verdicts = check.judge(store, sorted({k for ks in keys.values() for k in ks}))
        return {key: instruments_verdict(key, {k: verdicts[k] for k in ks}) for key, ks in keys.items()}

    return Check(check.name, check.asset, check.description, check.store, judge, DAY_VENUE, check.blocking)


def rule_verdicts(
    rule: SliceRule,
    results: Mapping[str, RuleResult],
    partitions: Iterable[str],
    checked: Callable[[str], str] = str,
    provisional: Mapping[str, str] | None = None,
) -> dict[str, Verdict]:
    """Each partition's verdict of the rule (`count`'s results; a partition without an active load
    has nothing to violate), with a sample of the violations. A partition in `provisional` (key ->
    what to upgrade) was judged on a provisional calendar: a WARN saying so, whatever was found."""
    provisional = provisional or {}
    verdicts = {}
    for key in partitions:
        result = results.get(key, RuleResult())
        metadata = {
            "violations": result.violations,
            "rows_checked": result.rows_checked,
            "checked": checked(key),
            "rule": rule.description,
        }
        if result.sample:
            metadata["sample"] = table(result.sample_columns, result.sample)
        verdicts[key] = Verdict(result.violations == 0, rule.description, metadata, rule.severity)
        if key in provisional:
            metadata["calendar"] = provisional[key]
            verdicts[key] = Verdict(False, f"{provisional[key]}. {rule.description}", metadata, WARN)
    return verdicts


def provisional_partitions(scope: Scope) -> dict[str, str]:
    """Day partition ('YYYY-MM-DD') -> what its provisional calendar days say (calendars.provisional_note),
    for the venue-days `minute_grid` judged after a calendar's last known session."""
    notes: dict[str, dict[str, str]] = {}  # one note per calendar (NYSE, NMS, ... are all XNYS)
    for venue, day in scope.provisional:
        notes.setdefault(day.isoformat(), {})[calendars.calendar_code(venue)] = calendars.provisional_note(
            venue
        )
    return {
        key: "; ".join(f"{text} ({key} judged provisionally)" for text in by_code.values())
        for key, by_code in notes.items()
    }


def _slices_judge(rule: SliceRule) -> Judge:
    """Over the active loads of the run's day x instrument slices."""

    def judge(store: ClickHouse, partitions: list[str]) -> dict[str, Verdict]:
        scope = slice_scope(store.database, rule.dataset, slices_of(partitions, rule.dataset))
        return rule_verdicts(rule, count(store.client, store.database, rule, scope), partitions)

    return judge


def _days_judge(rule: SliceRule, source: str) -> Judge:
    """Over the run's days' slices whose active load `source` wrote; MINUTES_COMPLETE against the
    source's session grid."""

    def judge(store: ClickHouse, partitions: list[str]) -> dict[str, Verdict]:
        days = sorted({date.fromisoformat(key) for key in partitions})
        scope = source_scope(store.database, rule.dataset, source, days)
        if rule is MINUTES_COMPLETE:
            scope = minute_grid(store.client, store.database, scope, SESSION_BAR_OPENS[source])
        return rule_verdicts(
            rule,
            count(store.client, store.database, rule, scope),
            partitions,
            provisional=provisional_partitions(scope),
        )

    return judge


def _latest_judge(rule: SliceRule) -> Judge:
    """Over each instrument's (or chain's) snapshots of its latest day."""

    def judge(store: ClickHouse, partitions: list[str]) -> dict[str, Verdict]:
        today = f"{datetime.now(UTC):%Y-%m-%d}"
        scope = latest_scope(store.database, rule.dataset, partitions)
        return rule_verdicts(
            rule,
            count(store.client, store.database, rule, scope),
            partitions,
            lambda key: f"{key} (its latest day, {today} or before)",
        )

    return judge


def rule_check(
    asset: str, rule: SliceRule, partitioned_by: str = DAY_INSTRUMENT, source: str | None = None
) -> Check:
    """The rule as a check of `asset`, scoped by the asset's partitioning (DAY: `source`'s loads)."""
    if partitioned_by == DAY_INSTRUMENT:
        judge = _slices_judge(rule)
    elif partitioned_by == DAY and source is not None:
        judge = _days_judge(rule, source)
    elif partitioned_by == INSTRUMENT:
        judge = _latest_judge(rule)
    else:
        raise ValueError(
            f"rule {rule.name}: no scope for partitions by {partitioned_by!r} (source {source!r})"
        )
    return Check(rule.name, asset, rule.description, CLICKHOUSE, judge, partitioned_by)


# --- Trade-id continuity (quality/continuity.py) ----------------------------------------------

TRADE_IDS_CONTINUOUS = "trade_ids_continuous"
TRADE_IDS_DESCRIPTION = (
    "No trade id is missing where the venue numbers trades one by one per instrument (Binance aggregate "
    "or individual trade ids, OKX tradeId, Deribit trade_seq): inside the day, and from the previous "
    "day's last id (when stored, same sequence) to this day's first."
)


# a live asset's capture starts: (ClickHouse client, database, slices) -> (the first id the capture landed,
# when it began) of the slices with one
Capture = Callable[[Any, str, list[SliceKey]], Mapping[SliceKey, tuple[int, datetime]]]


def _ids_verdict(key: str, ids: SliceIds | None) -> Verdict:
    if ids is None:
        return Verdict(True, f"{key}: no active load", {"checked": key})
    metadata = {**ids.metadata(), "checked": key}
    if ids.capture_note():
        metadata["before_capture"] = ids.capture_note()
    return Verdict(ids.passed, ids.summary(), metadata)


def trade_id_check(asset: str, dataset: str = "trades", capture: Capture | None = None) -> Check:
    """`trade_ids_continuous` on a day x instrument asset of `dataset` (trades or agg_trades): the ids
    missing inside each slice and at midnight, named with their first ranges. With `capture` (a live
    asset's: the slices with holes -> (the first id their capture landed, when it began)) the ids before
    capture are said, not failed (quality.continuity `with_capture`)."""

    def judge(store: ClickHouse, partitions: list[str]) -> dict[str, Verdict]:
        found = find_holes(store.client, store.database, slices_of(partitions, dataset), dataset=dataset)
        if capture is not None:
            holed = [ids.key for ids in found.values() if ids.missing]
            found = with_capture(found, capture(store.client, store.database, holed) if holed else {})
        return {key: _ids_verdict(key, found.get(key)) for key in partitions}

    return Check(TRADE_IDS_CONTINUOUS, asset, TRADE_IDS_DESCRIPTION, CLICKHOUSE, judge, DAY_INSTRUMENT)


def stored_day_keys(
    store: ClickHouse, dataset: str, days: Sequence[str], venues: Sequence[str]
) -> dict[str, list[str]]:
    """Day ('YYYY-MM-DD') -> the day x instrument keys of `venues`' instruments with an active load of
    `dataset` that day."""
    out: dict[str, list[str]] = {day: [] for day in days}
    if days:
        rows = store.client.query(
            "SELECT toString(day), venue, instrument FROM "
            f"{clickhouse_database(store.database)}.active_loads WHERE dataset = {{code:String}} AND day IN "
            "{days:Array(Date)} AND venue IN {venues:Array(String)} ORDER BY venue, instrument",
            parameters={"code": spec_for(dataset).code, "days": sorted(days), "venues": list(venues)},
        ).result_rows
        for day, venue, instrument in rows:
            out[day].append(f"{day}|{venue}:{instrument}")
    return out


def by_hour(
    check: Check, dataset: str, venues: Sequence[str], remedy: Callable[[str, list[str]], str] | None = None
) -> Check:
    """A day x instrument check of `dataset` as a check of an hourly live asset: each hour judged by the
    day slices of `venues`' instruments stored that day (whole, as the hour's load rewrote them), each
    day judged once per run, the instruments' verdicts in one (a `by_instrument` table) with the ids
    before capture of each (`before_capture`) and, with `remedy` (hour key, instrument keys -> the
    command), the command that refills the instruments with missing ids (`refill_command`)."""

    def judge(store: ClickHouse, partitions: list[str]) -> dict[str, Verdict]:
        days = {key: str(key)[:10] for key in partitions}
        keys = stored_day_keys(store, dataset, sorted(set(days.values())), venues)
        verdicts = check.judge(store, sorted({k for ks in keys.values() for k in ks}))
        return {
            key: _with_notes(
                key,
                instruments_verdict(key, {k: verdicts[k] for k in keys[day]}),
                verdicts,
                keys[day],
                remedy,
            )
            for key, day in days.items()
        }

    return Check(
        check.name,
        check.asset,
        f"{check.description} (over the day slices the hour's load rewrote)",
        check.store,
        judge,
        HOUR,
        check.blocking,
    )


def _with_notes(
    key: str,
    verdict: Verdict,
    verdicts: Mapping[str, Verdict],
    keys: list[str],
    remedy: Callable[[str, list[str]], str] | None,
) -> Verdict:
    """An hour's verdict with its instruments' ids before capture (said in the description of a passing
    one too) and the command that refills the instruments with missing ids."""
    notes = [
        f"{k.split('|')[1]}: {verdicts[k].metadata['before_capture']}"
        for k in keys
        if verdicts[k].metadata.get("before_capture")
    ]
    refill = [
        k.split("|")[1] for k in keys if not verdicts[k].passed or verdicts[k].metadata.get("before_capture")
    ]
    metadata = {k: v for k, v in verdict.metadata.items() if k != "before_capture"}
    description = verdict.description
    if notes:
        metadata["before_capture"] = "\n".join(notes)
        description = f"{description}; {'; '.join(notes)}" if verdict.passed else description
    if refill and remedy is not None:
        metadata["refill_command"] = remedy(key, refill)
        description = f"{description}; refill: {metadata['refill_command']}"
    return replace(verdict, description=description, metadata=metadata)


# --- The declarations, by asset ---------------------------------------------------------------

TRADE_RULES = (NO_DUPLICATE_TRADE_IDS, TIMESTAMPS_INSIDE_DAY["trades"], PRICES_POSITIVE["trades"])
BAR_RULES = (
    BARS_CONSISTENT["bars_1m"],
    TIMESTAMPS_INSIDE_DAY["bars_1m"],
    ON_THE_MINUTE_GRID,
    UNIT_STEP_REVERTS["bars_1m"],
)
CRYPTO_BAR_RULES = (*BAR_RULES, PRICES_POSITIVE["bars_1m"])
STOCK_BAR_RULES = (*BAR_RULES, MINUTES_COMPLETE)

# crypto_ticks' assets (day x venue: each venue's configured instruments)
CRYPTO_SLICE_CHECKS = [
    *(rule_check("crypto_trades", rule) for rule in TRADE_RULES),
    trade_id_check("crypto_trades"),
    *(rule_check("crypto_bars_1m", rule) for rule in CRYPTO_BAR_RULES),
    rule_check("crypto_funding", FUNDING_INSIDE_CAP),
    rule_check("crypto_open_interest", OPEN_INTEREST_NOT_NEGATIVE),
    rule_check("crypto_liquidations", NO_DUPLICATE_LIQUIDATION_IDS),
    *(
        rule_check(asset, TIMESTAMPS_INSIDE_DAY[dataset])
        for dataset, asset in (
            ("funding", "crypto_funding"),
            ("open_interest", "crypto_open_interest"),
            ("liquidations", "crypto_liquidations"),
            ("mark_bars_1m", "crypto_mark_bars_1m"),
            ("index_bars_1m", "crypto_index_bars_1m"),
        )
    ),
    *(
        rule_check(asset, BARS_CONSISTENT[dataset])
        for dataset, asset in (
            ("mark_bars_1m", "crypto_mark_bars_1m"),
            ("index_bars_1m", "crypto_index_bars_1m"),
        )
    ),
    rule_check("crypto_mark_bars_1m", MARK_NEAR_INDEX),
]
# each asset is crypto_<its dataset>
CRYPTO_CHECKS = [
    by_venue(
        check,
        check.asset.removeprefix("crypto_"),
        lambda: load_sources_config().crypto_instruments_by_venue(),
    )
    for check in CRYPTO_SLICE_CHECKS
]
# crypto_snapshots' assets (instrument) and the option chains (chain)
CRYPTO_SNAPSHOT_CHECKS = [
    rule_check("crypto_book_snapshots", PRICES_POSITIVE["books"], INSTRUMENT),
    rule_check("crypto_tickers", TICKER_NOT_CROSSED, INSTRUMENT),
    rule_check("crypto_open_interest_snapshots", OPEN_INTEREST_NOT_NEGATIVE, INSTRUMENT),
]
OPTION_CHAIN_CHECKS = [rule_check("crypto_option_chains", OPTIONS_SANE, INSTRUMENT)]
# Binance dump files (day x instrument)
BINANCE_DUMP_CHECKS = [
    *(rule_check("binance_dump_trades", rule) for rule in TRADE_RULES),
    trade_id_check("binance_dump_trades"),
    *(rule_check("binance_dump_bars_1m", rule) for rule in CRYPTO_BAR_RULES),
]
# the stock feeds (day): each feed's assets, its datasets' rules over the day's loads it wrote
STOCK_RULES = {
    "bars_1m": STOCK_BAR_RULES,
    "daily_bars": (
        BARS_CONSISTENT["daily_bars"],
        TIMESTAMPS_INSIDE_DAY["daily_bars"],
        UNIT_STEP_REVERTS["daily_bars"],
    ),
}
STOCK_FEED_CHECKS = {
    name: [
        rule_check(feed.asset(dataset), rule, DAY, name)
        for dataset in source(name).datasets
        for rule in STOCK_RULES[dataset]
    ]
    for name, feed in STOCK_FEEDS.items()
}
