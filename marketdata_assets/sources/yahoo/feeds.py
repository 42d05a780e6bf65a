"""How the ingest engine asks Yahoo for 1-minute bars: one chart fetch per instrument and block of days
(the venue of each slice is the exchange Yahoo names in its answer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime

from marketdata_assets.core import calendars
from marketdata_assets.datasets.frames import day_window
from marketdata_assets.datasets.slices import Feed, Job, SliceKey

SOURCE = "YAHOO"
BLOCK_DAYS = 7  # a chart request spans a week of 1-minute bars at most
BARS_A_DAY = 510  # the longest regular session it serves (LSE, 08:00-16:30): a block's rows a day


def session_bar_opens(venue: str, day: date) -> list[datetime]:
    """The bar opens (UTC) a full chart day has on the exchange Yahoo names (`venue`): labelled by
    their start, 09:30..15:59 New York time on a full XNYS day; ValueError without a calendar."""
    return calendars.session_minutes(venue, day, label="start")


async def _fetch(api, job: Job):
    days = sorted({key.day for key in job.keys})
    instrument = job.keys[0].instrument
    data = await api.fetch_bars(instrument, day_window(days[0])[0], day_window(days[-1])[1])
    return data.frame, {instrument: data.exchange}


def bars_feed(client: Callable, keys: Sequence[SliceKey], *, workers: int, attempts: int) -> Feed:
    by_instrument: dict[str, list[SliceKey]] = {}
    for key in keys:
        by_instrument.setdefault(key.instrument, []).append(key)
    return Feed(
        SOURCE,
        [Job(tuple(mine)) for mine in by_instrument.values()],
        _fetch,
        client,
        workers=workers,
        attempts=attempts,
        skip_empty_days=True,
        by_day=True,
    )


def feeds(client: Callable, keys: Sequence[SliceKey], *, workers: int, attempts: int) -> list[Feed]:
    """A block's feeds: one, of chart fetches."""
    return [bars_feed(client, keys, workers=workers, attempts=attempts)]
