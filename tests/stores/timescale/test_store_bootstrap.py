"""The minute-bar store's bootstrap (stores/timescale/bootstrap.py) on real servers: a fresh database gets the
extension, the hypertable and its unique index in one transaction; a plain table holding bars becomes a
hypertable with the same rows (or, above the limit, fails once naming the command that migrates it);
a server without TimescaleDB gives a plain table that says so."""

from __future__ import annotations

import re
import threading
import time
from datetime import date
from pathlib import Path

import polars as pl
import psycopg
import pytest

from marketdata_assets.core import settings
from marketdata_assets.ingest.minute_bars import landing as landing_load
from marketdata_assets.ingest.minute_bars import loader
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.resources import TimescaleResource
from marketdata_assets.stores.timescale import bootstrap as store
from marketdata_assets.stores.timescale import kline, ledger, minute_table
from tests.conftest import recreate_database, worker_name

DB = worker_name("marketdata_store_bootstrap_test")
DAYS = fx.trading_days(date(2026, 1, 5), 5)
MONTHS = [date(2026, 1, 1)]
FINGERPRINT = (
    "SELECT count(*), count(DISTINCT (code, time)), sum(hashtext(code || time::text || close::text)) FROM {}"
)


def connect(dbname: str = DB, port: int | None = None) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=port or settings.get("TIMESCALE_PORT"),
        user="postgres",
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=dbname,
        connect_timeout=5,
    )


def shape(conn: psycopg.Connection, table: str = minute_table.MINUTE_TABLE) -> dict:
    """What the store looks like: extension, relkind, hypertable, chunks, rows outside them, indexes."""
    extension = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    relkind = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (table,)).fetchone()
    hyper = bool(extension) and minute_table.is_hypertable(conn, table)
    chunks = conn.execute("SELECT count(*) FROM show_chunks(%s)", (table,)).fetchone()[0] if hyper else 0
    indexes = [
        row[0] for row in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))
    ]
    parent = conn.execute(f"SELECT count(*) FROM ONLY {table}").fetchone()[0] if relkind else None
    conn.rollback()
    return {
        "extension": bool(extension),
        "relkind": relkind[0] if relkind else None,
        "hypertable": hyper,
        "chunks": chunks,
        "rows_outside_chunks": parent,
        "indexes": indexes,
    }


UNIQUE_INDEX = (
    'CREATE UNIQUE INDEX stock_1min_qfq_code_time ON public.stock_1min_qfq USING btree (code, "time" DESC)'
)


def plant_plain_table(conn: psycopg.Connection, rows: int) -> tuple:
    """A plain stock_1min_qfq (what a load without the extension left) holding `rows` bars."""
    assert minute_table.ensure_minute_table(conn).hypertable is False  # no extension in this database
    conn.execute(
        """INSERT INTO stock_1min_qfq
                    SELECT timestamp '2025-01-01 09:31' + (i / 40) * interval '1 minute', 'C' || (i %% 40),
                           NULL, 1, 2, 0.5, (i %% 97) / 10.0, 100, 1000
                    FROM generate_series(0, %s - 1) AS i""",
        (rows,),
    )
    conn.commit()
    fingerprint = conn.execute(FINGERPRINT.format("stock_1min_qfq")).fetchone()
    conn.rollback()
    return fingerprint


def test_a_fresh_database_gets_the_extension_the_hypertable_and_its_unique_index():
    recreate_database(DB)  # no extension: what `createdb` gives
    with connect() as conn:
        first = store.bootstrap(conn)
        conn.commit()
        assert (first.extension_created, first.table.created, first.table.hypertable, first.degraded) == (
            True,
            True,
            True,
            None,
        )
        assert shape(conn) == {
            "extension": True,
            "relkind": "r",
            "hypertable": True,
            "chunks": 0,
            "rows_outside_chunks": 0,
            "indexes": [UNIQUE_INDEX],
        }
        again = store.bootstrap(conn)
        conn.commit()
        assert (again.extension_created, again.table.created, again.table.migrated_rows) == (
            False,
            False,
            None,
        )
        assert {"etl_metadata", "minute_bar_landing_files", "minute_bar_quarantine"} <= {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert first.as_metadata()["store_mode"] == "hypertable" and "degraded" not in first.as_metadata()


def test_a_crash_in_the_middle_of_the_bootstrap_leaves_nothing_then_it_completes(private_postgres):
    """One transaction: the server dies while the bootstrap, its extension and hypertable created,
    waits on a loader table another session is creating; after the restart nothing of it is there,
    and the next bootstrap builds the whole schema."""
    private_postgres.create_database("fresh")
    blocker = connect("fresh", private_postgres.port)
    blocker.execute(
        "CREATE TABLE etl_metadata (source_file text)"
    )  # not committed: the bootstrap waits on it
    outcome: dict = {}

    def run() -> None:
        try:
            with connect("fresh", private_postgres.port) as conn:
                store.bootstrap(conn)
        except psycopg.Error as error:
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    with connect("postgres", private_postgres.port) as watcher:
        deadline = time.monotonic() + 60
        while not watcher.execute("""SELECT 1 FROM pg_stat_activity WHERE datname = 'fresh'
                                     AND wait_event_type = 'Lock' AND query ILIKE \
'%%etl_metadata%%'""").fetchone():
            assert time.monotonic() < deadline and worker.is_alive(), f"the bootstrap never waited: {outcome}"
            watcher.rollback()
            time.sleep(0.05)
    with connect(
        "fresh", private_postgres.port
    ) as look:  # what it did so far is in its open transaction only
        assert shape(look) == {
            "extension": False,
            "relkind": None,
            "hypertable": False,
            "chunks": 0,
            "rows_outside_chunks": None,
            "indexes": [],
        }
    private_postgres.stop("immediate")
    worker.join(timeout=60)
    assert not worker.is_alive() and isinstance(outcome.get("error"), psycopg.OperationalError)
    blocker.close()
    private_postgres.start()
    with connect("fresh", private_postgres.port) as conn:
        assert shape(conn)["extension"] is False and shape(conn)["relkind"] is None
        result = store.bootstrap(conn)
        conn.commit()
        assert result.extension_created and result.table.created and result.table.hypertable
        assert shape(conn)["indexes"] == [UNIQUE_INDEX]


def test_a_plain_table_holding_rows_becomes_a_hypertable_with_the_same_rows():
    recreate_database(DB)
    with connect() as conn:
        before = plant_plain_table(conn, 50_000)
        result = store.bootstrap(conn)
        conn.commit()
        after = conn.execute(FINGERPRINT.format("stock_1min_qfq")).fetchone()
        layout = shape(conn)
    print(
        f"migrated {result.table.migrated_rows:,} rows ({result.table.rows_after_migration:,} after) "
        f"in {result.table.migration_seconds} s"
    )
    assert before[0] == 50_000 and after == before
    assert (result.extension_created, result.table.migrated_rows, result.table.rows_after_migration) == (
        True,
        50_000,
        50_000,
    )
    assert result.table.migration_seconds > 0
    assert layout["hypertable"] and layout["chunks"] >= 1 and layout["rows_outside_chunks"] == 0
    assert layout["indexes"] == [UNIQUE_INDEX]
    metadata = result.as_metadata()
    assert (metadata["migrated_rows"], metadata["rows_after_migration"]) == (50_000, 50_000)
    assert any("50,000 rows migrated" in line for line in result.events())


def landing_files(root: Path, count: int) -> pl.DataFrame:
    truths = []
    for i in range(count):
        bars = fx.make_bars(f"{600000 + i}.SH", DAYS, seed=i)
        fx.write_text(root / f"{600000 + i}.SH.csv", fx.render(bars, "tushare"))
        truths.append(fx.expected(bars, "tushare"))
    return pl.concat(truths).sort("code", "time")


def test_a_load_into_a_plain_table_once_the_extension_exists_migrates_it_and_loads_the_rest(tmp_path):
    """The issue's second database: bars loaded into a plain table, then the extension appears; the
    reload failed forever with `table "stock_1min_qfq" is not empty`. Now it migrates and loads."""
    recreate_database(DB)
    root = tmp_path / "landing"
    root.mkdir()
    truth = landing_files(root, 6)
    with connect() as conn:  # what the load did before the fix where the extension was absent: a plain table
        minute_table.ensure_minute_table(conn)
        ledger.ensure_loader_tables(conn)
        for path in sorted(root.glob("*.csv"))[:3]:
            loader.load_file(
                conn,
                path,
                path.name,
                MONTHS,
                sha256=loader.file_sha256(path),
                use_copy=True,
                run_id=None,
                reject_dir=tmp_path / "rejects",
            )
        conn.commit()
    with connect() as conn:  # then the extension appears (a fresh session: CREATE EXTENSION comes first)
        conn.execute("CREATE EXTENSION timescaledb")
        conn.commit()
        held = conn.execute("SELECT count(*) FROM stock_1min_qfq").fetchone()[0]
        assert shape(conn)["hypertable"] is False and 0 < held < truth.height
    resource = TimescaleResource(
        host="127.0.0.1",
        port=int(settings.get("TIMESCALE_PORT")),
        dbname=DB,
        user="postgres",
        sslmode="disable",
    )
    try:
        second = landing_load.load_landing(
            resource.connection, root, MONTHS, quarantine_root=tmp_path / "q", use_copy=True, workers=2
        )
    finally:
        resource.close()
    assert second.bootstrap.table.migrated_rows == second.bootstrap.table.rows_after_migration == held
    assert second.metadata()["files_loaded"] == 3 and second.metadata()["files_skipped"] == 3
    with connect() as conn:
        rows = conn.execute(
            "SELECT time, code, name, open, high, low, close, volume, amount "
            "FROM stock_1min_qfq ORDER BY code, time"
        ).fetchall()
        layout = shape(conn)
    assert pl.DataFrame(rows, schema=fx.MINUTE_SCHEMA, orient="row").equals(truth)
    assert layout["hypertable"] and layout["rows_outside_chunks"] == 0


def test_a_plain_table_above_the_limit_fails_once_naming_table_rows_and_the_command():
    recreate_database(DB)
    with connect() as conn:
        before = plant_plain_table(conn, 5_000)
        with pytest.raises(minute_table.PlainTableNotMigrated) as refused:
            store.bootstrap(conn, migrate_max_rows=1_000)
        conn.rollback()
        assert shape(conn)["relkind"] == "r" and shape(conn)["hypertable"] is False  # nothing changed
        assert shape(conn)["extension"] is False  # created in the same transaction: rolled back too
    message = str(refused.value)
    assert "stock_1min_qfq is a plain table" in message and "5,000 rows" in message
    command = re.search(r"`(MINUTE_BARS_MIGRATE_MAX_ROWS=(\d+) marketdata load-minute-bars)`", message)
    assert command and int(command.group(2)) == 5_000
    with connect() as conn:  # what the command does: the same bootstrap with the limit it names
        result = store.bootstrap(conn, migrate_max_rows=int(command.group(2)))
        conn.commit()
        assert result.table.migrated_rows == 5_000
        assert conn.execute(FINGERPRINT.format("stock_1min_qfq")).fetchone() == before


def test_the_migration_limit_setting_is_read_as_a_number(monkeypatch):
    monkeypatch.setenv("MINUTE_BARS_MIGRATE_MAX_ROWS", "5_000")
    assert settings.minute_bars_migrate_max_rows() == 5000
    monkeypatch.setenv("MINUTE_BARS_MIGRATE_MAX_ROWS", "lots")
    with pytest.raises(ValueError, match="MINUTE_BARS_MIGRATE_MAX_ROWS"):
        settings.minute_bars_migrate_max_rows()


def test_without_timescaledb_the_table_is_plain_and_every_result_says_so(private_postgres):
    """A server without the library preloaded: CREATE EXTENSION fails, the store is a degraded plain
    table with its reason, and the K-line says what it aggregates with instead."""
    private_postgres.stop()
    private_postgres.timescaledb = False
    private_postgres.start()
    private_postgres.create_database("plain")
    with connect("plain", private_postgres.port) as conn:
        result = store.bootstrap(conn)
        conn.commit()
        ensured = kline.ensure_monthly_kline(conn)
        conn.commit()
        layout = shape(conn)
    assert result.extension_version is None and result.table.hypertable is False
    assert "shared_preload_libraries" in result.degraded and "plain PostgreSQL table" in result.degraded
    assert result.as_metadata()["store_mode"] == "plain table (degraded)"
    assert layout["relkind"] == "r" and not layout["hypertable"] and layout["indexes"] == [UNIQUE_INDEX]
    assert ensured.path == "table"
    assert "date_trunc('month')" in kline.aggregation_path(None) and "degraded" in kline.aggregation_path(
        None
    )
