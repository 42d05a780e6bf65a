"""Asset checks of the equities assets in ClickHouse (A-shares from Tushare, Yahoo bars), per day
partition: the rules over the day's slices whose active load this source wrote (ingest_log); the
minute grid against the venue's calendar (a day past the calendar's last known session is judged
provisionally: a WARN saying so). The TimescaleDB minute bars' checks: minute_checks.py."""

from collections.abc import Iterator

import dagster as dg

from marketdata_assets.core import calendars
from marketdata_assets.defs._common.checks import BAR_RULES, evaluate, preview
from marketdata_assets.defs._common.partitions import days_of
from marketdata_assets.defs.equities.partitions import a_share_days, yahoo_days
from marketdata_assets.quality.slices import (
    BARS_CONSISTENT,
    MINUTES_COMPLETE,
    TIMESTAMPS_INSIDE_DAY,
    UNIT_STEP_REVERTS,
    Rule,
    Scope,
    minute_grid,
    source_scope,
)
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.tushare import feeds as tushare_feeds
from marketdata_assets.sources.yahoo import feeds as yahoo_feeds

STOCK_BAR_RULES = (*BAR_RULES, MINUTES_COMPLETE)
# each stock source's bar convention: the bar opens a full day has (core.calendars underneath)
SESSION_BAR_OPENS = {"TUSHARE": tushare_feeds.session_bar_opens, "YAHOO": yahoo_feeds.session_bar_opens}


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


with preview():
    equities_checks = [
        *(_stock_check("a_share_bars_1m", rule, "TUSHARE", a_share_days) for rule in STOCK_BAR_RULES),
        *(_stock_check("a_share_daily_bars", rule, "TUSHARE", a_share_days)
          for rule in (BARS_CONSISTENT["daily_bars"], TIMESTAMPS_INSIDE_DAY["daily_bars"],
                       UNIT_STEP_REVERTS["daily_bars"])),
        *(_stock_check("yahoo_bars_1m", rule, "YAHOO", yahoo_days) for rule in STOCK_BAR_RULES),
    ]
