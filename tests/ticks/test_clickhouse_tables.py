"""lib.ticks.clickhouse_tables on the real embedded ClickHouse (chDB): DDL, read views, pointer, compaction."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from marketdata_assets.lib.ticks import clickhouse_tables as ct
from marketdata_assets.lib.ticks import frames
from marketdata_assets.lib.ticks import writer as w

DAY = date(2024, 3, 31)           # a month end: the next day is in another partition
UTC = timezone.utc


def trades(n: int, day: date, instrument: str = "BTCUSDT", seed: int = 0) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pl.DataFrame({
        "ts": [start + timedelta(microseconds=(i * 86_399_999_999) // n + seed) for i in range(n)],
        "venue": "BINANCE", "instrument": instrument,
        "trade_id": [str(seed * 1_000_000 + i) for i in range(n)],
        "price": [100.0 + ((i * 7 + seed) % 97) / 4 for i in range(n)],
        "quantity": [0.5 + (i % 3) for i in range(n)],
        "amount": [(100.0 + ((i * 7 + seed) % 97) / 4) * (0.5 + (i % 3)) for i in range(n)],
        "side": ["buy" if i % 2 else "sell" for i in range(n)],
        "seq": list(range(n)),
    }, schema=frames.TRADES_SCHEMA)


@pytest.fixture
def ch(clickhouse):
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        yield client, clickhouse.database


def test_ddl_is_idempotent_and_shaped_for_the_queries(clickhouse):
    with clickhouse.get_client() as client:
        db = clickhouse.database
        first = ct.ensure_tables(client, db)
        w.write_slice(client, db, "trades", trades(10, DAY), "BINANCE", "BTCUSDT", DAY, "r")
        assert ct.ensure_tables(client, db) == first                       # twice: no error, data kept
        assert client.command(f"SELECT count() FROM `{db}`.trades_v") == 10
        tables = {r[0]: r[1:] for r in client.query(
            "SELECT name, engine, partition_key, sorting_key FROM system.tables WHERE database = {db:String}",
            parameters={"db": db}).result_rows}
        assert set(first) <= set(tables)
        assert tables["trades"] == ("MergeTree", "toYYYYMM(ts)", "venue, instrument, ts, trade_id")
        assert tables["book_snapshots"] == ("MergeTree", "toYYYYMM(ts)", "venue, instrument, ts, side, level")
        assert tables["bars_1m"] == ("MergeTree", "toYYYYMM(ts)", "venue, instrument, ts")
        assert tables["loads"] == ("ReplacingMergeTree", "", "kind, venue, instrument, day")
        assert tables["ingest_log"][0] == "MergeTree" and tables["ingest_log"][2] == "provider, instrument, day, finished_at"
        assert tables["trades_1d_agg"][0] == "AggregatingMergeTree"
        for view in ("trades_v", "trades_range", "book_snapshots_v", "bars_1m_range", "bars_1d_v", "active_loads"):
            assert tables[view][0] == "View"
        types = dict(client.query("SELECT name, type FROM system.columns WHERE database = {db:String} "
                                  "AND table = 'trades'", parameters={"db": db}).result_rows)
        assert types["ts"] == "DateTime64(6, 'UTC')" and types["venue"] == "LowCardinality(String)"
        assert types["seq"] == "Nullable(Int64)" and types["load_id"] == "UInt64" and types["day"] == "Date"
    for statement in ct.ddl_statements("x"):
        assert "IF NOT EXISTS" in statement or "CREATE OR REPLACE VIEW" in statement
        assert "DELETE" not in statement.upper()


@pytest.mark.parametrize("bad", ["bad-name", "x; DROP TABLE y", "", "1abc"])
def test_database_name_is_validated(bad):
    with pytest.raises(ValueError, match="ClickHouse database"):
        ct.ddl_statements(bad)
    with pytest.raises(ValueError):
        ct.range_query(bad, "trades")


def test_views_show_only_active_loads(ch):
    client, db = ch
    day2 = DAY + timedelta(days=1)
    w.write_slice(client, db, "trades", trades(100, DAY, seed=1), "BINANCE", "BTCUSDT", DAY, "r1")
    w.write_slice(client, db, "trades", trades(80, day2, seed=2), "BINANCE", "BTCUSDT", day2, "r1")
    w.write_slice(client, db, "trades", trades(60, DAY, "ETHUSDT", seed=3), "BINANCE", "ETHUSDT", DAY, "r1")
    final = trades(40, DAY, seed=4)
    w.write_slice(client, db, "trades", final, "BINANCE", "BTCUSDT", DAY, "r2")   # re-write: 100 -> 40
    assert client.command(f"SELECT count() FROM `{db}`.trades") == 280
    per = dict(client.query(f"SELECT instrument, count() FROM `{db}`.trades_v GROUP BY instrument").result_rows)
    assert per == {"BTCUSDT": 120, "ETHUSDT": 60}
    # the range view across the month boundary, and a sub-day window
    both = ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT", DAY, day2 + timedelta(days=1))
    assert both.height == 120 and both["ts"].is_sorted()
    assert both.filter(pl.col("ts").dt.date() == DAY).equals(final)
    window = ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT",
                           datetime(2024, 3, 31, 6, tzinfo=UTC), datetime(2024, 3, 31, 12, tzinfo=UTC))
    assert window.equals(final.filter((pl.col("ts") >= datetime(2024, 3, 31, 6, tzinfo=UTC))
                                      & (pl.col("ts") < datetime(2024, 3, 31, 12, tzinfo=UTC))))
    # naive datetimes are UTC; an empty range has the contract's schema
    empty = ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT", "2023-01-01", "2023-01-02")
    assert empty.height == 0 and empty.schema == pl.Schema(frames.TRADES_SCHEMA)
    active = client.query(f"SELECT instrument, day, rows FROM `{db}`.active_loads ORDER BY instrument, day").result_rows
    assert active == [("BTCUSDT", DAY, 40), ("BTCUSDT", day2, 80), ("ETHUSDT", DAY, 60)]


def test_an_older_load_never_overrides_a_newer_one(ch):
    client, db = ch
    new = w.write_slice(client, db, "trades", trades(30, DAY, seed=1), "BINANCE", "BTCUSDT", DAY, "new")
    # a slower concurrent writer that took its load id earlier flips last: the newer load stays active
    w._flip(client, db, "trades", "BINANCE", [("BTCUSDT", DAY, new.load_id - 1, 999)], "old")
    assert client.command(f"SELECT count() FROM `{db}`.trades_v") == 30
    assert ct.loaded_days(client, db, "trades")["load_id"].to_list() == [new.load_id]
    # and a new write always takes a larger id than the active one
    again = w.write_slice(client, db, "trades", trades(5, DAY, seed=2), "BINANCE", "BTCUSDT", DAY, "again")
    assert again.load_id > new.load_id and client.command(f"SELECT count() FROM `{db}`.trades_v") == 5


def test_daily_bars_materialized_view_matches_the_query_from_trades(ch):
    client, db = ch
    days = [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    for i, day in enumerate(days):
        w.write_slice(client, db, "trades", trades(500 + i, day, seed=i), "BINANCE", "BTCUSDT", day, "r1")
    w.write_slice(client, db, "trades", trades(321, DAY, seed=9), "BINANCE", "BTCUSDT", DAY, "r2")   # re-write
    mv = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", days[0], days[-1])
    direct = pl.from_arrow(client.query_arrow(  # the same bars computed from the active trades
        "SELECT toDate(ts) AS day, venue, instrument, argMin(price, ts) AS open, max(price) AS high, min(price) AS low, "
        "argMax(price, ts) AS close, sum(quantity) AS volume, sum(amount) AS amount, toInt64(count()) AS trades, "
        f"min(ts) AS first_ts, max(ts) AS last_ts FROM `{db}`.trades_range(venue = 'BINANCE', instrument = 'BTCUSDT', "
        "start = {start:DateTime64(6, 'UTC')}, end = {end:DateTime64(6, 'UTC')}) GROUP BY day, venue, instrument "
        "ORDER BY day", parameters={"start": datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC),
                                     "end": datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=2)}))
    assert mv["trades"].to_list() == [500, 321, 502] == direct["trades"].to_list()
    exact = ["day", "venue", "instrument", "open", "high", "low", "close", "trades", "first_ts", "last_ts"]
    assert mv.select(exact).equals(direct.select(exact))
    for col in ("volume", "amount"):
        assert mv[col].to_list() == pytest.approx(direct[col].to_list(), rel=1e-12)
    expected = trades(321, DAY, seed=9)
    row = mv.row(1, named=True)
    assert (row["open"], row["close"], row["high"], row["low"]) == (
        expected["price"][0], expected["price"][-1], expected["price"].max(), expected["price"].min())
    whole = client.query(f"SELECT count(), sum(trades) FROM `{db}`.bars_1d_v").result_rows[0]
    assert whole == (3, 500 + 321 + 502)


def test_compaction_drops_garbage_and_keeps_reads_identical(ch):
    client, db = ch
    for seed in range(3):                                       # three loads of the same slice
        w.write_slice(client, db, "trades", trades(200 + seed, DAY, seed=seed), "BINANCE", "BTCUSDT", DAY, "r")
    next_month = DAY + timedelta(days=1)
    w.write_slice(client, db, "trades", trades(50, next_month), "BINANCE", "BTCUSDT", next_month, "r")
    before = ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT", DAY, next_month + timedelta(days=1))
    bars_before = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, next_month)
    assert ct.garbage_rows(client, db, "trades") == 401
    results = ct.compact_month(client, db, "trades", "2024-03")
    assert [(r.table, r.month, r.rows_before, r.rows_after) for r in results] == [
        ("trades", "202403", 603, 202), ("trades_1d_agg", "202403", 3, 1)]
    assert ct.garbage_rows(client, db, "trades") == 0
    assert ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT", DAY, next_month + timedelta(days=1)).equals(before)
    assert ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, next_month).equals(bars_before)
    assert client.command(f"SELECT count() FROM `{db}`.trades WHERE toYYYYMM(ts) = 202404") == 50
    # a pointer whose row count does not match the rows on disk aborts the swap, changing nothing
    w._flip(client, db, "trades", "BINANCE", [("BTCUSDT", DAY, 2**63, 7)], "broken")
    with pytest.raises(RuntimeError, match="aborted"):
        ct.compact_month(client, db, "trades", date(2024, 3, 1))
    assert client.command(f"SELECT count() FROM `{db}`.trades") == 252
    assert int(client.command(f"SELECT count() FROM system.mutations WHERE database = '{db}'")) == 0
    with pytest.raises(ValueError, match="YYYY-MM"):
        ct.compact_month(client, db, "trades", "2024-13")


def test_books_and_bars_views(ch):
    client, db = ch
    book = pl.DataFrame([{"ts": datetime(2024, 3, 31, 8, 0, 0, 123456, tzinfo=UTC), "venue": "DERIBIT",
                          "instrument": "BTC-PERPETUAL", "side": side, "level": level, "price": 70000.0 + sign * level,
                          "quantity": 1.0 + level, "update_id": 77}
                         for side, sign in (("bid", -1), ("ask", 1)) for level in range(3)], schema=frames.BOOKS_SCHEMA)
    w.write_slice(client, db, "books", book, "DERIBIT", "BTC-PERPETUAL", DAY, "r")
    w.write_slice(client, db, "books", book, "DERIBIT", "BTC-PERPETUAL", DAY, "r")
    assert client.command(f"SELECT count() FROM `{db}`.book_snapshots_v") == 6
    back = ct.read_range(client, db, "books", "DERIBIT", "BTC-PERPETUAL", DAY, DAY + timedelta(days=1))
    assert back.sort("side", "level").equals(book.sort("side", "level"))
    with pytest.raises(ValueError, match="unknown dataset 'book_snapshots'"):
        ct.spec_for("book_snapshots")  # no aliases: the dataset's one name
    assert ct.spec_for("books") is frames.BOOKS and ct.spec_for("bars_1m") is frames.BARS
