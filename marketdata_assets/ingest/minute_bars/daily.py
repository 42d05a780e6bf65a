"""Daily bars with moving averages from the minute bars (the transforms.py pipeline as an asset).

Minute rows of the window (plus enough earlier history for MA20) come out of the database with
COPY TO (works on every server, PGlite included), go through `transforms.ma_pipeline` (clean ->
daily bars -> MA5/MA10/MA20) and the window's days replace the stored ones in one transaction.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

import polars as pl
import psycopg

from marketdata_assets.ingest.minute_bars.transforms import ma_pipeline
from marketdata_assets.stores.timescale.copy_writer import MINUTE_COLUMNS, MINUTE_TABLE

DAILY_MA_TABLE = "stock_daily_ma"
DAILY_MA_COLUMNS = ("date", *MINUTE_COLUMNS[1:], "ma5", "ma10", "ma20")  # a minute row by its day, its MAs
# MA20 needs 19 earlier trading days; two months always hold them (holidays included).
LOOKBACK = timedelta(days=62)

DAILY_MA_DDL = f"""
CREATE TABLE IF NOT EXISTS {DAILY_MA_TABLE} (
    date date NOT NULL, code text NOT NULL, name text,
    open double precision, high double precision, low double precision, close double precision,
    volume double precision, amount double precision,
    ma5 double precision, ma10 double precision, ma20 double precision,
    PRIMARY KEY (code, date)
)"""


def ensure_daily_ma_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(DAILY_MA_DDL)


def fetch_minutes(conn: psycopg.Connection, start: date, end: date) -> pl.DataFrame:
    """Minute bars with start <= time < end, through COPY TO STDOUT (CSV)."""
    buffer = io.BytesIO()
    query = (
        f"COPY (SELECT {', '.join(MINUTE_COLUMNS)} FROM {MINUTE_TABLE} "
        "WHERE time >= %s AND time < %s ORDER BY code, time) TO STDOUT (FORMAT csv, HEADER true)"
    )
    with conn.cursor() as cur, cur.copy(query, (start, end)) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    schema = {
        "time": pl.Datetime("us"),
        "code": pl.String,
        "name": pl.String,
        **{c: pl.Float64 for c in MINUTE_COLUMNS[3:]},
    }
    if buffer.getbuffer().nbytes == 0:
        return pl.DataFrame(schema=schema)
    return pl.read_csv(buffer, schema=schema)


def daily_ma_frame(conn: psycopg.Connection, start: date, end: date) -> pl.DataFrame:
    """The days in [start, end) with their MAs computed over history reaching back LOOKBACK."""
    minutes = fetch_minutes(conn, start - LOOKBACK, end)
    if minutes.height == 0:
        return pl.DataFrame(
            schema={c: pl.Float64 for c in DAILY_MA_COLUMNS}
            | {"date": pl.Date, "code": pl.String, "name": pl.String}
        )
    daily = ma_pipeline(minutes)
    return daily.filter((pl.col("date") >= start) & (pl.col("date") < end)).select(DAILY_MA_COLUMNS)


def replace_daily_ma(conn: psycopg.Connection, frame: pl.DataFrame, start: date, end: date) -> int:
    """Replace the stored days in [start, end) with `frame` in one transaction."""
    casts = ["date", "text", "text"] + ["float8"] * (len(DAILY_MA_COLUMNS) - 3)
    insert = (
        f"INSERT INTO {DAILY_MA_TABLE} ({', '.join(DAILY_MA_COLUMNS)}) SELECT * FROM unnest("
        + ", ".join(f"%s::{cast}[]" for cast in casts)
        + ")"
    )
    with conn.transaction():
        conn.execute(f"DELETE FROM {DAILY_MA_TABLE} WHERE date >= %s AND date < %s", (start, end))
        if frame.height:
            conn.execute(insert, [frame[c].to_list() for c in DAILY_MA_COLUMNS])
    return frame.height
