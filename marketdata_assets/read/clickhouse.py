"""Reads of the ClickHouse datasets (datasets.frames.DATASETS) into Polars: only active loads, every
filter in the SQL, values as bind parameters.

One SELECT per read: the dataset's columns from its table where venue, instrument(s) and ``ts`` are
in range and ``load_id`` is in the slices' active loads (the pointer, ``loads FINAL``, restricted to
the same venue, instruments and days: pushed down like the ``*_range`` views), ordered by the
table's key (the order it is stored in, so the sort is a read in order). The Arrow answer becomes a
Polars frame with the dataset's frame schema (datasets.frames).

``as_of``: the loads that were active then (stores.clickhouse.history.loads_as_of) instead of the
pointer, after checking that compaction has not dropped their rows (history.check_not_compacted).

A read of trade ids (``trade_id`` or ``seq`` of trades, agg_trades) states which id sequence each row's
slice holds, in the column ``id_sequence`` (``ID_SEQUENCE``: aggTrade, trade, ...): a Binance slice holds
aggregate ids or individual ones depending on the source that loaded it (docs/ticks.md, "Fidelity").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.naming import normalize_instrument, normalize_venue
from marketdata_assets.datasets.frames import TRADES_SPEC, Dataset, spec_for
from marketdata_assets.sources.registry import ID_SEQUENCES, SEQUENCED_DATASETS, STREAMS, id_sequence
from marketdata_assets.stores.clickhouse import history, live, tables

IDS = "id_sequence"
UNKNOWN_IDS = "unknown"  # a load no ingest_log row names, or of a source declaring no sequence
ID_SEQUENCE = pl.Enum(sorted({seq.name for seq in ID_SEQUENCES}) + [UNKNOWN_IDS])


def parse_time(value: datetime | date | str, what: str) -> datetime:
    """A datetime (naive or aware, as given; a date or 'YYYY-MM-DD' is its naive 00:00), or a
    ValueError naming ``what``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{what} {value!r} is not an ISO date or time (YYYY-MM-DD[THH:MM[:SS]][+HH:MM])"
            ) from None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise ValueError(f"{what} must be a datetime, a date or an ISO string, got {type(value).__name__}")


def utc_time(value: datetime | date | str, what: str) -> datetime:
    """An aware UTC datetime: naive datetimes are UTC, a date (or 'YYYY-MM-DD') is its 00:00 UTC."""
    value = parse_time(value, what)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_range(start, end) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC; ``end`` after ``start``."""
    first, last = utc_time(start, "start"), utc_time(end, "end")
    if last <= first:
        raise ValueError(
            f"end {last.isoformat()} is not after start {first.isoformat()}: the range is [start, end)"
        )
    return first, last


def instruments_of(venue: str, instrument: str | Sequence[str] | None) -> tuple[str, list[str] | None]:
    """The normalized venue and instruments (core.naming: the stored spelling; a bad one is a
    ValueError naming it). ``None``: every instrument of the venue."""
    venue = normalize_venue(venue)
    if instrument is None:
        return venue, None
    names = [instrument] if isinstance(instrument, str) else list(instrument)
    if not names:
        raise ValueError("no instrument given (None reads every instrument of the venue)")
    return venue, sorted({normalize_instrument(venue, name).instrument for name in names})


def columns_of(spec: Dataset, columns: Sequence[str] | None) -> list[str]:
    """The frame columns to read (all by default), each checked against the dataset's."""
    if columns is None:
        return list(spec.column_names)
    unknown = [c for c in columns if c not in spec.schema]
    if unknown or not columns:
        raise ValueError(f"{spec.name} has no column(s) {unknown}; its columns: {list(spec.column_names)}")
    return list(dict.fromkeys(columns))


def select_sql(
    database: str, spec: Dataset, columns: list[str], *, all_instruments: bool, as_of: bool
) -> str:
    """The read's SELECT; parameters: venue, instruments, start, end, and either code/first_day/last_day
    (the active loads) or ids (``as_of``: the loads chosen from the history)."""
    db = clickhouse_database(database)
    match = "venue = {venue:String}" + (
        "" if all_instruments else " AND instrument IN {instruments:Array(String)}"
    )
    if as_of:
        loads = "{ids:Array(UInt64)}"
    else:
        loads = (
            f"(SELECT load_id FROM {db}.loads FINAL WHERE dataset = {{code:String}} AND {match} "
            "AND day >= {first_day:Date} AND day <= {last_day:Date})"
        )
    return (
        f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {db}.`{spec.table}`\n"
        f"WHERE {match} AND ts >= {{start:DateTime64(6, 'UTC')}} AND ts < {{end:DateTime64(6, 'UTC')}}\n"
        f"  AND load_id IN {loads}\nORDER BY {', '.join(spec.order_by)}"
    )


def to_frame(table, spec: Dataset, columns: list[str]) -> pl.DataFrame:
    """The Arrow answer as a frame of the dataset's schema (its dtypes, its column order)."""
    schema = {c: spec.schema[c] for c in columns}
    frame = pl.from_arrow(table) if table is not None and table.num_columns else None
    if not isinstance(frame, pl.DataFrame) or frame.width == 0:
        return pl.DataFrame(schema=schema)
    return frame.select(
        [pl.col(c).cast(dtype) if frame.schema[c] != dtype else pl.col(c) for c, dtype in schema.items()]
    )


def query_params(
    spec: Dataset, venue: str, instruments: list[str] | None, start: datetime, end: datetime
) -> dict:
    params = {
        "code": spec.code,
        "venue": venue,
        "start": start,
        "end": end,
        "first_day": start.date(),
        "last_day": (end - timedelta(microseconds=1)).date(),
    }
    if instruments is not None:
        params["instruments"] = instruments
    return params


def states_ids(spec: Dataset, columns: Sequence[str]) -> bool:
    """Whether a read of `columns` of `spec` says which id sequence its rows hold (`IDS`)."""
    return spec.name in SEQUENCED_DATASETS and bool({"trade_id", "seq"} & set(columns))


def sequence_name(venue: str, source: str, dataset: str) -> str:
    """The name of the id sequence a load of `source` holds (sources.registry.id_sequence), else
    `UNKNOWN_IDS`."""
    return getattr(id_sequence(venue, source, dataset), "name", UNKNOWN_IDS)


def sequences_of_loads(client, database: str, dataset: str, venue: str, load_ids) -> dict[int, str]:
    """{load id: the name of the id sequence it holds}, from the ingest_log source of each."""
    ids = {int(i) for i in load_ids}
    sources = tables.load_sources(client, database, ids)
    return {i: sequence_name(venue, sources.get(i, ""), dataset) for i in ids}


def _with_ids(client, database: str, spec: Dataset, venue: str, frame: pl.DataFrame, answer) -> pl.DataFrame:
    """`frame` with `IDS`, from the load id of each row of the Arrow `answer` (same rows, same order)."""
    if frame.height == 0:
        return frame.with_columns(pl.Series(IDS, [], dtype=ID_SEQUENCE))
    loads = pl.from_arrow(answer.column("load_id"))
    names = sequences_of_loads(client, database, spec.name, venue, loads.unique().to_list())
    return frame.with_columns(loads.replace_strict(names, return_dtype=ID_SEQUENCE).alias(IDS))


def read(
    client,
    database: str,
    dataset: str,
    venue: str,
    instrument,
    start,
    end,
    *,
    as_of=None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Rows of ``dataset`` for ``venue`` and ``instrument`` (one, a list, or None: all) with ``ts`` in
    ``[start, end)``, as the store shows them now (the active loads) or at ``as_of`` (see the module
    docstring), as a Polars frame of the dataset's schema, ordered by the table's key; with `IDS` where
    it reads trade ids."""
    spec = spec_for(dataset)
    venue, instruments = instruments_of(venue, instrument)
    start, end = time_range(start, end)
    cols = columns_of(spec, columns)
    params = query_params(spec, venue, instruments, start, end)
    if as_of is not None:
        when = utc_time(as_of, "as_of")
        loads = history.loads_as_of(
            client, database, spec, venue, instruments, params["first_day"], params["last_day"], when
        )
        history.check_not_compacted(client, database, spec, loads, when)
        params = {**params, "ids": [h.load_id for h in loads]}
    stated = states_ids(spec, cols)
    sql = select_sql(
        database,
        spec,
        [*cols, "load_id"] if stated else cols,
        all_instruments=instruments is None,
        as_of=as_of is not None,
    )
    answer = streamed_arrow(client, sql, params)
    frame = to_frame(answer, spec, cols)
    return _with_ids(client, database, spec, venue, frame, answer) if stated else frame


def streamed_arrow(client, sql: str, params: dict) -> pa.Table:
    """The answer read as the server sends it, batch by batch (the client never holds the whole body beside
    the table); a result with no rows is asked again whole, for its schema."""
    with client.query_arrow_stream(sql, parameters=params) as stream:
        parts = list(stream)
    return pa.Table.from_batches(parts) if parts else client.query_arrow(sql, parameters=params)


def _live_params(client, database: str, venue: str, instrument, start, end) -> tuple[dict, bool] | None:
    """The live read's parameters and whether it reads every instrument; None: no live table in the store."""
    if not tables.exists(client, database, live.TRADES_LATEST):
        return None
    venue, instruments = instruments_of(venue, instrument)
    first, last = time_range(start, end)
    params = {"venue": venue, "start": first, "end": last}
    if instruments is not None:
        params["instruments"] = instruments
    return params, instruments is None


def live_tail(
    client, database: str, venue: str, instrument, start, end, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """The live trades of ``[start, end)`` no hourly load holds yet (stores.clickhouse.live, the view
    ``trades_latest``'s live path), as trades, with `IDS` (the venue's live stream's ids) where read."""
    cols = columns_of(TRADES_SPEC, columns)
    found = _live_params(client, database, venue, instrument, start, end)
    if found is None:
        frame = to_frame(None, TRADES_SPEC, cols)
    else:
        params, every = found
        frame = to_frame(
            client.query_arrow(live.live_tail_sql(database, cols, all_instruments=every), parameters=params),
            TRADES_SPEC,
            cols,
        )
    if not states_ids(TRADES_SPEC, cols):
        return frame
    venue = normalize_venue(venue)
    name = (
        sequence_name(venue, STREAMS[venue].live_source, TRADES_SPEC.name)
        if venue in STREAMS
        else UNKNOWN_IDS
    )
    return frame.with_columns(pl.lit(name, dtype=ID_SEQUENCE).alias(IDS))


def live_tail_count(client, database: str, venue: str, instrument, start, end) -> int:
    found = _live_params(client, database, venue, instrument, start, end)
    if found is None:
        return 0
    params, every = found
    return int(
        client.query(
            live.live_tail_sql(database, (), all_instruments=every, count=True), parameters=params
        ).result_rows[0][0]
    )


def with_live_coverage(client, database: str, coverage: pl.DataFrame) -> pl.DataFrame:
    """The catalog (`tables.coverage`) and, as dataset ``trades_live``, what the live table holds per venue x
    instrument, its `lag_s` (now minus its newest trade's time; null on the other rows)."""
    frame = coverage.with_columns(pl.lit(None, dtype=pl.Float64).alias("lag_s"))
    if not tables.exists(client, database, live.TRADES_LIVE):
        return frame
    rows = pl.from_arrow(client.query_arrow(live.live_coverage_sql(database)))
    if rows.height == 0:
        return frame
    now = datetime.now(UTC)
    sources = {venue: cls.live_source for venue, cls in STREAMS.items()}
    rows = rows.with_columns(
        pl.lit(live.TRADES_LIVE).alias("dataset"),
        pl.col("days").alias("days_with_rows"),
        pl.lit(0, dtype=pl.UInt32).alias("missing_days"),
        pl.lit(None, dtype=pl.String).alias("missing_reasons"),
        pl.lit(0, dtype=pl.UInt64).alias("failed_days"),
        pl.col("venue").replace_strict(sources, default="live").alias("sources"),
        ((pl.lit(now) - pl.col("last_ts")).dt.total_milliseconds() / 1000).alias("lag_s"),
    )
    return pl.concat([frame, rows.select(frame.columns)], how="vertical_relaxed")


def live_names(client, database: str) -> dict[str, set[str]]:
    """Venue -> the instruments ``trades_live`` holds (none without the live table)."""
    if not tables.exists(client, database, live.TRADES_LIVE):
        return {}
    out: dict[str, set[str]] = {}
    for venue, instrument in client.query(
        f"SELECT DISTINCT venue, instrument FROM {clickhouse_database(database)}.{live.TRADES_LIVE}"
    ).result_rows:
        out.setdefault(venue, set()).add(instrument)
    return out
