"""Seed 004's validation queries A-E on the monthly K-line: A warns, B-E block. One step runs the
five on one connection (five steps would each pay a process start for a sub-second query).
Then issue #13's proofs per month partition: minute completeness against the trading calendar,
K-line coverage with the cleaning rule that removed a code, and x100 unit stretches; issue #28's
plausible time window of each month's codes."""

from datetime import date

import dagster as dg

from marketdata_assets.core import calendars
from marketdata_assets.core.markdown import table
from marketdata_assets.defs.equities.minute_bars import stock_1min_qfq, stock_monthly_kline
from marketdata_assets.defs.equities.partitions import minute_bar_months
from marketdata_assets.orchestration import pools
from marketdata_assets.quality.minute_bars import completeness, kline_coverage, time_window, units
from marketdata_assets.resources import TimescaleResource
from marketdata_assets.stores.timescale import kline


def _name(validation: kline.Validation) -> str:
    return f"{validation.key}_{validation.name}"


@dg.multi_asset_check(specs=[
    dg.AssetCheckSpec(_name(v), asset=stock_monthly_kline, blocking=v.blocking, description=f"{v.key}. {v.description}")
    for v in kline.VALIDATIONS])
def kline_checks(timescale: TimescaleResource):
    with timescale.connection() as conn:
        results = kline.run_validations(conn, validations=kline.VALIDATIONS)
    for validation, result in zip(kline.VALIDATIONS, results):
        metadata = {"rows_found": result.rows_found, "query": dg.MetadataValue.md(f"```sql\n{validation.sql}\n```")}
        if result.sample_rows:
            columns = list(result.sample_rows[0])
            metadata["sample"] = dg.MetadataValue.md(table(columns, ([r[c] for c in columns] for r in result.sample_rows)))
        yield dg.AssetCheckResult(
            asset_key=stock_monthly_kline.key, check_name=_name(validation), passed=result.passed, metadata=metadata,
            severity=dg.AssetCheckSeverity.ERROR if validation.blocking else dg.AssetCheckSeverity.WARN)


# --- Completeness, K-line coverage, unit errors: per month partition ---------------------------
# The specs are partitioned like the assets (a preview feature of Dagster 1.13), so every month
# has its own verdict in the UI; a range run (single-run backfill, `make run`) reports one per month.

MINUTE_CHECKS = {
    "complete_minutes": (completeness.check_month,
                         ("Every code that traded in the month has every session minute (XSHG calendar, bars labelled "
                          "by their end) on every trading day: missing minutes and off-session bars ERROR; suspended "
                          "code-days and closing-auction (14:58/14:59) gaps WARN; so does a month past the last session the "
                          "installed exchange-calendars knows (judged provisionally: upgrade it).")),
    "no_unit_stretch": (units.check_minutes,
                        ("No stretch of bars at ~100x (or 1/100) the scale around it that reverts: WARN naming code, "
                         "first and last bar (a lone x100 move is listed, not flagged).")),
    "times_inside_window": (time_window.check_month,
                            ("No bar of the month's codes lies outside the plausible window (core/plausibility.py): "
                             "after now + the tolerance in Beijing time (the month's own future included; a 2062 "
                             "typo no partition owns) or before the A-share venues' first session. ERROR naming "
                             "code and time.")),
}
KLINE_CHECKS = {
    "every_code_has_a_kline_row": (kline_coverage.check_month,
                                   ("Every code with minute bars in the month has its K-line row, else ERROR naming the "
                                    "cleaning rule that removed its rows (or a stale refresh).")),
    "no_unit_stretch": (units.check_kline,
                        "No month-to-month stretch at ~100x that reverts: WARN naming code and months."),
}


def _specs(asset, checks: dict) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=asset, partitions_def=minute_bar_months, description=text)
            for name, (_, text) in checks.items()]


def _md_or_plain(value):
    if isinstance(value, str) and value.startswith(("|", "![")):
        return dg.MetadataValue.md(value)
    return dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value


def _judge(context: dg.AssetCheckExecutionContext, timescale: TimescaleResource, asset_key: dg.AssetKey,
           checks: dict):
    """One evaluation per selected check and month of the run, then the step's (empty) outputs."""
    names = [key.name for key in context.selected_asset_check_keys if key.asset_key == asset_key]
    with timescale.connection() as conn:
        for partition in context.partition_keys:
            for name in names:
                try:
                    found = checks[name][0](conn, date.fromisoformat(partition))
                except calendars.OutOfCalendar as error:  # before the calendar's first session (2000)
                    yield dg.AssetCheckEvaluation(asset_key=asset_key, check_name=name, passed=False,
                                                  severity=dg.AssetCheckSeverity.WARN, partition=partition,
                                                  description=f"cannot judge {partition[:7]}: {error}")
                    continue
                yield dg.AssetCheckEvaluation(
                    asset_key=asset_key, check_name=name, passed=found.passed, partition=partition,
                    severity=dg.AssetCheckSeverity(found.severity or "WARN"), description=found.description(),
                    metadata={key: _md_or_plain(value) for key, value in found.metadata().items() if value is not None})
    for output in context.op_execution_context.selected_output_names:
        yield dg.Output(None, output_name=output)


@dg.multi_asset_check(specs=_specs(stock_1min_qfq, MINUTE_CHECKS), can_subset=True, pool=pools.TIMESCALEDB)
def minute_bar_checks(context: dg.AssetCheckExecutionContext, timescale: TimescaleResource):
    """Completeness and unit scale of each month's minute bars (quality/minute_bars/completeness.py, units.py)."""
    yield from _judge(context, timescale, stock_1min_qfq.key, MINUTE_CHECKS)


@dg.multi_asset_check(specs=_specs(stock_monthly_kline, KLINE_CHECKS), can_subset=True, pool=pools.TIMESCALEDB)
def kline_coverage_checks(context: dg.AssetCheckExecutionContext, timescale: TimescaleResource):
    """K-line coverage and unit scale of each month (quality/minute_bars/kline_coverage.py, units.py)."""
    yield from _judge(context, timescale, stock_monthly_kline.key, KLINE_CHECKS)
