"""Minute completeness of the stock sources' bars in ClickHouse, against the venues' calendars
(exchange-calendars): days loaded from the Tushare and Yahoo replays through the real engine pass
(Yahoo's null minutes are dropped and counted, so they explain the minutes missing); a day missing a
stretch, bars in the lunch break and bars on a holiday fail with the instrument-day named; a
suspended code (no bars at all) is told apart and not a failure."""

from datetime import UTC, date, datetime, timedelta

import polars as pl

from marketdata_assets.core import calendars
from marketdata_assets.datasets.frames import BARS_SCHEMA
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.quality.slices import MINUTES_COMPLETE, count, minute_grid, source_scope
from marketdata_assets.replay.stocks import StocksReplayServer
from marketdata_assets.sources.registry import stock_feed
from marketdata_assets.sources.tushare import TushareClient
from marketdata_assets.sources.yahoo import YahooChartClient
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer
from tests.conftest import allow_future_until
from tests.support.ticks_common import FAST

DAY = date(2025, 6, 5)  # a Thursday, a trading day in Shanghai and New York
HOLIDAY = date(2025, 10, 1)  # National Day: a Wednesday without an A-share session


def load(store, feeds, run_id: str):
    return Engine(store.get_client, store.database, run_id).run([feeds])


def check(store, source: str, days: list[date]) -> dict:
    expected = stock_feed(source).session_bar_opens
    with store.get_client() as client:
        scope = minute_grid(
            client, store.database, source_scope(store.database, "bars_1m", source, days), expected
        )
        return count(client, store.database, MINUTES_COMPLETE, scope)


def shown(result) -> list[dict]:
    return [dict(zip(result.sample_columns, row)) for row in result.sample]


def rewrite(store, key: SliceKey, frame: pl.DataFrame, run_id: str) -> None:
    """A later load of the slice (what a vendor answered that time), logged like the engine's."""
    now = datetime.now(UTC)
    with store.get_client() as client:
        result = writer.write_slice(
            client, store.database, "bars_1m", frame, key.venue, key.instrument, key.day, run_id
        )
        writer.log_ingest(
            client,
            store.database,
            [
                {
                    "run_id": run_id,
                    "source": "TUSHARE",
                    "dataset": "bars",
                    "venue": key.venue,
                    "instrument": key.instrument,
                    "day": key.day,
                    "rows": result.rows,
                    "outcome": "ok",
                    "load_id": result.load_id,
                    "started_at": now,
                    "finished_at": now,
                }
            ],
        )


def stored(store, key: SliceKey) -> pl.DataFrame:
    with store.get_client() as client:
        return ct.read_range(
            client, store.database, "bars_1m", key.venue, key.instrument, key.day, key.day + timedelta(days=1)
        )


def test_replayed_days_pass_and_each_gap_fails_with_its_instrument_day(store):
    codes = {"600000.SH": "SSE", "000001.SZ": "SZSE", "600519.SH": "SSE", "300750.SZ": "SZSE"}
    with StocksReplayServer() as server:

        def client():
            return TushareClient(server.base_url, "token", requests_per_minute=60_000, retry=FAST)

        keys = [SliceKey("bars_1m", venue, code, DAY) for code, venue in codes.items()]
        report = load(store, stock_feed("TUSHARE").feeds(client, keys, workers=2, attempts=1)[:1], "replayed")
    assert {o.status for o in report.outcomes.values()} == {"ok"} and {
        o.rows for o in report.outcomes.values()
    } == {241}
    assert {k: r.violations for k, r in check(store, "TUSHARE", [DAY]).items()} == {str(DAY): 0}

    # 600000.SH: the vendor answered the day without 10:00-10:29 (a partial day)
    full = stored(store, keys[0])
    hole = full.filter(
        (pl.col("ts") < datetime(2025, 6, 5, 2, 0, tzinfo=UTC))
        | (pl.col("ts") >= datetime(2025, 6, 5, 2, 30, tzinfo=UTC))
    )
    rewrite(store, keys[0], hole, "partial")
    # 000001.SZ: bars stamped in the lunch break (11:30-13:00 Beijing time)
    lunch = full.head(3).with_columns(
        pl.lit("SZSE").alias("venue"),
        pl.lit("000001.SZ").alias("instrument"),
        ts=pl.datetime(2025, 6, 5, 4, 0, time_zone="UTC") + pl.duration(minutes=pl.int_range(3)),
    )
    rewrite(store, keys[1], pl.concat([stored(store, keys[1]), lunch]).sort("ts"), "lunch")
    # 600519.SH: suspended that day: the vendor has no bars, the load holds none
    rewrite(store, keys[2], pl.DataFrame(schema=BARS_SCHEMA), "suspended")

    (result,) = check(store, "TUSHARE", [DAY]).values()
    assert result.violations == 2
    rows = {r["instrument"]: r for r in shown(result)}
    assert set(rows) == {"600000.SH", "000001.SZ"}  # the suspended day and the complete one pass
    partial = rows["600000.SH"]
    assert (partial["expected_bars"], partial["bars"], partial["missing_bars"], partial["off_session"]) == (
        241,
        211,
        30,
        0,
    )
    assert partial["first_missing"][0] == datetime(2025, 6, 5, 2, 0)  # 10:00 Beijing: the first bar missing
    off = rows["000001.SZ"]
    assert (off["missing_bars"], off["off_session"]) == (0, 3)
    assert off["first_off_session"][0] == datetime(2025, 6, 5, 4, 0)


def test_bars_on_a_holiday_fail(store):
    key = SliceKey("bars_1m", "SSE", "600000.SH", HOLIDAY)
    opens = [datetime(2025, 10, 1, 1, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(120)]
    rewrite(
        store,
        key,
        pl.DataFrame(
            {
                "ts": opens,
                "venue": "SSE",
                "instrument": "600000.SH",
                "open": 10.0,
                "high": 10.1,
                "low": 9.9,
                "close": 10.0,
                "volume": 100.0,
                "amount": 1000.0,
                "trades": None,
            },
            schema=BARS_SCHEMA,
        ),
        "holiday",
    )
    (result,) = check(store, "TUSHARE", [HOLIDAY]).values()
    (row,) = shown(result)
    assert result.violations == 1 and (row["expected_bars"], row["off_session"]) == (0, 120)


def test_yahoo_null_minutes_are_counted_per_day_and_explain_the_missing_ones(store):
    """The Yahoo replay sends ~2% null minutes and ~1% partly null ones: the parser drops them and
    counts them on their own day's slice, so two days loaded in one fetch pass, each with its count."""
    today = datetime.now(UTC).date()  # Yahoo keeps 1-minute bars for 30 days
    days = calendars.trading_days("LSE", today - timedelta(days=14), today - timedelta(days=1))[-2:]
    with StocksReplayServer() as server:

        def client():
            return YahooChartClient(server.base_url, requests_per_minute=60_000, retry=FAST)

        keys = [SliceKey("bars_1m", "", "VOD.L", day) for day in days]
        report = load(store, stock_feed("YAHOO").feeds(client, keys, workers=1, attempts=1), "yahoo")
        truth = {day: server.yahoo.rows("VOD.L", day) for day in days}
    outcomes = {o.key.day: o for o in report.outcomes.values()}
    for day in days:
        dropped = sum(1 for row in truth[day] if row[6] != "ok")
        assert dropped > 0 and sum(outcomes[day].dropped.values()) == dropped  # on its own day, not the first
        assert outcomes[day].rows == 510 - dropped
    results = check(store, "YAHOO", days)
    assert {k: r.violations for k, r in results.items()} == {str(days[0]): 0, str(days[1]): 0}


def test_a_2027_day_is_judged_on_the_provisional_grid_and_listed_as_such(store, monkeypatch):
    """A day of the year after the last the installed exchange-calendars knows for XSHG: the replay's
    bars match the provisional grid (a weekday, the regular 241 Tushare bars), and the scope lists
    the venue-days judged provisionally (the Dagster check makes them a WARN)."""
    year = max(2027, calendars.last_known_session("SSE").year + 1)
    day = next(date(year, 1, d) for d in range(4, 11) if date(year, 1, d).weekday() == 1)  # a Tuesday
    assert calendars.is_provisional("SSE", day)
    allow_future_until(monkeypatch, day + timedelta(days=1))
    with StocksReplayServer() as server:

        def client():
            return TushareClient(server.base_url, "token", requests_per_minute=60_000, retry=FAST)

        keys = [SliceKey("bars_1m", "SSE", "600000.SH", day), SliceKey("bars_1m", "SZSE", "000001.SZ", day)]
        report = load(
            store, stock_feed("TUSHARE").feeds(client, keys, workers=2, attempts=1)[:1], "replayed 2027"
        )
    assert {o.rows for o in report.outcomes.values()} == {241}
    with store.get_client() as client:
        scope = minute_grid(
            client,
            store.database,
            source_scope(store.database, "bars_1m", "TUSHARE", [day]),
            stock_feed("TUSHARE").session_bar_opens,
        )
        assert scope.provisional == (("SSE", day), ("SZSE", day))
        assert {
            k: r.violations for k, r in count(client, store.database, MINUTES_COMPLETE, scope).items()
        } == {str(day): 0}
    # a hole is still found on the provisional grid
    full = stored(store, keys[0])
    rewrite(store, keys[0], full.filter(pl.col("ts").dt.hour() != 2), "holed")
    (result,) = check(store, "TUSHARE", [day]).values()
    (row,) = shown(result)
    assert result.violations == 1 and (row["instrument"], row["expected_bars"], row["missing_bars"]) == (
        "600000.SH",
        241,
        60,
    )
