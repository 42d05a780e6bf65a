"""When a timestamp from outside can be true: one rule for every parser and writer that stores one.

A time is plausible for a venue when it is not after now (in the venue's time zone) plus a small
tolerance (TIMESTAMP_FUTURE_TOLERANCE_MINUTES) and not before the venue's earliest plausible day
(its first session, or a crypto exchange's launch: `EARLIEST`, overridden by TIMESTAMP_EARLIEST).
A year typo (2062 for 2026), an epoch-zero stamp (1970-01-01) or seconds read as milliseconds fail
it. Parsers reject the rows that fail it one by one with `Window.reason`; writers refuse a frame that
still holds one; asset checks look for stored rows outside it. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from marketdata_assets.core import settings

# The first day each venue's rows can carry: an exchange's first session, a crypto venue's launch.
EARLIEST: dict[str, date] = {
    "SSE": date(1990, 12, 19),  # the Shanghai Stock Exchange's first session
    "SZSE": date(1990, 12, 1),  # Shenzhen's first (trial) trading
    "BSE": date(2021, 11, 15),  # the Beijing Stock Exchange's first session
    "BINANCE": date(2017, 7, 14),  # Binance spot's launch
    "BINANCE_UM": date(2019, 9, 8),  # USD-M futures' launch
    "BINANCE_CM": date(2020, 8, 10),  # COIN-M futures' launch
    "OKX": date(2017, 1, 1),  # OKEx's launch year
    "DERIBIT": date(2016, 6, 1),  # Deribit's launch
    "BYBIT": date(2018, 1, 1),
    "COINBASE": date(2015, 1, 1),
    "ALPHA_API": date(2016, 1, 1),  # before the first BRAIN alphas (alpha_months starts there too)
}
DEFAULT_EARLIEST = date(1980, 1, 1)  # any other venue (Yahoo's exchange codes): epoch-zero stamps still fail
TIMEZONES = {
    "SSE": "Asia/Shanghai",
    "SZSE": "Asia/Shanghai",
    "BSE": "Asia/Shanghai",
    "ALPHA_API": "America/New_York",
}  # the others: UTC
REASON = "implausible time"  # every rejection's reason starts with it (then ': ' and the value)


class ImplausibleTime(ValueError):
    """A timestamp outside its venue's plausible window; the message names the value and the bound."""


def tolerance() -> timedelta:
    value = settings.get("TIMESTAMP_FUTURE_TOLERANCE_MINUTES")
    if not value.isdigit():
        raise ValueError(
            f"TIMESTAMP_FUTURE_TOLERANCE_MINUTES must be a whole number of minutes >= 0, got {value!r}"
        )
    return timedelta(minutes=int(value))


def earliest_days() -> dict[str, date]:
    """`EARLIEST` with TIMESTAMP_EARLIEST's overrides ('VENUE=YYYY-MM-DD,...')."""
    days = dict(EARLIEST)
    for item in filter(None, (part.strip() for part in settings.get("TIMESTAMP_EARLIEST").split(","))):
        venue, sep, day = item.partition("=")
        try:
            days[venue.strip().upper()] = date.fromisoformat(day.strip())
        except ValueError:
            raise ValueError(
                f"TIMESTAMP_EARLIEST: expected VENUE=YYYY-MM-DD items separated by commas, got {item!r}"
            ) from None
        if not sep or not venue.strip():
            raise ValueError(f"TIMESTAMP_EARLIEST: expected VENUE=YYYY-MM-DD, got {item!r}")
    return days


@dataclass(frozen=True)
class Window:
    """The plausible times of `venue` (or of several venues: the loosest bounds): [earliest, latest],
    aware; `zone` is the venue's time zone, which naive (wall-clock) times are read in."""

    venue: str
    earliest: datetime
    latest: datetime
    zone: ZoneInfo
    tolerance: timedelta

    def local(self) -> tuple[datetime, datetime]:
        """The bounds as naive wall-clock times of the venue (how stock_1min_qfq stores times)."""
        return (
            self.earliest.astimezone(self.zone).replace(tzinfo=None),
            self.latest.astimezone(self.zone).replace(tzinfo=None),
        )

    def _aware(self, value: datetime) -> datetime:
        return value.replace(tzinfo=self.zone) if value.tzinfo is None else value

    def _after(self) -> str:
        return (
            f"after now + {_minutes(self.tolerance)} "
            f"({self.latest.astimezone(self.zone):%Y-%m-%d %H:%M} {self.zone.key})"
        )

    def _before(self) -> str:
        return f"before {self.venue}'s earliest plausible day {self.earliest.astimezone(self.zone):%Y-%m-%d}"

    def reason(self, value: datetime, text: str | None = None) -> str | None:
        """None when `value` (aware, or naive in the venue's time zone) is plausible, else
        "implausible time: '<text>' is after now + 10 min (...)" or "... is before <venue>'s ..."."""
        moment = self._aware(value)
        if self.earliest <= moment <= self.latest:
            return None
        shown = text if text is not None else value.isoformat(sep=" ")
        return f"{REASON}: '{shown}' is {self._after() if moment > self.latest else self._before()}"

    def check(self, value: datetime, what: str) -> datetime:
        """`value`, or ImplausibleTime naming `what` (e.g. "alpha KQ3x9aB's dateCreated")."""
        problem = self.reason(value)
        if problem is not None:
            raise ImplausibleTime(f"{what}: {problem}")
        return value

    def _bounds(self, naive: bool) -> tuple[pl.Expr, pl.Expr]:
        low, high = self.local() if naive else (self.earliest.astimezone(UTC), self.latest.astimezone(UTC))
        dtype = pl.Datetime("us") if naive else pl.Datetime("us", "UTC")
        return pl.lit(low, dtype=dtype), pl.lit(high, dtype=dtype)

    def outside(self, column: pl.Expr, *, naive: bool = False) -> pl.Expr:
        """Per row: whether the time is implausible (a null time is not: not this rule's business)."""
        low, high = self._bounds(naive)
        return ((column < low) | (column > high)).fill_null(False)

    def violation(self, column: pl.Expr, text: pl.Expr | None = None, *, naive: bool = False) -> pl.Expr:
        """Per row: the reason (as `reason` words it, `text` the value as read) or null. naive=True:
        the column holds wall-clock times of the venue."""
        low, high = self._bounds(naive)
        shown = text if text is not None else column.cast(pl.String)
        return (
            pl.when(column > high)
            .then(pl.format(f"{REASON}: '{{}}' is {self._after()}", shown))
            .when(column < low)
            .then(pl.format(f"{REASON}: '{{}}' is {self._before()}", shown))
        )


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} min"


def window(venue: str | Iterable[str], now: datetime | None = None) -> Window:
    """The plausible window of a venue (or of several: the earliest of their first days, named
    'SSE/SZSE/BSE'), as of `now` (default: the clock)."""
    venues = [venue] if isinstance(venue, str) else list(venue)
    days = earliest_days()
    zone = ZoneInfo(TIMEZONES.get(venues[0], "UTC"))
    first = min(days.get(v, DEFAULT_EARLIEST) for v in venues)
    now = datetime.now(UTC) if now is None else now
    span = tolerance()
    return Window(
        "/".join(venues), datetime.combine(first, time(0), zone), now.astimezone(zone) + span, zone, span
    )


def _by_venue(frame: pl.DataFrame, venue_column: str, now: datetime | None, rule) -> pl.Expr:
    """`rule(window)` of each row's own venue (one when/then per venue of the frame)."""
    now = datetime.now(UTC) if now is None else now
    venues = frame[venue_column].unique().to_list()
    if len(venues) == 1:
        return rule(window(venues[0] or "", now))
    return pl.coalesce([pl.when(pl.col(venue_column) == v).then(rule(window(v or "", now))) for v in venues])


def split(
    frame: pl.DataFrame, column: str = "ts", venue_column: str = "venue", now: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(plausible rows, implausible rows with a `reason` column) of a frame with an aware `column`
    and a venue column, each row judged by its own venue's window."""
    empty = frame.clear().with_columns(reason=pl.lit(None, dtype=pl.String))
    if frame.height == 0:
        return frame, empty
    bad = frame.select(_by_venue(frame, venue_column, now, lambda w: w.outside(pl.col(column)))).to_series()
    if not bad.any():
        return frame, empty
    rejected = frame.filter(bad)
    reasons = _by_venue(rejected, venue_column, now, lambda w: w.violation(pl.col(column)))
    return frame.filter(~bad), rejected.with_columns(reason=reasons)
