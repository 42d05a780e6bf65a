"""Stocks: A-share 1-minute and daily bars from Tushare Pro, 1-minute bars from Yahoo Finance.

Daily partitions (A-shares: China days; Yahoo: UTC days, see partitions.py); the symbol universe is
processed INSIDE the run (the config file's, ~5,000 A-shares work, or `symbols` in the run config),
`workers` symbols at once through one client (one rate limiter for the run). Every symbol is
independent: its failure is recorded, retried after the others, summarized ("Successful: 148/150")
with a failures table; other symbols complete. All symbols of a day go into ClickHouse with ONE
`write_slices` call per exchange (venue), after every symbol of the day was fetched (5,000
A-shares: 2 calls of ~600,000 rows); if a venue's frames do not validate, they are validated one
by one, so one bad frame fails one symbol, not the day.

Measured (5,000 A-shares, one day, against the local replay in another process, 16 workers):
209 s, 1,205,000 bars, peak RSS 1.0 GB (0.4 GB of it Dagster + the embedded engine). The client's
parser is the limit there (~24 symbols/s: `strptime` twice per row); Tushare's own limit
(200 requests/minute, one stk_mins request per symbol) makes a real day ~25 minutes.

A follow-up run can target only the failed symbols: run config `retry_failed_from_run: <run id>`
(the symbols that failed or were skipped in that run), `retry_failed: true` (those whose latest
attempt of the day did not succeed: failed, skipped, or never tried because a run was killed), or
`symbols: [...]`. The step fails when more than `max_failed_symbols` symbols failed (the loaded
ones stay written), so the partition shows as failed until a follow-up run loads the rest.

A range run (a backfill) goes through its days in blocks (up to 20 China trade days for Tushare:
one `stk_mins` request per symbol, 8000 rows; up to 7 days for Yahoo: one chart request; and
about 2M rows: the whole A-share market goes a day at a time), writing each day of the block
before the next block: memory stays at one block of the universe.

A day on which no symbol has any bar is not a trading day (a holiday): nothing is written, the
ingest log says so, and the partition materializes with 0 rows.
"""

import asyncio
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import polars as pl

from marketdata_assets import pools
from marketdata_assets.defs.ticks import ingest
from marketdata_assets.defs.ticks.assets import (
    GROUP,
    RetryOptions,
    fail_step,
    slices_to_fetch,
    stats_metadata,
    tick_store,
    time_range,
)
from marketdata_assets.defs.ticks.partitions import a_share_days, days_of, yahoo_days
from marketdata_assets.lib.ticks import clickhouse_tables as ct
from marketdata_assets.lib.ticks import frames, writer
from marketdata_assets.lib.ticks.instruments import a_share_code, a_share_venue, normalize_instrument
from marketdata_assets.lib.ticks.config import load_providers_config
from marketdata_assets.lib.ticks.sources.tushare import DAILY_FIELDS, TushareTokenError, parse_daily
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.providers import TushareResource, YahooResource

UTC = timezone.utc
TUSHARE, YAHOO = "TUSHARE", "YAHOO"
TUSHARE_BLOCK_DAYS = 20        # stk_mins: 241 bars a day, 8000 rows an answer
TUSHARE_DAILY_ROWS = 5000      # codes x days per `daily` request (the API answers at most 6000 rows)
YAHOO_BLOCK_DAYS = 7           # one chart request: at most 7 days of 1-minute bars
# A block holds every symbol's bars of its days in memory: at most about this many rows (~200 MB),
# so the whole A-share market goes one day at a time and a 150-symbol universe 20 days at a time.
BLOCK_ROWS = 2_000_000


class StockBarsConfig(RetryOptions):
    symbols: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """These symbols instead of the config file's universe (A-share codes in any spelling)."""
    max_failed_symbols: int = 0
    """The step fails when more symbols (symbol-days in a range run) than this failed."""
    workers: int = 0
    """Symbols fetched at once; 0: the provider's `workers` from the config file."""


def _blocks(days: list[date], most: int, symbols: int, rows_per_day: int) -> list[list[date]]:
    """The run's days cut into blocks of at most `most` days and about BLOCK_ROWS rows."""
    size = max(1, min(most, BLOCK_ROWS // max(1, symbols * rows_per_day)))
    return [days[i:i + size] for i in range(0, len(days), size)]


def _universe(config: StockBarsConfig, default: Sequence[str], normalize) -> list[str]:
    symbols = config.symbols or list(default)
    out = []
    for symbol in symbols:
        try:
            out.append(normalize(symbol))
        except ValueError as error:
            raise dg.Failure(f"run config symbols: {error}") from None
    return list(dict.fromkeys(out))


def _day_frame(frame: pl.DataFrame, day: date) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return frame.filter((pl.col("ts") >= start) & (pl.col("ts") < start + timedelta(days=1)))


def write_day(client, database: str, run_id: str, provider: str, kind: str, day: date,
              fetched: dict[str, tuple[str, pl.DataFrame, ingest.Outcome]], log) -> dict[str, dict]:
    """Write one day of one kind with one write_slices per venue. fetched: {symbol: (venue, frame of
    that day, outcome)}. A venue's frames are validated together; if that fails, one by one, so a
    bad frame fails its symbol only. Returns {symbol: result row}."""
    results: dict[str, dict] = {}
    if fetched and all(frame.height == 0 for _, frame, _ in fetched.values()):
        log(f"{provider} {kind} {day}: no bars for any of {len(fetched)} symbols: not a trading day, nothing written")
        for symbol, (venue, _, outcome) in fetched.items():
            results[symbol] = {"status": "ok", "rows": 0, "load_id": 0, "venue": venue,
                               "note": "not a trading day (no bars for any symbol)"}
        return results
    by_venue: dict[str, list[tuple[str, pl.DataFrame]]] = {}
    for symbol, (venue, frame, outcome) in fetched.items():
        try:
            key = normalize_instrument(venue, symbol)
            if (key.venue, key.instrument) != (venue, symbol):
                raise ValueError(f"{venue}:{symbol} is not a normalized instrument (expected {key})")
        except ValueError as error:
            results[symbol] = {"status": "failed", "rows": 0, "load_id": 0, "venue": venue,
                               "error": f"{provider} {venue}:{symbol} {day}: {error}"}
            continue
        by_venue.setdefault(venue, []).append((symbol, frame))
    for venue, items in by_venue.items():
        data = pl.concat([frame for _, frame in items], how="vertical")
        try:
            writer.validate_frame(data, kind, venue, None, day)
        except ValueError:  # find the bad frames; the others are written
            good = []
            for symbol, frame in items:
                try:
                    writer.validate_frame(frame, kind, venue, symbol, day)
                    good.append((symbol, frame))
                except ValueError as error:
                    results[symbol] = {"status": "failed", "rows": 0, "load_id": 0, "venue": venue,
                                       "error": f"{provider} {venue}:{symbol} {day}: {error}"}
            items = good
            data = pl.concat([frame for _, frame in items], how="vertical") if items else data.clear()
        if not items:
            continue
        written = writer.write_slices(client, database, kind, data, venue, day, run_id,
                                      instruments=[symbol for symbol, _ in items])
        first, last = time_range(data)
        for symbol, _ in items:
            results[symbol] = {"status": "ok", "rows": written[symbol].rows, "load_id": written[symbol].load_id,
                               "venue": venue, "first_ts": first, "last_ts": last}
        log(f"{provider} {kind} {day}: wrote {venue}, {len(items)} symbols, {data.height:,} rows in one load batch")
    return results


class StockRun:
    """The bookkeeping of one stock asset's run: per (kind, symbol, day) result rows, log rows, metadata."""

    def __init__(self, provider: str, run_id: str):
        self.provider, self.run_id = provider, run_id
        self.rows: dict[str, list[dict]] = {}        # kind -> result rows
        self.client_stats: dict = {}
        self.left_out: dict[str, int] = {}

    def record(self, kind: str, symbol: str, day: date, venue: str, outcome: ingest.Outcome, result: dict | None,
               stats: ingest.KeyStats) -> dict:
        status = result["status"] if result else outcome.status
        error = (result or {}).get("error", outcome.error if status != "ok" else (result or {}).get("note", ""))
        row = {"symbol": symbol, "day": day, "venue": venue or "", "status": status if status != "fetched" else "failed",
               "rows": (result or {}).get("rows", 0), "load_id": (result or {}).get("load_id", 0), "error": error,
               "attempts": outcome.attempts, "stats": stats, "outcome": outcome,
               "first_ts": (result or {}).get("first_ts"), "last_ts": (result or {}).get("last_ts")}
        self.rows.setdefault(kind, []).append(row)
        return row

    def log_rows(self, kind: str, rows: list[dict]) -> list[dict]:
        return [ingest.log_row(self.run_id, self.provider, kind, r["venue"], r["symbol"], r["day"], r["outcome"],
                               status=r["status"], rows=r["rows"], load_id=r["load_id"], error=r["error"],
                               stats=r["stats"]) for r in rows]

    def failures(self) -> list[tuple[str, str, str, int]]:
        return [(f"{kind} {r['symbol']} {r['day']}", r["status"], r["error"], r["attempts"])
                for kind, rows in self.rows.items() for r in rows if r["status"] != "ok"]

    def metadata(self, kind: str, seconds: float) -> dict:
        rows = self.rows.get(kind, [])
        days = sorted({r["day"] for r in rows})
        ok = [r for r in rows if r["status"] == "ok"]
        stats = ingest.KeyStats()
        for r in rows:
            stats.add(r["stats"])
        unit = "symbols" if len(days) <= 1 else "symbol-days"
        firsts = [r["first_ts"] for r in ok if r["first_ts"] is not None]
        lasts = [r["last_ts"] for r in ok if r["last_ts"] is not None]
        return {
            "summary": ingest.success_line(len(ok), len(rows)), "counted_in": unit,
            "days": ", ".join(d.isoformat() for d in days) if len(days) <= 5 else f"{days[0]}..{days[-1]} ({len(days)})",
            "symbols": len({r["symbol"] for r in rows}),
            "failed": sum(r["status"] == "failed" for r in rows), "skipped": sum(r["status"] == "skipped" for r in rows),
            "left_out_by_retry_options": self.left_out.get(kind, 0),
            "rows": dg.MetadataValue.int(sum(r["rows"] for r in ok)),
            "first_ts": min(firsts).isoformat() if firsts else "", "last_ts": max(lasts).isoformat() if lasts else "",
            "venues": ", ".join(sorted({r["venue"] for r in ok if r["venue"]})),
            **stats_metadata(stats),
            "providers": dg.MetadataValue.md(ingest.provider_table(self.client_stats)),
            "provider_figures": dg.MetadataValue.json(self.client_stats),
            "seconds": seconds,
        }


def _fail_or_results(context, run: StockRun, asset_by_kind: dict[str, str], max_failed: int, started: float):
    seconds = round(time.monotonic() - started, 3)
    metadata = {kind: run.metadata(kind, seconds) for kind in asset_by_kind}
    failures = run.failures()
    for kind, meta in metadata.items():
        context.log.info(f"{asset_by_kind[kind]}: {meta['summary']} {meta['counted_in']}, {meta['rows'].value:,} rows")
    if len(failures) > max_failed:
        raise fail_step(f"{', '.join(asset_by_kind.values())}: {len(failures)} symbol(s) not loaded ("
                        + ", ".join(f"{asset_by_kind[k]} {m['summary']}" for k, m in metadata.items())
                        + "); the others are written; rerun with retry_failed_from_run: "
                        + f"{context.run.run_id} to load only those",
                        {f"{asset_by_kind[k]}_summary": m["summary"] for k, m in metadata.items()}, failures)
    for kind, asset in asset_by_kind.items():
        yield dg.MaterializeResult(asset_key=asset, metadata=metadata[kind])


# --------------------------------------------------------------------------------------------
# A-shares (Tushare Pro)
# --------------------------------------------------------------------------------------------

A_SHARE_KINDS = {"bars": "a_share_bars_1m", "daily": "a_share_daily_bars"}


def _a_share_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec("a_share_bars_1m", deps=[tick_store], group_name=GROUP, kinds={"clickhouse", "polars"},
                     description="A-share 1-minute bars (Tushare stk_mins; 241 a day, ts = bar open in UTC) of the "
                                 "whole universe per China trading day, in ClickHouse `bars_1m` (venues SSE, SZSE, BSE)."),
        dg.AssetSpec("a_share_daily_bars", deps=[tick_store], group_name=GROUP, kinds={"clickhouse", "polars"},
                     description="A-share daily bars (Tushare daily: volume in shares, amount in yuan, pre_close) per "
                                 "China trading day, in ClickHouse `daily_bars` (read: daily_bars_v, daily_bars_range)."),
    ]


@dg.multi_asset(name="a_share_ticks", specs=_a_share_specs(), partitions_def=a_share_days, can_subset=True,
                backfill_policy=dg.BackfillPolicy.single_run(), pool=pools.TUSHARE)
def a_share_ticks(context: dg.AssetExecutionContext, config: StockBarsConfig, clickhouse: ClickHouseResource,
                  tushare: TushareResource):
    """A-share 1-minute and daily bars of the run's China trading days, the universe inside the run."""
    started = time.monotonic()
    kinds = [kind for kind, asset in A_SHARE_KINDS.items() if dg.AssetKey(asset) in context.selected_asset_keys]
    universe = _universe(config, load_providers_config().a_shares, a_share_code)
    days = days_of(context.partition_keys)
    run = StockRun(TUSHARE, context.run.run_id)
    workers = config.workers or tushare.workers
    if not (tushare.token or "").strip():  # say which variable, before any request
        raise dg.Failure(f"a_share_ticks: {TushareTokenError(f'{tushare.token_env} is not set')}")
    context.log.info(f"{len(universe)} symbols x {len(days)} day(s) ({days[0]}..{days[-1]}), kinds {kinds}, "
                     f"{workers} workers, {tushare.requests_per_minute:g} requests/minute")
    for block in _blocks(days, TUSHARE_BLOCK_DAYS, len(universe), 241):
        wanted = _wanted(clickhouse, config, run, TUSHARE, kinds, universe, block)
        fetched = asyncio.run(_fetch_a_shares(context, tushare, workers, config.attempts, kinds, wanted, block, run))
        _write_block(context, clickhouse, run, kinds, block, wanted, fetched, venue_of=a_share_venue)
    clickhouse.close()
    yield from _fail_or_results(context, run, {k: A_SHARE_KINDS[k] for k in kinds}, config.max_failed_symbols, started)


def _wanted(clickhouse, config: StockBarsConfig, run: StockRun, provider: str, kinds: list[str], universe: list[str],
            block: list[date]) -> dict[str, dict[date, list[str]]]:
    """{kind: {day: symbols to fetch}} under the retry options."""
    out: dict[str, dict[date, list[str]]] = {}
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        for kind in kinds:
            keep, left = slices_to_fetch(client, clickhouse.database, config, provider, kind,
                                         [(s, d) for d in block for s in universe])
            run.left_out[kind] = run.left_out.get(kind, 0) + left
            out[kind] = {day: [s for s, d in keep if d == day] for day in block}
    clickhouse.close()  # the embedded engine is free for other steps while this one fetches
    return out


async def _fetch_a_shares(context, tushare: TushareResource, workers: int, attempts: int, kinds: list[str],
                          wanted: dict, block: list[date], run: StockRun) -> dict[str, dict]:
    """{kind: {symbol: Outcome (value: that symbol's frame for the block)}}."""
    first, last = block[0], block[-1]
    out: dict[str, dict] = {}
    async with tushare.make_client() as api:
        ingest.count_requests(api)

        async def minutes(batch: tuple) -> dict:
            return {batch[0]: await api.minute_bars(batch[0], first, last)}

        async def daily(batch: tuple) -> dict:
            codes = ",".join(batch)
            label = first if first == last else f"{first}..{last}"
            params = {"ts_code": codes, "start_date": f"{first:%Y%m%d}", "end_date": f"{last:%Y%m%d}"}
            answer = await api.call("daily", params, DAILY_FIELDS, instrument=codes, day=label,
                                    required=("ts_code", "trade_date", "open", "high", "low", "close", "vol", "amount"))
            parsed = parse_daily(answer, instrument=codes, day=label).frame
            frame = parsed.with_columns(pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"))
            frame = frame.select(list(frames.DAILY_BARS_SCHEMA))
            return {code: frame.filter(pl.col("instrument") == code) for code in batch}

        jobs = []
        for kind in kinds:
            symbols = list(dict.fromkeys(s for day in block for s in wanted[kind][day]))
            provider_run = ingest.ProviderRun(f"{TUSHARE} {kind}", workers=workers, attempts=attempts,
                                              log=context.log.info)
            batch = 1 if kind == "bars" else max(1, min(100, TUSHARE_DAILY_ROWS // len(block)))
            jobs.append((kind, provider_run.run(symbols, minutes if kind == "bars" else daily, batch_size=batch)))
        results = await asyncio.gather(*(job for _, job in jobs))
        for (kind, _), outcomes in zip(jobs, results):
            out[kind] = outcomes
        run.client_stats[TUSHARE] = api.metadata()
    return out


def _write_block(context, clickhouse, run: StockRun, kinds: list[str], block: list[date], wanted: dict,
                 fetched: dict, venue_of) -> None:
    """Write every day of a fetched block (one write_slices per venue and day) and log each symbol-day."""
    with clickhouse.get_client() as client:
        db = clickhouse.database
        for kind in kinds:
            outcomes = fetched[kind]
            log_rows = []
            first_day: dict[str, date] = {}
            for day in block:
                for symbol in wanted[kind][day]:
                    first_day.setdefault(symbol, day)
            for i, day in enumerate(block):
                ready, rows = {}, []
                for symbol in wanted[kind][day]:
                    outcome = outcomes[symbol]
                    venue = _venue(outcome, symbol, venue_of)
                    if outcome.status == "fetched":
                        frame = outcome.value.frame if hasattr(outcome.value, "frame") else outcome.value
                        ready[symbol] = (venue, _day_frame(frame, day), outcome)
                try:
                    results = write_day(client, db, run.run_id, run.provider, kind, day, ready, context.log.info)
                except Exception as error:  # noqa: BLE001 - the day's write failed: its symbols failed
                    message = f"{run.provider} {kind} {day}: write failed: {error}"
                    context.log.error(message)
                    results = {s: {"status": "failed", "rows": 0, "load_id": 0, "venue": v, "error": message}
                               for s, (v, _, _) in ready.items()}
                for symbol in wanted[kind][day]:
                    outcome = outcomes[symbol]
                    # a block's request figures are counted once, on the symbol's first day of the block
                    stats = outcome.stats if day == first_day[symbol] else ingest.KeyStats()
                    rows.append(run.record(kind, symbol, day, _venue(outcome, symbol, venue_of), outcome,
                                           results.get(symbol), stats))
                log_rows += run.log_rows(kind, rows)
                if i == len(block) - 1 or len(log_rows) >= 20_000:
                    writer.log_ingest(client, db, log_rows)
                    log_rows = []
            for outcome in outcomes.values():
                outcome.value = None  # the block's frames are written: free them
    clickhouse.close()


def _venue(outcome: ingest.Outcome, symbol: str, venue_of) -> str:
    value = outcome.value
    if value is not None and hasattr(value, "exchange"):
        return value.exchange
    try:
        return venue_of(symbol) if venue_of else ""
    except ValueError:
        return ""


# --------------------------------------------------------------------------------------------
# Yahoo Finance
# --------------------------------------------------------------------------------------------

def _yahoo_symbol(symbol: str) -> str:
    from marketdata_assets.lib.identifiers import symbol_key

    return symbol_key(symbol.strip().upper())


@dg.asset(group_name=GROUP, partitions_def=yahoo_days, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[tick_store], pool=pools.YAHOO, kinds={"clickhouse", "polars"})
def yahoo_bars_1m(context: dg.AssetExecutionContext, config: StockBarsConfig, clickhouse: ClickHouseResource,
                  yahoo: YahooResource):
    """1-minute bars (Yahoo chart v8, regular session; prices in major units: pence -> pounds) of the
    universe per UTC day, in ClickHouse `bars_1m` (venue = Yahoo's exchange code: NMS, LSE, GER, ...)."""
    started = time.monotonic()
    universe = _universe(config, load_providers_config().yahoo_symbols, _yahoo_symbol)
    days = days_of(context.partition_keys)
    run = StockRun(YAHOO, context.run.run_id)
    workers = config.workers or yahoo.workers
    context.log.info(f"{len(universe)} symbols x {len(days)} day(s) ({days[0]}..{days[-1]}), {workers} workers, "
                     f"{yahoo.requests_per_minute:g} requests/minute")
    for block in _blocks(days, YAHOO_BLOCK_DAYS, len(universe), 510):
        wanted = _wanted(clickhouse, config, run, YAHOO, ["bars"], universe, block)
        fetched = asyncio.run(_fetch_yahoo(context, yahoo, workers, config.attempts, wanted["bars"], block, run))
        _write_block(context, clickhouse, run, ["bars"], block, wanted, {"bars": fetched}, venue_of=None)
    clickhouse.close()
    yield from _fail_or_results(context, run, {"bars": "yahoo_bars_1m"}, config.max_failed_symbols, started)


async def _fetch_yahoo(context, yahoo: YahooResource, workers: int, attempts: int, wanted: dict[date, list[str]],
                       block: list[date], run: StockRun) -> dict:
    start = datetime(block[0].year, block[0].month, block[0].day, tzinfo=UTC)
    end = datetime(block[-1].year, block[-1].month, block[-1].day, tzinfo=UTC) + timedelta(days=1)
    symbols = list(dict.fromkeys(s for day in block for s in wanted[day]))
    async with yahoo.make_client() as api:
        ingest.count_requests(api)

        async def fetch(batch: tuple) -> dict:
            return {batch[0]: await api.fetch_bars(batch[0], start, end)}

        outcomes = await ingest.ProviderRun(YAHOO, workers=workers, attempts=attempts,
                                            log=context.log.info).run(symbols, fetch)
        run.client_stats[YAHOO] = api.metadata()
    return outcomes

