"""Seed 004's validation queries A-E on the monthly K-line: A warns, B-E block. One step runs the
five on one connection (five steps would each pay a process start for a sub-second query)."""

import dagster as dg

from marketdata_assets.defs.bars.assets import stock_monthly_kline
from marketdata_assets.lib.bars import kline
from marketdata_assets.lib.markdown import table
from marketdata_assets.resources import TimescaleResource


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
