"""Asset checks of the ticks domain (the rules and their SQL: quality/slices.py), partitioned like
their assets so a run checks exactly what it loaded:

- crypto and dumps (day x instrument): the slices of those instruments and days;
- A-shares / Yahoo (day): the day's slices whose active load this source wrote (ingest_log);
- snapshots (instrument; option chains: chain): those instruments' latest day.

A run, a range run too, records one Passed/Failed evaluation per partition (`evaluate`: one
ClickHouse query per measure for the whole range, grouped by partition).
"""

import warnings
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone

import dagster as dg

# the type of the public AssetCheckEvaluation's target_materialization_data, not exported by `dagster`
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as Target,
)

from marketdata_assets.core import calendars
from marketdata_assets.core.markdown import table
from marketdata_assets.defs.ticks.partitions import (
    a_share_days,
    binance_dump_partitions,
    crypto_instruments,
    crypto_partitions,
    days_of,
    option_chains,
    slice_keys,
    yahoo_days,
)
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
    Rule,
    RuleResult,
    Scope,
    count,
    funding_caps,
    latest_scope,
    minute_grid,
    slice_scope,
    source_scope,
    with_params,
)
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.sources import load_sources_config
from marketdata_assets.sources.tushare import feeds as tushare_feeds
from marketdata_assets.sources.yahoo import feeds as yahoo_feeds


def _targets(instance: dg.DagsterInstance, asset_key: dg.AssetKey, keys: list[str]) -> dict[str, Target]:
    """The latest materialization of each partition (what its evaluation checked, as Dagster records
    for a one-partition AssetCheckResult): two queries for the whole range."""
    ids = instance.get_latest_storage_id_by_partition(asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                      set(keys))
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(
        ids.values())), limit=len(ids)).records if ids else []
    return {r.partition_key: Target(storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp)
            for r in records}


def record(context: dg.AssetCheckExecutionContext, outcomes: Mapping[str, tuple[bool, dict, str]],
           severity: str = "ERROR", severities: Mapping[str, str] | None = None) -> Iterator:
    """The check's (empty) output, then one evaluation per partition of the run (a range run too):
    `outcomes[partition key]` = (passed, metadata, description), with `severity` (or the partition's
    own in `severities`). A returned AssetCheckResult would carry no partition when the run has several."""
    (spec,) = context.check_specs
    keys = [str(k) for k in context.partition_keys]
    targets = _targets(context.instance, spec.asset_key, keys)
    yield dg.Output(None)
    for key in keys:
        passed, metadata, description = outcomes[key]
        yield dg.AssetCheckEvaluation(asset_key=spec.asset_key, check_name=spec.name,
                                      passed=passed, metadata=metadata,
                                      target_materialization_data=targets.get(key),
                                      severity=dg.AssetCheckSeverity((severities or {}).get(key, severity)),
                                      description=description,
                                      blocking=spec.blocking, partition=key)


def evaluate(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource, rule: Rule, scope: Scope,
             checked: Callable[[str], str] = str, provisional: Mapping[str, str] | None = None) -> Iterator:
    """`record` of the rule's violations in each partition's loads, with a sample in the metadata.
    A partition in `provisional` (key -> what to upgrade) was judged on a provisional calendar:
    it is a WARN saying so, whatever was found."""
    provisional = provisional or {}
    keys = [str(k) for k in context.partition_keys]
    with clickhouse.get_client() as client:
        results = count(client, clickhouse.database, rule, scope)
    outcomes = {}
    for key in keys:
        result = results.get(key, RuleResult())
        metadata = {"violations": result.violations, "rows_checked": result.rows_checked,
                    "checked": checked(key), "rule": rule.description}
        if result.sample:
            metadata["sample"] = dg.MetadataValue.md(table(result.sample_columns, result.sample))
        outcomes[key] = (result.violations == 0, metadata, rule.description)
        if key in provisional:
            metadata["calendar"] = provisional[key]
            outcomes[key] = (False, metadata, f"{provisional[key]}. {rule.description}")
    yield from record(context, outcomes, rule.severity, {key: "WARN" for key in provisional})


def _crypto_check(asset: str, rule: Rule, partitions_def) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> Iterator:
        slices = slice_keys(context.partition_keys, [rule.dataset])
        yield from evaluate(context, clickhouse, rule, slice_scope(clickhouse.database, rule.dataset, slices))

    return check


def _stock_check(asset: str, rule: Rule, source: str, partitions_def) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> Iterator:
        scope = source_scope(clickhouse.database, rule.dataset, source, days_of(context.partition_keys))
        if rule is MINUTES_COMPLETE:
            with clickhouse.get_client() as client:
                scope = minute_grid(client, clickhouse.database, scope, SESSION_BAR_OPENS[source])
        yield from evaluate(context, clickhouse, rule, scope, provisional=provisional_partitions(scope))

    return check


def provisional_partitions(scope: Scope) -> dict[str, str]:
    """Day partition ('YYYY-MM-DD') -> what its provisional calendar days say (calendars.provisional_note),
    for the venue-days `minute_grid` judged after a calendar's last known session."""
    notes: dict[str, dict[str, str]] = {}  # one note per calendar (NYSE, NMS, ... are all XNYS)
    for venue, day in scope.provisional:
        notes.setdefault(day.isoformat(), {})[calendars.calendar_code(venue)] = calendars.provisional_note(venue)
    return {key: "; ".join(f"{text} ({key} judged provisionally)" for text in by_code.values())
            for key, by_code in notes.items()}


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


BAR_RULES = (BARS_CONSISTENT["bars_1m"], TIMESTAMPS_INSIDE_DAY["bars_1m"], ON_THE_MINUTE_GRID,
             UNIT_STEP_REVERTS["bars_1m"])
CRYPTO_BAR_RULES = (*BAR_RULES, PRICES_POSITIVE["bars_1m"])
STOCK_BAR_RULES = (*BAR_RULES, MINUTES_COMPLETE)
# each stock source's bar convention: the bar opens a full day has (core.calendars underneath)
SESSION_BAR_OPENS = {"TUSHARE": tushare_feeds.session_bar_opens, "YAHOO": yahoo_feeds.session_bar_opens}

# Partitioned asset checks are a preview feature of Dagster 1.13 (checked: context.partition_keys
# is the run's keys, single partitions and ranges; an evaluation yielded with its partition is
# recorded on that partition); the warning would print on every load.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    ticks_checks = [
        *(_crypto_check(asset, rule, crypto_partitions) for asset in ("crypto_trades",)
          for rule in (NO_DUPLICATE_TRADE_IDS, TIMESTAMPS_INSIDE_DAY["trades"], PRICES_POSITIVE["trades"])),
        *(_crypto_check("crypto_bars_1m", rule, crypto_partitions) for rule in CRYPTO_BAR_RULES),
        *(_crypto_check("binance_dump_trades", rule, binance_dump_partitions)
          for rule in (NO_DUPLICATE_TRADE_IDS, TIMESTAMPS_INSIDE_DAY["trades"], PRICES_POSITIVE["trades"])),
        *(_crypto_check("binance_dump_bars_1m", rule, binance_dump_partitions) for rule in CRYPTO_BAR_RULES),
        *(_stock_check("a_share_bars_1m", rule, "TUSHARE", a_share_days) for rule in STOCK_BAR_RULES),
        *(_stock_check("a_share_daily_bars", rule, "TUSHARE", a_share_days)
          for rule in (BARS_CONSISTENT["daily_bars"], TIMESTAMPS_INSIDE_DAY["daily_bars"],
                       UNIT_STEP_REVERTS["daily_bars"])),
        *(_stock_check("yahoo_bars_1m", rule, "YAHOO", yahoo_days) for rule in STOCK_BAR_RULES),
        _snapshot_check("crypto_book_snapshots", PRICES_POSITIVE["books"]),
        _snapshot_check("crypto_tickers", TICKER_NOT_CROSSED),
        _snapshot_check("crypto_open_interest_snapshots", OPEN_INTEREST_NOT_NEGATIVE),
        _snapshot_check("crypto_option_chains", OPTIONS_SANE, option_chains),
        _funding_check(),
        _crypto_check("crypto_open_interest", OPEN_INTEREST_NOT_NEGATIVE, crypto_partitions),
        _crypto_check("crypto_liquidations", NO_DUPLICATE_LIQUIDATION_IDS, crypto_partitions),
        *(_crypto_check(asset, TIMESTAMPS_INSIDE_DAY[dataset], crypto_partitions)
          for dataset, asset in (("funding", "crypto_funding"), ("open_interest", "crypto_open_interest"),
                                 ("liquidations", "crypto_liquidations"), ("mark_bars_1m", "crypto_mark_bars_1m"),
                                 ("index_bars_1m", "crypto_index_bars_1m"))),
        *(_crypto_check(asset, BARS_CONSISTENT[dataset], crypto_partitions)
          for dataset, asset in (("mark_bars_1m", "crypto_mark_bars_1m"),
                                 ("index_bars_1m", "crypto_index_bars_1m"))),
        _crypto_check("crypto_mark_bars_1m", MARK_NEAR_INDEX, crypto_partitions),
    ]
