"""The main job of `make run`: materialize the whole asset graph on offline replay data.

Runs in-process against the instance in DAGSTER_HOME (Postgres storage), so the materializations
show up in the UI that `make run` serves next:

1. the store assets (databases, extensions, indexes), unpartitioned;
2. minute bars: replay CSV drops for the last three complete months (Beijing time) are written
   into the landing area once, then stock_1min_qfq, the monthly K-line and the daily MAs are
   materialized for those months as one range run (single-run backfill), with their checks.
Run it again and the loads are skipped (same content already loaded): only the refreshes redo work.
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from marketdata_assets import settings

# Codes with their names, and the layouts they are dropped in (the variants seen in real files).
REPLAY_MINUTE_FILES = [
    ("600000.SH", "cn_minute", {"bom": True}),
    ("000001.SZ", "cn_minute", {"encoding": "gbk"}),
    ("688981.SH", "cn_minute", {}),
    ("300750.SZ", "cn_minute", {"bom": True}),
    ("601398.SH", "cn_minute", {"encoding": "gbk"}),
]


def last_complete_months(n: int, today: date | None = None) -> list[date]:
    today = today or datetime.now(ZoneInfo("Asia/Shanghai")).date()
    months, year, month = [], today.year, today.month
    for _ in range(n):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        months.append(date(year, month, 1))
    return sorted(months)


def write_replay_minute_files(landing: Path, months: list[date]) -> list[Path]:
    """Deterministic minute-bar CSVs covering `months`, written once (kept if present)."""
    from marketdata_assets.replay import minute_csv

    first = months[0]
    end = date(months[-1].year + months[-1].month // 12, months[-1].month % 12 + 1, 1)
    days = [d for d in minute_csv.trading_days(first, 80) if d < end]
    written = []
    landing.mkdir(parents=True, exist_ok=True)
    for i, (code, layout, options) in enumerate(REPLAY_MINUTE_FILES):
        path = landing / f"replay_{code}_{first:%Y%m}-{months[-1]:%Y%m}.csv"
        if not path.exists():
            bars = minute_csv.make_bars(code, days, seed=i, base_price=8 + 7 * i, dirty=(i == 0))
            minute_csv.write_text(path, minute_csv.render(bars, layout), **options)
            written.append(path)
    return written


def plan(defs: dg.Definitions) -> list[tuple[str, list, dict]]:
    """(label, assets and checks, run tags) in dependency order."""
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    checks = list(defs.asset_checks or [])
    months = last_complete_months(3)
    write_replay_minute_files(settings.minute_bars_landing_dir(), months)
    bars = [a for a in assets if a.partitions_def is not None and a.group_names_by_key and
            set(a.group_names_by_key.values()) == {"bars"}]
    return [
        ("stores", [a for a in assets if a.partitions_def is None], {}),
        (f"minute bars {months[0]:%Y-%m}..{months[-1]:%Y-%m}", bars + checks,
         {"dagster/asset_partition_range_start": f"{months[0]:%Y-%m-%d}",
          "dagster/asset_partition_range_end": f"{months[-1]:%Y-%m-%d}"}),
    ]


def main() -> int:
    from marketdata_assets.definitions import defs as load_defs

    defs = load_defs()
    resources = defs.resources or {}
    failed = 0
    with dg.DagsterInstance.get() as instance:
        for label, assets, tags in plan(defs):
            started = time.monotonic()
            result = dg.materialize(assets, instance=instance, resources=resources,
                                    tags={"marketdata/launched_by": "make run", **tags}, raise_on_error=False)
            keys = sorted({key.to_user_string() for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys})
            checks = result.get_asset_check_evaluations()
            status = "ok" if result.success else "FAILED"
            print(f"[{status}] {label}: {len(keys)} assets ({', '.join(keys)}), "
                  f"{sum(c.passed for c in checks)}/{len(checks)} checks passed, "
                  f"{time.monotonic() - started:.1f} s, run {result.run_id}", flush=True)
            failed += not result.success
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
