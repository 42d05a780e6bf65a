"""Seed 004's validation queries A-E on the monthly K-line: A warns, B-E block."""

import dagster as dg

from marketdata_assets.defs.bars.assets import stock_monthly_kline
from marketdata_assets.lib.bars import kline
from marketdata_assets.lib.markdown import table
from marketdata_assets.resources import TimescaleResource


def _kline_check(validation: kline.Validation) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=stock_monthly_kline, name=f"{validation.key}_{validation.name}",
                    blocking=validation.blocking, description=f"{validation.key}. {validation.description}")
    def check(timescale: TimescaleResource) -> dg.AssetCheckResult:
        with timescale.connection() as conn:
            (result,) = kline.run_validations(conn, validations=[validation])
        metadata = {"rows_found": result.rows_found, "query": dg.MetadataValue.md(f"```sql\n{validation.sql}\n```")}
        if result.sample_rows:
            columns = list(result.sample_rows[0])
            metadata["sample"] = dg.MetadataValue.md(table(columns, ([r[c] for c in columns] for r in result.sample_rows)))
        return dg.AssetCheckResult(
            passed=result.passed, metadata=metadata,
            severity=dg.AssetCheckSeverity.ERROR if validation.blocking else dg.AssetCheckSeverity.WARN)

    return check


kline_checks = [_kline_check(validation) for validation in kline.VALIDATIONS]
