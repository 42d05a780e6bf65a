"""The ticks coverage picture: stored 1-minute bars per instrument-day against a full day of the
venue (24/7 crypto, the exchange's calendar), from the embedded ClickHouse to the heat map."""

import base64
import re
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from marketdata_assets.core import calendars
from marketdata_assets.datasets.frames import BARS_SCHEMA
from marketdata_assets.quality import bar_coverage as cov
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer


def minute_bars(venue: str, instrument: str, start: datetime, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [start + timedelta(minutes=i) for i in range(n)],
            "venue": venue,
            "instrument": instrument,
            "open": 10.0,
            "high": 10.0,
            "low": 10.0,
            "close": 10.0,
            "volume": 1.0,
            "amount": 10.0,
            "trades": 1,
        },
        schema=BARS_SCHEMA,
    )


def test_expected_bars_follow_each_venue():
    assert cov.expected_bars("BINANCE", date(2025, 10, 1)) == 1440  # crypto never closes
    assert cov.expected_bars("SSE", date(2025, 10, 1)) is None  # National Day
    assert cov.expected_bars("SSE", date(2025, 6, 5)) == 241  # Tushare's day, with the auction bar
    assert cov.expected_bars("NMS", date(2024, 11, 29)) == 210  # the day after Thanksgiving: a half day


def test_days_after_the_library_s_calendar_expect_the_provisional_session_and_say_so():
    from marketdata_assets.core import calendars

    year = max(2027, calendars.last_known_session("SSE").year + 1)
    tuesday = next(date(year, 1, d) for d in range(4, 11) if date(year, 1, d).weekday() == 1)
    saturday = next(date(year, 1, d) for d in range(1, 8) if date(year, 1, d).weekday() == 5)
    # an exchange day past its calendar is still an exchange day (before: "no calendar", so 1,440 as crypto)
    assert (cov.expected_bars("SSE", tuesday), cov.expected_bars("SZSE", saturday)) == (241, None)
    (note,) = cov.provisional_notes({"SSE", "SZSE", "BINANCE", "OKX"}, tuesday)
    assert note.startswith("provisional: exchange-calendars ") and "knows XSHG sessions only until" in note
    assert cov.provisional_notes({"SSE", "BINANCE"}, calendars.last_known_session("SSE")) == []


def test_the_grid_rates_each_day_and_sorts_the_worst_first():
    first, last = date(2025, 6, 4), date(2025, 6, 6)
    stored = {
        ("BINANCE", "BTCUSDT"): {first: 1440, date(2025, 6, 5): 720, last: 1440},
        ("SSE", "600000.SH"): {date(2025, 6, 5): 241, last: 241},
    }
    grid = cov.coverage(stored, first, last)
    assert grid.rows == ["BINANCE:BTCUSDT", "SSE:600000.SH"]
    assert grid.cells[0] == [1.0, 0.5, 1.0]
    assert grid.cells[1] == [None, 1.0, 1.0]  # not collected before its first day
    assert abs(grid.percent["BINANCE:BTCUSDT"] - 3600 / 4320) < 1e-9 and grid.percent["SSE:600000.SH"] == 1.0
    assert grid.days_stored == {"BINANCE:BTCUSDT": (3, 3), "SSE:600000.SH": (2, 2)} and grid.missing == {}


def test_the_grid_counts_what_its_expectation_says_not_what_was_stored():
    """An instrument expected with nothing stored has a row of empty days; bars on a day not expected (before
    the history start, not listed) are counted apart, not as coverage."""
    first, last = date(2025, 6, 4), date(2025, 6, 6)
    stored = {("BINANCE", "BTCUSDT"): {first: 1440, last: 1440}}

    def expected(venue, instrument, day):  # from the second day on (the universe's history_start)
        return 1440 if day > first else None

    grid = cov.coverage(stored, first, last, expected, also=[("BINANCE", "ETHUSDT")])
    assert grid.rows == ["BINANCE:ETHUSDT", "BINANCE:BTCUSDT"]
    assert grid.cells == [[None, 0.0, 0.0], [None, 0.0, 1.0]]
    assert grid.days_stored == {"BINANCE:ETHUSDT": (0, 2), "BINANCE:BTCUSDT": (1, 2)}
    assert grid.missing == {
        "BINANCE:ETHUSDT": [date(2025, 6, 5), last],
        "BINANCE:BTCUSDT": [date(2025, 6, 5)],
    }
    assert grid.outside == {"BINANCE:BTCUSDT": 1} and grid.overall == 0.25


def test_the_asset_draws_what_the_store_holds(clickhouse, tmp_path, monkeypatch):
    from marketdata_assets.defs.upkeep.coverage import ticks_coverage
    from tests.support.universes import use_universes

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    # the universes from yesterday (of the 3 days drawn): BTCUSDT, BTC-USDT and a code nothing is stored of
    use_universes(
        tmp_path, monkeypatch, yesterday, {"BINANCE": ["BTCUSDT"], "OKX": ["BTC-USDT"]}, ["600000.SH"]
    )
    start = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=UTC)
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        writer.write_slice(
            client,
            clickhouse.database,
            "bars_1m",
            minute_bars("BINANCE", "BTCUSDT", start, 1440),
            "BINANCE",
            "BTCUSDT",
            yesterday,
            "test",
        )
        writer.write_slice(
            client,
            clickhouse.database,
            "bars_1m",
            minute_bars("OKX", "BTC-USDT", start, 360),
            "OKX",
            "BTC-USDT",
            yesterday,
            "test",
        )
    result = dg.materialize(
        [ticks_coverage],
        resources={"clickhouse": clickhouse},
        run_config={"ops": {"ticks_coverage": {"config": {"days": 3}}}},
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    sse = calendars.trading_days("SSE", yesterday, yesterday)  # the code: expected on a trading day
    assert meta["instruments"].value == 2 + len(sse) and meta["incomplete_instruments"].value == 1 + len(sse)
    assert meta["overall_percent"].value == round(125 / (2 + len(sse)), 2)  # (100% + 25% [+ 0%]) / 2 [3]
    assert "| OKX:BTC-USDT | 1/1 | 25.00 |  |" in meta["by_instrument"].value
    svg = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", meta["heat_map"].value)[1]).decode()
    assert "OKX:BTC-USDT" in svg and f"{yesterday:%m-%d}: 25.0%" in svg
