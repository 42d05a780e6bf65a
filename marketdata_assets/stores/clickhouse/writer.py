"""Write normalized frames into ClickHouse, idempotently per (dataset, venue, instrument, day),
with the active-load pointer of stores.clickhouse.tables.

Validate, take a load id, insert, count (a dataset with ids: measure them, stores.clickhouse.load_ids),
flip: a failure before the flip leaves the previous state visible. Over 500 lines: every write path
(validation, load ids, inserts, CSV loads, flip, log) in one place. Steps, insert methods and CSV
loads: docs/ticks.md, "The ClickHouse writer"; rates: "Write rates".
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa

from marketdata_assets.core import metrics, plausibility
from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.naming import normalize_instrument, normalize_venue
from marketdata_assets.datasets import frames
from marketdata_assets.datasets.dump_csv import DumpCsvProfile
from marketdata_assets.datasets.frames import Dataset, spec_for
from marketdata_assets.stores.clickhouse import cluster, load_ids
from marketdata_assets.stores.clickhouse.tables import INGEST_LOG, INGEST_LOG_COLUMNS, LOADS, OUTCOMES

DEFAULT_BATCH_ROWS = 1_000_000
STREAMED_INSERT_ROWS = 500_000  # a streamed slice's rows per insert (`write_streamed`)
METHODS = ("auto", "python", "arrow")
_DATASET_OF_CODE = {
    spec.code: spec.name for spec in frames.DATASETS.values()
}  # loads.dataset (a code) -> name


@dataclass(frozen=True)
class WriteResult:
    rows: int
    load_id: int
    seconds: float
    method: str = ""
    first_ts: datetime | None = None  # the rows' first and last times, where the write saw them
    last_ts: datetime | None = None


@dataclass(frozen=True)
class SliceLoad:
    instrument: str
    day: date
    load_id: int
    rows: int
    file: str


@dataclass(frozen=True)
class CsvLoadResult:
    rows: int
    seconds: float
    slices: list = field(default_factory=list)  # list[SliceLoad]


# ---- frame validation ----------------------------------------------------------------------------------


def _as_day(day: date | str) -> date:
    if isinstance(day, datetime):
        raise ValueError(f"day must be a date, not a datetime ({day!r})")  # noqa: TRY004  ValueError is the contract
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(str(day))
    except ValueError:
        raise ValueError(f"invalid day {day!r}: expected YYYY-MM-DD") from None


def _conform_column(frame: pl.DataFrame, name: str, target: pl.DataType, where: str) -> pl.Expr:
    dtype = frame.schema[name]
    col = pl.col(name)
    if dtype == target:
        return col
    if dtype == pl.Null:
        return col.cast(target)
    if target == frames.UTC_US:
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            raise ValueError(
                f"{where}: column 'ts' is {dtype}, expected Datetime(us, UTC) "
                "(a naive time is ambiguous: attach the time zone upstream)"
            )
        col = col.dt.convert_time_zone("UTC")
        if dtype.time_unit == "ns":
            lossy = frame.select((pl.col(name).dt.epoch("ns") % 1000 != 0).fill_null(False)).to_series()
            if lossy.any():
                row = lossy.arg_max()
                raise ValueError(
                    f"{where}: row {row}: ts {frame[name][row]} has nanoseconds; "
                    "the tables store microseconds"
                )
        return col.dt.cast_time_unit("us")
    if target == pl.Utf8 and isinstance(dtype, (pl.Categorical, pl.Enum)):
        return col.cast(pl.Utf8)
    if target == pl.Float64 and dtype.is_integer():
        return col.cast(pl.Float64)
    if target in (pl.Int64, pl.Int32) and dtype.is_integer():
        return col.cast(target, strict=True)
    raise ValueError(f"{where}: column {name!r} is {dtype}, expected {target}")


def validate_frame(
    frame: pl.DataFrame, dataset: str, venue: str, instrument: str | None, day: date | str
) -> pl.DataFrame:
    """The frame as the contract's columns and dtypes, or ``ValueError`` naming the slice and the
    first offending row. Lossless casts are done (ints to Float64, other UTC time units, another
    time zone to UTC, categoricals to strings); a nullable column the frame lacks is null, any other
    missing one an error; everything else must have been fixed upstream.
    ``instrument=None``: rows of several instruments (each must be a normalized instrument of venue)."""
    spec = spec_for(dataset)
    day = _as_day(day)
    where = f"{spec.name} of {venue}:{instrument if instrument is not None else '*'} on {day}"
    if not isinstance(frame, pl.DataFrame):
        raise ValueError(f"{where}: expected a polars DataFrame, got {type(frame).__name__}")  # noqa: TRY004  ValueError is the contract
    missing = [c for c in spec.schema if c not in frame.columns and c not in spec.nullable]
    if missing:
        raise ValueError(f"{where}: missing columns {missing} (has {frame.columns})")
    try:
        out = frame.select(
            [
                _conform_column(frame, c, t, where).alias(c)
                if c in frame.columns
                else pl.lit(None, t).alias(c)
                for c, t in spec.schema.items()
            ]
        )
    except pl.exceptions.InvalidOperationError as error:
        raise ValueError(f"{where}: a column does not fit the schema: {str(error).splitlines()[0]}") from None
    if out.height == 0:
        return out

    # every rule is a "bad row" mask; all are evaluated in one parallel pass, then the first failing
    # rule (in this order) is located and reported
    rules = _rules(out, spec, venue, instrument, day)
    failed = out.select([mask.fill_null(True).any().alias(name) for name, mask, _ in rules]).row(
        0, named=True
    )
    for name, mask, message in rules:
        if failed[name]:
            row = out.select(mask.fill_null(True).arg_max()).item()
            raise ValueError(f"{where}: {message(row)}: {out.row(row, named=True)}")
    if instrument is None:
        for name in out["instrument"].unique().to_list():
            key = normalize_instrument(venue, name)
            if key.instrument != name:
                row = out.select((pl.col("instrument") == name).arg_max()).item()
                raise ValueError(
                    f"{where}: row {row} has instrument {name!r}, not normalized (expected "
                    f"{key.instrument!r})"
                )
    return out


def _rules(
    out: pl.DataFrame, spec: Dataset, venue: str, instrument: str | None, day: date
) -> list[tuple[str, pl.Expr, Callable[[int], str]]]:
    """The frame's "bad row" masks, each with the message naming a row that fails it, in the order
    they are reported."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    rules: list[tuple[str, pl.Expr, Callable[[int], str]]] = []
    for name in spec.schema:
        if name not in spec.nullable:
            rules.append(
                (
                    f"null {name}",
                    pl.col(name).is_null(),
                    lambda row, n=name: f"column {n!r} has {out[n].null_count()} null(s), first at row {row}",
                )
            )
        if spec.schema[name] == pl.Float64:
            bad = pl.col(name).is_nan() | pl.col(name).is_infinite()
            if name in spec.nullable:  # a null there is allowed: only NaN/inf are bad
                bad = bad.fill_null(False)
            rules.append((f"nan {name}", bad, lambda row, n=name: f"column {n!r} is NaN/inf at row {row}"))
    for name, expected in (("venue", venue), ("instrument", instrument)):
        if expected is not None:
            rules.append(
                (
                    f"value {name}",
                    pl.col(name) != expected,
                    lambda row, n=name, e=expected: f"row {row} has {n} {out[n][row]!r}, expected {e!r}",
                )
            )
    for name, words in frames.WORDS.get(spec.name, {}).items():
        rules.append(
            (
                name,
                ~pl.col(name).is_in(list(words)),
                lambda row, n=name, w=words: f"row {row} has {n} {out[n][row]!r}, expected one of {list(w)}",
            )
        )
    if spec.name == "books":
        rules.append(
            (
                "level",
                pl.col("level") < 0,
                lambda row: f"row {row} has level {out['level'][row]}, expected >= 0",
            )
        )
    plausible = plausibility.window(venue)
    rules.append(
        (
            "plausible ts",
            plausible.outside(pl.col("ts")),
            lambda row: _implausible_message(out, plausible, row),
        )
    )
    rules.append(
        (
            "ts",
            (pl.col("ts") < start) | (pl.col("ts") >= end),
            lambda row: (
                f"row {row} has ts {out['ts'][row].isoformat()} outside the day "
                f"[{start.isoformat()}, {end.isoformat()})"
            ),
        )
    )
    return rules


def _implausible_message(frame: pl.DataFrame, plausible: plausibility.Window, row: int) -> str:
    """Column ts's implausible rows: how many, sample values and the first one's reason."""
    bad = frame.filter(plausible.outside(pl.col("ts")))["ts"]
    samples = ", ".join(t.isoformat() for t in bad.unique(maintain_order=True).head(3).to_list())
    return (
        f"column 'ts' has {bad.len()} implausible timestamp(s) ({samples}); first at row {row}: "
        f"{plausible.reason(frame['ts'][row])}"
    )


# ---- load ids and the pointer ----------------------------------------------------------------------------


def _active_load_ids(client, database: str, code: str, venue: str, slices: Sequence[tuple]) -> dict:
    """{(instrument, day): active load_id} for the given slices."""
    if not slices:
        return {}
    instruments = sorted({s[0] for s in slices})
    days = sorted({s[1] for s in slices})
    rows = client.query(
        f"SELECT instrument, day, load_id FROM {clickhouse_database(database)}.{LOADS} FINAL WHERE dataset "
        "= {code:String} AND venue = {venue:String} AND instrument IN {instruments:Array(String)} "
        "AND day >= {first:Date} AND day <= {last:Date}",
        parameters={
            "code": code,
            "venue": venue,
            "instruments": instruments,
            "first": days[0],
            "last": days[-1],
        },
    ).result_rows
    return {(r[0], r[1]): int(r[2]) for r in rows}


def new_load_ids(
    client, database: str, code: str, venue: str, slices: Sequence[tuple], timeout_s: float = 5.0
) -> list[int]:
    """One new snowflake load id per (instrument, day) slice, each larger than the slice's active
    load (waits out a server clock that went backwards, up to ``timeout_s``)."""
    active = _active_load_ids(client, database, code, venue, slices)
    floor = max([active.get((s[0], s[1]), 0) for s in slices], default=0)
    deadline = time.monotonic() + timeout_s
    while True:
        ids = [
            int(r[0])
            for r in client.query(
                "SELECT generateSnowflakeID(number) FROM numbers({n:UInt32})", parameters={"n": len(slices)}
            ).result_rows
        ]
        if not ids or min(ids) > floor:
            return ids
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"ClickHouse issued load ids {min(ids)} <= the active load {floor} of "
                f"{code} {venue}: is the server clock behind?"
            )
        time.sleep(0.05)


def _flip(client, database: str, code: str, venue: str, loads: Sequence[tuple], run_id: str) -> None:
    """Make the given loads active: one insert (one part) into ``loads`` = atomic for all of them.
    loads: (instrument, day, load_id, rows)."""
    now = datetime.now(UTC)
    cluster.insert_rows(
        client,
        database,
        LOADS,
        [[code, venue, inst, day, load_id, rows, run_id, now] for inst, day, load_id, rows in loads],
        ["dataset", "venue", "instrument", "day", "load_id", "rows", "run_id", "loaded_at"],
        cluster.insert_settings(cluster.load_token([x[2] for x in loads], -1)),
    )
    metrics.loaded(
        _DATASET_OF_CODE.get(code, code), venue, sum(load[3] for load in loads)
    )  # the commit point


# ---- inserting rows ---------------------------------------------------------------------------------------


def _chdb_handle(client):
    """The chDB connection handle behind clickhouse-connect's ChdbClient, or None (a server, or an
    unknown clickhouse-connect layout: then the Arrow path is used)."""
    backend = getattr(client, "_backend", None)
    handle = getattr(backend, "_handle", None)
    if handle is None or getattr(handle, "conn", None) is None or not hasattr(handle, "lock"):
        return None
    if type(backend).__name__ != "ChdbBackend":
        return None
    return handle


def _insert_python(client, database: str, spec: Dataset, table: pa.Table, same: dict | None = None) -> None:
    """``INSERT ... SELECT ... FROM Python(tick_rows)`` on the chDB handle, under the handle's lock. `same`:
    {column: value} of the columns every row shares (the venue, the instrument, the day, the load), given
    as query parameters rather than per row (a string column is the costliest to convert)."""
    handle = _chdb_handle(client)
    same = same or {}
    names = (*spec.column_names, "day", "load_id")
    select = ", ".join(f"{{{c}:{_SHARED_TYPES[c][0]}}} AS `{c}`" if c in same else f"`{c}`" for c in names)
    sql = (
        f"INSERT INTO {clickhouse_database(database)}.`{spec.table}` ({', '.join(f'`{c}`' for c in names)}) "
        f"SELECT {select} FROM Python(tick_rows)"
    )
    params = {c: str(v) for c, v in same.items()}
    tick_rows = table  # noqa: F841  -- chDB's Python() table function finds it in this frame
    wrap = getattr(client._backend, "_wrap_exception", None)
    if getattr(handle, "stream_owner", None) == threading.get_ident():
        raise RuntimeError(
            "this thread is still reading a streamed query result on the same client; "
            "finish or close it before writing"
        )
    with handle.lock:
        if handle.conn is None:
            raise RuntimeError("the ClickHouse client has been closed")
        try:
            handle.conn.query(sql, "TabSeparated", params=params)
        except Exception as error:
            if wrap is None:
                raise
            raise wrap(error) from error


# the columns a streamed insert's rows share: their query parameter type (Python path), their Arrow type
_SHARED_TYPES = {
    "venue": ("String", pa.large_string()),
    "instrument": ("String", pa.large_string()),
    "day": ("Date", pa.date32()),
    "load_id": ("UInt64", pa.uint64()),
}


def _insert_arrow(
    client, database: str, spec: Dataset, table: pa.Table, batch_rows: int, load_ids, start: int = 0
) -> None:
    """``insert_arrow`` in batches (cluster mode: a retried batch is deduplicated by its token, its
    offset in the load: `start` is the table's)."""
    for offset in range(0, table.num_rows, batch_rows):
        client.insert_arrow(
            spec.table,
            table.slice(offset, batch_rows),
            database=database,
            settings=cluster.insert_settings(cluster.load_token(load_ids, start + offset)),
        )


def _count_loads(
    client,
    database: str,
    spec: Dataset,
    venue: str,
    instruments: Sequence[str],
    day: date,
    load_ids: Sequence[int],
) -> dict:
    """{load_id: rows} of the given new loads (all in one day)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = client.query(
        f"SELECT load_id, count() FROM {clickhouse_database(database)}.`{spec.table}` WHERE venue = "
        "{venue:String} AND instrument IN {instruments:Array(String)} AND ts >= {start:DateTime64(6, "
        "'UTC')} AND ts < {end:DateTime64(6, 'UTC')} AND load_id IN {ids:Array(UInt64)} GROUP BY load_id",
        parameters={
            "venue": venue,
            "instruments": list(instruments),
            "start": start,
            "end": start + timedelta(days=1),
            "ids": list(load_ids),
        },
    ).result_rows
    return {int(r[0]): int(r[1]) for r in rows}


def _written(
    client,
    database: str,
    spec: Dataset,
    venue: str,
    instruments: Sequence[str],
    days: Sequence[date],
    ids: Sequence[int],
) -> tuple[dict, list]:
    """({load_id: rows} of the new loads, the figures of their ids to record): a dataset with ids has
    its loads' rows counted by the read that measures their ids (stores.clickhouse.load_ids)."""
    if not days:
        return {}, []
    if load_ids.has_ids(spec):
        figures = load_ids.measure(client, database, spec, venue, instruments, days, ids)
        return {load: f.rows for load, f in figures.items()}, list(figures.values())
    written: dict = {}
    for day in days:
        written.update(_count_loads(client, database, spec, venue, instruments, day, ids))
    return written, []


def _method(client, method: str) -> str:
    """The insert method `auto` stands for on this client (python: the chDB handle; else arrow)."""
    if method not in METHODS:
        raise ValueError(f"unknown load method {method!r}: expected one of {METHODS}")
    if method == "auto":
        return "python" if _chdb_handle(client) is not None else "arrow"
    if method == "python" and _chdb_handle(client) is None:
        raise ValueError("method='python' needs the embedded chDB engine (clickhouse-connect ChdbClient)")
    return method


def _insert(
    client,
    database: str,
    spec: Dataset,
    table: pa.Table,
    method: str,
    batch_rows: int,
    ids,
    start: int = 0,
    same: dict | None = None,
) -> None:
    """Insert `table`; `same`: the columns every row shares, absent from the table (given to the Python
    path as parameters, appended to the table for the Arrow path)."""
    if method == "python":
        _insert_python(client, database, spec, table, same)
        return
    for column, value in (same or {}).items():
        kind = _SHARED_TYPES[column][1]
        table = table.append_column(column, pa.repeat(pa.scalar(value, kind), table.num_rows))
    _insert_arrow(
        client, database, spec, table.select([*spec.column_names, "day", "load_id"]), batch_rows, ids, start
    )


def _write_day(
    client,
    database: str,
    spec: Dataset,
    data: pl.DataFrame,
    venue: str,
    day: date,
    instruments: Sequence[str],
    run_id: str,
    method: str,
    batch_rows: int,
) -> dict:
    """Insert validated rows of one venue and day as one new load per instrument, check the
    counts, flip all pointers in one insert. Returns {instrument: WriteResult}."""
    started = time.monotonic()
    method = _method(client, method)
    instruments = sorted(set(instruments))
    ids = new_load_ids(client, database, spec.code, venue, [(i, day) for i in instruments])
    load_of = dict(zip(instruments, ids))
    expected = dict(data["instrument"].value_counts().iter_rows()) if data.height else {}
    if data.height:
        table = data.with_columns(
            pl.lit(day, pl.Date).alias("day"),
            pl.col("instrument").replace_strict(load_of, return_dtype=pl.UInt64).alias("load_id"),
        ).to_arrow(compat_level=pl.CompatLevel.oldest())
        _insert(client, database, spec, table, method, batch_rows, ids)
        written, figures = _written(client, database, spec, venue, instruments, [day], ids)
        wrong = [
            (i, expected.get(i, 0), written.get(load_of[i], 0))
            for i in instruments
            if written.get(load_of[i], 0) != expected.get(i, 0)
        ]
        if wrong:
            raise RuntimeError(
                f"{spec.name} of {venue} on {day}: ClickHouse holds a different row count for "
                f"(instrument, expected, found) {wrong[:5]}; the previous loads stay active"
            )
        load_ids.record(client, database, spec, figures)
    _flip(
        client,
        database,
        spec.code,
        venue,
        [(i, day, load_of[i], expected.get(i, 0)) for i in instruments],
        run_id,
    )
    seconds = round(time.monotonic() - started, 3)
    return {
        i: WriteResult(rows=expected.get(i, 0), load_id=load_of[i], seconds=seconds, method=method)
        for i in instruments
    }


def _check_normalized(venue: str, instrument: str) -> None:
    key = normalize_instrument(venue, instrument)
    if (key.venue, key.instrument) != (venue, instrument):
        raise ValueError(f"instrument {venue}:{instrument} is not normalized: expected {key}")


def write_slice(
    client,
    database: str,
    dataset: str,
    frame: pl.DataFrame,
    venue: str,
    instrument: str,
    day: date | str,
    run_id: str,
    *,
    method: str = "auto",
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> WriteResult:
    """Replace one (dataset, venue, instrument, day) slice with ``frame`` (docs/ticks.md, "The ClickHouse
    writer"). The previous rows stay visible until the new ones are all in; an empty frame empties the day."""
    spec = spec_for(dataset)
    _check_normalized(venue, instrument)
    day = _as_day(day)
    data = validate_frame(frame, spec.name, venue, instrument, day)
    return _write_day(client, database, spec, data, venue, day, [instrument], run_id, method, batch_rows)[
        instrument
    ]


def write_streamed(
    client,
    database: str,
    dataset: str,
    venue: str,
    instrument: str,
    days: Sequence[date],
    batches: Iterable[pl.DataFrame],
    run_id: str,
    *,
    method: str = "auto",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    insert_rows: int = STREAMED_INSERT_ROWS,
) -> dict[date, WriteResult]:
    """Replace the slices of `instrument` on `days` with the rows of `batches`, inserted as they are
    read (`insert_rows` at a time: memory is that many rows, not the day) under one new load per day;
    then the rows of each load are counted and every pointer flipped at once. Nothing becomes visible
    if a batch fails (the batches' iterator raising included). Returns {day: WriteResult} with the
    day's first and last ts (a day without rows: empty)."""
    spec = spec_for(dataset)
    _check_normalized(venue, instrument)
    started, method, days = time.monotonic(), _method(client, method), sorted({_as_day(d) for d in days})
    ids = new_load_ids(client, database, spec.code, venue, [(instrument, d) for d in days])
    load_of, expected = dict(zip(days, ids)), dict.fromkeys(days, 0)
    spans: dict[date, tuple[datetime, datetime]] = {}  # each day's first and last ts
    held: dict[date, list[pa.Table]] = {}  # each day's validated batches not inserted yet (an insert
    # costs ~60 ms whatever its size), without the columns every row of the day shares
    inserted = held_rows = 0

    def insert() -> None:
        nonlocal inserted, held_rows
        for day, tables in held.items():
            same = {"venue": venue, "instrument": instrument, "day": day, "load_id": load_of[day]}
            table = pa.concat_tables(tables)
            _insert(client, database, spec, table, method, batch_rows, ids, inserted, same)
            inserted += table.num_rows
        held_rows = 0
        held.clear()

    shared = ["venue", "instrument"]
    for batch in batches:
        for day, part in _by_day(batch, spec.name, venue, instrument, load_of):
            data = validate_frame(part, spec.name, venue, instrument, day)
            held.setdefault(day, []).append(data.drop(shared).to_arrow(compat_level=pl.CompatLevel.oldest()))
            expected[day] += data.height
            held_rows += data.height
            low, high = data["ts"].min(), data["ts"].max()
            spans[day] = (min(spans[day][0], low), max(spans[day][1], high)) if day in spans else (low, high)
            if held_rows >= insert_rows:
                insert()
    if held:
        insert()
    filled = [d for d in days if expected[d]]
    written, figures = _written(
        client, database, spec, venue, [instrument], filled, [load_of[d] for d in filled]
    )
    for day in filled:
        if written.get(load_of[day], 0) != expected[day]:
            raise RuntimeError(
                f"{spec.name} of {venue}:{instrument} on {day}: ClickHouse holds "
                f"{written.get(load_of[day], 0)} rows of the load, {expected[day]} were written; the "
                "previous loads stay active"
            )
    load_ids.record(client, database, spec, figures)
    _flip(
        client, database, spec.code, venue, [(instrument, d, load_of[d], expected[d]) for d in days], run_id
    )
    seconds = round(time.monotonic() - started, 3)
    return {
        d: WriteResult(expected[d], load_of[d], seconds, f"{method}, streamed", *spans.get(d, (None, None)))
        for d in days
    }


def _by_day(
    batch: pl.DataFrame, dataset: str, venue: str, instrument: str, load_of: dict[date, int]
) -> Iterable[tuple[date, pl.DataFrame]]:
    """A batch's rows per day (one part for a batch within a day); a row of a day not written is an error."""
    if not batch.height:
        return []
    first, last = batch.select(
        pl.col("ts").min().dt.date().alias("a"), pl.col("ts").max().dt.date().alias("b")
    ).row(0)
    parts = (
        [(first, batch)]
        if first == last
        else [(k[0], p) for k, p in batch.group_by(pl.col("ts").dt.date().alias("day"), maintain_order=True)]
    )
    for day, _ in parts:
        if day not in load_of:
            raise ValueError(
                f"{dataset} of {venue}:{instrument}: a batch has rows of {day}, not one of the days "
                f"written ({', '.join(map(str, load_of))})"
            )
    return parts


def write_slices(
    client,
    database: str,
    dataset: str,
    frame: pl.DataFrame,
    venue: str,
    day: date | str,
    run_id: str,
    *,
    instruments: Iterable[str] | None = None,
    method: str = "auto",
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> dict:
    """:func:`write_slice` for many instruments of one venue and day in one insert (e.g. a day of
    minute bars for 5,000 A-shares): one load per instrument, one count query, one flip for all
    (~50 ms of pointer work per call instead of per instrument). ``instruments`` names slices to
    replace even when the frame has no row for them (they become empty). Returns
    {instrument: WriteResult}; ``seconds`` is the whole call's."""
    spec = spec_for(dataset)
    venue = venue if isinstance(venue, str) else str(venue)
    if normalize_venue(venue) != venue:
        raise ValueError(f"venue {venue!r} is not normalized: expected {normalize_venue(venue)!r}")
    day = _as_day(day)
    data = validate_frame(frame, spec.name, venue, None, day)
    names = set(data["instrument"].unique().to_list())
    for instrument in instruments or ():
        key = normalize_instrument(venue, instrument)
        if key.instrument != instrument:
            raise ValueError(f"instrument {venue}:{instrument} is not normalized: expected {key}")
        names.add(instrument)
    if not names:
        return {}
    return _write_day(client, database, spec, data, venue, day, sorted(names), run_id, method, batch_rows)


# ---- dump CSVs read by the engine ------------------------------------------------------------------------

_UNSAFE_PATH = re.compile(r"[',\\{}*?\[\]\n\r\t]")


def _dump_files(
    paths: Iterable[str | Path], venue: str, prof: DumpCsvProfile
) -> list[tuple[Path, str, date]]:
    """(path, instrument, day) of each dump file, from its name: a name that doesn't match, a path
    file() can't take, a missing file, an implausible day, an instrument not normalized or two files
    of one slice fail the whole load, naming the file."""
    files: list[tuple[Path, str, date]] = []
    seen: dict[tuple, Path] = {}
    for raw in paths:
        path = Path(raw).resolve()
        match = prof.name_pattern.match(path.name)
        if not match:
            raise ValueError(
                f"{path}: file name does not match the {prof.dataset} dump pattern "
                f"{prof.name_pattern.pattern}"
            )
        if _UNSAFE_PATH.search(str(path)):
            raise ValueError(
                f"{path}: the path contains characters that cannot go into file() "
                "(quotes, commas, backslashes, braces, glob characters)"
            )
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        instrument, day = match.group(1), _as_day(match.group(2))
        implausible = plausibility.window(venue).reason(
            datetime(day.year, day.month, day.day, tzinfo=UTC), f"{day}"
        )
        if implausible:  # every row of the file is in that day
            raise ValueError(f"{path}: the file's day (from its name): {implausible}")
        key = normalize_instrument(venue, instrument)
        if (key.venue, key.instrument) != (venue, instrument):
            raise ValueError(f"{path}: instrument {venue}:{instrument} is not normalized (expected {key})")
        if (instrument, day) in seen:
            raise ValueError(
                f"{path} and {seen[(instrument, day)]} are the same slice {venue}:{instrument} {day}"
            )
        seen[(instrument, day)] = path
        files.append((path, instrument, day))
    return files


# how the engine reads a dump CSV: a row of any length (a short one is caught by the profile's guard), a
# header line if the file starts with one
_CSV_READING = "input_format_csv_allow_variable_number_of_columns = 1, input_format_csv_detect_header = 1"
_FILE_DAY = "toDate(substring(_file, length(_file) - 13, 10))"  # <instrument>-<family>-YYYY-MM-DD.csv
# rows a part of the CSV load holds (the engine's default: ~1M): 10M trades in 5 parts, not 10 merged
# into 5 while they load; 3 CPU s less, +150 MB (docs/ticks.md, "Write rates")
CSV_BLOCK_ROWS = 2_000_000
_OUTSIDE = "a row is outside the day of its file name"


def load_csv_files(
    client,
    database: str,
    paths: Iterable[str | Path],
    venue: str,
    *,
    profile: DumpCsvProfile,
    run_id: str = "",
    files_per_insert: int = 200,
) -> CsvLoadResult:
    """Load dump CSVs with the engine's ``file()`` reader; each file replaces its (instrument, day)
    slice. The paths must be readable by the ClickHouse engine (the embedded engine: this machine's
    disk; a server: its own disk). Nothing becomes visible unless every file loaded and every row's
    ts is in its file's day (checked by the statement itself, row by row, as the profile's guards)."""
    started = time.monotonic()
    prof = profile
    spec = spec_for(prof.dataset)
    files = _dump_files(paths, venue, prof)
    if not files:
        return CsvLoadResult(rows=0, seconds=0.0)
    ids = new_load_ids(client, database, spec.code, venue, [(s, d) for _, s, d in files])
    load_of = {path.name: load_id for (path, _, _), load_id in zip(files, ids)}  # a name is a slice: unique
    by_dir: dict[Path, list[str]] = {}
    for path, _, _ in files:
        by_dir.setdefault(path.parent, []).append(path.name)
    for directory, names in by_dir.items():
        for i in range(0, len(names), files_per_insert):
            group = names[i : i + files_per_insert]
            glob = f"{directory}/{group[0]}" if len(group) == 1 else f"{directory}/{{{','.join(group)}}}"
            try:
                client.command(
                    _csv_insert(database, spec, prof, venue, glob, load_of),
                    settings=cluster.insert_settings(cluster.load_token([load_of[n] for n in group])),
                )
            except Exception as error:
                if _OUTSIDE in str(error):
                    raise _outside_error(client, prof, venue, glob, files) from None
                raise
    measured = None
    if load_ids.has_ids(spec):
        days = sorted({d for _, _, d in files})
        measured = load_ids.measure(
            client, database, spec, venue, sorted({s for _, s, _ in files}), days, ids
        )
    counts = _check_csv_loads(client, clickhouse_database(database), spec, prof, venue, files, ids, measured)
    if measured is not None:
        load_ids.record(client, database, spec, list(measured.values()))
    loads = [
        (instrument, day, load_id, counts.get(load_id, 0))
        for (path, instrument, day), load_id in zip(files, ids)
    ]
    _flip(client, database, spec.code, venue, loads, run_id)
    slices = [
        SliceLoad(instrument, day, load_id, rows, str(path))
        for (path, instrument, day), (_, _, load_id, rows) in zip(files, loads)
    ]
    return CsvLoadResult(
        rows=sum(s.rows for s in slices), seconds=round(time.monotonic() - started, 3), slices=slices
    )


def _csv_insert(
    database: str, spec: Dataset, prof: DumpCsvProfile, venue: str, glob: str, load_of: dict
) -> str:
    """The statement loading the files of `glob` under `prof`: its select, the required columns' guard,
    the day guard (a row's ts in its file's day) and each file's load id."""
    venue_sql = "'" + venue + "'"  # normalized venue: [A-Z0-9_] only
    exprs = dict(prof.select, venue=venue_sql, instrument="splitByChar('-', _file)[1]")
    exprs["ts"] = f"{exprs['ts']} AS _ts"
    cols = ", ".join(f"`{c}`" for c in spec.column_names)
    select = ", ".join(_csv_column(exprs, spec, prof, c) for c in spec.column_names)
    missing = " OR ".join(f"isNull({c})" for c in prof.required)  # column names of the source's profile
    guard = (
        f" + throwIf({missing}, 'a row lacks one of {', '.join(prof.required)}: a short line')"
        if prof.required
        else ""
    )
    guard += f" + throwIf(ifNull(toDate(_ts) != {_FILE_DAY}, 0), '{_OUTSIDE}')"
    names_sql = "[" + ", ".join(f"'{n}'" for n in load_of) + "]"
    ids_sql = "[" + ", ".join(f"toUInt64({i})" for i in load_of.values()) + "]"
    return (
        f"INSERT INTO {clickhouse_database(database)}.`{spec.table}` ({cols}, `day`, `load_id`)\n"
        f"SELECT {select}, {_FILE_DAY}{guard},\n"
        f"       transform(_file, {names_sql}, {ids_sql}, toUInt64(0))\n"
        f"FROM file('{glob}', CSV, '{prof.schema}')\n"
        f"SETTINGS {_CSV_READING}, min_insert_block_size_rows = {CSV_BLOCK_ROWS}"
    )


def _csv_column(exprs: dict, spec: Dataset, prof: DumpCsvProfile, column: str) -> str:
    """The select of one column: the profile's expression; NULL for a nullable column the dump files do
    not have; a ValueError naming a required one the profile lacks."""
    if column in exprs:
        return exprs[column]
    if column in spec.nullable:
        return "NULL"
    raise ValueError(f"the {prof.dataset} dump profile has no column {column!r}, which {spec.name} requires")


def _outside_error(client, prof: DumpCsvProfile, venue: str, glob: str, files: list) -> ValueError:
    """The error of a statement whose day guard stopped it: the first of its files with rows outside the
    file's day, how many and the first such ts (the files read again, without a guard)."""
    rows = client.query(
        f"SELECT _file, countIf(toDate(_ts) != {_FILE_DAY}) AS n, minIf(_ts, toDate(_ts) != {_FILE_DAY}) "
        f"FROM (SELECT {prof.select['ts']} AS _ts, _file FROM file('{glob}', CSV, '{prof.schema}') "
        f"SETTINGS {_CSV_READING}) "
        "GROUP BY _file HAVING n > 0 ORDER BY _file LIMIT 1"
    ).result_rows
    if not rows:
        return ValueError(f"{glob}: {_OUTSIDE}; nothing from this batch was made visible")
    name, outside, first_ts = rows[0]
    path, instrument, day = next(f for f in files if f[0].name == name)
    return ValueError(
        f"{path}: {outside} row(s) of {venue}:{instrument} are outside the file's day {day}, "
        f"the first at ts {first_ts}; nothing from this batch was made visible"
    )


def _check_csv_loads(
    client,
    db: str,
    spec: Dataset,
    prof: DumpCsvProfile,
    venue: str,
    files: list,
    ids: list[int],
    measured: dict | None = None,
) -> dict[int, int]:
    """The new loads of dump files: {load: rows}; ValueError naming the file for rows repeating the slice
    key (the first such value and its count). `measured`: the loads' ids as load_ids.measure read them;
    their rows and distinct ids tell the counts and the repeats of a profile whose unique ids are `seq`
    (nothing is read again)."""
    by_ids = (
        measured is not None
        and prof.unique_ids == "seq"
        and all(f.distinct is not None and not f.without_id for f in measured.values())
    )
    instruments = sorted({s for _, s, _ in files})
    where = (
        f"FROM {db}.`{spec.table}` WHERE venue = {{venue:String}} AND instrument IN "
        "{instruments:Array(String)} AND load_id IN {ids:Array(UInt64)}"
    )
    params = {"venue": venue, "instruments": instruments, "ids": ids}
    if by_ids:
        check = [(load, f.rows, f.rows - f.distinct) for load, f in measured.items()]
    else:
        if prof.unique_ids:
            repeats = f"count() - groupBitmap(toUInt64(`{prof.unique_ids}`))"
        else:
            repeats = f"count() - uniqExact(`{spec.key}`)" if spec.key else "0"
        check = client.query(
            f"SELECT load_id, count(), {repeats} {where} GROUP BY load_id", parameters=params
        ).result_rows
    for load_id, _, repeated in check:
        if repeated:
            path, instrument, _ = next(f for f, i in zip(files, ids) if i == load_id)
            value, times = client.query(
                f"SELECT `{spec.key}`, count() AS n {where} AND load_id = {{load:UInt64}} GROUP BY "
                f"`{spec.key}` HAVING n > 1 ORDER BY `{spec.key}` LIMIT 1",
                parameters={**params, "load": load_id},
            ).result_rows[0]
            raise ValueError(
                f"{path}: {repeated} row(s) of {venue}:{instrument} repeat a {spec.key} of the file "
                f"({spec.key} {value} appears {times} times); nothing from this batch was made visible"
            )
    return {int(load): int(rows) for load, rows, _ in check}


# ---- ingest log ----------------------------------------------------------------------------------------


def log_ingest(client, database: str, rows: list[dict]) -> int:
    """Append attempt rows to ``ingest_log``. Required keys: run_id, source, venue, instrument, day,
    outcome ('ok' | 'failed' | 'skipped'), started_at, finished_at (aware or UTC-naive datetimes);
    optional: dataset (its code, ``Dataset.code``), rows, requests, retries, rate_limited, latency_p50_ms,
    latency_p95_ms, error, load_id, dropped ({reason: rows} a parser dropped), conversions (unit conversions
    applied, as text)."""
    if not rows:
        return 0
    defaults = {
        "dataset": "",
        "rows": 0,
        "requests": 0,
        "retries": 0,
        "rate_limited": 0,
        "latency_p50_ms": 0.0,
        "latency_p95_ms": 0.0,
        "error": "",
        "load_id": 0,
        "dropped": {},
        "conversions": [],
    }
    data = []
    for index, row in enumerate(rows):
        unknown = set(row) - set(INGEST_LOG_COLUMNS)
        if unknown:
            raise ValueError(f"ingest_log row {index}: unknown keys {sorted(unknown)}")
        merged = {**defaults, **row}
        missing = [c for c in INGEST_LOG_COLUMNS if c not in merged]
        if missing:
            raise ValueError(f"ingest_log row {index}: missing {missing}")
        if merged["outcome"] not in OUTCOMES:
            raise ValueError(
                f"ingest_log row {index}: outcome {merged['outcome']!r} is not one of {OUTCOMES}"
            )
        merged["day"] = _as_day(merged["day"])
        for key in ("started_at", "finished_at"):
            value = merged[key]
            if not isinstance(value, datetime):
                raise ValueError(f"ingest_log row {index}: {key} must be a datetime, got {value!r}")  # noqa: TRY004  ValueError is the contract
            merged[key] = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        for key in ("latency_p50_ms", "latency_p95_ms"):
            value = float(merged[key] or 0.0)
            merged[key] = 0.0 if math.isnan(value) else value
        merged["error"] = str(merged["error"] or "")[:10_000]
        data.append([merged[c] for c in INGEST_LOG_COLUMNS])
    cluster.insert_rows(
        client,
        database,
        INGEST_LOG,
        data,
        INGEST_LOG_COLUMNS,
        cluster.insert_settings(lambda: cluster.rows_token("ingest", data)),
    )
    return len(data)
