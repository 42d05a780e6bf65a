"""Asset checks of the live assets, each hour judged by the day slices its load rewrote, one verdict with
each instrument's (`by_hour`):
- `live_trades` (declared in quality/slice_checks.py as the REST and dump trades' are): no duplicate
  trade id, timestamps inside the day, prices positive, and trade-id continuity (the ids before an
  instrument's capture began that day said, not failed; the refill's command named);
- the other live datasets (defs/live/datasets.py): the rules the REST loads of the same dataset get
  (quality/slice_checks.py `CRYPTO_CHECKS`, `CRYPTO_SNAPSHOT_CHECKS`): bars consistent, on the minute
  grid, prices positive; open interest not negative; no duplicate liquidation id; tickers not
  crossed; book levels' prices positive and, in each snapshot, the best bid below the best ask; and
  every timestamp inside its day (mark_funding, tickers and books too, the rule made for their
  tables); agg_trades: the trades' rules and trade-id continuity, over the aggregate ids."""

from dataclasses import replace

from marketdata_assets.core import settings
from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.live.continuity import refill_command
from marketdata_assets.defs.live.landed import asset_name
from marketdata_assets.defs.live.partitions import live_partitions
from marketdata_assets.ingest.live.hourly.dataset_rows import CHANNELS
from marketdata_assets.ingest.live.hourly.load import LIVE_VENUES, capture_starts
from marketdata_assets.quality.live_paths import LIVE_MATCHES_HOURLY_CHECK
from marketdata_assets.quality.slice_checks import (
    CRYPTO_BAR_RULES,
    TRADE_RULES,
    by_hour,
    rule_check,
    trade_id_check,
)
from marketdata_assets.quality.slices import (
    BOOK_NOT_CROSSED,
    NO_DUPLICATE_LIQUIDATION_IDS,
    OPEN_INTEREST_NOT_NEGATIVE,
    PRICES_POSITIVE,
    TICKER_NOT_CROSSED,
    TIMESTAMPS_INSIDE_DAY,
)


def inside_day(dataset: str):
    """`timestamps_inside_day` of a dataset (the trades' rule over the dataset's table)."""
    return TIMESTAMPS_INSIDE_DAY.get(dataset) or replace(TIMESTAMPS_INSIDE_DAY["trades"], dataset=dataset)


def landed_capture(client, database: str, slices):
    """The slices' capture starts from the landing files (ingest/live/hourly/load.py `capture_starts`)."""
    return capture_starts(client, database, settings.live_landing_dir(), slices)


LIVE_DATASET_RULES = {
    "tickers": (TICKER_NOT_CROSSED, inside_day("tickers")),
    "bars_1m": CRYPTO_BAR_RULES,
    "liquidations": (NO_DUPLICATE_LIQUIDATION_IDS, inside_day("liquidations")),
    "open_interest": (OPEN_INTEREST_NOT_NEGATIVE, inside_day("open_interest")),
    "mark_funding": (inside_day("mark_funding"),),
    "books": (PRICES_POSITIVE["books"], BOOK_NOT_CROSSED, inside_day("books")),
    "agg_trades": tuple(replace(rule, dataset="agg_trades") for rule in TRADE_RULES),  # the trades' rules
}
# the live hours of trades (every venue of ingest/live/hourly/load.py) and of the other datasets
# (their venues)
LIVE_TRADE_CHECKS = [
    *(by_hour(rule_check("live_trades", rule), "trades", list(LIVE_VENUES)) for rule in TRADE_RULES),
    by_hour(
        trade_id_check("live_trades", capture=landed_capture), "trades", list(LIVE_VENUES), refill_command
    ),
    LIVE_MATCHES_HOURLY_CHECK,
]
LIVE_DATASET_CHECKS = [
    *(
        by_hour(rule_check(asset_name(dataset), rule), rule.dataset, list(CHANNELS[dataset]))
        for dataset, rules in LIVE_DATASET_RULES.items()
        for rule in rules
    ),
    by_hour(
        trade_id_check(asset_name("agg_trades"), "agg_trades"), "agg_trades", list(CHANNELS["agg_trades"])
    ),
]

live_checks = asset_checks(LIVE_TRADE_CHECKS, live_partitions)
live_dataset_checks = asset_checks(LIVE_DATASET_CHECKS, live_partitions)
