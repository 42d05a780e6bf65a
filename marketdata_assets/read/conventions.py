"""Bar conventions in the frames: every bar frame the read API returns has an aware time column (its zone
in the dtype) and the columns ``label`` (start | end | day: which instant of the bar the time is) and
``adjustment`` (none | qfq), and can be asked for in another label and zone, so bars of two stores
that stamp differently (ClickHouse ``bars_1m``: start, UTC, as traded; TimescaleDB
``stock_1min_qfq``: end, Beijing, forward-adjusted) read and join in one convention. The range of
such a read is in the asked convention: naive bounds are wall-clock in the asked zone, and they
bound the returned labels.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from marketdata_assets.datasets.frames import Stamping
from marketdata_assets.read.clickhouse import parse_time

LABELS = ("start", "end", "day")
LABEL = pl.Enum(LABELS)
ADJUSTMENT = pl.Enum(("none", "qfq"))


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"tz {tz!r} is not an IANA time zone (UTC, Asia/Shanghai, America/New_York, ...)"
        ) from None


def shift(bars: Stamping, label: str | None) -> timedelta:
    """What to add to a stored stamp to get the bar's `label` stamp (zero: the store's own label)."""
    if label is None or label == bars.label:
        return timedelta(0)
    if label not in ("start", "end"):
        raise ValueError(f"label {label!r}: a bar can be stamped by its 'start' or its 'end'")
    if bars.label == "day" or bars.interval is None:
        raise ValueError(
            f"bars stamped '{bars.label}' ({'month' if bars.interval is None else 'trading day'}) "
            f"have no instant to relabel as {label!r}: read them with label=None"
        )
    return bars.interval if label == "end" else -bars.interval


def store_range(
    bars: Stamping | None, start, end, label: str | None, tz: str | None
) -> tuple[datetime, datetime]:
    """The aware ``[start, end)`` on the store's stamps of a range asked in `label` and `tz` (naive bounds
    are wall-clock in `tz`, default the store's zone; `bars` None: events, stored in UTC)."""
    if bars is None and label is not None:
        raise ValueError("label applies to bar datasets only")
    where = zone(tz or (bars.tz if bars else "UTC"))
    moved = shift(bars, label) if bars else timedelta(0)
    first, last = (parse_time(value, what) for value, what in ((start, "start"), (end, "end")))
    first, last = (t.replace(tzinfo=where) if t.tzinfo is None else t for t in (first, last))
    return first - moved, last - moved


def in_zone(frame: pl.DataFrame, column: str, tz: str | None) -> pl.DataFrame:
    """`frame` with the aware `column` converted to `tz` (None: as it is)."""
    if tz is None or column not in frame.columns:
        return frame
    return frame.with_columns(pl.col(column).dt.convert_time_zone(zone(tz).key))


def stated(
    frame: pl.DataFrame, column: str, bars: Stamping, label: str | None = None, tz: str | None = None
) -> pl.DataFrame:
    """`frame` with `column` in `label` and `tz` (defaults: as stored), aware, and the columns ``label``
    and ``adjustment`` saying so."""
    moved, where = shift(bars, label), tz or bars.tz
    zone(where)
    if column in frame.columns:
        time = pl.col(column)
        if frame.schema[column].time_zone is None:  # type: ignore[union-attr]
            time = time.dt.replace_time_zone(bars.tz)
        frame = frame.with_columns((time + moved).dt.convert_time_zone(where).alias(column))
    return frame.with_columns(
        pl.lit(label or bars.label, dtype=LABEL).alias("label"),
        pl.lit(bars.adjustment, dtype=ADJUSTMENT).alias("adjustment"),
    )
