"""PGCOPY binary writer and the unnest INSERT path against the real TimescaleDB of the local stack."""

from __future__ import annotations

import inspect
import struct
import uuid
from datetime import date, datetime

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from psycopg import sql
from psycopg.copy import LibpqWriter

from marketdata_assets.replay.minute_csv import make_bars, render, trading_days, write_text
from marketdata_assets.sources.minute_csv.reader import MINUTE_SCHEMA, read_minute_csv
from marketdata_assets.stores.timescale.copy_writer import (
    MINUTE_COLUMNS,
    PGCOPY_HEADER,
    PGCOPY_TRAILER,
    binary_array_params,
    copy_binary,
    encode_pgcopy,
    fetch_frame,
    index_order,
    insert_rows,
    insert_unnest,
    register_binary_arrays,
    table_identifier,
)

COPY_TYPES = ["timestamp", "text", "text", "float8", "float8", "float8", "float8", "float8", "float8"]


def create_minute_table(conn: psycopg.Connection, table: str) -> None:
    """minute_table.ensure_minute_table when it can target another table, else the same DDL here."""
    try:
        from marketdata_assets.stores.timescale.minute_table import (
            ensure_minute_table,  # owned by another helper
        )

        if "table" in inspect.signature(ensure_minute_table).parameters:
            ensure_minute_table(conn, table=table)
            return
    except ImportError:
        pass
    ident = sql.Identifier(table)
    conn.execute(
        sql.SQL("""CREATE TABLE {} (time timestamp without time zone NOT NULL, code text NOT NULL,
                            name text, open double precision, high double precision, low double precision,
                            close double precision, volume double precision, \
amount double precision)""").format(ident)
    )
    conn.execute("SELECT create_hypertable(%s::regclass, by_range('time', interval '30 days'))", (table,))
    conn.execute(
        sql.SQL("CREATE UNIQUE INDEX {} ON {} (code, time DESC)").format(
            sql.Identifier(f"{table}_code_time"), ident
        )
    )


@pytest.fixture
def make_table(timescale):
    created = []

    def make() -> str:
        name = f"copy_probe_{uuid.uuid4().hex[:10]}"
        with timescale.connect(autocommit=True) as conn:
            create_minute_table(conn, name)
        created.append(name)
        return name

    yield make
    with timescale.connect(autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def table(make_table):
    return make_table()


@pytest.fixture
def conn(timescale, make_table):
    """Closed before make_table drops its tables (an open transaction would block the DROP)."""
    with timescale.connect() as connection:
        yield connection
        connection.rollback()


def sample_frame() -> pl.DataFrame:
    """Every layout case: NULLs in each nullable column, empty and multi-byte text, negative and
    float32-noisy prices, microseconds, far past and future times."""
    rows = [
        (datetime(2026, 1, 5, 9, 31), "600000.SH", "浦发银行", 10.0, 10.2, 9.9, 10.1, 120000.0, 1212000.0),
        (datetime(2026, 1, 5, 9, 32), "600000.SH", None, 10.1, 10.2, 10.0, 10.0, 0.0, 0.0),
        (datetime(2026, 1, 5, 9, 33), "600000.SH", "", -1.25, -1.0, -1.5, -1.1, 100.0, None),
        (datetime(2026, 1, 5, 9, 34), "000001.SZ", "平安银行", None, None, None, None, None, None),
        (
            datetime(2026, 1, 5, 9, 35, 0, 123456),
            "000001.SZ",
            "*ST平安",
            10.229999542236328,
            11.0,
            0.0,
            10.5,
            1e12,
            1.5e15,
        ),
        (datetime(1990, 12, 19, 9, 30), "600000.SH", "x", 0.0, 1.0, -0.0, 5e-324, 1.0, 2.0),
        (datetime(2099, 12, 31, 23, 59, 59, 999999), "830799.BJ", "艾融软件", 1.0, None, 1.0, 1.0, None, 3.0),
        (
            datetime(1999, 12, 31, 23, 59, 59),
            "688981.SH",
            "中芯国际",
            float("inf"),
            1.0,
            float("-inf"),
            1.0,
            1.0,
            1.0,
        ),
    ]
    return pl.DataFrame(rows, schema=MINUTE_SCHEMA, orient="row")


def split_tuples(data: bytes) -> list[bytes]:
    """A PGCOPY stream (signature to trailer) cut into its tuples."""
    assert data.startswith(PGCOPY_HEADER) and data.endswith(PGCOPY_TRAILER)
    pos, end, out = len(PGCOPY_HEADER), len(data) - 2, []
    while pos < end:
        start = pos
        (count,) = struct.unpack_from(">h", data, pos)
        pos += 2
        for _ in range(count):
            (length,) = struct.unpack_from(">i", data, pos)
            pos += 4 + max(length, 0)
        out.append(data[start:pos])
    assert pos == end
    return out


class CaptureWriter(LibpqWriter):
    def __init__(self, cursor):
        super().__init__(cursor)
        self.chunks: list[bytes] = []

    def write(self, data) -> None:
        self.chunks.append(bytes(data))
        super().write(data)


def psycopg_write_row_bytes(conn, table: str, df: pl.DataFrame) -> bytes:
    """COPY df with psycopg's own write_row into `table`, returning the bytes it sent."""
    with conn.cursor() as cur:
        writer = CaptureWriter(cur)
        statement = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table_identifier(table))
        with cur.copy(statement, writer=writer) as copy:
            copy.set_types(COPY_TYPES)
            for row in df.iter_rows():
                copy.write_row(row)
    return b"".join(writer.chunks)


def sorted_rows(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort("code", "time")


# ---- encoder vs psycopg -------------------------------------------------------------------------


def test_encoder_matches_psycopg_write_row(conn, table):
    df = sample_frame()
    reference = psycopg_write_row_bytes(conn, table, df)
    ours = b"".join(encode_pgcopy(df))
    assert ours[:19] == reference[:19] == PGCOPY_HEADER and ours[-2:] == reference[-2:] == PGCOPY_TRAILER
    assert sorted(split_tuples(ours)) == sorted(split_tuples(reference))
    assert len(ours) == len(reference)
    conn.rollback()


def test_encoder_is_byte_identical_for_one_layout(conn, table):
    df = make_bars("600000.SH", trading_days(date(2026, 1, 5), 3), seed=1)
    reference = psycopg_write_row_bytes(conn, table, df)
    assert b"".join(encode_pgcopy(df)) == reference
    assert b"".join(encode_pgcopy(df, block_bytes=1000)) == reference  # block size never changes bytes
    conn.rollback()


def test_encoder_empty_frame_is_signature_and_trailer():
    assert b"".join(encode_pgcopy(pl.DataFrame(schema=MINUTE_SCHEMA))) == PGCOPY_HEADER + PGCOPY_TRAILER


# ---- round trips --------------------------------------------------------------------------------


def test_binary_copy_round_trip(conn, table):
    df = sample_frame()
    assert copy_binary(conn, df, table) == df.height
    conn.commit()
    assert_frame_equal(fetch_frame(conn, table), sorted_rows(df))


def test_binary_copy_in_many_blocks(conn, table):
    df = pl.concat(
        [
            make_bars(code, trading_days(date(2026, 1, 5), 5), seed=i, dirty=True, negative=i == 1)
            for i, code in enumerate(["600000.SH", "000001.SZ", "688981.SH"])
        ]
    )
    assert copy_binary(conn, df, table, block_bytes=16_384, queued=False) == df.height
    assert_frame_equal(fetch_frame(conn, table), sorted_rows(df))
    conn.rollback()


def test_copy_and_unnest_paths_store_the_same_rows(conn, make_table):
    df = pl.concat(
        [sample_frame(), make_bars("600000.SH", trading_days(date(2026, 2, 2), 2), seed=3, dirty=True)]
    )
    via_copy, via_unnest = make_table(), make_table()
    copy_binary(conn, df, via_copy)
    assert insert_unnest(conn, df, via_unnest, chunk_rows=100) == df.height
    conn.commit()
    assert_frame_equal(fetch_frame(conn, via_copy), fetch_frame(conn, via_unnest))
    assert fetch_frame(conn, via_copy).height == df.height


def test_binary_array_params_round_trip(conn):
    df = sample_frame()
    casts = ["timestamp", "text", "text"] + ["float8"] * 6
    query = "SELECT * FROM unnest(" + ", ".join(f"%b::{c}[]" for c in casts) + ")"
    with conn.cursor() as cur:
        register_binary_arrays(cur)
        rows = cur.execute(query, binary_array_params(df)).fetchall()
        assert_frame_equal(pl.DataFrame(rows, schema=MINUTE_SCHEMA, orient="row"), df)
        assert cur.execute(query, binary_array_params(df.head(0))).fetchall() == []
        one_null = df.head(1).with_columns(pl.lit(None, dtype=pl.Float64).alias("open"))
        assert cur.execute("SELECT %b::float8[]", [binary_array_params(one_null)[3]]).fetchone() == ([None],)
    conn.rollback()


@pytest.mark.parametrize("use_copy", [True, False])
def test_all_null_columns(conn, table, use_copy):
    df = make_bars("600000.SH", trading_days(date(2026, 1, 5), 1), seed=4, with_name=False)
    df = df.with_columns(amount=pl.lit(None, dtype=pl.Float64))
    insert_rows(conn, df, table, use_copy=use_copy)
    got = fetch_frame(conn, table)
    assert got["name"].null_count() == got["amount"].null_count() == df.height
    assert_frame_equal(got, df)
    conn.rollback()


def test_parsed_csv_to_table(conn, table, tmp_path):
    truth = make_bars(
        "000001.SZ", trading_days(date(2026, 1, 5), 2), seed=5, dirty=True, negative=True, float32_noise=True
    )
    path = write_text(
        tmp_path / "cn.csv", render(truth, "cn_minute", code_style="bare", volume_unit="lots"), encoding="gbk"
    )
    df, rejects = read_minute_csv(path)
    assert rejects == []
    copy_binary(conn, df, table)
    assert_frame_equal(fetch_frame(conn, table), truth)
    conn.rollback()


def test_tz_aware_times_are_stored_as_beijing_wall_clock(conn, table):
    df = (
        sample_frame()
        .head(1)
        .with_columns(pl.col("time").dt.replace_time_zone("Asia/Shanghai").dt.convert_time_zone("UTC"))
    )
    copy_binary(conn, df, table)
    assert fetch_frame(conn, table)["time"].to_list() == [datetime(2026, 1, 5, 9, 31)]
    conn.rollback()


@pytest.mark.parametrize("name", ["bad-name", "x; DROP TABLE y", "a.b.c", ""])
def test_table_names_are_validated(conn, name):
    df = sample_frame()
    for call in (lambda: copy_binary(conn, df, name), lambda: insert_unnest(conn, df, name)):
        with pytest.raises(ValueError, match="invalid table"):
            call()


def test_schema_qualified_table(conn, table):
    copy_binary(conn, sample_frame(), f"public.{table}")
    assert fetch_frame(conn, f"public.{table}").height == sample_frame().height
    conn.rollback()


def test_missing_columns_are_reported():
    with pytest.raises(ValueError, match=r"lacks columns \['amount'\]"):
        b"".join(encode_pgcopy(sample_frame().drop("amount")))


def test_columns_constant_matches_schema():
    assert tuple(MINUTE_SCHEMA.names()) == MINUTE_COLUMNS


def test_index_order_is_code_then_time_descending_keeping_repeats_in_frame_order():
    times = [datetime(2026, 1, 5, 9, 31), datetime(2026, 1, 5, 9, 32), datetime(2026, 1, 5, 9, 33)]
    df = pl.DataFrame(
        {
            "time": [times[0], times[2], times[0], times[1], times[1], None],
            "code": ["B", "B", "A", "A", "A", "A"],
            "seq": [0, 1, 2, 3, 4, 5],
        }
    )
    ordered = index_order(df)
    assert ordered["seq"].to_list() == [5, 3, 4, 2, 1, 0]  # a repeated bar's rows keep their order
    assert index_order(df.head(1)).equals(df.head(1))
