"""Reads of the TimescaleDB market database into Polars: the A-share 1-minute bars (``stock_1min_qfq``)
and the monthly K-line (``stock_monthly_kline``).

Both tables hold Beijing wall-clock times as ``timestamp without time zone`` (the loader's and the
K-line's convention), so ``start`` / ``end`` are Beijing times too: a naive value is taken as Beijing
wall-clock, an aware one is converted to it. Codes are normalized (core.naming.a_share_code:
``600000``, ``SH600000`` and ``600000.SH`` are the same code) and passed as one array parameter;
the rows come back through ``COPY (SELECT ...) TO STDOUT`` as CSV (psycopg binds the parameters
client-side, as values, never as SQL text) and are parsed by Polars with a fixed schema.

There is no load history here: the loader replaces a file's rows in place (DELETE + COPY in one
transaction) and the K-line is recomputed from them, so what they held earlier is not kept.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import psycopg
from psycopg import sql

from marketdata_assets.core.naming import a_share_code
from marketdata_assets.datasets.frames import Stamping
from marketdata_assets.read.clickhouse import parse_time
from marketdata_assets.read.coverage import has_table
from marketdata_assets.stores.timescale.kline import KLINE, KLINE_COLUMNS, MINUTE_COLUMNS, MINUTE_TABLE

BEIJING = ZoneInfo("Asia/Shanghai")
MINUTE_STAMPING = Stamping(timedelta(minutes=1), label="end", tz="Asia/Shanghai", adjustment="qfq")
KLINE_STAMPING = Stamping(None, label="start", tz="Asia/Shanghai", adjustment="qfq")  # the month's first day
_PRICES = {c: pl.Float64 for c in ("open", "high", "low", "close", "volume", "amount")}
MINUTE_BARS_SCHEMA = {"time": pl.Datetime("us"), "code": pl.String, "name": pl.String, **_PRICES}
KLINE_SCHEMA = {"month": pl.Datetime("us"), "code": pl.String, "name": pl.String, **_PRICES}


def beijing_time(value: datetime | date | str, what: str) -> datetime:
    """A naive Beijing wall-clock datetime (a date: its 00:00; an aware time converted)."""
    value = parse_time(value, what)
    return value if value.tzinfo is None else value.astimezone(BEIJING).replace(tzinfo=None)


def codes_of(codes: str | Sequence[str] | None) -> list[str] | None:
    """Normalized A-share codes (a bad one is a ValueError naming it); None: every code."""
    if codes is None:
        return None
    names = [codes] if isinstance(codes, str) else list(codes)
    if not names:
        raise ValueError("no code given (None reads every code)")
    return sorted({a_share_code(c) for c in names})


def copy_frame(conn: psycopg.Connection, query: sql.Composable, params: dict, schema: dict) -> pl.DataFrame:
    """``COPY (query) TO STDOUT`` as CSV, parsed with ``schema`` (its columns, in order)."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT CSV)").format(query)
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        for block in copy:
            buffer += block
    if not buffer:
        return pl.DataFrame(schema=schema)
    return pl.read_csv(
        io.BytesIO(buffer), has_header=False, new_columns=list(schema), schema=schema, try_parse_dates=False
    )


def require_table(conn: psycopg.Connection, table: str) -> None:
    """LookupError naming the database when ``table`` is not there (nothing loaded, or another database)."""
    if not has_table(conn, table):
        raise LookupError(
            f"no table {table} in the TimescaleDB database {conn.info.dbname!r} at "
            f"{conn.info.host}:{conn.info.port}: nothing loaded there yet, or TIMESCALE_DB names another"
        )


def _select(table: str, columns: Sequence[str], time_column: str, codes: list[str] | None) -> sql.Composable:
    where = sql.SQL("{t} >= %(start)s AND {t} < %(end)s").format(t=sql.Identifier(time_column))
    if codes is not None:
        where = sql.SQL("code = ANY(%(codes)s) AND ") + where
    return sql.SQL("SELECT {cols} FROM {table} WHERE {where} ORDER BY code, {t}").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table=sql.Identifier(table),
        where=where,
        t=sql.Identifier(time_column),
    )


def _read(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    time_column: str,
    schema: dict,
    codes,
    start,
    end,
) -> pl.DataFrame:
    """Rows of ``table`` for ``codes`` (None: all) with ``time_column`` in ``[start, end)`` (Beijing)."""
    first, last = beijing_time(start, "start"), beijing_time(end, "end")
    if last <= first:
        raise ValueError(f"end {last} is not after start {first}: the range is [start, end)")
    wanted = codes_of(codes)
    require_table(conn, table)
    params = {"start": first, "end": last, "codes": wanted}
    return copy_frame(conn, _select(table, columns, time_column, wanted), params, schema)


def minute_bars(conn: psycopg.Connection, codes, start, end) -> pl.DataFrame:
    """1-minute bars of ``codes`` (one, a list, or None: all) with ``time`` in ``[start, end)`` (Beijing
    wall-clock), ordered by code and time: time (naive Beijing), code, name, open, high, low, close,
    volume, amount."""
    return _read(conn, MINUTE_TABLE, MINUTE_COLUMNS, "time", MINUTE_BARS_SCHEMA, codes, start, end)


def kline(conn: psycopg.Connection, codes, start, end) -> pl.DataFrame:
    """Monthly K-line rows of ``codes`` (None: all) whose ``month`` (the month's first day, naive Beijing)
    lies in ``[start, end)``: month, code, name, open, high, low, close, volume, amount."""
    return _read(conn, KLINE, KLINE_COLUMNS, "month", KLINE_SCHEMA, codes, start, end)


def stored_days(
    conn: psycopg.Connection, codes: list[str] | None, start: datetime, end: datetime
) -> list[tuple]:
    """(code, Beijing day) of every day with a minute bar in ``[start, end)`` (naive Beijing)."""
    require_table(conn, MINUTE_TABLE)
    where = sql.SQL("time >= %(start)s AND time < %(end)s")
    if codes is not None:
        where = sql.SQL("code = ANY(%(codes)s) AND ") + where
    query = sql.SQL("SELECT code, time::date FROM {table} WHERE {where} GROUP BY 1, 2").format(
        table=sql.Identifier(MINUTE_TABLE), where=where
    )
    return conn.execute(query, {"start": start, "end": end, "codes": codes}).fetchall()
