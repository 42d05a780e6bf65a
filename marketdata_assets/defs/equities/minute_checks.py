"""Asset checks of the TimescaleDB minute bars and their monthly K-line (declared in
quality/minute_bars/checks.py, made asset checks by defs/_common/checks.py): the validation
queries A-E on the K-line (A warns, B-E block) in one step, on one connection; per month partition
(every month has its own verdict in the UI; a range run, `make run`'s single-run backfill, reports
one per month) completeness, unit stretches and the plausible time window of the minute bars, and
the K-line's coverage and unit stretches."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.equities.partitions import minute_bar_months
from marketdata_assets.orchestration import pools
from marketdata_assets.quality.minute_bars.checks import (
    KLINE_COVERAGE_CHECKS,
    KLINE_VALIDATIONS,
    MINUTE_CHECKS,
)

kline_checks = asset_checks(KLINE_VALIDATIONS, step="kline_checks")
minute_bar_checks = asset_checks(
    MINUTE_CHECKS, minute_bar_months, step="minute_bar_checks", pool=pools.TIMESCALEDB
)
kline_coverage_checks = asset_checks(
    KLINE_COVERAGE_CHECKS, minute_bar_months, step="kline_coverage_checks", pool=pools.TIMESCALEDB
)
