"""What a crypto history partition (day x venue of `crypto_<dataset>`) holds, whichever load stored it:
the rows of the slices a run found stored (`count_held`), and the materializations a load of another asset
into the same tables (the Binance archives) reports of the crypto partitions it filled
(`history_materializations`), judged as a crypto run would judge them now. So a day past the venue's REST
history held by the archives is materialized with their rows whichever load ran first.
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg

from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.defs._common.ingest import partition_tags, verdict_metadata
from marketdata_assets.defs._common.partitions import crypto_days, crypto_key, crypto_venues
from marketdata_assets.ingest.engine import IngestReport
from marketdata_assets.quality.checks import ClickHouse
from marketdata_assets.quality.reach import (
    NOT_STORED_BEYOND_REACH,
    STORED_BEYOND_REACH,
    loads_from,
    unreached,
)
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.interface import HISTORY
from marketdata_assets.sources.venues import serves
from marketdata_assets.stores.clickhouse import tables as ct


def history_asset(dataset: str) -> str:
    """The crypto asset of a HISTORY dataset (defs/crypto `HISTORY_ASSETS`): `crypto_<dataset>`."""
    return f"crypto_{dataset}"


def count_held(clickhouse: ClickHouseResource, report: IngestReport) -> None:
    """The stored rows of the report's held slices (`IngestReport.held_rows`: a partition's `rows_stored`)."""
    if report.held:
        with clickhouse.get_client() as client:
            report.held_rows.update(ct.stored_rows(client, clickhouse.database, report.held))


def history_materializations(
    clickhouse: ClickHouseResource, partition_keys, datasets, source: str
) -> Iterator[dg.AssetMaterialization]:
    """A materialization of each crypto history partition among `partition_keys` (day x venue) of
    `datasets` that something is stored of and that a crypto run would not fetch more of now: each
    configured instrument's slice stored, or past the venue's REST history (then partial, its missing
    slices named). Its metadata is the crypto run's verdict of it: `verdict`, `rows_stored`, `partial`."""
    configured = load_sources_config().crypto_instruments_by_venue()
    wanted: dict[tuple[str, str], list[SliceKey]] = {}
    for key in map(str, partition_keys):
        day, venue = key.split("|")
        if venue not in crypto_venues.get_partition_keys() or not crypto_days.has_partition_key(day):
            continue
        for dataset in datasets:
            keys = [
                SliceKey(dataset, venue, i, date.fromisoformat(day))
                for i in configured.get(venue, ())
                if serves(venue, dataset, i) == HISTORY
            ]
            if keys:
                wanted[(dataset, key)] = keys
    every = [k for keys in wanted.values() for k in keys]
    if not every:
        return
    with clickhouse.get_client() as client:
        rows = ct.stored_rows(client, clickhouse.database, every)
        found = unreached(ClickHouse(client, clickhouse.database), every)
    beyond = set(found.beyond)
    for (dataset, partition), keys in sorted(wanted.items()):
        if any(k not in rows and k not in beyond for k in keys):
            continue  # within the REST history: a crypto run fetches it
        part = IngestReport(
            held={k: STORED_BEYOND_REACH for k in keys if k in rows},
            not_fetched={k: NOT_STORED_BEYOND_REACH for k in keys if k not in rows},
            held_rows={k: rows[k] for k in keys if k in rows},
        )
        verdict = part.verdict(loads_from)
        if verdict.stored:
            day, venue = partition.split("|")
            yield dg.AssetMaterialization(
                asset_key=history_asset(dataset),
                partition=crypto_key(day, venue),
                tags=partition_tags(dg.MultiPartitionKey({"day": day, "venue": venue})),
                metadata={
                    **verdict_metadata(verdict, part.rows_stored()),
                    "stored_by": dg.MetadataValue.text(source),
                    "instruments": dg.MetadataValue.int(len(keys)),
                },
            )
