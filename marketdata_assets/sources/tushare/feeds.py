"""How the ingest engine asks Tushare for A-share bars: `stk_mins` one code at a time over a block of
trade days (241 bars a day, 8000 rows an answer), `daily` for up to 100 codes at once (at most
`DAILY_ROWS` codes x days an answer; a failing batch is split per code by the engine)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from marketdata_assets.core import calendars
from marketdata_assets.datasets.slices import Feed, Job, SliceKey

SOURCE = "TUSHARE"
BLOCK_DAYS = 20  # stk_mins: 241 bars a day, 8000 rows an answer
BARS_A_DAY = 241  # the 09:30 auction bar and 240 minutes
DAILY_ROWS = 5000  # codes x days per `daily` request (the API answers at most 6000 rows)
DAILY_CODES = 100


def session_bar_opens(venue: str, day: date) -> list[datetime]:
    """The bar opens (UTC) a full `stk_mins` day has: labelled by their end with the 09:30 opening
    auction bar, 241 (stored one minute earlier, as opens: 09:29, 09:30..11:29, 13:00..14:59)."""
    return [
        t - timedelta(minutes=1)
        for t in calendars.session_minutes(venue, day, label="end", call_auction=True)
    ]


async def _minutes(api, job: Job):
    days = sorted({key.day for key in job.keys})
    return await api.minute_bars(job.keys[0].instrument, days[0], days[-1])


async def _daily(api, job: Job):
    days = sorted({key.day for key in job.keys})
    codes = list(dict.fromkeys(key.instrument for key in job.keys))
    return await api.daily(codes, days[0], days[-1])


def _by_code(keys: Sequence[SliceKey]) -> list[list[SliceKey]]:
    by_code: dict[str, list[SliceKey]] = {}
    for key in keys:
        by_code.setdefault(key.instrument, []).append(key)
    return list(by_code.values())


def feeds(client: Callable, keys: Sequence[SliceKey], *, workers: int, attempts: int) -> list[Feed]:
    """The `bars_1m` and `daily_bars` feeds of a block's slices (one client: one rate limit)."""
    minutes = [k for k in keys if k.dataset == "bars_1m"]
    daily = _by_code([k for k in keys if k.dataset == "daily_bars"])
    days = max(1, len({k.day for k in keys}))
    per_job = max(1, min(DAILY_CODES, DAILY_ROWS // days))
    daily_jobs = [
        Job(tuple(k for code in daily[i : i + per_job] for k in code)) for i in range(0, len(daily), per_job)
    ]
    return [
        Feed(
            SOURCE,
            [Job(tuple(mine)) for mine in _by_code(minutes)],
            _minutes,
            client,
            workers=workers,
            attempts=attempts,
            skip_empty_days=True,
            by_day=True,
        ),
        Feed(
            SOURCE,
            daily_jobs,
            _daily,
            client,
            workers=workers,
            attempts=attempts,
            skip_empty_days=True,
            by_day=True,
        ),
    ]
