"""Small composable DataFrame -> DataFrame steps over minute bars (clean -> daily -> moving averages).

Each transform is a plain function taking and returning a Polars DataFrame, so it can be tested
alone and chained with :func:`pipeline`::

    daily_ma = pipeline(clean_minute_bars, daily_bars, moving_averages)   # == ma_pipeline
    out = daily_ma(minute_frame)

The cleaning rule is the monthly K-line's WHERE (stores/timescale/kline.py), with SQL's NULL semantics::

    volume >= 0 AND amount >= 0                       -- NULL volume/amount rows are dropped
    AND high >= GREATEST(open, close)                 -- GREATEST ignores NULLs, like max_horizontal
    AND low  <= LEAST(open, close)                    -- prices may be negative (qfq)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce

import polars as pl

Transform = Callable[[pl.DataFrame], pl.DataFrame]


def pipeline(*steps: Transform) -> Transform:
    """Compose transforms left to right: pipeline(f, g)(df) == g(f(df))."""
    for step in steps:
        if not callable(step):
            raise TypeError(f"pipeline step {step!r} is not callable")

    def run(df: pl.DataFrame) -> pl.DataFrame:
        return reduce(lambda acc, step: step(acc), steps, df)

    run.__name__ = "pipeline(" + ", ".join(getattr(s, "__name__", repr(s)) for s in steps) + ")"
    run.steps = steps  # type: ignore[attr-defined]
    return run


def clean_condition() -> pl.Expr:
    """The monthly K-line cleaning WHERE as a Polars predicate (NULL comparisons drop the row)."""
    greatest = pl.max_horizontal("open", "close")
    least = pl.min_horizontal("open", "close")
    return (
        (pl.col("volume") >= 0)
        & (pl.col("amount") >= 0)
        & (pl.col("high") >= greatest)
        & (pl.col("low") <= least)
    )


def clean_minute_bars(df: pl.DataFrame) -> pl.DataFrame:
    """Keep the rows the monthly K-line aggregates (see the module docstring)."""
    return df.filter(clean_condition().fill_null(False))


def dedupe_bars(df: pl.DataFrame, keys: Sequence[str] = ("code", "time")) -> pl.DataFrame:
    """One row per (code, time): the last occurrence wins, order otherwise kept."""
    keys = list(keys)
    if df.height < 2 or not df.select(pl.struct(keys).is_duplicated().any()).item():
        return df
    return df.unique(subset=keys, keep="last", maintain_order=True)


def daily_bars(df: pl.DataFrame) -> pl.DataFrame:
    """Daily bars per code from minute bars: first open, max high, min low, last close (by time),
    summed volume and amount, last name. Columns: date, code, name, open, high, low, close, volume, amount."""
    has_name = "name" in df.columns
    ordered = df.sort("code", "time")
    aggs = [
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
        pl.col("amount").sum(),
    ]
    if has_name:
        aggs.insert(0, pl.col("name").last())
    out = (
        ordered.group_by("code", pl.col("time").dt.date().alias("date"), maintain_order=True)
        .agg(aggs)
        .sort("code", "date")
    )
    if not has_name:
        out = out.with_columns(name=pl.lit(None, dtype=pl.String))
    return out.select("date", "code", "name", "open", "high", "low", "close", "volume", "amount")


def moving_averages(
    df: pl.DataFrame, windows: Sequence[int] = (5, 10, 20), column: str = "close", order_by: str = "date"
) -> pl.DataFrame:
    """MA{n} of `column` per code over consecutive rows (trading days) ordered by `order_by`;
    null until n rows exist (and wherever the window holds a null)."""
    out = df.sort("code", order_by)
    return out.with_columns(
        pl.col(column).rolling_mean(window_size=n, min_samples=n).over("code").alias(f"ma{n}")
        for n in windows
    )


ma_pipeline: Transform = pipeline(clean_minute_bars, daily_bars, moving_averages)
