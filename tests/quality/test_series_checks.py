"""The series checks of the ticks tables against the embedded ClickHouse: a bar body of another
interval (1h klines stored as 1-minute bars, bars stamped off the minute) and a ~100x unit step that
reverts (pence quoted as pounds for a stretch) are found and named; complete, plausible data and a
genuine 100x move pass."""

from datetime import UTC, date, datetime, timedelta

import polars as pl

from marketdata_assets.datasets.frames import BARS_SCHEMA, DAILY_BARS_SCHEMA
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.quality.slices import ON_THE_MINUTE_GRID, UNIT_STEP_REVERTS, count, slice_scope
from marketdata_assets.stores.clickhouse import writer

DAY = date(2025, 1, 15)
OPEN = datetime(2025, 1, 15, 8, tzinfo=UTC)  # London 08:00


def bars(instrument: str, stamps: list[datetime], closes: list[float], venue: str = "LSE") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": stamps,
            "venue": venue,
            "instrument": instrument,
            "open": closes,
            "high": [c * 1.001 for c in closes],
            "low": [c * 0.999 for c in closes],
            "close": closes,
            "volume": [1500.0] * len(closes),
            "amount": [c * 1500 for c in closes],
            "trades": [None] * len(closes),
        },
        schema=BARS_SCHEMA,
    )


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def london_day(instrument: str, closes_at) -> pl.DataFrame:
    """510 one-minute bars 08:00-16:29, close = closes_at(minute index)."""
    stamps = [OPEN + timedelta(minutes=i) for i in range(510)]
    return bars(instrument, stamps, [closes_at(i) for i in range(510)])


def write(
    store, dataset: str, frame: pl.DataFrame, instrument: str, day: date = DAY, venue: str = "LSE"
) -> SliceKey:
    with store.get_client() as client:
        writer.write_slice(client, store.database, dataset, frame, venue, instrument, day, "test")
    return SliceKey(dataset, venue, instrument, day)


def check(store, rule, keys: list[SliceKey]) -> dict:
    with store.get_client() as client:
        return count(client, store.database, rule, slice_scope(store.database, rule.dataset, keys))


def test_a_pence_stretch_that_reverts_is_a_warning_naming_instrument_and_times(store):
    # VOD.L at ~71 GBP; from 10:00 to 10:59 the vendor sent pence (7100) as if they were pounds
    pence = write(
        store,
        "bars_1m",
        london_day("VOD.L", lambda i: 7100.0 + i % 3 if 120 <= i < 180 else 71.0 + i % 3 / 100),
        "VOD.L",
    )
    clean = write(store, "bars_1m", london_day("BARC.L", lambda i: 2.5 + i % 7 / 1000), "BARC.L")
    # a genuine 100x move that stays (a re-denomination, a listing's first print): not flagged
    stays = write(store, "bars_1m", london_day("NEW.L", lambda i: 1.0 if i < 30 else 100.0 + i % 5), "NEW.L")
    rule = UNIT_STEP_REVERTS["bars_1m"]
    assert rule.severity == "WARN"
    results = check(store, rule, [pence, clean, stays])
    flagged = results[f"{DAY}|LSE:VOD.L"]
    assert flagged.violations == 2 and flagged.rows_checked == 510  # the step up and the step back
    rows = sorted(
        (dict(zip(flagged.sample_columns, row)) for row in flagged.sample), key=lambda r: r["jump_at"]
    )
    up, back = (naive(OPEN + timedelta(minutes=m)) for m in (120, 180))  # ClickHouse answers naive UTC
    assert [r["jump_at"] for r in rows] == [up, back]
    assert {(r["stretch_from"], r["stretch_until"]) for r in rows} == {(up, back)}
    assert (
        rows[0]["instrument"] == "VOD.L"
        and 99 < rows[0]["ratio"] < 101
        and 0.0099 < rows[1]["ratio"] < 0.0101
    )
    assert results[f"{DAY}|LSE:BARC.L"].violations == 0 == results[f"{DAY}|LSE:NEW.L"].violations


def test_a_unit_stretch_across_days_of_daily_bars(store):
    """Daily bars: the stretch starts on one day's slice and ends on a later one; each day's
    partition names the jump it holds, the days between are clean."""
    closes = {
        date(2025, 1, d): c for d, c in ((13, 10.5), (14, 1050.0), (15, 1052.0), (16, 10.6), (17, 10.7))
    }
    keys = []
    for day, close in closes.items():
        frame = pl.DataFrame(
            {
                "ts": [datetime(day.year, day.month, day.day, tzinfo=UTC)],
                "venue": "SSE",
                "instrument": "600000.SH",
                "open": close,
                "high": close,
                "low": close,
                "close": close,
                "pre_close": None,
                "volume": 1e6,
                "amount": close * 1e6,
            },
            schema=DAILY_BARS_SCHEMA,
        )
        keys.append(write(store, "daily_bars", frame, "600000.SH", day, venue="SSE"))
    results = check(store, UNIT_STEP_REVERTS["daily_bars"], keys)
    assert {k: r.violations for k, r in results.items()} == {
        "2025-01-13|SSE:600000.SH": 0,
        "2025-01-14|SSE:600000.SH": 1,
        "2025-01-15|SSE:600000.SH": 0,
        "2025-01-16|SSE:600000.SH": 1,
        "2025-01-17|SSE:600000.SH": 0,
    }
    row = dict(
        zip(results["2025-01-16|SSE:600000.SH"].sample_columns, results["2025-01-16|SSE:600000.SH"].sample[0])
    )
    assert (row["stretch_from"].date(), row["stretch_until"].date()) == (date(2025, 1, 14), date(2025, 1, 16))


def test_an_hourly_body_stored_as_minute_bars_fails_the_grid_check(store):
    hours = [datetime(2025, 1, 15, h, tzinfo=UTC) for h in range(24)]
    hourly = write(
        store,
        "bars_1m",
        bars("BTCUSDT", hours, [94000.0 + h for h in range(24)], "BINANCE"),
        "BTCUSDT",
        venue="BINANCE",
    )
    # a thin market: minutes missing here and there, but bars one minute apart where it traded
    thin_stamps = [datetime(2025, 1, 15, tzinfo=UTC) + timedelta(minutes=m) for m in range(0, 1440, 7)]
    thin_stamps += [s + timedelta(minutes=1) for s in thin_stamps[:20]]
    thin = write(
        store,
        "bars_1m",
        bars("XRPBTC", sorted(thin_stamps), [0.0001] * len(thin_stamps), "BINANCE"),
        "XRPBTC",
        venue="BINANCE",
    )
    off = write(
        store,
        "bars_1m",
        bars(
            "ETHUSDT",
            [datetime(2025, 1, 15, 0, m, 30 if m == 5 else 0, tzinfo=UTC) for m in range(60)],
            [3300.0] * 60,
            "BINANCE",
        ),
        "ETHUSDT",
        venue="BINANCE",
    )
    results = check(store, ON_THE_MINUTE_GRID, [hourly, thin, off])
    bad = results[f"{DAY}|BINANCE:BTCUSDT"]
    assert bad.violations == 1
    shown = dict(zip(bad.sample_columns, bad.sample[0]))
    assert (shown["bars"], shown["off_the_minute"], shown["smallest_gap_s"]) == (24, 0, 3600)
    stamped = dict(
        zip(results[f"{DAY}|BINANCE:ETHUSDT"].sample_columns, results[f"{DAY}|BINANCE:ETHUSDT"].sample[0])
    )
    assert stamped["off_the_minute"] == 1
    assert results[f"{DAY}|BINANCE:XRPBTC"].violations == 0
