"""stores.clickhouse.tables on the real embedded ClickHouse (chDB): DDL, read views, pointer, compaction
(what it reclaims, that reads stay exact while it runs, that a concurrent write stops the swap)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from marketdata_assets.datasets import frames
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer as w
from tests.support.ticks_common import reads_around

DAY = date(2024, 3, 31)  # a month end: the next day is in another partition


def trades(n: int, day: date, instrument: str = "BTCUSDT", seed: int = 0) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(microseconds=(i * 86_399_999_999) // n + seed) for i in range(n)],
            "venue": "BINANCE",
            "instrument": instrument,
            "trade_id": [str(seed * 1_000_000 + i) for i in range(n)],
            "price": [100.0 + ((i * 7 + seed) % 97) / 4 for i in range(n)],
            "quantity": [0.5 + (i % 3) for i in range(n)],
            "amount": [(100.0 + ((i * 7 + seed) % 97) / 4) * (0.5 + (i % 3)) for i in range(n)],
            "side": ["buy" if i % 2 else "sell" for i in range(n)],
            "seq": list(range(n)),
        },
    ).pipe(frames.as_schema, frames.TRADES_SCHEMA)


def load_id_aged(client, age: timedelta) -> int:
    """A load id (snowflake) as the engine would have issued it `age` ago."""
    now_ms = int(client.command("SELECT toUnixTimestamp64Milli(now64(3))"))
    return ((now_ms - int(age.total_seconds() * 1000)) << 22) | 1


def insert_orphan(client, db: str, frame: pl.DataFrame, day: date, load_id: int) -> int:
    """Rows inserted under a load whose pointer never flipped (a killed load); the daily aggregate
    gets its rows too (the materialized view)."""
    table = frame.with_columns(pl.lit(day, pl.Date).alias("day"), pl.lit(load_id, pl.UInt64).alias("load_id"))
    client.insert_arrow("trades", table.to_arrow(compat_level=pl.CompatLevel.oldest()), database=db)
    return frame.height


def parts(client, db: str) -> list[tuple]:
    """The highest block number of every table partition's active parts: unchanged means nothing was
    written or rewritten. ClickHouse's own background merges keep it (a merged part covers the blocks
    of its sources; a Replacing/Aggregating merge may change the row count, so rows are not compared),
    so they may run meanwhile; an insert or a REPLACE PARTITION adds blocks, a DROP removes the partition."""
    return client.query(
        "SELECT table, partition_id, max(max_block_number) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table, partition_id "
        "ORDER BY table, partition_id",
        parameters={"db": db},
    ).result_rows


@pytest.fixture
def ch(store):
    """(client, database) with the tick tables created: a `store`, so an emptied one of an earlier test's
    where there is one (tests/support/store_pool.py) instead of ~88 CREATEs a test."""
    with store.get_client() as client:
        yield client, store.database


def test_ddl_is_idempotent_and_shaped_for_the_queries(clickhouse):
    with clickhouse.get_client() as client:
        db = clickhouse.database
        first = ct.ensure_tables(client, db)
        w.write_slice(client, db, "trades", trades(10, DAY), "BINANCE", "BTCUSDT", DAY, "r")
        assert ct.ensure_tables(client, db) == first  # twice: no error, data kept
        assert client.command(f"SELECT count() FROM `{db}`.trades_v") == 10
        tables = {
            r[0]: r[1:]
            for r in client.query(
                (
                    "SELECT name, engine, partition_key, sorting_key FROM system.tables WHERE database = "
                    "{db:String}"
                ),
                parameters={"db": db},
            ).result_rows
        }
        assert set(first) <= set(tables)
        assert tables["trades"] == ("MergeTree", "toYYYYMM(ts)", "venue, instrument, ts, trade_id")
        assert tables["book_snapshots"] == ("MergeTree", "toYYYYMM(ts)", "venue, instrument, ts, side, level")
        assert tables["bars_1m"] == ("MergeTree", "toYYYYMM(ts)", "venue, instrument, ts")
        assert tables["loads"] == ("ReplacingMergeTree", "", "dataset, venue, instrument, day")
        assert (
            tables["ingest_log"][0] == "MergeTree"
            and tables["ingest_log"][2] == "source, instrument, day, finished_at"
        )
        assert tables["trades_1d_agg"][0] == "AggregatingMergeTree"
        for view in (
            "trades_v",
            "trades_range",
            "book_snapshots_v",
            "bars_1m_range",
            "bars_1d_v",
            "active_loads",
        ):
            assert tables[view][0] == "View"
        types = dict(
            client.query(
                "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = 'trades'",
                parameters={"db": db},
            ).result_rows
        )
        assert types["ts"] == "DateTime64(6, 'UTC')" and types["venue"] == "LowCardinality(String)"
        assert types["seq"] == "Nullable(Int64)" and types["load_id"] == "UInt64" and types["day"] == "Date"
    for statement in ct.ddl_statements("x"):
        assert "IF NOT EXISTS" in statement or "CREATE OR REPLACE VIEW" in statement
        assert "DELETE" not in statement.upper()


def test_a_store_this_schema_made_is_checked_not_made_again_unless_an_object_is_gone_or_the_schema_changed(
    clickhouse, monkeypatch
):
    def marks(client) -> set[str]:
        return {r[0] for r in client.query(f"SELECT fingerprint FROM `{db}`.{ct.ENSURED} FINAL").result_rows}

    with clickhouse.get_client() as client:
        db = clickhouse.database
        ct.ensure_tables(client, db)
        original = ct.schema_fingerprint(db)
        assert marks(client) == {original}  # the full work done, its schema recorded
        assert original != ct.schema_fingerprint(db + "_other")
        client.command(f"DROP VIEW `{db}`.trades_v")
        ct.ensure_tables(client, db)  # an object gone: made again
        assert (
            client.command(f"SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'trades_v'")
            == 1
        )
        monkeypatch.setattr(ct, "schema_fingerprint", lambda database: "a later version's")
        client.command(f"DROP VIEW `{db}`.active_loads")
        monkeypatch.setattr(
            ct, "_object_names", lambda: ["trades"]
        )  # nothing missing by the names: the fingerprint
        ct.ensure_tables(client, db)  # another schema: the whole work again, then recorded
        assert (
            client.command(
                f"SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'active_loads'"
            )
            == 1
        )
        assert marks(client) == {original, "a later version's"}


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
    w.write_slice(client, db, "trades", final, "BINANCE", "BTCUSDT", DAY, "r2")  # re-write: 100 -> 40
    assert client.command(f"SELECT count() FROM `{db}`.trades") == 280
    per = dict(
        client.query(f"SELECT instrument, count() FROM `{db}`.trades_v GROUP BY instrument").result_rows
    )
    assert per == {"BTCUSDT": 120, "ETHUSDT": 60}
    # the range view across the month boundary, and a sub-day window
    both = ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT", DAY, day2 + timedelta(days=1))
    assert both.height == 120 and both["ts"].is_sorted()
    assert both.filter(pl.col("ts").dt.date() == DAY).equals(final)
    window = ct.read_range(
        client,
        db,
        "trades",
        "BINANCE",
        "BTCUSDT",
        datetime(2024, 3, 31, 6, tzinfo=UTC),
        datetime(2024, 3, 31, 12, tzinfo=UTC),
    )
    assert window.equals(
        final.filter(
            (pl.col("ts") >= datetime(2024, 3, 31, 6, tzinfo=UTC))
            & (pl.col("ts") < datetime(2024, 3, 31, 12, tzinfo=UTC))
        )
    )
    # naive datetimes are UTC; an empty range has the contract's schema
    empty = ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT", "2023-01-01", "2023-01-02")
    assert empty.height == 0 and empty.schema == pl.Schema(frames.TRADES_SCHEMA)
    active = client.query(
        f"SELECT instrument, day, rows FROM `{db}`.active_loads ORDER BY instrument, day"
    ).result_rows
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
    w.write_slice(client, db, "trades", trades(321, DAY, seed=9), "BINANCE", "BTCUSDT", DAY, "r2")  # re-write
    mv = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", days[0], days[-1])
    direct = pl.from_arrow(
        client.query_arrow(  # the same bars computed from the active trades
            "SELECT toDate(ts) AS day, venue, instrument, argMin(price, ts) AS open, max(price) AS high, "
            "min(price) AS low, argMax(price, ts) AS close, sum(quantity) AS volume, sum(amount) AS amount, "
            "toInt64(count()) AS trades, min(ts) AS first_ts, max(ts) AS last_ts FROM "
            f"`{db}`.trades_range(venue = 'BINANCE', instrument = 'BTCUSDT', start = {{start:DateTime64(6, "
            "'UTC')}, end = {end:DateTime64(6, 'UTC')}) GROUP BY day, venue, instrument ORDER BY day",
            parameters={
                "start": datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC),
                "end": datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=2),
            },
        )
    )
    assert mv["trades"].to_list() == [500, 321, 502] == direct["trades"].to_list()
    exact = ["day", "venue", "instrument", "open", "high", "low", "close", "trades", "first_ts", "last_ts"]
    assert mv.select(exact).equals(direct.select(exact))
    for col in ("volume", "amount"):
        assert mv[col].to_list() == pytest.approx(direct[col].to_list(), rel=1e-12)
    expected = trades(321, DAY, seed=9)
    row = mv.row(1, named=True)
    assert (row["open"], row["close"], row["high"], row["low"]) == (
        expected["price"][0],
        expected["price"][-1],
        expected["price"].max(),
        expected["price"].min(),
    )
    whole = client.query(f"SELECT count(), sum(trades) FROM `{db}`.bars_1d_v").result_rows[0]
    assert whole == (3, 500 + 321 + 502)


def test_compaction_drops_garbage_and_keeps_reads_identical(ch):
    client, db = ch
    for seed in range(3):  # three loads of the same slice
        w.write_slice(
            client, db, "trades", trades(200 + seed, DAY, seed=seed), "BINANCE", "BTCUSDT", DAY, "r"
        )
    next_month = DAY + timedelta(days=1)
    w.write_slice(client, db, "trades", trades(50, next_month), "BINANCE", "BTCUSDT", next_month, "r")
    before = ct.read_range(client, db, "trades", "BINANCE", "BTCUSDT", DAY, next_month + timedelta(days=1))
    bars_before = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, next_month)
    assert ct.garbage_rows(client, db, "trades") == 401
    results = ct.compact_month(client, db, "trades", "2024-03")
    assert [(r.table, r.month, r.rows_before, r.rows_after) for r in results] == [
        ("trades", "202403", 603, 202),
        ("trades_1d_agg", "202403", 3, 1),
    ]
    assert ct.garbage_rows(client, db, "trades") == 0
    assert ct.read_range(
        client, db, "trades", "BINANCE", "BTCUSDT", DAY, next_month + timedelta(days=1)
    ).equals(before)
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
    book = pl.DataFrame(
        [
            {
                "ts": datetime(2024, 3, 31, 8, 0, 0, 123456, tzinfo=UTC),
                "venue": "DERIBIT",
                "instrument": "BTC-PERPETUAL",
                "side": side,
                "level": level,
                "price": 70000.0 + sign * level,
                "quantity": 1.0 + level,
                "update_id": 77,
            }
            for side, sign in (("bid", -1), ("ask", 1))
            for level in range(3)
        ],
        schema=frames.BOOKS_SCHEMA,
    )
    w.write_slice(client, db, "books", book, "DERIBIT", "BTC-PERPETUAL", DAY, "r")
    w.write_slice(client, db, "books", book, "DERIBIT", "BTC-PERPETUAL", DAY, "r")
    assert client.command(f"SELECT count() FROM `{db}`.book_snapshots_v") == 6
    back = ct.read_range(client, db, "books", "DERIBIT", "BTC-PERPETUAL", DAY, DAY + timedelta(days=1))
    assert back.sort("side", "level").equals(book.sort("side", "level"))
    with pytest.raises(ValueError, match="unknown dataset 'book_snapshots'"):
        ct.spec_for("book_snapshots")  # no aliases: the dataset's one name
    assert ct.spec_for("books") is frames.BOOKS_SPEC and ct.spec_for("bars_1m") is frames.BARS_SPEC


def _garbage_of_every_kind(client, db) -> dict:
    """March 2024: a reloaded slice (superseded), a load killed two days ago (orphaned), a load
    issued just now that never flipped (pending: may be in flight); April: one clean load."""
    w.write_slice(client, db, "trades", trades(100, DAY, seed=1), "BINANCE", "BTCUSDT", DAY, "r1")
    w.write_slice(client, db, "trades", trades(40, DAY, seed=2), "BINANCE", "BTCUSDT", DAY, "r2")
    old = insert_orphan(
        client,
        db,
        trades(30, DAY - timedelta(days=1), "ETHUSDT", seed=3),
        DAY - timedelta(days=1),
        load_id_aged(client, timedelta(days=2)),
    )
    fresh = insert_orphan(
        client,
        db,
        trades(20, DAY - timedelta(days=2), "SOLUSDT", seed=4),
        DAY - timedelta(days=2),
        load_id_aged(client, timedelta(minutes=1)),
    )
    april = DAY + timedelta(days=1)
    w.write_slice(client, db, "trades", trades(50, april, seed=5), "BINANCE", "BTCUSDT", april, "r1")
    return {"superseded": 100, "orphaned": old, "pending": fresh}


def test_garbage_by_month_splits_superseded_orphaned_and_pending_loads(ch):
    client, db = ch
    _garbage_of_every_kind(client, db)
    found = {(g.table, g.month): g for g in ct.garbage_by_month(client, db, "trades")}
    assert found == {
        ("trades", "202403"): ct.MonthGarbage("trades", "trades", "202403", 190, 100, 30, 20),
        ("trades", "202404"): ct.MonthGarbage("trades", "trades", "202404", 50),
        # the aggregate: one row per (slice, load)
        ("trades_1d_agg", "202403"): ct.MonthGarbage("trades", "trades_1d_agg", "202403", 4, 1, 1, 1),
        ("trades_1d_agg", "202404"): ct.MonthGarbage("trades", "trades_1d_agg", "202404", 1),
    }
    assert found["trades", "202403"].reclaimable == 130
    only_april = ct.garbage_by_month(client, db, "trades", months=["2024-04"])
    assert [(g.table, g.month, g.reclaimable) for g in only_april] == [
        ("trades", "202404", 0),
        ("trades_1d_agg", "202404", 0),
    ]
    no_grace = ct.garbage_by_month(client, db, "trades", months=[date(2024, 3, 1)], orphan_grace=timedelta(0))
    assert [(g.orphaned, g.pending) for g in no_grace] == [(50, 0), (2, 0)]
    assert ct.garbage_by_month(client, db, "books") == []
    with pytest.raises(ValueError, match="YYYY-MM"):
        ct.garbage_by_month(client, db, "trades", months=["2024-3; DROP"])


def test_compaction_reclaims_old_orphans_and_keeps_loads_that_may_be_in_flight(ch):
    client, db = ch
    kinds = _garbage_of_every_kind(client, db)
    window = (DAY - timedelta(days=3), DAY + timedelta(days=2))
    reads = {
        i: ct.read_range(client, db, "trades", "BINANCE", i, *window)
        for i in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    }
    bars = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", *window)
    assert ct.garbage_rows(client, db, "trades") == sum(kinds.values())
    (main, agg) = ct.compact_month(client, db, "trades", "2024-03")
    assert (
        main.rows_before,
        main.rows_after,
        main.reclaimed,
        main.superseded,
        main.orphaned,
        main.pending,
    ) == (190, 60, 130, 100, 30, 20)
    assert (agg.table, agg.rows_before, agg.rows_after) == ("trades_1d_agg", 4, 2)
    assert ct.garbage_rows(client, db, "trades") == kinds["pending"]  # the fresh load is kept
    for instrument, frame in reads.items():
        assert ct.read_range(client, db, "trades", "BINANCE", instrument, *window).equals(frame)
    assert ct.daily_bars(client, db, "BINANCE", "BTCUSDT", *window).equals(bars)
    # nothing left to reclaim: the month is not rewritten
    unchanged = parts(client, db)
    assert [r.reclaimed for r in ct.compact_month(client, db, "trades", "2024-03")] == [0, 0]
    assert parts(client, db) == unchanged
    # once the load is older than the grace it is an orphan; a month of orphans only is dropped
    assert [r.reclaimed for r in ct.compact_month(client, db, "trades", "2024-03", timedelta(0))] == [20, 1]
    feb = date(2024, 2, 10)
    insert_orphan(client, db, trades(25, feb, seed=6), feb, load_id_aged(client, timedelta(days=3)))
    (main, agg) = ct.compact_month(client, db, "trades", "2024-02")
    assert (main.rows_before, main.rows_after, agg.rows_after) == (25, 0, 0)
    assert ct.garbage_rows(client, db, "trades") == 0
    assert client.command(f"SELECT count() FROM `{db}`.trades") == 40 + 50
    assert int(client.command(f"SELECT count() FROM system.mutations WHERE database = '{db}'")) == 0
    with pytest.raises(ValueError, match="negative"):
        ct.compact_month(client, db, "trades", "2024-03", timedelta(hours=-1))


def test_reads_stay_exact_while_compaction_runs(clickhouse):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, db)
        for seed in range(4):  # 3 superseded loads of each slice
            for instrument in ("BTCUSDT", "ETHUSDT"):
                w.write_slice(
                    client,
                    db,
                    "trades",
                    trades(40_000, DAY, instrument, seed=seed),
                    "BINANCE",
                    instrument,
                    DAY,
                    "r",
                )
        window = (DAY - timedelta(days=1), DAY + timedelta(days=1))
        truth = {
            i: ct.read_range(client, db, "trades", "BINANCE", i, *window) for i in ("BTCUSDT", "ETHUSDT")
        }
        bars = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", *window)
    # a reader with its own connection to the same engine, reading in a loop in another thread
    reader = ClickHouseResource(dsn=clickhouse.dsn, database=db, lock_timeout_s=5)

    def check(client) -> bool:
        return all(
            ct.read_range(client, db, "trades", "BINANCE", instrument, *window).equals(expected)
            for instrument, expected in truth.items()
        ) and ct.daily_bars(client, db, "BINANCE", "BTCUSDT", *window).equals(bars)

    def compaction():
        with clickhouse.get_client() as client:
            return ct.compact_month(client, db, "trades", "2024-03")

    try:
        results, during, wrong = reads_around(reader.get_client, check, compaction)
    finally:
        reader.close()
    assert [r.reclaimed for r in results] == [240_000, 6]
    assert during >= 1 and wrong == []


class _WriteDuringCopy:
    """A client that lets another write land in the month right after compaction copied it."""

    def __init__(self, client, write):
        self._client, self._write = client, write

    def __getattr__(self, name):
        return getattr(self._client, name)

    def command(self, sql, *args, **kwargs):
        result = self._client.command(sql, *args, **kwargs)
        if sql.startswith("INSERT INTO") and "`_compact_trades_202403_" in sql:
            self._write()
        return result


def test_a_write_into_the_month_during_compaction_stops_the_swap(ch):
    client, db = ch
    w.write_slice(client, db, "trades", trades(100, DAY, seed=1), "BINANCE", "BTCUSDT", DAY, "r1")
    w.write_slice(client, db, "trades", trades(40, DAY, seed=2), "BINANCE", "BTCUSDT", DAY, "r2")
    late = trades(70, DAY - timedelta(days=1), "ETHUSDT", seed=3)
    racing = _WriteDuringCopy(
        client,
        lambda: w.write_slice(
            client, db, "trades", late, "BINANCE", "ETHUSDT", DAY - timedelta(days=1), "concurrent"
        ),
    )
    with pytest.raises(ct.CompactionConflict, match="a write went into the month"):
        ct.compact_month(racing, db, "trades", "2024-03")
    assert client.command(f"SELECT count() FROM `{db}`.trades") == 210  # nothing swapped
    assert ct.read_range(client, db, "trades", "BINANCE", "ETHUSDT", DAY - timedelta(days=1), DAY).equals(
        late
    )
    report = ct.compact_store(client, db, datasets=["trades"])  # the next run does it
    assert (report.reclaimed, report.conflicts, report.errors) == (101, [], [])
    assert ct.read_range(client, db, "trades", "BINANCE", "ETHUSDT", DAY - timedelta(days=1), DAY).equals(
        late
    )


def test_compact_store_compacts_only_the_months_with_garbage(ch):
    client, db = ch
    bars = pl.DataFrame(
        {
            "ts": [datetime(2024, 4, 2, 0, m, tzinfo=UTC) for m in range(60)],
            "venue": "OKX",
            "instrument": "BTC-USDT",
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume": 3.0,
            "amount": 4.0,
            "trades": 5,
        },
        schema=frames.BARS_SCHEMA,
    )
    for run in ("r1", "r2", "r3"):
        w.write_slice(client, db, "bars_1m", bars, "OKX", "BTC-USDT", date(2024, 4, 2), run)
    w.write_slice(client, db, "trades", trades(10, DAY, seed=1), "BINANCE", "BTCUSDT", DAY, "r1")
    w.write_slice(client, db, "trades", trades(20, DAY, seed=2), "BINANCE", "BTCUSDT", DAY, "r2")
    w.write_slice(
        client,
        db,
        "trades",
        trades(30, DAY + timedelta(days=1)),
        "BINANCE",
        "BTCUSDT",
        DAY + timedelta(days=1),
        "r1",
    )  # April: clean
    report = ct.compact_store(client, db)
    assert [(r.dataset, r.table, r.month, r.reclaimed) for r in report.results] == [
        ("trades", "trades", "202403", 10),
        ("trades", "trades_1d_agg", "202403", 1),
        ("bars_1m", "bars_1m", "202404", 120),
    ]
    assert report.reclaimed == 131 and report.months_compacted == 2 and len(report.checked) == 5
    assert report.rows()[-1] == {
        "dataset": "bars_1m",
        "table": "bars_1m",
        "month": "2024-04",
        "rows_before": 180,
        "rows_after": 60,
        "rows_reclaimed": 120,
        "superseded": 120,
        "orphaned": 0,
        "unflipped_kept": 0,
        "seconds": report.results[-1].seconds,
    }
    assert "131 rows reclaimed in 2 month(s)" in report.summary()
    unchanged = parts(client, db)
    again = ct.compact_store(client, db)
    assert (again.results, again.reclaimed, len(again.checked)) == ([], 0, 5)
    assert parts(client, db) == unchanged


def tables(client, db: str) -> list[str]:
    return [
        r[0]
        for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name", parameters={"db": db}
        ).result_rows
    ]


def test_compaction_leaves_no_staging_table_and_drops_those_a_killed_one_left(ch):
    client, db = ch
    objects = tables(client, db)
    for seed in range(2):
        w.write_slice(client, db, "trades", trades(10, DAY, seed=seed), "BINANCE", "BTCUSDT", DAY, "r")
    w._flip(client, db, "trades", "BINANCE", [("ETHUSDT", DAY, 2**63, 7)], "broken")  # aborts the swap
    with pytest.raises(ct.CompactionAborted):
        ct.compact_month(client, db, "trades", "2024-03")
    assert tables(client, db) == objects
    client.command(
        f"CREATE TABLE `{db}`.`_compact_trades_202403_deadbeef` AS `{db}`.trades"
    )  # a killed run's
    assert ct.drop_stale_staging(client, db) == []  # too recent: maybe running
    assert ct.drop_stale_staging(client, db, timedelta(0)) == ["_compact_trades_202403_deadbeef"]
    assert tables(client, db) == objects
