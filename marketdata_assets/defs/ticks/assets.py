"""Ticks (issue 4): the ClickHouse store and the crypto venues (Binance spot, OKX v5, Deribit v2).

- `tick_store`: the database, tables and views of lib.ticks.clickhouse_tables.
- `crypto_trades` + `crypto_bars_1m` (one step, `crypto_ticks`): UTC day x instrument partitions.
  One client per venue for the whole step (one rate limiter per provider per run), the venues
  concurrently, `workers` instrument-days of a venue at once. Each (kind, instrument, day) slice is
  written as soon as it is fetched (lib.ticks.writer.write_slice: a new load, then the pointer flip),
  so a killed run leaves every slice either as before or complete, and a re-run gives exactly the
  rows of an uninterrupted run. One ingest_log row per (run, provider, kind, instrument, day).
- `crypto_book_snapshots`: instrument partitions (the dynamic dimension alone). A venue serves only
  its CURRENT book, so a day cannot be re-fetched later: each materialization takes one snapshot per
  instrument and adds it to the slice of its UTC day (the day's active rows + the new snapshot,
  written as a new load), on the 15-minute schedule.

Bad input: a malformed page, a missing field, an unparsable number fail that slice with the client's
error (venue, instrument, day, request); the other slices complete and are written. Then the step
FAILS (when more than `max_failed` slices failed) with the failures in the failure's metadata, so
the partitions show as failed and the catch-up schedule re-requests them with `retry_failed`
(only the slices whose latest attempt did not succeed are fetched again). A ban (418, "IP banned
until") or a permission error stops that venue for the rest of the run; the other venues go on.
"""

import asyncio
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any

import dagster as dg
import polars as pl

from marketdata_assets import pools
from marketdata_assets.defs.ticks import ingest
from marketdata_assets.defs.ticks.partitions import crypto_instruments, crypto_partitions, crypto_slices
from marketdata_assets.lib.markdown import table
from marketdata_assets.lib.ticks import clickhouse_tables as ct
from marketdata_assets.lib.ticks import writer
from marketdata_assets.lib.ticks.instruments import parse_partition_key
from marketdata_assets.lib.ticks.config import load_providers_config
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.providers import CryptoVenueResource

UTC = timezone.utc
GROUP = "ticks"
# One step of the crypto venues at a time across runs (an unconfigured pool has one slot), so two
# runs never add their rate limits up.
CRYPTO_POOL = pools.CRYPTO_VENUES
CRYPTO_KINDS = {"crypto_trades": "trades", "crypto_bars_1m": "bars"}


@dg.asset(group_name=GROUP, pool=pools.CLICKHOUSE, kinds={"clickhouse"})
def tick_store(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource) -> dg.MaterializeResult:
    """The ClickHouse database that holds normalized trades, order-book snapshots and bars: its
    tables, the load pointer, the read views and the ingest log (created if missing)."""
    started = time.monotonic()
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        version = client.server_version
        tables = client.query(
            "SELECT name, engine, total_rows FROM system.tables WHERE database = {db:String} ORDER BY name",
            parameters={"db": clickhouse.database}).result_rows
    context.log.info(f"ClickHouse {version}: database {clickhouse.database} has {len(tables)} tables and views")
    return dg.MaterializeResult(metadata={
        "engine_version": version,
        "embedded": clickhouse.embedded,
        "database": clickhouse.database,
        "tables": dg.MetadataValue.md(table(["table", "engine", "rows"], ((n, e, r or 0) for n, e, r in tables))),
        "seconds": round(time.monotonic() - started, 3),
    })


# --------------------------------------------------------------------------------------------
# Shared by the ticks assets
# --------------------------------------------------------------------------------------------

class RetryOptions(dg.Config):
    retry_failed: bool = False
    """Only slices whose latest ingest_log attempt did not succeed (failed, skipped, never tried)."""
    retry_failed_from_run: str = ""
    """Only slices that failed or were skipped in this run id."""
    attempts: int = 2
    """Fetch attempts per slice (on top of the HTTP retries of 429/5xx/timeouts)."""


class SliceLoadConfig(RetryOptions):
    max_failed: int = 0
    """The step fails when more slices than this failed (after writing the others)."""


class ClickHouseWriter:
    """Every ClickHouse call of a step on one thread, off the event loop: fetches go on while a slice
    is written, and writes never overlap."""

    def __init__(self, client):
        self.client = client
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-writer")

    async def call(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(self.client, *args, **kwargs))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def slices_to_fetch(client, database: str, config: RetryOptions, provider: str, kind: str,
                    candidates: Iterable[tuple[str, date]]) -> tuple[list[tuple[str, date]], int]:
    """The (instrument, day) slices of the run to fetch under the retry options; and how many were left out."""
    candidates = list(dict.fromkeys(candidates))
    days = sorted({d for _, d in candidates})
    keep = candidates
    if config.retry_failed_from_run:
        wanted = ingest.not_ok_in_run(client, database, config.retry_failed_from_run, provider, kind, days)
        keep = [c for c in keep if c in wanted]
    if config.retry_failed:
        done = ingest.loaded_ok(client, database, provider, kind, days)
        keep = [c for c in keep if c not in done]
    return keep, len(candidates) - len(keep)


def time_range(frame: pl.DataFrame) -> tuple[Any, Any]:
    if frame.height == 0:
        return None, None
    return frame["ts"].min(), frame["ts"].max()


def stats_metadata(stats: ingest.KeyStats) -> dict:
    return {"requests": stats.requests, "retries": stats.retries, "rate_limited_429": stats.rate_limited,
            "server_errors_5xx": stats.server_errors, "latency_p50_ms": stats.percentile_ms(0.5),
            "latency_p95_ms": stats.percentile_ms(0.95)}


def fail_step(description: str, metadata: dict, failures: list[tuple[str, str, str, int]]) -> dg.Failure:
    first = "; ".join(f"{what}: {error[:300]}" for what, _, error, _ in failures[:3])
    more = f" (and {len(failures) - 3} more, see the failures table)" if len(failures) > 3 else ""
    return dg.Failure(description=f"{description}. {first}{more}", metadata={
        **metadata, "failures": dg.MetadataValue.md(ingest.failures_table(failures))}, allow_retries=False)


# --------------------------------------------------------------------------------------------
# Crypto trades and 1-minute bars
# --------------------------------------------------------------------------------------------

def _crypto_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec("crypto_trades", deps=[tick_store], group_name=GROUP, kinds={"clickhouse", "polars"},
                     description="Trades of Binance spot (aggregate trades), OKX and Deribit per UTC day and "
                                 "instrument, normalized (lib.ticks.frames), in ClickHouse `trades` (read: trades_v, "
                                 "trades_range)."),
        dg.AssetSpec("crypto_bars_1m", deps=[tick_store], group_name=GROUP, kinds={"clickhouse", "polars"},
                     description="The venues' own 1-minute bars per UTC day and instrument, in ClickHouse "
                                 "`bars_1m` (read: bars_1m_v, bars_1m_range)."),
    ]


@dg.multi_asset(name="crypto_ticks", specs=_crypto_specs(), partitions_def=crypto_partitions, can_subset=True,
                backfill_policy=dg.BackfillPolicy.single_run(), pool=CRYPTO_POOL)
def crypto_ticks(context: dg.AssetExecutionContext, config: SliceLoadConfig, clickhouse: ClickHouseResource,
                 binance: CryptoVenueResource, okx: CryptoVenueResource, deribit: CryptoVenueResource):
    """Trades and 1-minute bars of the run's (day, instrument) partitions from the venues' REST APIs."""
    started = time.monotonic()
    run_id = context.run.run_id
    kinds = [kind for key, kind in CRYPTO_KINDS.items() if dg.AssetKey(key) in context.selected_asset_keys]
    partitions = crypto_slices(context.partition_keys)
    venues = {"BINANCE": binance, "OKX": okx, "DERIBIT": deribit}
    unknown = sorted({str(inst) for _, inst in partitions if inst.venue not in venues})
    if unknown:
        raise dg.Failure(f"crypto_ticks: no REST client for {unknown}: venues are {sorted(venues)}")
    db = clickhouse.database
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, db)
        keys_by_venue: dict[str, list[tuple]] = {}
        left_out = 0
        for venue in venues:
            for kind in kinds:
                candidates = [(inst.instrument, day) for day, inst in partitions if inst.venue == venue]
                keep, skipped = slices_to_fetch(client, db, config, venue, kind, candidates)
                left_out += skipped
                keys_by_venue.setdefault(venue, []).extend((kind, instrument, day) for instrument, day in keep)
        context.log.info(f"{len(partitions)} partition(s) x {len(kinds)} kind(s): "
                         f"{sum(map(len, keys_by_venue.values()))} slices to fetch"
                         + (f", {left_out} left out (retry options: already loaded or not failed)" if left_out else ""))
        runs, client_stats = asyncio.run(_fetch_crypto(context, client, db, run_id, venues, keys_by_venue, config))

    outcomes = [(venue, o) for venue, run in runs.items() for o in run.values()]
    ended = [ingest.log_row(run_id, venue, kind, venue, inst, day, o) for venue, o in outcomes
             if o.status != "ok" for kind, inst, day in [o.key]]
    if ended:
        with clickhouse.get_client() as client:
            writer.log_ingest(client, db, ended)
    clickhouse.close()

    failures = [(f"{venue}:{o.key[1]} {o.key[2]} {o.key[0]}", o.status, o.error, o.attempts)
                for venue, o in outcomes if o.status != "ok"]
    seconds = round(time.monotonic() - started, 3)
    results = {}
    for kind in kinds:
        mine = [(venue, o) for venue, o in outcomes if o.key[0] == kind]
        ok = [(venue, o) for venue, o in mine if o.status == "ok"]
        stats = ingest.KeyStats()
        for _, o in mine:
            stats.add(o.stats)
        firsts = [o.value["first_ts"] for _, o in ok if o.value["first_ts"] is not None]
        lasts = [o.value["last_ts"] for _, o in ok if o.value["last_ts"] is not None]
        results[kind] = {
            "summary": ingest.success_line(len(ok), len(mine)),
            "slices_ok": len(ok), "slices_failed": sum(o.status == "failed" for _, o in mine),
            "slices_skipped": sum(o.status == "skipped" for _, o in mine),
            "rows": dg.MetadataValue.int(sum(o.value["rows"] for _, o in ok)),
            "first_ts": min(firsts).isoformat() if firsts else "", "last_ts": max(lasts).isoformat() if lasts else "",
            **stats_metadata(stats),
            "slices": dg.MetadataValue.md(table(
                ["slice", "rows", "requests", "retries", "429s", "p50 ms", "outcome"],
                ((f"{venue}:{o.key[1]} {o.key[2]}", o.value["rows"] if o.status == "ok" else 0, o.stats.requests,
                  o.stats.retries, o.stats.rate_limited, o.stats.percentile_ms(0.5), o.status) for venue, o in mine))),
            "providers": dg.MetadataValue.md(ingest.provider_table(client_stats)),
            "provider_figures": dg.MetadataValue.json(client_stats),
            "seconds": seconds,
        }
    if len(failures) > config.max_failed:
        summary = ", ".join(f"{kind} {meta['summary']}" for kind, meta in results.items())
        raise fail_step(f"crypto_ticks: {len(failures)} slice(s) not loaded ({summary}); the others are written",
                        {f"{key}_summary": results[kind]["summary"] for key, kind in CRYPTO_KINDS.items()
                         if kind in results} | {
                            "providers": dg.MetadataValue.md(ingest.provider_table(client_stats))}, failures)
    for key, kind in CRYPTO_KINDS.items():
        if kind in results:
            yield dg.MaterializeResult(asset_key=key, metadata=results[kind])


async def _fetch_crypto(context, client, database: str, run_id: str, venues: dict, keys_by_venue: dict,
                        config: SliceLoadConfig):
    db_writer = ClickHouseWriter(client)
    runs: dict[str, dict] = {}
    client_stats: dict[str, dict] = {}

    def write(ch, outcome: ingest.Outcome, venue: str) -> dict:
        kind, instrument, day = outcome.key
        frame = outcome.value
        result = writer.write_slice(ch, database, kind, frame, venue, instrument, day, run_id)
        first, last = time_range(frame)
        outcome.status = "ok"
        writer.log_ingest(ch, database, [ingest.log_row(run_id, venue, kind, venue, instrument, day, outcome,
                                                        status="ok", rows=result.rows, load_id=result.load_id)])
        return {"rows": result.rows, "load_id": result.load_id, "first_ts": first, "last_ts": last}

    async def one_venue(venue: str, keys: list[tuple]) -> None:
        resource = venues[venue]
        async with resource.make_client() as api:
            ingest.count_requests(api)

            async def fetch(batch: tuple) -> dict:
                kind, instrument, day = batch[0]
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                end = start + timedelta(days=1)
                frame = await (api.trades(instrument, start, end) if kind == "trades"
                               else api.bars_1m(instrument, start, end))
                return {batch[0]: frame}

            async def on_fetched(outcome: ingest.Outcome) -> None:
                outcome.value = await db_writer.call(write, outcome, venue)
                kind, instrument, day = outcome.key
                context.log.info(f"wrote {kind} {venue}:{instrument} {day}: {outcome.value['rows']:,} rows "
                                 f"(load {outcome.value['load_id']})")

            run = ingest.ProviderRun(venue, workers=resource.workers, attempts=config.attempts, what="slices",
                                     log=context.log.info,
                                     label=lambda key, v=venue: f"{v}:{key[1]} {key[2]} {key[0]}")
            runs[venue] = await run.run(keys, fetch, on_fetched=on_fetched)
            client_stats[venue] = api.stats.as_metadata()

    try:
        await asyncio.gather(*(one_venue(venue, keys) for venue, keys in keys_by_venue.items() if keys))
    finally:
        db_writer.close()
    return runs, client_stats


# --------------------------------------------------------------------------------------------
# Order-book snapshots
# --------------------------------------------------------------------------------------------

class BookSnapshotConfig(dg.Config):
    depth: int = 0
    """Levels per side; 0: the providers config's book_depth."""


@dg.asset(group_name=GROUP, partitions_def=crypto_instruments, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[tick_store], pool=CRYPTO_POOL, kinds={"clickhouse", "polars"})
def crypto_book_snapshots(context: dg.AssetExecutionContext, config: BookSnapshotConfig,
                          clickhouse: ClickHouseResource, binance: CryptoVenueResource, okx: CryptoVenueResource,
                          deribit: CryptoVenueResource) -> dg.MaterializeResult:
    """One order-book snapshot per instrument of the run, added to its UTC day's slice in ClickHouse
    `book_snapshots` (read: book_snapshots_v, book_snapshots_range). Venues serve only the current
    book: history is what these snapshots collected."""
    started = time.monotonic()
    run_id = context.run.run_id
    depth = config.depth or load_providers_config().book_depth
    instruments = [parse_partition_key(key) for key in context.partition_keys]
    venues = {"BINANCE": binance, "OKX": okx, "DERIBIT": deribit}

    async def snapshots() -> tuple[dict, dict]:
        outcomes, client_stats = {}, {}

        async def one_venue(venue: str) -> None:
            mine = [inst.instrument for inst in instruments if inst.venue == venue]
            if not mine:
                return
            async with venues[venue].make_client() as api:
                ingest.count_requests(api)

                async def fetch(batch: tuple) -> dict:
                    return {batch[0]: await api.book_snapshot(batch[0], depth)}

                run = ingest.ProviderRun(venue, workers=venues[venue].workers, attempts=1, what="books",
                                         log=context.log.info, label=lambda key, v=venue: f"{v}:{key} book")
                for instrument, outcome in (await run.run(mine, fetch)).items():
                    outcomes[(venue, instrument)] = outcome
                client_stats[venue] = api.stats.as_metadata()

        await asyncio.gather(*(one_venue(v) for v in venues))
        return outcomes, client_stats

    outcomes, client_stats = asyncio.run(snapshots())
    db = clickhouse.database
    rows_written, log_rows = 0, []
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, db)
        by_slice: dict[tuple[str, date], list[tuple[str, ingest.Outcome]]] = {}
        for (venue, instrument), outcome in outcomes.items():
            if outcome.status == "fetched":
                day = outcome.value["ts"][0].date() if outcome.value.height else datetime.now(UTC).date()
                by_slice.setdefault((venue, day), []).append((instrument, outcome))
            else:
                log_rows.append(ingest.log_row(run_id, venue, "books", venue, instrument, datetime.now(UTC).date(),
                                               outcome))
        for (venue, day), items in by_slice.items():
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            frames = []
            for instrument, outcome in items:
                frames.append(ct.read_range(client, db, "books", venue, instrument, start, start + timedelta(days=1)))
                frames.append(outcome.value)
            data = pl.concat(frames, how="vertical")
            written = writer.write_slices(client, db, "books", data, venue, day, run_id,
                                          instruments=[i for i, _ in items])
            for instrument, outcome in items:
                new = outcome.value.height
                rows_written += new
                log_rows.append(ingest.log_row(run_id, venue, "books", venue, instrument, day, outcome, status="ok",
                                               rows=new, load_id=written[instrument].load_id))
                outcome.status = "ok"
        writer.log_ingest(client, db, log_rows)
    clickhouse.close()
    failures = [(f"{venue}:{instrument} book", o.status, o.error, o.attempts)
                for (venue, instrument), o in outcomes.items() if o.status != "ok"]
    ok = sum(o.status == "ok" for o in outcomes.values())
    metadata = {"summary": ingest.success_line(ok, len(outcomes)), "depth": depth,
                "snapshot_rows": dg.MetadataValue.int(rows_written),
                "providers": dg.MetadataValue.md(ingest.provider_table(client_stats)),
                "seconds": round(time.monotonic() - started, 3)}
    if failures:
        raise fail_step(f"crypto_book_snapshots: {len(failures)} snapshot(s) not taken", metadata, failures)
    return dg.MaterializeResult(metadata=metadata)
