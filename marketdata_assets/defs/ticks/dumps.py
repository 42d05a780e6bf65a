"""Binance daily dump files (data.binance.vision spot `trades` and `1m` klines, .csv or .zip) from a
landing directory into the same ClickHouse tables as the REST data.

Partitions: UTC day x instrument, the instrument from the dynamic dimension `binance_dump_instruments`
(keys BINANCE:SYMBOL), to which the `binance_dump_files` sensor adds the symbols of new files. A run
loads the files of its partitions found anywhere under the landing directory
(`{SYMBOL}-trades-{YYYY-MM-DD}.csv|.zip`, `{SYMBOL}-1m-{YYYY-MM-DD}.csv|.zip`; monthly files and
aggTrades are not read here): plain CSVs with the engine's own reader (lib.ticks.writer
.load_csv_files: `INSERT ... SELECT ... FROM file()`, all of the run's files in one statement, each
file its own slice, the fastest path measured) when the engine can read this machine's disk (the
embedded engine), zips and everything on a ClickHouse server through Polars (read_dump) and
write_slice. A file that does not load fails its slice with the file's name and the reason; the
other files of the run are loaded (a failed multi-file statement is retried file by file, and
nothing of a failed statement is ever visible: the pointer flips only after every row was checked).

Each (kind, BINANCE, instrument, day) slice is ONE slice whichever source wrote it: a dump and a REST
run of the same instrument-day replace each other (the last load wins). The dump holds every
individual trade; the REST path (crypto_trades) holds aggregate trades.
"""

import os
import time
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg

from marketdata_assets import pools, settings
from marketdata_assets.defs.ticks import ingest
from marketdata_assets.defs.ticks.assets import GROUP, SliceLoadConfig, fail_step, slices_to_fetch, tick_store
from marketdata_assets.defs.ticks.partitions import crypto_days, crypto_slices
from marketdata_assets.lib.markdown import table
from marketdata_assets.lib.ticks import clickhouse_tables as ct
from marketdata_assets.lib.ticks import writer
from marketdata_assets.lib.ticks.sources.binance.dumps import DumpName, parse_dump_name, read_dump
from marketdata_assets.resources import ClickHouseResource

DUMP_INSTRUMENTS = "binance_dump_instruments"
PROVIDER = "BINANCE_DUMPS"
VENUE = "BINANCE"
# dump kind -> (tick kind, asset, CSV profile of lib.ticks.writer, file-name token)
DUMP_KINDS = {
    "trades": ("trades", "binance_dump_trades", "binance_trades", "trades"),
    "klines": ("bars", "binance_dump_bars_1m", "binance_klines_1m", "1m"),
}
ASSET_KINDS = {asset: kind for kind, asset, _, _ in DUMP_KINDS.values()}

binance_dump_instruments = dg.DynamicPartitionsDefinition(name=DUMP_INSTRUMENTS)
binance_dump_partitions = dg.MultiPartitionsDefinition({"day": crypto_days, "instrument": binance_dump_instruments})


def binance_dumps_landing_dir() -> Path:
    return settings.binance_dumps_landing_dir()


def supported(name: DumpName) -> bool:
    """Daily spot trades and 1-minute klines (the files this domain loads)."""
    return name.period == "daily" and (name.kind == "trades" or (name.kind == "klines" and name.interval == "1m"))


def landing_dumps(root: Path) -> Iterator[tuple[Path, DumpName]]:
    """Every supported dump file under `root` (any depth), with its parsed name."""
    if not root.is_dir():
        return
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            if not filename.endswith((".csv", ".zip")):
                continue
            try:
                name = parse_dump_name(filename)
            except ValueError:
                continue
            if supported(name) and "/futures/" not in dirpath.replace("\\", "/"):
                yield Path(dirpath) / filename, name


def _specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec("binance_dump_trades", deps=[tick_store], group_name=GROUP, kinds={"clickhouse"},
                     description="Binance spot trades from data.binance.vision daily dump files in the landing "
                                 "directory, in ClickHouse `trades` (venue BINANCE; every individual trade)."),
        dg.AssetSpec("binance_dump_bars_1m", deps=[tick_store], group_name=GROUP, kinds={"clickhouse"},
                     description="Binance spot 1-minute klines from daily dump files, in ClickHouse `bars_1m`."),
    ]


@dg.multi_asset(name="binance_dumps", specs=_specs(), partitions_def=binance_dump_partitions, can_subset=True,
                backfill_policy=dg.BackfillPolicy.single_run(), pool=pools.CLICKHOUSE)
def binance_dumps(context: dg.AssetExecutionContext, config: SliceLoadConfig, clickhouse: ClickHouseResource):
    """Load the dump files of the run's (day, instrument) partitions from the landing directory."""
    started = time.monotonic()
    run_id = context.run.run_id
    root = binance_dumps_landing_dir()
    partitions = crypto_slices(context.partition_keys)
    selected = {ASSET_KINDS[k.to_user_string()] for k in context.selected_asset_keys}
    index: dict[tuple[str, str, date], list[Path]] = {}
    for path, name in landing_dumps(root):
        index.setdefault((name.kind, name.instrument, name.day), []).append(path)
    db = clickhouse.database
    outcomes: dict[tuple[str, str, date], ingest.Outcome] = {}
    engine_reads_files = clickhouse.embedded
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, db)
        for dump_kind, (kind, asset, profile, token) in DUMP_KINDS.items():
            if kind not in selected:
                continue
            keep, _ = slices_to_fetch(client, db, config, PROVIDER, kind,
                                      [(inst.instrument, day) for day, inst in partitions if inst.venue == VENUE])
            csv_paths = []
            for instrument, day in keep:
                outcome = ingest.Outcome((kind, instrument, day))
                outcome.started_at = outcome.finished_at = datetime.now(timezone.utc)
                outcome.attempts = 1
                outcomes[(kind, instrument, day)] = outcome
                files = sorted(index.get((dump_kind, instrument, day), []), key=lambda p: p.suffix != ".csv")
                if not files:
                    outcome.fail(f"{VENUE}:{instrument} {day} {kind}: no dump file {instrument}-{token}-{day}.csv "
                                 f"or .zip under {root}")
                    continue
                outcome.value = files[0]
                if files[0].suffix == ".csv" and engine_reads_files:
                    csv_paths.append(files[0])
                else:
                    _load_with_polars(client, db, run_id, kind, outcome)
            _load_csvs(context, client, db, run_id, kind, profile, csv_paths, outcomes)
        rows = [ingest.log_row(run_id, PROVIDER, kind, VENUE, instrument, day, o, rows=o.value["rows"]
                               if o.status == "ok" else 0, load_id=o.value["load_id"] if o.status == "ok" else 0)
                for (kind, instrument, day), o in outcomes.items()]
        writer.log_ingest(client, db, rows)
    clickhouse.close()

    failures = [(f"{VENUE}:{i} {d} {k}", o.status, o.error, o.attempts) for (k, i, d), o in outcomes.items()
                if o.status != "ok"]
    seconds = round(time.monotonic() - started, 3)
    results = {}
    for kind in sorted(selected):
        mine = [(key, o) for key, o in outcomes.items() if key[0] == kind]
        ok = [(key, o) for key, o in mine if o.status == "ok"]
        rows_total = sum(o.value["rows"] for _, o in ok)
        results[kind] = {
            "summary": ingest.success_line(len(ok), len(mine)), "files_loaded": len(ok),
            "rows": dg.MetadataValue.int(rows_total),
            "rows_per_second": round(rows_total / seconds) if seconds else None,
            "landing_dir": str(root), "seconds": seconds,
            "files": dg.MetadataValue.md(table(
                ["instrument", "day", "file", "rows", "path", "outcome"],
                ((i, d, o.value["file"] if o.status == "ok" else "", o.value["rows"] if o.status == "ok" else 0,
                  o.value["method"] if o.status == "ok" else "", o.status) for (_, i, d), o in mine))),
        }
    if len(failures) > config.max_failed:
        raise fail_step(f"binance_dumps: {len(failures)} dump slice(s) not loaded", {
            f"{asset}_summary": results[kind]["summary"] for kind, asset, _, _ in DUMP_KINDS.values()
            if kind in results}, failures)
    for kind, asset in ((k, a) for k, a, _, _ in DUMP_KINDS.values()):
        if kind in results:
            yield dg.MaterializeResult(asset_key=asset, metadata=results[kind])


def _done(outcome: ingest.Outcome, rows: int, load_id: int, path: Path, method: str) -> None:
    outcome.status = "ok"
    outcome.value = {"rows": rows, "load_id": load_id, "file": path.name, "method": method}
    outcome.finished_at = datetime.now(timezone.utc)


def _load_with_polars(client, db: str, run_id: str, kind: str, outcome: ingest.Outcome) -> None:
    path: Path = outcome.value
    _, instrument, day = outcome.key
    try:
        frame = read_dump(path, instrument=instrument, day=day, venue=VENUE)
        result = writer.write_slice(client, db, kind, frame, VENUE, instrument, day, run_id)
    except Exception as error:  # noqa: BLE001 - this file fails its slice, the others load
        outcome.fail(f"{path}: {ingest.describe_error(error, f'{VENUE}:{instrument} {day}')}")
        return
    _done(outcome, result.rows, result.load_id, path, "polars + write_slice")


def _load_csvs(context, client, db: str, run_id: str, kind: str, profile: str, paths: list[Path],
               outcomes: dict) -> None:
    """All CSVs in one file() statement; if it fails, file by file (to name the bad ones)."""
    if not paths:
        return
    by_name = {p.name: p for p in paths}

    def record(result: writer.CsvLoadResult) -> None:
        for load in result.slices:
            _done(outcomes[(kind, load.instrument, load.day)], load.rows, load.load_id, Path(load.file),
                  "engine file()")

    try:
        record(writer.load_csv_files(client, db, paths, VENUE, profile=profile, run_id=run_id))
        context.log.info(f"loaded {len(paths)} {kind} dump CSV(s) with the engine's file() reader")
        return
    except Exception as error:  # noqa: BLE001 - find the bad file(s): nothing of this statement is visible
        context.log.warning(f"{len(paths)} {kind} CSVs in one statement failed ({str(error)[:300]}); loading them "
                            "one by one")
    for name, path in by_name.items():
        name_info = parse_dump_name(name)
        outcome = outcomes[(kind, name_info.instrument, name_info.day)]
        try:
            record(writer.load_csv_files(client, db, [path], VENUE, profile=profile, run_id=run_id))
        except Exception as error:  # noqa: BLE001
            text = str(error).strip().splitlines()[0][:500]
            outcome.fail(f"{path}: {VENUE}:{name_info.instrument} {name_info.day} {kind}: the file does not load: {text}")
