"""data.binance.vision dump files (trades, aggTrades, klines) → normalized frames, in batches.

File names: `BTCUSDT-trades-2025-01-15.csv|.zip`, `BTCUSDT-aggTrades-2025-01-15.zip`,
`BTCUSDT-1m-2025-01-15.zip`, monthly `BTCUSDT-trades-2025-01.zip`; `parse_dump_name` → DumpName.

Formats (shared/docs/vendor-formats.md) and how they are told apart:

- spot files have NO header and booleans `True/False`; spot trades are
  `id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch` (7 columns), aggTrades
  `a,p,q,f,l,T,m,M` (8), klines 12 columns.
- USD-M / COIN-M futures files have a header only from ~2022-05 and booleans `true/false`:
  trades `id,price,qty,quote_qty,time,is_buyer_maker` (6; COIN-M: `base_qty` instead of
  `quote_qty`, qty in contracts), aggTrades 7 columns, klines 12. A header is detected by its first
  field not being a number; the market by the column count, the header names, the path
  (`.../spot/...`, `.../futures/um/...`, `.../futures/cm/...`) or `market=`.
- spot timestamps switch to 16-digit MICROSECONDS from 2025-01-01: decided per row by magnitude.
- booleans are compared case-insensitively; isBuyerMaker true → the taker SOLD.

Reading is streamed: a zip member is decompressed as it is read, the text is cut at line ends into
blocks of `batch_bytes` and each block is parsed by Polars with an explicit schema and no header
(`iter_dump`), so a 1 GB file never has to be in memory at once; `read_dump` concatenates the
batches (same result as one shot). `scan_dump` gives a LazyFrame (`pl.scan_csv`) for plain CSV.

`generate_trades` / `write_dump` produce realistic, deterministic dump files for tests and benchmarks.
"""

from __future__ import annotations

import io
import math
import random
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, NamedTuple

import polars as pl
import pyarrow as pa

from marketdata_assets.lib.ticks.frames import BARS_SCHEMA, TRADES_SCHEMA
from marketdata_assets.lib.http import SourceDataError

VENUE = "BINANCE"
UTC = timezone.utc
MICROSECONDS_SINCE = date(2025, 1, 1)  # spot dumps switch to microsecond timestamps
FUTURES_HEADER_SINCE = date(2022, 5, 1)  # futures dumps carry a header from about here
DEFAULT_BATCH_BYTES = 16 << 20
GENERATOR_CHUNK = 1 << 18

_NAME = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<kind>trades|aggTrades|\d+(?:mo|s|m|h|d|w))-"
                   r"(?P<year>\d{4})-(?P<month>\d{2})(?:-(?P<day>\d{2}))?\.(?P<ext>csv|zip)$")


class DumpName(NamedTuple):
    instrument: str
    kind: str  # "trades" | "aggTrades" | "klines"
    day: date  # the first day of the month for monthly files
    interval: str | None = None  # klines: "1m", "1h", ...
    period: str = "daily"  # "daily" | "monthly"
    compressed: bool = False


def parse_dump_name(name: str | Path) -> DumpName:
    """`BTCUSDT-trades-2025-01-15.zip` → DumpName("BTCUSDT", "trades", date(2025, 1, 15), ...)."""
    base = Path(name).name
    match = _NAME.match(base)
    if not match:
        raise ValueError(f"{base!r} is not a data.binance.vision file name like BTCUSDT-trades-2025-01-15.zip, "
                         f"BTCUSDT-aggTrades-2025-01-15.csv or BTCUSDT-1m-2025-01-15.zip")
    kind = match["kind"]
    interval = None
    if kind not in ("trades", "aggTrades"):
        kind, interval = "klines", match["kind"]
    try:
        day = date(int(match["year"]), int(match["month"]), int(match["day"] or 1))
    except ValueError as error:
        raise ValueError(f"{base!r}: {error}") from None
    return DumpName(match["symbol"], kind, day, interval, "daily" if match["day"] else "monthly",
                    match["ext"] == "zip")


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    kind: str
    market: str  # spot | um | cm
    columns: tuple[tuple[str, pl.DataType], ...]

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return dict(self.columns)


_I, _F, _S, _B = pl.Int64, pl.Float64, pl.Utf8, pl.Boolean  # Polars reads True/true/TRUE as booleans
LAYOUTS = {
    ("trades", "spot"): Layout("trades", "spot", (("id", _I), ("price", _F), ("qty", _F), ("quote_qty", _F),
                                                  ("time", _I), ("is_buyer_maker", _B), ("is_best_match", _B))),
    ("trades", "um"): Layout("trades", "um", (("id", _I), ("price", _F), ("qty", _F), ("quote_qty", _F),
                                              ("time", _I), ("is_buyer_maker", _B))),
    ("trades", "cm"): Layout("trades", "cm", (("id", _I), ("price", _F), ("qty", _F), ("base_qty", _F),
                                              ("time", _I), ("is_buyer_maker", _B))),
    ("aggTrades", "spot"): Layout("aggTrades", "spot", (
        ("agg_trade_id", _I), ("price", _F), ("quantity", _F), ("first_trade_id", _I), ("last_trade_id", _I),
        ("transact_time", _I), ("is_buyer_maker", _B), ("is_best_match", _B))),
    ("aggTrades", "um"): Layout("aggTrades", "um", (
        ("agg_trade_id", _I), ("price", _F), ("quantity", _F), ("first_trade_id", _I), ("last_trade_id", _I),
        ("transact_time", _I), ("is_buyer_maker", _B))),
    ("klines", "spot"): Layout("klines", "spot", (
        ("open_time", _I), ("open", _F), ("high", _F), ("low", _F), ("close", _F), ("volume", _F),
        ("close_time", _I), ("quote_volume", _F), ("count", _I), ("taker_buy_volume", _F),
        ("taker_buy_quote_volume", _F), ("ignore", _S))),
}
LAYOUTS[("aggTrades", "cm")] = Layout("aggTrades", "cm", LAYOUTS[("aggTrades", "um")].columns)
LAYOUTS[("klines", "um")] = Layout("klines", "um", LAYOUTS[("klines", "spot")].columns)
LAYOUTS[("klines", "cm")] = Layout("klines", "cm", LAYOUTS[("klines", "spot")].columns)


def market_from_path(path: str | Path) -> str | None:
    text = str(path).replace("\\", "/").lower()
    if "/futures/um/" in text:
        return "um"
    if "/futures/cm/" in text:
        return "cm"
    if "/spot/" in text:
        return "spot"
    return None


def detect_layout(kind: str, first_line: str, market: str | None = None) -> tuple[Layout, bool]:
    """(layout, has_header) from a file's first line; `market` (spot|um|cm) when known."""
    fields = [f.strip() for f in first_line.strip().lstrip("\ufeff").split(",")]
    has_header = not fields[0].lstrip("-").isdigit()
    n = len(fields)
    if kind == "trades":
        by_count = "spot" if n == 7 else ("futures" if n == 6 else None)
    elif kind == "aggTrades":
        by_count = "spot" if n == 8 else ("futures" if n == 7 else None)
    elif kind == "klines":
        by_count = "any" if n == 12 else None
    else:
        raise ValueError(f"unknown dump kind {kind!r}")
    if by_count is None:
        raise ValueError(f"{kind} dump with {n} columns in its first line {first_line.strip()[:120]!r}")
    if by_count == "spot":
        if market not in (None, "spot"):
            raise ValueError(f"{kind} dump has {n} columns (spot layout) but market={market!r}")
        market = "spot"
    elif by_count == "futures":
        if market == "spot":
            raise ValueError(f"{kind} dump has {n} columns (futures layout) but market='spot'")
        if has_header and "base_qty" in fields:
            market = "cm"
        elif has_header and kind == "trades" and "quote_qty" in fields:
            market = "um"
        market = market or "um"
    else:
        market = market or ("spot" if not has_header else "um")
    return LAYOUTS[(kind, market)], has_header


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _open_binary(path: Path) -> tuple[IO[bytes], list]:
    """A binary stream of the CSV (a zip member is decompressed as it is read) + things to close."""
    if path.suffix.lower() == ".zip":
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.infolist() if m.filename.lower().endswith(".csv")]
        if not members:
            archive.close()
            raise ValueError(f"{path.name}: no .csv inside the zip")
        wanted = path.with_suffix(".csv").name
        member = next((m for m in members if Path(m.filename).name == wanted), members[0])
        stream = archive.open(member)
        return stream, [stream, archive]
    stream = open(path, "rb")  # noqa: SIM115 - closed by the caller (DumpReader.batches)
    return stream, [stream]


def _time_us(column: str) -> pl.Expr:
    """Milliseconds (13 digits) or microseconds (16 digits), per row."""
    t = pl.col(column)
    return pl.when(t >= 100_000_000_000_000).then(t).otherwise(t * 1000).cast(TRADES_SCHEMA["ts"])


def normalize(frame: pl.DataFrame | pl.LazyFrame, layout: Layout, instrument: str,
              venue: str = VENUE) -> pl.DataFrame | pl.LazyFrame:
    """Raw dump columns (named as in LAYOUTS) → the trades or bars frame."""
    lit_venue, lit_inst = pl.lit(venue, pl.Utf8).alias("venue"), pl.lit(instrument, pl.Utf8).alias("instrument")
    if layout.kind == "klines":
        return frame.select(
            _time_us("open_time").alias("ts"), lit_venue, lit_inst,
            *(pl.col(c).alias(c) for c in ("open", "high", "low", "close", "volume")),
            pl.col("quote_volume").alias("amount"), pl.col("count").cast(pl.Int64).alias("trades"),
        ).select(list(BARS_SCHEMA))
    if layout.kind == "aggTrades":
        trade_id, qty, time = "agg_trade_id", pl.col("quantity"), "transact_time"
        amount = pl.col("price") * qty
    else:
        trade_id, time = "id", "time"
        if layout.market == "cm":
            qty = pl.col("base_qty")
            amount = pl.col("price") * qty
        else:
            qty, amount = pl.col("qty"), pl.col("quote_qty")
    return frame.select(
        _time_us(time).alias("ts"), lit_venue, lit_inst,
        pl.col(trade_id).cast(pl.Utf8).alias("trade_id"),
        pl.col("price"), qty.alias("quantity"), amount.alias("amount"),
        pl.when(pl.col("is_buyer_maker")).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("side"),
        pl.col(trade_id).alias("seq"),
    )


class DumpReader:
    """One dump file: its name, layout and a streamed, batched parse."""

    def __init__(self, path: str | Path, *, market: str | None = None, instrument: str | None = None,
                 kind: str | None = None, day: date | None = None, venue: str = VENUE):
        self.path = Path(path)
        try:
            name = parse_dump_name(self.path)
        except ValueError:
            if not (instrument and kind):
                raise
            name = DumpName(instrument, kind, day or date(1970, 1, 1))
        self.name = name
        self.instrument = instrument or name.instrument
        self.kind = kind or name.kind
        self.day = day or name.day
        self.venue = venue
        self.market_hint = market or market_from_path(self.path) or ("cm" if "_" in self.instrument else None)
        self.layout: Layout | None = None
        self.has_header: bool | None = None

    def _error(self, detail: str) -> SourceDataError:
        return SourceDataError(self.instrument, self.day, f"{self.path.name}: {detail}", source=self.venue)

    def batches(self, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[pl.DataFrame]:
        if batch_bytes < 1:
            raise ValueError("batch_bytes must be positive")
        stream, closers = _open_binary(self.path)
        try:
            first = stream.readline()
            if not first or first.isspace():
                return
            try:
                self.layout, self.has_header = detect_layout(self.kind, first.decode("utf-8", "replace"),
                                                             self.market_hint)
            except ValueError as error:
                raise self._error(str(error)) from None
            pending = b"" if self.has_header else first
            offset = len(first) if self.has_header else 0
            while True:
                block = stream.read(batch_bytes)
                data = pending + block if pending else block
                if block:
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        pending = data
                        continue
                    chunk, pending = data[:cut + 1], data[cut + 1:]
                else:
                    chunk, pending = data, b""
                if chunk and not chunk.isspace():
                    yield self._parse(chunk, offset)
                offset += len(chunk)
                if not block:
                    break
        finally:
            for closer in closers:
                closer.close()

    def _parse(self, chunk: bytes, offset: int) -> pl.DataFrame:
        layout = self.layout
        try:
            raw = pl.read_csv(chunk, has_header=False, schema=layout.schema, missing_columns="insert")
        except pl.exceptions.PolarsError as error:
            first_line = str(error).strip().splitlines()[0]
            raise self._error(f"rows from byte {offset} do not parse as the {layout.market} {layout.kind} layout "
                              f"{[c for c, _ in layout.columns]}: {first_line}") from None
        required = [c for c, _ in layout.columns if c not in ("ignore", "is_best_match")]
        nulls = raw.select(pl.col(required).null_count()).row(0)
        for column, count in zip(required, nulls):
            if count:
                row = raw.with_row_index("row").filter(pl.col(column).is_null())["row"][0]
                raise self._error(f"{count} row(s) from byte {offset} have no {column} (first: row {row} of the "
                                  f"batch); a short or empty line?")
        time_col = {"klines": "open_time", "aggTrades": "transact_time"}.get(layout.kind, "time")
        low = raw.filter(pl.col(time_col) < 100_000_000_000)
        if low.height:
            raise self._error(f"{time_col} {low[time_col][0]} is neither milliseconds nor microseconds "
                              f"(rows from byte {offset})")
        return normalize(raw, layout, self.instrument, self.venue)


def iter_dump(path: str | Path, *, batch_bytes: int = DEFAULT_BATCH_BYTES, market: str | None = None,
              instrument: str | None = None, kind: str | None = None, day: date | None = None,
              venue: str = VENUE) -> Iterator[pl.DataFrame]:
    """Normalized frames (trades for trades/aggTrades files, bars for klines), one per block of
    about `batch_bytes` of CSV text. Raises SourceDataError naming the file, instrument and day."""
    yield from DumpReader(path, market=market, instrument=instrument, kind=kind, day=day,
                          venue=venue).batches(batch_bytes)


def read_dump(path: str | Path, **kwargs) -> pl.DataFrame:
    """The whole file as one frame (the batches of `iter_dump`, concatenated)."""
    reader = DumpReader(path, **{k: v for k, v in kwargs.items() if k != "batch_bytes"})
    frames = list(reader.batches(kwargs.get("batch_bytes", DEFAULT_BATCH_BYTES)))
    if frames:
        return pl.concat(frames, how="vertical")
    return pl.DataFrame(schema=BARS_SCHEMA if reader.kind == "klines" else TRADES_SCHEMA)


def scan_dump(path: str | Path, *, market: str | None = None, instrument: str | None = None,
              kind: str | None = None, venue: str = VENUE) -> pl.LazyFrame:
    """A LazyFrame over an UNCOMPRESSED dump (`pl.scan_csv`, explicit schema, header skipped when
    present), normalized lazily: for the streaming engine (`.sink_parquet(...)`). No validation
    beyond Polars' parse; `iter_dump` checks every batch."""
    reader = DumpReader(path, market=market, instrument=instrument, kind=kind, venue=venue)
    if reader.path.suffix.lower() == ".zip":
        raise ValueError("scan_dump reads plain .csv files; use iter_dump for .zip")
    with open(reader.path, "rb") as handle:
        first = handle.readline().decode("utf-8", "replace")
    layout, has_header = detect_layout(reader.kind, first, reader.market_hint)
    lazy = pl.scan_csv(reader.path, has_header=False, skip_rows=1 if has_header else 0, schema=layout.schema)
    return normalize(lazy, layout, reader.instrument, venue)


# --------------------------------------------------------------------------------------------
# Generating and writing realistic dumps
# --------------------------------------------------------------------------------------------

def _base_price(instrument: str) -> float:
    for prefix, price in (("BTC", 60_000.0), ("ETH", 3_000.0), ("SOL", 150.0), ("BNB", 550.0)):
        if instrument.startswith(prefix):
            return price
    return 100.0


def _uniform(rng: random.Random, n: int) -> pl.Series:
    """n deterministic uniforms in [0, 1) from the seeded generator's bytes (vectorized)."""
    words = pa.Array.from_buffers(pa.uint64(), n, [None, pa.py_buffer(rng.randbytes(8 * n))])
    return (pl.Series(words) // 2048).cast(pl.Float64) * (2.0 ** -53)


def _round_to(expr: pl.Expr, decimals: int) -> pl.Expr:
    """The double nearest to the decimal (Polars' round is correctly rounded; x*k/k is not)."""
    return expr.round(decimals)


def iter_generated_trades(instrument: str, day: date, n: int, seed: int = 0, *, market: str = "spot",
                          venue: str = VENUE) -> Iterator[pl.DataFrame]:
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
            (pl.lit(log_price) + (0.0002 * (-2.0 * (1.0 - pl.col("u1")).log()).sqrt()
                                  * (2.0 * math.pi * pl.col("u2")).cos()).cum_sum()).alias("logp"),
            pl.max_horizontal(_round_to(-(1.0 - pl.col("u3")).log() * 0.05, 5), pl.lit(0.00001)).alias("quantity"),
            pl.when(pl.col("u4") < 0.5).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("side"),
        )
        log_price = frame["logp"][-1]
        ids = pl.int_range(first_id + done, first_id + done + size, dtype=pl.Int64, eager=True)
        time = pl.col("t") if micro else pl.col("t") - pl.col("t") % 1000
        price = pl.max_horizontal(_round_to(pl.col("logp").exp(), 2), pl.lit(0.01))
        yield frame.with_columns(price.alias("price"), ids.alias("seq")).select(
            time.cast(TRADES_SCHEMA["ts"]).alias("ts"),
            pl.lit(venue, pl.Utf8).alias("venue"), pl.lit(instrument, pl.Utf8).alias("instrument"),
            pl.col("seq").cast(pl.Utf8).alias("trade_id"), "price", "quantity",
            _round_to(pl.col("price") * pl.col("quantity"), 8).alias("amount"), "side", "seq",
        )
        done += size


def generate_trades(instrument: str, day: date, n: int, seed: int = 0, *, market: str = "spot",
                    venue: str = VENUE) -> pl.DataFrame:
    """`n` deterministic trades of one UTC day in the normalized frame: a random-walk price on a
    0.01 tick, exponential sizes, ids counting up; ms timestamps, µs for spot from 2025-01-01 —
    what `read_dump(write_dump(...))` gives back exactly."""
    frames = list(iter_generated_trades(instrument, day, n, seed, market=market, venue=venue))
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=TRADES_SCHEMA)


def _dump_rows(trades: pl.DataFrame, market: str, time_unit: str) -> pl.DataFrame:
    us = pl.col("ts").dt.epoch("us")
    time = us if time_unit == "us" else us // 1000
    maker = pl.col("side") == "sell"
    if market == "spot":
        return trades.select(
            pl.col("trade_id").cast(pl.Int64).alias("id"), "price", pl.col("quantity").alias("qty"),
            pl.col("amount").alias("quoteQty"), time.alias("time"),
            pl.when(maker).then(pl.lit("True")).otherwise(pl.lit("False")).alias("isBuyerMaker"),
            pl.lit("True").alias("isBestMatch"))
    return trades.select(
        pl.col("trade_id").cast(pl.Int64).alias("id"), "price", pl.col("quantity").alias("qty"),
        pl.col("amount").alias("quote_qty"), time.alias("time"),
        pl.when(maker).then(pl.lit("true")).otherwise(pl.lit("false")).alias("is_buyer_maker"))


def write_dump(path: str | Path, trades: pl.DataFrame | Iterable[pl.DataFrame], *, market: str = "spot",
               header: bool | None = None, time_unit: str | None = None, day: date | None = None) -> Path:
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
            yield (",".join(_dump_rows(pl.DataFrame(schema=TRADES_SCHEMA), market, time_unit).columns) + "\n").encode()

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
                archive.open(path.with_suffix(".csv").name, "w", force_zip64=True) as out:
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


__all__ = [
    "LAYOUTS",
    "DumpName",
    "DumpReader",
    "detect_layout",
    "generate_trades",
    "iter_dump",
    "iter_generated_trades",
    "market_from_path",
    "normalize",
    "parse_dump_name",
    "read_dump",
    "scan_dump",
    "write_dump",
]
