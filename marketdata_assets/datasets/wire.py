"""Reading a source's wire values into the normalized frames: typed readers that fail with a clear
SourceDataError naming the source, instrument, day and request (`number`, `integer`, `record_of`, ...),
the column builders (`BarColumns`, `columns_of`), book levels, the windowing and de-duplication
that finish a fetch, and what a fetch did to its rows (`FetchNotes`: every dropped row counted with
its reason, every unit conversion) - the toolkit every source's parser shares (datasets/frames.py
declares the frames themselves)."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import msgspec
import polars as pl

from marketdata_assets.core import plausibility
from marketdata_assets.core.http import Page, SourceDataError, bound
from marketdata_assets.datasets.declared import misfit
from marketdata_assets.datasets.frames import (
    BARS_SCHEMA,
    BOOKS_SCHEMA,
    EPOCH_MS_OR_US,
    TRADES_SCHEMA,
    UTC_US,
    as_utc,
    day_of,
    epoch_to_us,
    from_us,
    spec_for,
)

# --------------------------------------------------------------------------------------------
# Reading wire values: a clear SourceDataError naming the source, instrument, day and request
# --------------------------------------------------------------------------------------------


# decimal texts ("0.01633102") as the floats `float` makes, all in one C call (a quarter of `float`'s time);
# msgspec.ValidationError if any is no decimal msgspec reads ("5.", "1e400", "1_000", "abc")
decimal_floats = functools.partial(msgspec.convert, type=list[float], strict=False)


def number(value: Any, what: str, page: Page) -> float:
    """A finite float from a vendor string ("0.01633102") or JSON number; a clear error otherwise."""
    if isinstance(value, bool) or value is None:
        raise page.error(f"{what} is {value!r}, not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise page.error(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(result):
        raise page.error(f"{what} is {value!r}, not a finite number")
    return result


def integer(value: Any, what: str, page: Page) -> int:
    """An Int64 from a JSON integer, an integral float or a digit string; a clear error otherwise."""
    if isinstance(value, bool) or value is None:
        raise page.error(f"{what} is {value!r}, not an integer")
    if isinstance(value, int):
        result = value
    elif (isinstance(value, str) and value.strip().lstrip("-").isdigit()) or (
        isinstance(value, float) and value.is_integer()
    ):
        result = int(value)
    else:
        raise page.error(f"{what} is {value!r}, not an integer")
    if not -(2**63) <= result < 2**63:
        raise page.error(f"{what} is {str(value)[:40]}, out of the 64-bit integer range")
    return result


def epoch_us(value: Any, what: str, page: Page) -> int:
    """Epoch milliseconds or microseconds (`epoch_to_us`) → microseconds; seconds, nanoseconds or a
    negative time is a clear error (seconds read as milliseconds would be stored in 1970). 0 is
    epoch zero, a placeholder stamp: kept as 1970-01-01 for the plausibility rule to drop and count
    (`drop_implausible`), so one such row does not fail its page."""
    raw = integer(value, what, page)
    if raw == 0:
        return 0
    if not EPOCH_MS_OR_US[0] <= raw < EPOCH_MS_OR_US[1]:
        raise page.error(
            f"{what} is {raw}: neither epoch milliseconds nor microseconds (seconds? nanoseconds?)"
        )
    return epoch_to_us(raw)


def record_of(kind: type, value: Any, what: str, page: Page) -> Any:
    """One decoded JSON object (an answer, an envelope, a ticker) as its declared `kind` record
    (as `declared.one_of`): a SourceDataError naming `what`, the field that does not fit and its value."""
    if not isinstance(value, dict):
        raise page.error(f"{what} is {type(value).__name__} {str(value)[:80]!r}, not an object")
    try:
        return msgspec.convert([value], list[kind], strict=False)[0]
    except msgspec.ValidationError as error:
        # a field that may be null or "" is told by what its value must be otherwise ("a number")
        why = _UNION.sub(r"Expected `\1`", str(error))
        detail = misfit(why, [value], kind, lambda i, record: what)
        if detail.endswith(", not one of "):  # a number or "" (`Finite | Literal[""]`)
            detail += "a number"
        raise page.error(detail.replace(", not one of a number", ", not a number")) from None


_UNION = re.compile(r"Expected `([^`|]+?) \| [^`]*`")


def positive(price: float, what: str, page: Page, name: str = "price") -> float:
    if price <= 0:
        raise page.error(f"{what} {name} is {price}, not positive")
    return price


def not_negative(value: float, what: str, page: Page) -> float:
    if value < 0:
        raise page.error(f"{what} is {value}, negative")
    return value


def check_bar(
    what: str,
    page: Page,
    ts_us: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    volume: float,
    minute: bool = True,
) -> None:
    """A bar that can be true: opens on a minute (`minute`), positive prices, low <= open/close <=
    high, volume >= 0; a clear error naming the bar otherwise."""
    if minute and ts_us % 60_000_000:
        raise page.error(f"{what} opens at {from_us(ts_us).isoformat()}, not on a minute: not a 1-minute bar")
    for name, price in (("open", o), ("high", h), ("low", lo), ("close", c)):
        positive(price, what, page, name)
    if not lo <= min(o, c) <= max(o, c) <= h:
        raise page.error(f"{what} is not a bar: open {o}, high {h}, low {lo}, close {c}")
    not_negative(volume, f"{what} volume", page)


# --------------------------------------------------------------------------------------------
# Building frames from parsed records
# --------------------------------------------------------------------------------------------


class Columns:
    """Accumulates parsed records (`add` takes the `fields` in order, `ts` in epoch microseconds);
    `frame(venue, instrument)` builds the normalized frame of `schema`. A record is kept as one
    tuple (one append per record: this is the parsers' hot loop) and transposed once at the end."""

    fields: ClassVar[tuple[str, ...]] = ()
    schema: ClassVar[dict[str, pl.DataType]] = {}

    def __init__(self):
        self._rows: list[tuple] = []

    def add(self, *values) -> None:
        self._rows.append(values)

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self, venue: str, instrument: str) -> pl.DataFrame:
        n = len(self._rows)
        columns = list(zip(*self._rows)) if n else [() for _ in self.fields]
        data = {
            name: pl.Series(values, dtype=pl.Int64 if self.schema[name] == UTC_US else self.schema[name])
            for name, values in zip(self.fields, columns, strict=True)
        }
        data["venue"] = pl.Series([venue] * n, dtype=pl.Utf8)
        data["instrument"] = pl.Series([instrument] * n, dtype=pl.Utf8)
        for name in self.fields:  # times are added as epoch microseconds
            if self.schema[name] == UTC_US:
                data[name] = data[name].cast(UTC_US)
        return pl.DataFrame([data[name] for name in self.schema], schema=self.schema)


class BarColumns(Columns):
    """add(ts_us, open, high, low, close, volume, amount, trades)."""

    fields = ("ts", "open", "high", "low", "close", "volume", "amount", "trades")
    schema = BARS_SCHEMA


def columns_of(dataset: str) -> Columns:
    """Columns for any dataset: `add` takes its schema's columns but venue and instrument, in order
    (funding: ts_us, rate, interval_hours, rate_8h, mark_price, index_price); time columns (`ts`,
    `expiry`) as epoch microseconds."""
    spec = spec_for(dataset)

    class Of(Columns):
        fields = tuple(name for name in spec.schema if name not in ("venue", "instrument"))
        schema = spec.schema

    return Of()


# --------------------------------------------------------------------------------------------
# What a fetch did to its rows: each dropped row counted with its reason, each unit conversion
# named. The counts reach the source client's `dropped_<reason>` figures (`IngestReport.sources`)
# and, through `noting()`, the fetch's slices (ingest_log `dropped` / `conversions`, metadata).
# --------------------------------------------------------------------------------------------

DROP_REASONS: dict[str, str] = {
    "null_rows": "every value null (a minute without trades)",
    "partial_rows": "some values null",
    "unconfirmed": 'a bar still forming (OKX confirm "0"): stored once it is final',
    "duplicates": "a trade id or bar time sent again with the same values (pages that overlap), a line "
    "repeated in a dump file, or a live trade landed twice (overlapping connections, a reconnect)",
    "not_filled": "a liquidation order that filled nothing (a Binance liquidationSnapshot line with "
    "accumulated_fill_quantity 0)",
    "outside_window": "stamped outside the window the request asked for",
    "past_window_edge": "beyond the window's edge in the paging direction (paging by id, or newest first, "
    "cannot stop exactly there): the neighbouring slice's rows",
    "other_instrument": "a record of another instrument answered alongside (OKX liquidations are asked "
    "by instrument family)",
    "not_a_trade": "a landed live frame of a trade channel that is not a trade event (an ack, an error, "
    "another event)",
    "bad_frame": "a landed live frame that is not JSON, or a trade event with a missing or wrong field",
    "bad_line": "a line of a closed landing file that is no record (damaged: not JSON, or no receive time)",
    "not_an_event": "a landed live frame of a dataset's channel that is no event of it (an ack, an error, a "
    "heartbeat)",
    "no_message": (
        "a live event that makes no row of the dataset (a Deribit ticker of a dated future read for "
        "funding, ...)"
    ),
    "implausible_time": "stamped after now + the tolerance or before the venue's earliest plausible day "
    "(core/plausibility.py: an epoch-zero 1970 stamp, a year typo)",
}


@dataclass
class FetchNotes:
    """One fetch's drops (instrument -> reason -> rows; by (instrument, UTC day) where the parser
    knows the dropped row's day) and unit conversions (instrument -> descriptions), collected while
    the engine runs it inside `noting()`."""

    dropped: dict[str, Counter] = dataclasses.field(default_factory=dict)
    dropped_on: dict[tuple[str, date], Counter] = dataclasses.field(default_factory=dict)
    conversions: dict[str, dict[str, None]] = dataclasses.field(default_factory=dict)  # an ordered set

    def drop(self, instrument: str, reason: str, rows: int = 1, day: date | None = None) -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"{reason!r} is not a documented drop reason ({sorted(DROP_REASONS)})")
        if rows:
            counter = (
                self.dropped_on.setdefault((instrument, day), Counter())
                if day
                else self.dropped.setdefault(instrument, Counter())
            )
            counter[reason] += rows

    def convert(self, instrument: str, description: str) -> None:
        self.conversions.setdefault(instrument, {})[description] = None


_fetch_notes: contextvars.ContextVar[FetchNotes | None] = contextvars.ContextVar("fetch_notes", default=None)


def noting(notes: FetchNotes) -> contextlib.AbstractContextManager[FetchNotes]:
    """Record the drops and conversions of the parsing done inside the block (in this task) on `notes`."""
    return bound(_fetch_notes, notes)


def note_dropped(instrument: str, reason: str, rows: int = 1, day: date | None = None) -> None:
    """Count `rows` of `instrument` dropped for `reason` on the running fetch (if any), on the
    slice of `day` when the parser knows it."""
    if (notes := _fetch_notes.get()) is not None:
        notes.drop(instrument, reason, rows, day)


def note_conversion(instrument: str, description: str) -> None:
    """Record a unit conversion applied to `instrument`'s rows on the running fetch (if any), e.g.
    "price GBp -> GBP (/100)"; recorded per slice so a user can see what was done to the numbers."""
    if (notes := _fetch_notes.get()) is not None:
        notes.convert(instrument, description)


# The Tushare and Yahoo clients' own names of the rows they drop -> DROP_REASONS.
_QUALITY_DROPS = {
    "null_rows": "null_rows",
    "null_minutes": "null_rows",
    "partial_rows": "partial_rows",
    "duplicates": "duplicates",
    "outside": "outside_window",
}


def count_quality(
    quality: dict[str, Counter], instrument: str, counts: dict[str, int], *, note: bool = True
) -> None:
    """Add `counts` to a client's per-instrument quality counters; the dropped rows among them are
    noted on the running fetch too (`note=False`: the parser noted them by day itself)."""
    counter = quality.setdefault(instrument, Counter())
    for key, value in counts.items():
        if value:
            counter[key] += value
            if note and key in _QUALITY_DROPS:
                note_dropped(instrument, _QUALITY_DROPS[key], value)


class _Tally(Counter):
    """An instrument's drop counter: every increment is also noted on the running fetch."""

    def __init__(self, instrument: str):
        super().__init__()
        self.instrument = instrument

    def __setitem__(self, reason, value) -> None:
        delta = value - self.get(reason, 0)
        super().__setitem__(reason, value)
        if delta > 0:
            note_dropped(self.instrument, reason, delta)


class DropCounts:
    """Rows a source's parsers dropped, per instrument and reason (`DROP_REASONS`); `figures()` gives
    the totals as `dropped_<reason>` for the client's figures. Counts go to the running fetch's
    notes too (`noting`)."""

    def __init__(self):
        self.by_instrument: dict[str, Counter] = {}

    def of(self, instrument: str) -> Counter:
        return self.by_instrument.setdefault(instrument, _Tally(instrument))

    def totals(self) -> Counter:
        total: Counter = Counter()
        for counter in self.by_instrument.values():
            total.update(counter)
        return total

    def figures(self) -> dict[str, int]:
        totals = self.totals()
        return {f"dropped_{reason}": totals.get(reason, 0) for reason in DROP_REASONS}


def nulls_in(values) -> str | None:
    """Why a parsed record with missing values is dropped (counted by the parser): "null_rows"
    when every value is null, "partial_rows" when some are, None when none are."""
    nulls = sum(v is None for v in values)
    if not nulls:
        return None
    return "null_rows" if nulls == len(values) else "partial_rows"


def book_levels(
    levels: Any, side: str, page: Page, *, what: str, shape: str, price: str, size: str, base=None
) -> list[tuple[float, float]]:
    """One side of a book answer, `[[price, size, ...], ...]`, as (price, base quantity) pairs;
    `base(price, size)` converts a venue's size (contracts, USD) into base units. `what`, `shape`,
    `price` and `size` are the venue's own words, for the error messages."""
    if not isinstance(levels, list):
        raise page.error(f"{what} {side} is {type(levels).__name__}, not an array")
    out = []
    for i, level in enumerate(levels):
        if not isinstance(level, list) or len(level) < 2:
            raise page.error(f"{what} {side}[{i}] is not a {shape}: {str(level)[:80]}")
        px = positive(number(level[0], f"{side}[{i}] {price}", page), f"{side}[{i}]", page)
        quantity = number(level[1], f"{side}[{i}] {size}", page)
        out.append((px, base(px, quantity) if base is not None else quantity))
    return out


def book_frame(
    venue: str,
    instrument: str,
    ts_us: int,
    update_id: int | None,
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
) -> pl.DataFrame:
    rows = [("bid", i, p, q) for i, (p, q) in enumerate(bids)] + [
        ("ask", i, p, q) for i, (p, q) in enumerate(asks)
    ]
    n = len(rows)
    return pl.DataFrame(
        {
            "ts": pl.Series([ts_us] * n, dtype=pl.Int64).cast(UTC_US),
            "venue": pl.Series([venue] * n, dtype=pl.Utf8),
            "instrument": pl.Series([instrument] * n, dtype=pl.Utf8),
            "side": pl.Series([r[0] for r in rows], dtype=pl.Utf8),
            "level": pl.Series([r[1] for r in rows], dtype=pl.Int32),
            "price": pl.Series([r[2] for r in rows], dtype=pl.Float64),
            "quantity": pl.Series([r[3] for r in rows], dtype=pl.Float64),
            "update_id": pl.Series([update_id] * n, dtype=pl.Int64),
        },
        schema=BOOKS_SCHEMA,
    )


def drop_implausible(frame: pl.DataFrame, drops: Counter | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(plausible rows, implausible rows with their `reason`) of a frame with `ts` and `venue`: the
    rows core.plausibility rejects are counted as `implausible_time`, on `drops` (one instrument's
    counter) or, without one, per instrument on the running fetch."""
    kept, rejected = plausibility.split(frame)
    if rejected.height:
        if drops is not None:
            drops["implausible_time"] += rejected.height
        else:
            for instrument, rows in rejected.group_by("instrument").len().iter_rows():
                note_dropped(instrument, "implausible_time", rows)
    return kept, rejected


def _window(
    frames: Sequence[pl.DataFrame],
    schema: dict,
    start: datetime | None,
    end: datetime | None,
    drops: Counter | None,
    paged: str | None,
) -> pl.DataFrame:
    """The pages as one frame, rows of implausible times dropped and counted (`implausible_time`,
    before any window: a 1970 stamp is not a neighbouring slice's row), then rows outside [start,
    end): `past_window_edge` on the side the pages ran towards (`paged` "forward": after `end`;
    "backward": before `start`), `outside_window` for every other one."""
    frame = pl.concat(list(frames), how="vertical") if frames else pl.DataFrame(schema=schema)
    frame, _ = drop_implausible(frame, drops)
    before = after = 0
    if start is not None:
        early = pl.col("ts") < as_utc(start)
        before = frame.select(early.sum()).item() if frame.height else 0
        frame = frame.filter(~early) if before else frame
    if end is not None:
        late = pl.col("ts") >= as_utc(end)
        after = frame.select(late.sum()).item() if frame.height else 0
        frame = frame.filter(~late) if after else frame
    if drops is not None:
        edge = {"forward": after, "backward": before}.get(paged or "", 0)
        for reason, count in (("past_window_edge", edge), ("outside_window", before + after - edge)):
            if count:
                drops[reason] += count
    return frame


def _once(
    frame: pl.DataFrame, key: str, what: str, start: datetime | None, drops: Counter | None
) -> pl.DataFrame:
    """Each `key` once: a row sent again with the same values is dropped and counted (`duplicates`);
    one key with different values is a SourceDataError naming it."""
    if frame.height == 0 or frame[key].is_unique().all():
        return frame
    distinct = frame.unique(maintain_order=True)
    if distinct[key].n_unique() != distinct.height:
        repeated = distinct.filter(pl.col(key).is_duplicated())
        value = repeated[key][0]
        rows = repeated.filter(pl.col(key) == value).drop("venue", "instrument").rows(named=True)
        value = value.isoformat() if isinstance(value, datetime) else value
        raise SourceDataError(
            frame["instrument"][0],
            day_of(start) or day_of(frame["ts"][0]),
            f"{what} {value} comes {len(rows)} times with different values: {str(rows)[:300]}",
            source=frame["venue"][0],
        )
    if drops is not None:
        drops["duplicates"] += frame.height - distinct.height
    return distinct


def finish_trades(
    frames: Sequence[pl.DataFrame],
    start: datetime | None = None,
    end: datetime | None = None,
    drops: Counter | None = None,
    paged: str | None = None,
) -> pl.DataFrame:
    """Concatenate pages, keep [start, end), each trade id once, order by (ts, seq); `drops` counts
    what is dropped, by reason (`_window`, `_once`: one id with different values is an error)."""
    frame = _once(
        _window(frames, TRADES_SCHEMA, start, end, drops, paged), "trade_id", "trade id", start, drops
    )
    return frame.sort(["ts", "seq"], nulls_last=True, maintain_order=True)


def finish(
    dataset: str,
    frames: Sequence[pl.DataFrame],
    start: datetime | None = None,
    end: datetime | None = None,
    drops: Counter | None = None,
    paged: str | None = None,
) -> pl.DataFrame:
    """Any dataset's pages as one frame: [start, end) kept, each `key` once (the same row twice
    counted as a duplicate, one key with different values an error), ordered by the table's order."""
    spec = spec_for(dataset)
    frame = _window(frames, spec.schema, start, end, drops, paged)
    if spec.key:
        frame = _once(frame, spec.key, spec.key, start, drops)
    return frame.sort([c for c in spec.order_by if c not in ("venue", "instrument")], maintain_order=True)


def finish_bars(
    frames: Sequence[pl.DataFrame],
    start: datetime | None = None,
    end: datetime | None = None,
    drops: Counter | None = None,
    paged: str | None = None,
) -> pl.DataFrame:
    """Concatenate pages, keep [start, end), one bar per ts (the same bar twice counted, two
    different bars of one minute an error), oldest first."""
    frame = _once(_window(frames, BARS_SCHEMA, start, end, drops, paged), "ts", "the bar of", start, drops)
    return frame.sort("ts", maintain_order=True)
