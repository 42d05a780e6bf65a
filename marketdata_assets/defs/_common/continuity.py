"""The trade-id continuity check (the logic: quality/continuity.py), for every trades asset of every
domain: per day x instrument partition, the ids missing inside the slice and at midnight (after the
previous day, when it is stored with ids of the same sequence), named with their first ranges; one
evaluation per partition."""

from collections.abc import Iterator

import dagster as dg

from marketdata_assets.defs._common.checks import record
from marketdata_assets.defs._common.partitions import slice_keys
from marketdata_assets.quality.continuity import find_holes
from marketdata_assets.resources import ClickHouseResource

CHECK = "trade_ids_continuous"
DESCRIPTION = ("No trade id is missing where the venue numbers trades one by one per instrument (Binance aggregate "
               "or individual trade ids, OKX tradeId, Deribit trade_seq): inside the day, and from the previous "
               "day's last id (when stored, same sequence) to this day's first.")


def continuity_check(asset: str, partitions_def, dataset: str = "trades") -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=CHECK, description=DESCRIPTION, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> Iterator:
        with clickhouse.get_client() as client:
            found = find_holes(client, clickhouse.database, slice_keys(context.partition_keys, [dataset]),
                               dataset=dataset)
        outcomes = {}
        for key in map(str, context.partition_keys):
            ids = found.get(key)
            metadata = {**(ids.metadata() if ids else {}), "checked": key}
            if ids:
                metadata["holes"] = dg.MetadataValue.md(metadata["holes"])
            outcomes[key] = (ids is None or ids.passed, metadata, ids.summary() if ids else f"{key}: no active load")
        yield from record(context, outcomes)

    return check
