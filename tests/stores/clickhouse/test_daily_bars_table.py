"""The vendor daily-bars table (dataset "daily_bars"): same pointer as the other tick tables, nullable
pre_close."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import polars as pl
import pytest

from marketdata_assets.datasets import frames
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer as w

DAY = date(2025, 6, 5)


def daily(codes: list[str], close: float = 10.0, pre_close=9.5) -> pl.DataFrame:
    n = len(codes)
    return pl.DataFrame(
        {
            "ts": [datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)] * n,
            "venue": ["SSE"] * n,
            "instrument": codes,
            "open": [9.8] * n,
            "high": [10.2] * n,
            "low": [9.7] * n,
            "close": [close] * n,
            "pre_close": [pre_close] * n,
            "volume": [1e6] * n,
            "amount": [1e7] * n,
        },
        schema=frames.DAILY_BARS_SCHEMA,
    )


def test_daily_bars_rewrite_replace_and_allow_a_null_pre_close(clickhouse):
    with clickhouse.get_client() as client:
        db = clickhouse.database
        names = ct.ensure_tables(client, db)
        assert {"daily_bars", "daily_bars_v", "daily_bars_range"} <= set(names)
        w.write_slices(
            client, db, "daily_bars", daily(["600000.SH", "600036.SH"], pre_close=None), "SSE", DAY, "r1"
        )
        w.write_slices(
            client, db, "daily_bars", daily(["600000.SH", "600036.SH"], close=10.1), "SSE", DAY, "r2"
        )
        rows = client.query(
            f"SELECT instrument, close, pre_close FROM `{db}`.daily_bars_v ORDER BY instrument"
        ).result_rows
        assert rows == [("600000.SH", 10.1, 9.5), ("600036.SH", 10.1, 9.5)]  # replaced, not duplicated
        w.write_slice(
            client, db, "daily_bars", daily(["600000.SH"], pre_close=None), "SSE", "600000.SH", DAY, "r3"
        )
        frame = ct.read_range(client, db, "daily_bars", "SSE", "600000.SH", DAY, date(2025, 6, 6))
        assert frame.schema == pl.Schema(frames.DAILY_BARS_SCHEMA) and frame["pre_close"].to_list() == [None]
        with pytest.raises(ValueError, match="column 'pre_close' is NaN/inf at row 0"):
            w.write_slice(
                client,
                db,
                "daily_bars",
                daily(["600000.SH"], pre_close=math.nan),
                "SSE",
                "600000.SH",
                DAY,
                "r4",
            )
        with pytest.raises(ValueError, match="column 'close' has 1 null"):
            w.write_slice(
                client,
                db,
                "daily_bars",
                daily(["600000.SH"]).with_columns(pl.lit(None, pl.Float64).alias("close")),
                "SSE",
                "600000.SH",
                DAY,
                "r5",
            )
