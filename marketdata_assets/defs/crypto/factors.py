"""Factors (computed, not fetched): the registry's factors (ingest.factors) of each day x
instrument, computed inside ClickHouse over the stored trades, bars, books, funding and mark/index
bars and written as that partition's `factors` slice. Declarative automation materializes a
partition when its upstream partitions change (once its trades are there)."""

from datetime import date, timedelta

import dagster as dg

from marketdata_assets.core.charts import line_chart_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.figures import add_own
from marketdata_assets.defs._common.ingest import TICK_STORE
from marketdata_assets.defs._common.partitions import slice_keys
from marketdata_assets.defs.crypto.assets import GROUP
from marketdata_assets.defs.crypto.partitions import crypto_partitions
from marketdata_assets.ingest.factors import FACTORS, compute_factors_many
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer
from marketdata_assets.stores.clickhouse.series import series

SAME_PARTITION = (
    "crypto_trades",
    "crypto_bars_1m",
    "crypto_funding",
    "crypto_mark_bars_1m",
    "crypto_index_bars_1m",
)
CHARTED = ("return", "realized_vol", "buy_sell_imbalance", "basis_annualized")
CHART_DAYS = 30

# eager, except that a dataset the instrument does not have (no funding for a spot pair, no book
# snapshots yet) does not hold it back: only missing trades do
AUTOMATION = dg.AutomationCondition.eager().without(
    ~dg.AutomationCondition.any_deps_missing()
) & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.missing()).allow(
    dg.AssetSelection.assets("crypto_trades")
)


def _with_trades(client, database: str, keys: list) -> list:
    """The slices whose instrument has trades loaded that day (a configured instrument not loaded yet has
    no factors to compute)."""
    loaded = set()
    for venue in {k.venue for k in keys}:
        loaded |= {
            (venue, *s)
            for s in ct.loaded_slices(client, database, "trades", venue, sorted({k.day for k in keys}))
        }
    return [k for k in keys if (k.venue, k.instrument, k.day) in loaded]


@dg.asset(
    group_name=GROUP,
    partitions_def=crypto_partitions,
    pool=pools.CLICKHOUSE,
    kinds={"clickhouse"},
    deps=[
        TICK_STORE,
        *SAME_PARTITION,
        dg.AssetDep("crypto_book_snapshots", partition_mapping=dg.AllPartitionMapping()),
    ],
    automation_condition=AUTOMATION,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def crypto_factors(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource) -> dg.MaterializeResult:
    """Daily factors per instrument (return, VWAP, realized volatility, volume, trade count, buy/sell
    imbalance, spread and depth imbalance from book snapshots, annualized funding and basis) in
    ClickHouse `factors` (read: factors_v, factors_range); charted over the last 30 days."""
    rows, groups = [], {}
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        keys = _with_trades(client, clickhouse.database, slice_keys(context.partition_keys, ["factors"]))
        for key in keys:
            groups.setdefault((key.venue, key.day), []).append(key.instrument)
        for (venue, day), instruments in sorted(groups.items()):  # one query and one write per venue-day
            frame = compute_factors_many(client, clickhouse.database, venue, instruments, day)
            writer.write_slices(
                client,
                clickhouse.database,
                "factors",
                frame,
                venue,
                day,
                context.run.run_id,
                instruments=instruments,
            )
            rows += [
                (day, f"{venue}:{i}", name, value)
                for i, name, value in zip(frame["instrument"], frame["factor"], frame["value"])
            ]
        _each_partition(context, groups, rows)
        if not keys:
            context.log.info("crypto_factors: no instrument of the run's venue-days has trades loaded")
            return dg.MaterializeResult(metadata={"run_slices": 0, "run_rows": dg.MetadataValue.int(0)})
        last = max(k.day for k in keys)
        first = last - timedelta(days=CHART_DAYS - 1)
        pairs = {(k.venue, k.instrument) for k in keys}
        charts = {
            f"chart_{name}": dg.MetadataValue.md(
                svg_markdown_image(
                    line_chart_svg(
                        f"{name}, {first}..{last}",
                        series(
                            client,
                            clickhouse.database,
                            "factors",
                            "value",
                            pairs,
                            first,
                            last,
                            86_400,
                            where={"factor": name},
                        ),
                    ),
                    name,
                )
            )
            for name in CHARTED
        }
    context.log.info(f"crypto_factors: {len(keys)} instrument-day(s), {len(rows)} values")
    return dg.MaterializeResult(
        metadata={
            "run_slices": len(keys),
            "run_rows": dg.MetadataValue.int(len(rows)),
            "factors": dg.MetadataValue.md(
                table(["factor", "description"], ((f.name, f.description) for f in FACTORS))
            ),
            "values_table": dg.MetadataValue.md(
                table(["day", "instrument", "factor", "value"], rows, limit=300)
            ),
            **charts,
        }
    )


def _each_partition(context, groups: dict[tuple[str, date], list[str]], rows: list[tuple]) -> None:
    """Each day x venue partition's own figures: its instruments with trades (slices), its values and nulls;
    the run's are `run_*` on the output (the console counts `run_rows` once, apps/launch.py)."""
    keys = context.partition_keys
    values: dict[tuple[str, date], list] = {}  # (venue, day) -> its values: one pass over the run's rows
    for day, name, _, value in rows:
        values.setdefault((name.split(":", 1)[0], day), []).append(value)
    for key in keys:
        dims = key.keys_by_dimension
        venue, day = dims["venue"], date.fromisoformat(dims["day"])
        mine = values.get((venue, day), [])
        add_own(
            context,
            key,
            {
                "slices": len(groups.get((venue, day), [])),
                "rows": dg.MetadataValue.int(len(mine)),
                "values": len(mine),
                "nulls": sum(value is None for value in mine),
            },
            len(keys),
        )
