"""Realistic, deterministic data.binance.vision trades dumps (for `make run`, the tests and the
benchmarks): a random-walk price on a 0.01 tick, exponential sizes, ids counting up, written in the
venue's exact file layouts (`write_dump`) so `read_dump(write_dump(...))` gives the frame back."""

from __future__ import annotations

import io
import math
import random
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa

from marketdata_assets.datasets.frames import TRADES_SCHEMA
from marketdata_assets.sources.binance_vision.dumps import (
    FUTURES_HEADER_SINCE,
    MICROSECONDS_SINCE,
    VENUE,
    parse_dump_name,
)

GENERATOR_CHUNK = 1 << 18


# --------------------------------------------------------------------------------------------


def _base_price(instrument: str) -> float:
    for prefix, price in (("BTC", 60_000.0), ("ETH", 3_000.0), ("SOL", 150.0), ("BNB", 550.0)):
        if instrument.startswith(prefix):
            return price
    return 100.0


def _uniform(rng: random.Random, n: int) -> pl.Series:
    """n deterministic uniforms in [0, 1) from the seeded generator's bytes (vectorized)."""
    words = pa.Array.from_buffers(pa.uint64(), n, [None, pa.py_buffer(rng.randbytes(8 * n))])
    return (pl.Series(words) // 2048).cast(pl.Float64) * (2.0**-53)


def _round_to(expr: pl.Expr, decimals: int) -> pl.Expr:
    """The double nearest to the decimal (Polars' round is correctly rounded; x*k/k is not)."""
    return expr.round(decimals)


def iter_generated_trades(
    instrument: str, day: date, n: int, seed: int = 0, *, market: str = "spot", venue: str = VENUE
) -> Iterator[pl.DataFrame]:
    """`generate_trades` in chunks of GENERATOR_CHUNK rows (for files larger than memory)."""
    rng = random.Random(f"binance-dump:{seed}:{instrument}:{day.isoformat()}:{n}")
    micro = market == "spot" and day >= MICROSECONDS_SINCE
    day_start_us = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000
    day_us = 86_400_000_000
    log_price = math.log(_base_price(instrument)) + rng.uniform(-0.1, 0.1)
    first_id = 1_000_000_000 + (day - date(2017, 7, 14)).days * 5_000_000
    done = 0
    while done < n:
        size = min(GENERATOR_CHUNK, n - done)
        lo = day_start_us + day_us * done // n
        span = max(1, day_start_us + day_us * (done + size) // n - lo)
        u = pl.DataFrame({f"u{k}": _uniform(rng, size) for k in range(5)})
        frame = u.select(
            (pl.lit(lo, pl.Int64) + (pl.col("u0") * span).floor().cast(pl.Int64)).sort().alias("t"),
            # Box-Muller normal steps of the log price, exponential sizes, fair sides
            (
                pl.lit(log_price)
                + (
                    0.0002 * (-2.0 * (1.0 - pl.col("u1")).log()).sqrt() * (2.0 * math.pi * pl.col("u2")).cos()
                ).cum_sum()
            ).alias("logp"),
            pl.max_horizontal(_round_to(-(1.0 - pl.col("u3")).log() * 0.05, 5), pl.lit(0.00001)).alias(
                "quantity"
            ),
            pl.when(pl.col("u4") < 0.5).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("side"),
        )
        log_price = frame["logp"][-1]
        ids = pl.int_range(first_id + done, first_id + done + size, dtype=pl.Int64, eager=True)
        time = pl.col("t") if micro else pl.col("t") - pl.col("t") % 1000
        price = pl.max_horizontal(_round_to(pl.col("logp").exp(), 2), pl.lit(0.01))
        yield frame.with_columns(price.alias("price"), ids.alias("seq")).select(
            time.cast(TRADES_SCHEMA["ts"]).alias("ts"),
            pl.lit(venue, pl.Utf8).alias("venue"),
            pl.lit(instrument, pl.Utf8).alias("instrument"),
            pl.col("seq").cast(pl.Utf8).alias("trade_id"),
            "price",
            "quantity",
            _round_to(pl.col("price") * pl.col("quantity"), 8).alias("amount"),
            "side",
            "seq",
        )
        done += size


def generate_trades(
    instrument: str, day: date, n: int, seed: int = 0, *, market: str = "spot", venue: str = VENUE
) -> pl.DataFrame:
    """`n` deterministic trades of one UTC day in the normalized frame: a random-walk price on a
    0.01 tick, exponential sizes, ids counting up; ms timestamps, µs for spot from 2025-01-01 —
    what `read_dump(write_dump(...))` gives back exactly."""
    frames = list(iter_generated_trades(instrument, day, n, seed, market=market, venue=venue))
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=TRADES_SCHEMA)


def _dump_rows(trades: pl.DataFrame, market: str, time_unit: str) -> pl.DataFrame:
    """The dump's columns: spot's camelCase with "True"/"False" and `isBestMatch`, the futures'
    snake_case with "true"/"false"."""
    us = pl.col("ts").dt.epoch("us")
    time = us if time_unit == "us" else us // 1000
    maker = pl.col("side") == "sell"
    spot = market == "spot"
    yes, no = ("True", "False") if spot else ("true", "false")
    columns = [
        pl.col("trade_id").cast(pl.Int64).alias("id"),
        "price",
        pl.col("quantity").alias("qty"),
        pl.col("amount").alias("quoteQty" if spot else "quote_qty"),
        time.alias("time"),
        pl.when(maker)
        .then(pl.lit(yes))
        .otherwise(pl.lit(no))
        .alias("isBuyerMaker" if spot else "is_buyer_maker"),
    ]
    if spot:
        columns.append(pl.lit("True").alias("isBestMatch"))
    return trades.select(columns)


def write_dump(
    path: str | Path,
    trades: pl.DataFrame | Iterable[pl.DataFrame],
    *,
    market: str = "spot",
    header: bool | None = None,
    time_unit: str | None = None,
    day: date | None = None,
) -> Path:
    """Write trades (a frame, or an iterable of frames for big files) as a data.binance.vision
    trades dump: `.csv`, or `.zip` holding `<name>.csv`. Spot (default): no header, `True/False`,
    8-decimal numbers, ms timestamps before 2025-01-01 and µs from then; USD-M futures
    (`market="um"`): a header from 2022-05 on (`header=` overrides), `true/false`, ms."""
    path = Path(path)
    if market not in ("spot", "um"):
        raise ValueError("write_dump writes spot or um (USD-M futures) trades")
    frames: Iterable[pl.DataFrame] = [trades] if isinstance(trades, pl.DataFrame) else trades
    iterator = iter(frames)
    first = next(iterator, None)
    if day is None:
        try:
            day = parse_dump_name(path).day
        except ValueError:
            day = first["ts"].min().date() if first is not None and first.height else date(1970, 1, 1)
    if header is None:
        header = market != "spot" and day >= FUTURES_HEADER_SINCE
    if time_unit is None:
        time_unit = "us" if market == "spot" and day >= MICROSECONDS_SINCE else "ms"
    precision = 8 if market == "spot" else None

    def chunks() -> Iterator[bytes]:
        write_header = header
        for frame in _chain(first, iterator):
            for offset in range(0, frame.height, 500_000):
                rows = _dump_rows(frame.slice(offset, 500_000), market, time_unit)
                buffer = io.BytesIO()
                rows.write_csv(buffer, include_header=write_header, float_precision=precision)
                write_header = False
                yield buffer.getvalue()
        if write_header:  # no rows at all
            yield (
                ",".join(_dump_rows(pl.DataFrame(schema=TRADES_SCHEMA), market, time_unit).columns) + "\n"
            ).encode()

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".zip":
        with (
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
            archive.open(path.with_suffix(".csv").name, "w", force_zip64=True) as out,
        ):
            for data in chunks():
                out.write(data)
    else:
        with open(path, "wb") as out:
            for data in chunks():
                out.write(data)
    return path


def _chain(first: pl.DataFrame | None, rest: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    if first is not None:
        yield first
    yield from rest
