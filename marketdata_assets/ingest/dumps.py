"""Loading Binance dump files found in the landing directory (sources/binance_vision/dumps.py reads them).

A plain CSV on the engine's disk is read by ClickHouse itself (`INSERT ... SELECT ... FROM file()`
under the source's `TRADES_CSV` / `KLINES_1M_CSV` profiles: all of a run's files in one statement,
each file its own slice; a failed statement is retried file by file to name the bad ones); zips, and
anything on a ClickHouse server, go through `read_dump` and `write_slice`.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from marketdata_assets.core.errors import error_text
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.sources.binance_vision.dumps import (
    DUMP_DATASETS,
    SOURCE,
    has_rows,
    landing_dumps,
    read_dump,
)
from marketdata_assets.stores.clickhouse import writer

log = logging.getLogger(__name__)


def dump_feed(
    root: Path, keys: list[SliceKey], *, engine_reads_files: bool, database: str, run_id: str
) -> Feed:
    """The engine's feed for the dump slices `keys`: each slice's file found under `root` (a plain
    CSV preferred), read by the engine's file() when it can see this disk, else by `read_dump`."""
    found: dict[tuple[str, str, date], list[Path]] = {}
    for path, name in landing_dumps(root):
        dataset = DUMP_DATASETS[name.family][0]
        found.setdefault((dataset, name.instrument, name.day), []).append(path)
    jobs = [
        Job(
            (key,),
            sorted(found.get((key.dataset, key.instrument, key.day), []), key=lambda p: p.suffix != ".csv"),
        )
        for key in keys
    ]

    def load(client, jobs: list[Job]) -> dict:
        results: dict = {}
        csvs: dict[str, list[tuple[SliceKey, Path]]] = {}
        for job in jobs:
            key, files = job.keys[0], job.args
            token = next(t for d, t, _ in DUMP_DATASETS.values() if d == key.dataset)
            if not files:
                results[key] = FileNotFoundError(
                    f"{key}: no dump file {key.instrument}-{token}-{key.day}.csv or .zip under {root}"
                )
                continue
            try:
                empty = not has_rows(files[0])
            except (ValueError, OSError) as error:  # a corrupt zip, an unreadable file: this slice fails
                results[key] = ValueError(
                    f"{files[0]}: {key}: {str(error).removeprefix(files[0].name + ': ')}"
                )
                continue
            if empty:
                results[key] = ValueError(
                    f"{files[0]}: {key}: the dump holds no rows (0 bytes or a header only); "
                    "not loaded over the stored day: a venue's day is never empty"
                )
            elif files[0].suffix == ".csv" and engine_reads_files:
                csvs.setdefault(key.dataset, []).append((key, files[0]))
            else:
                results[key] = _load_with_polars(client, database, run_id, key, files[0])
        for dataset, items in csvs.items():
            results.update(_load_csvs(client, database, run_id, dataset, items))
        return results

    return Feed(SOURCE, jobs, fetch=None, load=load)


def _load_with_polars(client, database: str, run_id: str, key: SliceKey, path: Path):
    try:
        frame = read_dump(path, instrument=key.instrument, day=key.day, venue=key.venue)
        result = writer.write_slice(
            client, database, key.dataset, frame, key.venue, key.instrument, key.day, run_id
        )
    except Exception as error:  # noqa: BLE001 - this file fails its slice, the others load
        return RuntimeError(f"{path}: {error_text(error, str(key))}")
    return writer.WriteResult(result.rows, result.load_id, result.seconds, "polars + write_slice")


def _load_csvs(client, database: str, run_id: str, dataset: str, items: list[tuple[SliceKey, Path]]) -> dict:
    """All CSVs in one file() statement; if it fails, file by file (to name the bad ones)."""
    profile = next(p for d, _, p in DUMP_DATASETS.values() if d == dataset)
    venue = items[0][0].venue

    def loaded(result: writer.CsvLoadResult) -> dict:
        by_slice = {(s.instrument, s.day): s for s in result.slices}
        return {
            key: writer.WriteResult(
                by_slice[(key.instrument, key.day)].rows,
                by_slice[(key.instrument, key.day)].load_id,
                result.seconds,
                "engine file()",
            )
            for key, _ in items
            if (key.instrument, key.day) in by_slice
        }

    try:
        return loaded(
            writer.load_csv_files(
                client, database, [p for _, p in items], venue, profile=profile, run_id=run_id
            )
        )
    except Exception as error:  # noqa: BLE001 - find the bad file(s): nothing of that statement is visible
        log.warning(
            "%d %s dump CSVs in one statement failed (%s); loading them one by one",
            len(items),
            dataset,
            str(error)[:300],
        )
    results: dict = {}
    for key, path in items:
        try:
            result = writer.load_csv_files(client, database, [path], venue, profile=profile, run_id=run_id)
            results[key] = writer.WriteResult(
                result.rows, result.slices[0].load_id, result.seconds, "engine file()"
            )
        except Exception as error:  # noqa: BLE001
            text = str(error).strip().splitlines()[0][:500]
            results[key] = RuntimeError(f"{path}: {key}: the file does not load: {text}")
    return results
