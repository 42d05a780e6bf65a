"""data.binance.vision dump files (trades, aggTrades, klines, liquidationSnapshot) → normalized
frames, in batches.

`parse_dump_name` reads a file's name; `DumpReader` reads the spot and futures layouts strictly (a short
line, a bad price or a repeated id fails the file, naming it) and streamed, so a 1 GB file is never in
memory at once; `landing_dumps` picks the files the landing loads. One format, one module (hence its
length). Layouts, checks, loading: docs/crypto-datasets.md, "Binance dump files".
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import IO, NamedTuple

import polars as pl

from marketdata_assets.core.http import SourceDataError
from marketdata_assets.core.landing_files import link_reason, open_binary, walk
from marketdata_assets.datasets.dump_csv import DumpCsvProfile
from marketdata_assets.datasets.frames import BARS_SCHEMA, EPOCH_US_FROM, LIQUIDATIONS_SCHEMA, TRADES_SCHEMA
from marketdata_assets.datasets.wire import note_dropped
from marketdata_assets.sources.binance_vision.archive_settings import ARCHIVE_INTERVALS

VENUE = "BINANCE"
MICROSECONDS_SINCE = date(2025, 1, 1)  # spot dumps switch to microsecond timestamps
FUTURES_HEADER_SINCE = date(2022, 5, 1)  # futures dumps carry a header from about here
DEFAULT_BATCH_BYTES = 8 << 20  # lines parsed at a time: ~100,000 trades (16 MB held ~70 MB more at the peak)
READ_BYTES = 1 << 20  # a zip member is decompressed so much at a time
SOURCE = "BINANCE_DUMPS"  # the ingest_log provider of dump loads

_NAME = re.compile(
    r"^(?P<instrument>[A-Z0-9_]+)-"
    r"(?P<family>trades|aggTrades|liquidationSnapshot|\d+(?:mo|s|m|h|d|w))-"
    r"(?P<year>\d{4})-(?P<month>\d{2})(?:-(?P<day>\d{2}))?\.(?P<ext>csv|zip)$"
)


class DumpName(NamedTuple):
    instrument: str
    family: str  # "trades" | "aggTrades" | "klines" | "liquidationSnapshot"
    day: date  # the first day of the month for monthly files
    interval: str | None = None  # klines: "1m", "1h", ...
    period: str = "daily"  # "daily" | "monthly"
    compressed: bool = False


def parse_dump_name(name: str | Path) -> DumpName:
    """`BTCUSDT-trades-2025-01-15.zip` → DumpName("BTCUSDT", "trades", date(2025, 1, 15), ...)."""
    base = Path(name).name
    match = _NAME.match(base)
    if not match:
        raise ValueError(
            f"{base!r} is not a data.binance.vision file name like BTCUSDT-trades-2025-01-15.zip, "
            f"BTCUSDT-aggTrades-2025-01-15.csv or BTCUSDT-1m-2025-01-15.zip"
        )
    family = match["family"]
    interval = None
    if family not in ("trades", "aggTrades", LIQUIDATION_FAMILY):
        family, interval = "klines", match["family"]
    try:
        day = date(int(match["year"]), int(match["month"]), int(match["day"] or 1))
    except ValueError as error:
        raise ValueError(f"{base!r}: {error}") from None
    return DumpName(
        match["instrument"],
        family,
        day,
        interval,
        "daily" if match["day"] else "monthly",
        match["ext"] == "zip",
    )


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    family: str
    market: str  # spot | um | cm
    columns: tuple[tuple[str, pl.DataType], ...]

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return dict(self.columns)


_I, _F, _S, _B = pl.Int64, pl.Float64, pl.Utf8, pl.Boolean  # Polars reads True/true/TRUE as booleans
_AGG_TRADE = (  # the futures' aggTrades columns; spot's add is_best_match
    ("agg_trade_id", _I),
    ("price", _F),
    ("quantity", _F),
    ("first_trade_id", _I),
    ("last_trade_id", _I),
    ("transact_time", _I),
    ("is_buyer_maker", _B),
)
LAYOUTS = {
    ("trades", "spot"): Layout(
        "trades",
        "spot",
        (
            ("id", _I),
            ("price", _F),
            ("qty", _F),
            ("quote_qty", _F),
            ("time", _I),
            ("is_buyer_maker", _B),
            ("is_best_match", _S),
        ),
    ),
    ("trades", "um"): Layout(
        "trades",
        "um",
        (("id", _I), ("price", _F), ("qty", _F), ("quote_qty", _F), ("time", _I), ("is_buyer_maker", _B)),
    ),
    ("trades", "cm"): Layout(
        "trades",
        "cm",
        (("id", _I), ("price", _F), ("qty", _F), ("base_qty", _F), ("time", _I), ("is_buyer_maker", _B)),
    ),
    ("aggTrades", "spot"): Layout("aggTrades", "spot", (*_AGG_TRADE, ("is_best_match", _S))),
    ("aggTrades", "um"): Layout("aggTrades", "um", _AGG_TRADE),
    ("klines", "spot"): Layout(
        "klines",
        "spot",
        (
            ("open_time", _I),
            ("open", _F),
            ("high", _F),
            ("low", _F),
            ("close", _F),
            ("volume", _F),
            ("close_time", _I),
            ("quote_volume", _F),
            ("count", _I),
            ("taker_buy_volume", _F),
            ("taker_buy_quote_volume", _F),
            ("ignore", _S),
        ),
    ),
}
# USD-M only: COIN-M files hold contracts of a USD value, not base units
# (docs/crypto-datasets.md, "Liquidation snapshot files")
LIQUIDATION_FAMILY = "liquidationSnapshot"
LAYOUTS[(LIQUIDATION_FAMILY, "um")] = Layout(
    LIQUIDATION_FAMILY,
    "um",
    (
        ("time", _I),
        ("side", _S),
        ("order_type", _S),
        ("time_in_force", _S),
        ("original_quantity", _F),
        ("price", _F),
        ("average_price", _F),
        ("order_status", _S),
        ("last_fill_quantity", _F),
        ("accumulated_fill_quantity", _F),
    ),
)
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


def detect_layout(family: str, first_line: str, market: str | None = None) -> tuple[Layout, bool]:
    """(layout, has_header) from a file's first line; `market` (spot|um|cm) when known."""
    fields = [f.strip().strip('"') for f in first_line.strip().lstrip("\ufeff").split(",")]
    has_header = not fields[0].lstrip("-").isdigit()
    n = len(fields)
    if family == "trades":
        by_count = "spot" if n == 7 else ("futures" if n == 6 else None)
    elif family == "aggTrades":
        by_count = "spot" if n == 8 else ("futures" if n == 7 else None)
    elif family == "klines":
        by_count = "any" if n == 12 else None
    elif family == LIQUIDATION_FAMILY:
        layout = LAYOUTS[(LIQUIDATION_FAMILY, "um")]
        if market not in (None, "um"):
            raise ValueError(
                f"{family} dumps are read for USD-M futures only, not market={market!r} (COIN-M "
                "quantities are contracts, not base units)"
            )
        names = [c for c, _ in layout.columns]
        if (has_header and fields != names) or n != len(names):
            raise ValueError(
                f"{family} dump whose first line {first_line.strip()[:160]!r} is not the layout "
                f"{','.join(names)} ({n} columns, expected {len(names)})"
            )
        return layout, has_header
    else:
        raise ValueError(f"unknown dump family {family!r}")
    if by_count is None:
        raise ValueError(f"{family} dump with {n} columns in its first line {first_line.strip()[:120]!r}")
    if by_count == "spot":
        if market not in (None, "spot"):
            raise ValueError(f"{family} dump has {n} columns (spot layout) but market={market!r}")
        market = "spot"
    elif by_count == "futures":
        if market == "spot":
            raise ValueError(f"{family} dump has {n} columns (futures layout) but market='spot'")
        if has_header and "base_qty" in fields:
            market = "cm"
        elif has_header and family == "trades" and "quote_qty" in fields:
            market = "um"
        market = market or "um"
    else:
        market = market or ("spot" if not has_header else "um")
    return LAYOUTS[(family, market)], has_header


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

# What reading a damaged file raises (a zip that is cut or corrupt fails while it is read, too).
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


def _open_binary(path: Path) -> tuple[IO[bytes], list]:
    """A binary stream of the CSV (a zip member is decompressed as it is read) + things to close.
    A zip must hold exactly one CSV, named like the zip (as data.binance.vision's do): ValueError
    naming the file otherwise."""
    raw = open_binary(path)  # never through a symbolic link (LinkRefused, an OSError)
    if path.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(raw)
        except READ_ERRORS as error:
            raw.close()
            raise ValueError(f"{path.name}: not a readable zip ({type(error).__name__}: {error})") from None
        members = [m for m in archive.infolist() if not m.is_dir()]
        wanted = path.with_suffix(".csv").name
        problem = None
        if not any(m.filename.lower().endswith(".csv") for m in members):
            problem = f"no .csv inside the zip (members: {[m.filename for m in members][:5]})"
        elif len(members) > 1:
            problem = (
                f"{len(members)} members {[m.filename for m in members][:5]}: a dump zip holds one CSV, "
                f"{wanted}"
            )
        elif Path(members[0].filename).name != wanted:
            problem = f"the zip holds {members[0].filename!r}, not {wanted!r}: another file's rows?"
        if problem:
            archive.close()
            raw.close()
            raise ValueError(f"{path.name}: {problem}")
        try:
            stream = archive.open(members[0])
        except (*READ_ERRORS, RuntimeError) as error:  # RuntimeError: an encrypted member
            archive.close()
            raw.close()
            raise ValueError(f"{path.name}: {members[0].filename} cannot be read ({error})") from None
        return stream, [stream, archive, raw]
    return raw, [raw]  # closed by the caller (DumpReader.batches)


def has_rows(path: Path) -> bool:
    """Whether a dump (plain or zipped) holds at least one data line (not only a header); ValueError
    naming the file when it cannot be read."""
    stream, closers = _open_binary(path)
    try:
        for line in stream:
            fields = line.strip().lstrip(b"\xef\xbb\xbf").split(b",")
            if fields[0] and fields[0].strip(b'"').lstrip(b"-").isdigit():
                return True
        return False
    except READ_ERRORS as error:
        raise ValueError(f"{path.name}: cannot be read ({type(error).__name__}: {error})") from None
    finally:
        for closer in closers:
            closer.close()


# A kline file's interval → its span in milliseconds (1mo varies: not checked).
INTERVAL_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def interval_ms(interval: str | None) -> int | None:
    """ "1m" → 60000; None for "1mo" or no interval."""
    match = re.fullmatch(r"(\d+)([smhdw])", interval or "")
    return int(match[1]) * INTERVAL_MS[match[2]] if match else None


def _time_us(column: str) -> pl.Expr:
    """Milliseconds (13 digits) or microseconds (16 digits), per row."""
    t = pl.col(column)
    return pl.when(t >= EPOCH_US_FROM).then(t).otherwise(t * 1000).cast(TRADES_SCHEMA["ts"])


def plain(value: float) -> str:
    """A number's shortest round-trip digits, positional, no trailing zeros: 1e-05 → "0.00001",
    70900.0 → "70900"."""
    text = f"{Decimal(repr(float(value))):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def liquidation_id(ts_us: int, side: str, quantity: float, price: float) -> str:
    """`<ts µs>-<side>-<quantity>-<price>`: "1711843200123000-sell-0.014-70010.5"."""
    return f"{ts_us}-{side}-{plain(quantity)}-{plain(price)}"


def liquidation_rows(raw: pl.DataFrame, instrument: str, venue: str) -> pl.DataFrame:
    """A liquidationSnapshot batch (LAYOUTS' columns) → the liquidations frame (`liquidation_id` not
    set yet) + `_line` (the row's fields as read): price = average_price (the fills' average; the
    order's price when it is 0), quantity = accumulated_fill_quantity (0: nothing filled), order_price =
    the order's price (the forceOrder stream's `p`)."""
    side = pl.col("side").str.to_lowercase()
    price = pl.when(pl.col("average_price") > 0).then(pl.col("average_price")).otherwise(pl.col("price"))
    quantity = pl.col("accumulated_fill_quantity")
    return raw.select(
        _time_us("time").alias("ts"),
        pl.lit(venue, pl.Utf8).alias("venue"),
        pl.lit(instrument, pl.Utf8).alias("instrument"),
        pl.lit("", pl.Utf8).alias("liquidation_id"),
        side.alias("side"),
        price.alias("price"),
        quantity.alias("quantity"),
        (price * quantity).alias("amount"),
        pl.col("price").cast(pl.Float64).alias("order_price"),
        pl.concat_str([pl.col(c).cast(pl.Utf8) for c in raw.columns], separator=",").alias("_line"),
    )


def normalize(
    frame: pl.DataFrame | pl.LazyFrame, layout: Layout, instrument: str, venue: str = VENUE
) -> pl.DataFrame | pl.LazyFrame:
    """Raw dump columns (named as in LAYOUTS) → the trades or bars frame."""
    lit_venue, lit_inst = (
        pl.lit(venue, pl.Utf8).alias("venue"),
        pl.lit(instrument, pl.Utf8).alias("instrument"),
    )
    if layout.family == "klines":
        return frame.select(
            _time_us("open_time").alias("ts"),
            lit_venue,
            lit_inst,
            *(pl.col(c).alias(c) for c in ("open", "high", "low", "close", "volume")),
            pl.col("quote_volume").alias("amount"),
            pl.col("count").cast(pl.Int64).alias("trades"),
        ).select(list(BARS_SCHEMA))
    if layout.family == "aggTrades":
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
        _time_us(time).alias("ts"),
        lit_venue,
        lit_inst,
        pl.col(trade_id).cast(pl.Utf8).alias("trade_id"),
        pl.col("price"),
        qty.alias("quantity"),
        amount.alias("amount"),
        pl.when(pl.col("is_buyer_maker")).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("side"),
        pl.col(trade_id).alias("seq"),
    )


def _chunks(stream: IO[bytes], pending: bytes, batch_bytes: int) -> Iterator[bytes]:
    """The stream's bytes (after `pending`) in chunks of about `batch_bytes`, each ending at a line's
    end (the last one at the stream's), read a megabyte at a time: a chunk is the only whole copy of
    its bytes held (a zip member's 16 MB reads and their joins held several)."""
    while True:
        parts, size, ended = [pending] if pending else [], len(pending), b"\n" in pending
        while size < batch_bytes or not ended:  # past the size: on to a line's end
            block = stream.read(min(READ_BYTES, batch_bytes - size) if size < batch_bytes else READ_BYTES)
            if not block:
                if parts:
                    yield b"".join(parts)
                return
            parts.append(block)
            size, ended = size + len(block), ended or b"\n" in block
        last = next(i for i in range(len(parts) - 1, -1, -1) if b"\n" in parts[i])
        cut = parts[last].rfind(b"\n") + 1
        pending = parts[last][cut:] + b"".join(parts[last + 1 :])
        parts[last:] = [parts[last][:cut]]
        yield b"".join(parts)


class DumpReader:
    """One dump file: its name, layout and a streamed, batched parse."""

    def __init__(
        self,
        path: str | Path,
        *,
        market: str | None = None,
        instrument: str | None = None,
        family: str | None = None,
        day: date | None = None,
        venue: str = VENUE,
    ):
        self.path = Path(path)
        try:
            name = parse_dump_name(self.path)
        except ValueError:
            if not (instrument and family):
                raise
            name = DumpName(instrument, family, day or date(1970, 1, 1))
        self.name = name
        self.instrument = instrument or name.instrument
        self.family = family or name.family
        self.day = day or name.day
        self.venue = venue
        self.market_hint = market or market_from_path(self.path) or ("cm" if "_" in self.instrument else None)
        self.layout: Layout | None = None
        self.has_header: bool | None = None
        self._keys: list[pl.Series] = []  # every batch's ids (a kline's open time): each must appear once
        self._liquidations: dict[str, str] = {}  # liquidation_id -> its raw line, across the batches
        self.dropped: Counter = Counter()  # rows left out, by wire.DROP_REASONS reason

    def _error(self, detail: str) -> SourceDataError:
        return SourceDataError(self.instrument, self.day, f"{self.path.name}: {detail}", source=self.venue)

    def batches(self, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[pl.DataFrame]:
        """The file's rows in frames of about `batch_bytes` of text; a SourceDataError naming the
        file for anything the strict reading refuses (module doc)."""
        if batch_bytes < 1:
            raise ValueError("batch_bytes must be positive")
        try:
            stream, closers = _open_binary(self.path)
        except ValueError as error:
            raise self._error(str(error).removeprefix(f"{self.path.name}: ")) from None
        try:
            yield from self._batches(stream, batch_bytes)
        except READ_ERRORS as error:
            raise self._error(f"cannot be read ({type(error).__name__}: {error})") from None
        finally:
            for closer in closers:
                closer.close()
        self._check_keys()

    def _batches(self, stream: IO[bytes], batch_bytes: int) -> Iterator[pl.DataFrame]:
        self._keys, self._liquidations = [], {}
        first = stream.readline()
        while first and first.isspace():
            first = stream.readline()
        if not first:
            return
        try:
            self.layout, self.has_header = detect_layout(
                self.family, first.decode("utf-8", "replace"), self.market_hint
            )
        except ValueError as error:
            raise self._error(str(error)) from None
        offset = len(first) if self.has_header else 0
        for chunk in _chunks(stream, b"" if self.has_header else first, batch_bytes):
            if not chunk.isspace():
                yield self._parse(chunk, offset)
            offset += len(chunk)

    def _parse(self, chunk: bytes, offset: int) -> pl.DataFrame:
        layout = self.layout
        try:
            raw = pl.read_csv(chunk, has_header=False, schema=layout.schema, missing_columns="insert")
        except pl.exceptions.PolarsError as error:
            first_line = str(error).strip().splitlines()[0]
            raise self._error(
                f"rows from byte {offset} do not parse as the {layout.market} {layout.family} layout "
                f"{[c for c, _ in layout.columns]}: {first_line}"
            ) from None
        required = [c for c, _ in layout.columns if c not in ("ignore", "is_best_match")]  # neither is stored
        nulls = raw.select(pl.col(required).null_count()).row(0)
        for column, count in zip(required, nulls):
            if count:
                row = raw.with_row_index("row").filter(pl.col(column).is_null())["row"][0]
                raise self._error(
                    f"{count} row(s) from byte {offset} have no {column} (first: row {row} of the "
                    f"batch); a short or empty line?"
                )
        time_col = {"klines": "open_time", "aggTrades": "transact_time"}.get(layout.family, "time")
        low = raw.filter(pl.col(time_col) < 100_000_000_000)
        if low.height:
            raise self._error(
                f"{time_col} {low[time_col][0]} is neither milliseconds nor microseconds "
                f"(rows from byte {offset})"
            )
        self._check_values(raw, offset)
        if layout.family == LIQUIDATION_FAMILY:
            return self._once(liquidation_rows(raw, self.instrument, self.venue))
        self._keys.append(raw[layout.columns[0][0]])
        return normalize(raw, layout, self.instrument, self.venue)

    def _once(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Each liquidation once: a line repeated verbatim (the vendor writes every line twice) is
        dropped as `duplicates`, one liquidation_id on lines that differ is an error; the rows that
        filled nothing are dropped as `not_filled` (docs/crypto-datasets.md, "Liquidation snapshot files")."""
        keep, ids = [], []
        for ts, side, quantity, price, line in zip(
            rows["ts"].dt.epoch("us"), rows["side"], rows["quantity"], rows["price"], rows["_line"]
        ):
            ids.append(lid := liquidation_id(ts, side, quantity, price))
            seen = self._liquidations.get(lid)
            if seen is not None and seen != line:
                raise self._error(
                    f"liquidation {lid} on two different lines {seen!r} and {line!r}: not the "
                    "vendor's repeated line (the lines of one liquidation differ)"
                )
            keep.append(seen is None)
            self._liquidations[lid] = line
        rows = rows.with_columns(
            pl.Series("liquidation_id", ids, dtype=pl.Utf8), pl.Series("_keep", keep, dtype=pl.Boolean)
        )
        self._drop("duplicates", rows.filter(~pl.col("_keep")))
        self._drop("not_filled", rows.filter(pl.col("_keep") & (pl.col("quantity") <= 0)))
        return rows.filter(pl.col("_keep") & (pl.col("quantity") > 0)).select(list(LIQUIDATIONS_SCHEMA))

    def _drop(self, reason: str, rows: pl.DataFrame) -> None:
        for day, count in rows.group_by(pl.col("ts").dt.date().alias("day")).len().iter_rows():
            self.dropped[reason] += count
            note_dropped(self.instrument, reason, count, day)

    def _check_values(self, raw: pl.DataFrame, offset: int) -> None:
        """The rows' values can be true (module doc); the first row that cannot is named."""
        family = self.layout.family
        if family == "klines":
            prices = [pl.col(c) for c in ("open", "high", "low", "close")]
            rules = [
                (
                    pl.all_horizontal(p.is_finite() & (p > 0) for p in prices).not_(),
                    "a price is not positive",
                ),
                (
                    (pl.col("low") > pl.min_horizontal("open", "close"))
                    | (pl.col("high") < pl.max_horizontal("open", "close")),
                    "low <= open, close <= high fails",
                ),
                (
                    (pl.col("volume") < 0)
                    | (pl.col("quote_volume") < 0)
                    | (pl.col("count") < 0)
                    | pl.col("volume").is_infinite()
                    | pl.col("quote_volume").is_infinite(),
                    "a volume or count is negative or infinite",
                ),
            ]
            span_ms = interval_ms(self.name.interval) if self.name.family == "klines" else None
            if span_ms:
                gap = pl.col("close_time") - pl.col("open_time")
                span = pl.when(pl.col("open_time") >= EPOCH_US_FROM).then(gap).otherwise(gap * 1000)
                why = (
                    f"the kline does not span {self.name.interval} (close_time - open_time): another "
                    "interval's file?"
                )
                rules.append(((span < span_ms * 1000 - 1000) | (span >= span_ms * 1000), why))
        elif family == LIQUIDATION_FAMILY:

            def finite(column: str) -> pl.Expr:
                return pl.col(column).is_finite()

            filled, original = pl.col("accumulated_fill_quantity"), pl.col("original_quantity")
            side = pl.col("side").str.to_uppercase()
            rules = [
                (~side.is_in(["BUY", "SELL"]), "the side is not BUY or SELL"),
                (((pl.col("price") > 0) & finite("price")).not_(), "the price is not positive"),
                (
                    ((pl.col("average_price") >= 0) & finite("average_price")).not_(),
                    "the average_price is negative or not finite",
                ),
                (
                    ((original > 0) & finite("original_quantity")).not_(),
                    "the original_quantity is not positive",
                ),
                (
                    ((filled >= 0) & (filled <= original)).not_(),
                    "the accumulated_fill_quantity is not between 0 and the original_quantity",
                ),
                (
                    ((pl.col("last_fill_quantity") >= 0) & (pl.col("last_fill_quantity") <= filled)).not_(),
                    "the last_fill_quantity is not between 0 and the accumulated_fill_quantity",
                ),
            ]
        else:
            qty = (
                "quantity" if family == "aggTrades" else ("base_qty" if self.layout.market == "cm" else "qty")
            )
            rules = [
                (((pl.col("price") > 0) & pl.col("price").is_finite()).not_(), "the price is not positive"),
                (((pl.col(qty) > 0) & pl.col(qty).is_finite()).not_(), f"the {qty} is not positive"),
            ]
        failed = raw.select([mask.any().alias(str(i)) for i, (mask, _) in enumerate(rules)]).row(0)
        for (mask, why), bad in zip(rules, failed):
            if bad:
                row = raw.with_row_index("row").filter(mask).row(0, named=True)
                raise self._error(f"{why}: row {row.pop('row')} of the rows from byte {offset}: {row}")

    def _check_keys(self) -> None:
        """Each id (a kline's open time) once in the file: a repeated line is damage, never a trade."""
        if not self._keys:
            return
        if _increasing(self._keys):  # the vendor's order: unique without hashing millions of ids
            self._keys = []
            return
        keys = pl.concat(self._keys)
        self._keys = []
        if keys.n_unique() != keys.len():
            repeated = keys.filter(keys.is_duplicated())
            raise self._error(
                f"{self.layout.columns[0][0]} {repeated[0]} appears {int((keys == repeated[0]).sum())} "
                f"times ({repeated.n_unique()} repeated value(s)): a repeated line?"
            )


def _increasing(batches: list[pl.Series]) -> bool:
    """Whether the ids run strictly up through every batch and from each batch to the next (then no
    id repeats)."""
    last = None
    for ids in batches:
        if ids.len() == 0:
            continue
        if (ids.len() > 1 and not (ids.diff().min() > 0)) or (last is not None and ids[0] <= last):
            return False
        last = ids[-1]
    return True


def read_dump(path: str | Path, **kwargs) -> pl.DataFrame:
    """The whole file as one frame (the batches of `DumpReader.batches`, concatenated)."""
    reader = DumpReader(path, **{k: v for k, v in kwargs.items() if k != "batch_bytes"})
    frames = list(reader.batches(kwargs.get("batch_bytes", DEFAULT_BATCH_BYTES)))
    if frames:
        return pl.concat(frames, how="vertical")
    schemas = {"klines": BARS_SCHEMA, LIQUIDATION_FAMILY: LIQUIDATIONS_SCHEMA}
    return pl.DataFrame(schema=schemas.get(reader.family, TRADES_SCHEMA))


# --------------------------------------------------------------------------------------------
# Finding and loading the files of a run
# --------------------------------------------------------------------------------------------

_TS_MS_OR_US = "fromUnixTimestamp64Micro(if({c} >= 100000000000000, {c}, {c} * 1000), 'UTC')"


def _unless(value: str, bad: str, why: str) -> str:
    """`value`, or the statement fails with `why` when a row's `bad` holds (the engine reader's
    checks: the same as `DumpReader`'s)."""
    return f"if(throwIf(ifNull({bad}, 0), '{why}') = 0, {value}, {value})"


# A column past the layout's: the engine's reader takes rows of any length (a short one is caught
# by `required`), so a row with a field too many would lose it silently without this one.
_EXTRA = "extra_field Nullable(String)"
_NO_EXTRA = ("extra_field IS NOT NULL", "a row has more columns than the layout")


# The engine's own reader (ClickHouse file()) on plain dump CSVs: the fastest load path measured.
TRADES_CSV = DumpCsvProfile(
    dataset="trades",
    name_pattern=re.compile(r"^([A-Z0-9]+)-trades-(\d{4}-\d{2}-\d{2})\.csv$"),
    schema=(
        "id Nullable(Int128), price Nullable(Float64), qty Nullable(Float64), quote_qty Nullable(Float64), "
        "time Nullable(Int64), is_buyer_maker Nullable(String), is_best_match Nullable(String), " + _EXTRA
    ),
    required=("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),
    unique_ids="seq",  # the id as a number (0 .. Int64 max: checked below), trade_id its text
    # id read wide: an id past Int64 fails instead of wrapping around
    select={
        "ts": _TS_MS_OR_US.format(c="time"),
        "trade_id": _unless("toString(id)", *_NO_EXTRA),
        "price": _unless(
            "price", "NOT (price > 0 AND isFinite(price))", "a row has a price that is not positive"
        ),
        "quantity": _unless("qty", "NOT (qty > 0 AND isFinite(qty))", "a row has a qty that is not positive"),
        "amount": "quote_qty",
        # True/False (spot), true/false (futures): what Polars reads as a boolean, nothing else
        "side": _unless(
            "if(lower(is_buyer_maker) = 'true', 'sell', 'buy')",
            "lower(is_buyer_maker) NOT IN ('true', 'false')",
            "is_buyer_maker is not true/false",
        ),
        "seq": _unless(
            "toInt64(id)",
            "id NOT BETWEEN 0 AND 9223372036854775807",
            "a row has an id out of the Int64 range",
        ),
    },
)
KLINES_1M_CSV = DumpCsvProfile(
    dataset="bars_1m",
    name_pattern=re.compile(r"^([A-Z0-9]+)-1m-(\d{4}-\d{2}-\d{2})\.csv$"),
    schema=(
        "open_time Nullable(Int64), open Nullable(Float64), high Nullable(Float64), low Nullable(Float64), "
        "close Nullable(Float64), volume Nullable(Float64), close_time Nullable(Int64), "
        "quote_volume Nullable(Float64), count Nullable(Int64), taker_buy_volume Nullable(Float64), "
        "taker_buy_quote_volume Nullable(Float64), ignore Nullable(String), " + _EXTRA
    ),
    required=("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count"),
    select={
        "ts": _TS_MS_OR_US.format(c="open_time"),
        "open": _unless(
            "open",
            "NOT (least(open, high, low, close) > 0 AND isFinite(open + high + low + close))",
            "a kline has a price that is not positive",
        ),
        "high": _unless(
            "high",
            "low > least(open, close) OR high < greatest(open, close)",
            "a kline fails low <= open, close <= high",
        ),
        "low": "low",
        "close": _unless(
            "close",
            "if(open_time >= 100000000000000, close_time - open_time, "
            "(close_time - open_time) * 1000) NOT BETWEEN 59999000 AND 59999999",
            "a kline does not span 1m (close_time - open_time): another interval file?",
        ),
        "volume": _unless(
            "volume",
            "volume < 0 OR quote_volume < 0 OR count < 0 OR NOT isFinite(volume + quote_volume)",
            "a kline has a negative or infinite volume or count",
        ),
        "amount": _unless("quote_volume", *_NO_EXTRA),
        "trades": "count",
    },
)
# dump family -> (dataset, file-name token, the engine's CSV profile)
DUMP_DATASETS = {"trades": ("trades", "trades", TRADES_CSV), "klines": ("bars_1m", "1m", KLINES_1M_CSV)}


def supported(name: DumpName) -> bool:
    """Daily spot trades and 1-minute klines (the files this domain loads)."""
    return name.period == "daily" and (
        name.family == "trades" or (name.family == "klines" and name.interval == "1m")
    )


IGNORED_DIR = "ignored"  # under the landing root: files this landing does not load, each with a .reason.txt
_IN_PROGRESS = (".tmp", ".part", ".partial", ".crdownload", ".download")


def in_progress(name: str) -> bool:
    """A copier's temporary file (dot file, .tmp, .part, ...): neither loaded nor moved aside."""
    return name.startswith(".") or name.lower().endswith(_IN_PROGRESS)


def landing_dumps(
    root: Path, ignored: list[tuple[Path, str]] | None = None
) -> Iterator[tuple[Path, DumpName]]:
    """Every supported spot dump file under `root` (any depth, `ignored/` left out), with its parsed
    name; every other file is passed over, with the reason in `ignored` when given (a name that is
    not a dump's, a family or period this domain does not load, a futures file, a symbolic link:
    never entered nor read, core/landing_files.py)."""
    listing = walk(root, enter=lambda relative: relative != IGNORED_DIR, keep=lambda name: True)
    if ignored is not None:  # moved aside with the reason like any file not loaded; nothing of it is read
        ignored.extend((link, link_reason(link, root)) for link in listing.links)
    for path in listing.files:
        dirpath, filename = str(path.parent), path.name
        try:
            name = parse_dump_name(filename)
        except ValueError as error:
            why = (
                str(error)
                if filename.endswith((".csv", ".zip"))
                else f"{filename!r} is not a .csv or .zip dump file (a .CHECKSUM, .gz or other file)"
            )
            if ignored is not None and not filename.endswith(".CHECKSUM"):
                ignored.append((path, why))
            continue
        where = dirpath.replace("\\", "/") + "/"
        archived = (
            (name.interval or "1m") in ARCHIVE_INTERVALS
            and "/futures/cm/" not in where
            and "_" not in name.instrument
        )
        hint = (
            (
                "; the binance_archives assets load it from data.binance.vision, verified against its "
                "CHECKSUM (binance_archives in data_providers.yaml)"
            )
            if archived
            else ""
        )
        if "/futures/" in where:
            why = f"a futures dump: this domain loads spot dumps{hint}"
        elif not supported(name):
            why = (
                f"a {name.period} {name.interval or name.family} dump: this domain loads daily spot trades "
                f"and 1m klines{hint}"
            )
        else:
            yield path, name
            continue
        if ignored is not None:
            ignored.append((path, why))
