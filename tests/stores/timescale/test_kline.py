"""Monthly K-line (seed 004) against real servers, no mocks.

- native PostgreSQL 15 + TimescaleDB 2.19 (Apache license) of the local stack: the TABLE path;
- the PGlite server of scripts/pglite (PostgreSQL 17 + TimescaleDB 2.23, Timescale license),
  started here on a free port with a temporary data directory: the continuous-aggregate path.

Every test works in its own schema (search_path), so the fixed names of the seed
(stock_1min_qfq, stock_monthly_kline) never collide with other tests or a developer's data.
PGlite is one session: each test holds at most one connection to it at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import errors, sql

from marketdata_assets.core import settings
from marketdata_assets.stores.timescale import kline, minute_table
from tests.conftest import recreate_database, worker_name

NATIVE_DB = worker_name("marketdata_kline_test")
JAN, FEB, MAR, APR = (datetime(2024, m, 1) for m in (1, 2, 3, 4))


# --- Servers -----------------------------------------------------------------------------------


def pglite_connect(server: dict) -> psycopg.Connection:
    return psycopg.connect(
        host=server["host"],
        port=server["port"],
        user="postgres",
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname="postgres",
        sslmode="disable",
        connect_timeout=10,
    )


@contextmanager
def in_own_schema(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A fresh schema first on the search_path; dropped afterwards (the aggregate explicitly first)."""
    schema = f"kline_{uuid.uuid4().hex[:10]}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    conn.commit()
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.rollback()
            conn.autocommit = True
            kline.drop_monthly_kline(conn)
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.close()


@dataclass
class Server:
    name: str
    conn: psycopg.Connection
    license: str | None


@pytest.fixture(scope="session")
def native_db() -> str:
    """Its own database on the native server: other test sessions recreate marketdata_test."""
    recreate_database(NATIVE_DB, extension=True)
    return NATIVE_DB


@pytest.fixture
def native(native_db) -> Iterator[Server]:
    conn = psycopg.connect(
        host=settings.get("TIMESCALE_HOST"),
        port=settings.get("TIMESCALE_PORT"),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD") or None,
        dbname=native_db,
        connect_timeout=5,
    )
    with in_own_schema(conn) as conn:
        yield Server("native", conn, kline.detect_license(conn))


@pytest.fixture
def pglite(pglite_server) -> Iterator[Server]:
    with in_own_schema(pglite_connect(pglite_server)) as conn:
        yield Server("pglite", conn, kline.detect_license(conn))


@pytest.fixture(params=["native", "pglite"])
def server(request) -> Server:
    return request.getfixturevalue(request.param)


# --- Synthetic minute bars and a reference implementation of the seed's SELECT -----------------

Row = tuple  # (time, code, name, open, high, low, close, volume, amount)


def bar(t: datetime, code: str, name: str | None, o, h, low, c, volume, amount="auto") -> Row:
    if amount == "auto":
        amount = None if volume is None or o is None else volume * (o if o > 0 else -o)
    return (t, code, name, o, h, low, c, volume, amount)


def synthetic_bars() -> list[Row]:
    """3 codes x Jan-Mar 2024: clean bars, dirty bars that must be dropped, a rename, negative prices.
    Prices are multiples of 1/8 and volumes of 100, so every sum is exact in any order."""
    rows: list[Row] = []
    days = (2, 10, 20, 28)
    minutes = [timedelta(hours=9, minutes=31 + i) for i in range(6)] + [
        timedelta(hours=14, minutes=55 + i) for i in range(5)
    ]
    for code, base in (("600000.SH", 10.0), ("000001.SZ", 12.5), ("300750.SZ", -1.5)):
        k = 0
        for month in (JAN, FEB, MAR):
            for day in days:
                for offset in minutes:
                    t = month.replace(day=day) + offset
                    k += 1
                    o = base + (k % 7) / 8
                    c = base + ((k + 3) % 7) / 8
                    h, low = max(o, c) + 0.25, min(o, c) - 0.125
                    name = {
                        "600000.SH": "浦发银行",
                        "300750.SZ": "宁德时代",
                        "000001.SZ": "深发展A" if t < datetime(2024, 2, 15) else "平安银行",
                    }[code]
                    rows.append(bar(t, code, name, o, h, low, c, 100.0 * (k % 5 + 1)))
    # bucket edges: the last minute of January and the first instant of February
    rows.append(
        bar(datetime(2024, 1, 31, 23, 59), "600000.SH", "浦发银行", 10.5, 10.75, 10.25, 10.625, 300.0)
    )
    rows.append(bar(datetime(2024, 2, 1, 0, 0), "600000.SH", "浦发银行", 10.625, 10.75, 10.5, 10.5, 200.0))
    # dirty rows, all excluded by the cleaning WHERE:
    rows += [
        bar(datetime(2024, 1, 2, 9, 30), "600000.SH", "脏", 99.0, 99.5, 98.0, 99.0, -100.0),  # volume < 0
        bar(
            datetime(2024, 1, 2, 9, 29), "000001.SZ", "脏", 50.0, 51.0, 49.0, 50.0, 100.0, -1.0
        ),  # amount < 0
        bar(datetime(2024, 3, 28, 15, 1), "000001.SZ", "脏", 12.5, 13.0, 12.0, 12.5, None),  # volume NULL
        bar(datetime(2024, 2, 28, 15, 1), "600000.SH", "脏", 10.0, 10.25, 9.5, 11.0, 100.0),  # high < close
        bar(datetime(2024, 3, 10, 12, 0), "600000.SH", "脏", 10.0, 80.0, 10.5, 10.25, 100.0),  # low > open
        bar(datetime(2024, 1, 20, 12, 0), "300750.SZ", "脏", -1.5, None, -2.0, -1.5, 100.0),  # high NULL
    ]
    # passes the cleaning (GREATEST/LEAST ignore NULLs): March opens with a NULL open on both paths
    rows.append(
        bar(datetime(2024, 3, 1, 9, 0), "300750.SZ", "宁德时代", None, -1.0, -1.75, -1.25, 100.0, 125.0)
    )
    return rows


def _greatest(*values):
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _least(*values):
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _ge(a, b) -> bool:
    return a is not None and b is not None and a >= b


def expected_kline(rows: list[Row], months: tuple[datetime, ...] = (JAN, FEB, MAR)) -> list[tuple]:
    """The seed's SELECT in Python, with SQL NULL semantics, for the given months."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        t, code, _name, o, h, low, c, volume, amount = r
        if not (_ge(volume, 0) and _ge(amount, 0) and _ge(h, _greatest(o, c)) and _ge(_least(o, c), low)):
            continue
        month = datetime(t.year, t.month, 1)
        if month in months:
            groups.setdefault((code, month), []).append(r)
    out = []
    for (code, month), bars in sorted(groups.items()):
        bars.sort(key=lambda r: r[0])
        out.append(
            (
                month,
                code,
                bars[-1][2],
                bars[0][3],
                max(r[4] for r in bars),
                min(r[5] for r in bars),
                bars[-1][6],
                sum(r[7] for r in bars),
                sum(r[8] for r in bars),
            )
        )
    return out


def load(conn: psycopg.Connection, rows: list[Row]) -> None:
    """Multi-row INSERT from arrays (COPY FROM STDIN is refused by the PGlite server)."""
    columns = [list(col) for col in zip(*rows)]
    conn.execute(
        """INSERT INTO stock_1min_qfq (time, code, name, open, high, low, close, volume, amount)
                    SELECT * FROM unnest(%s::timestamp[], %s::text[], %s::text[], %s::float8[], %s::float8[],
                                         %s::float8[], %s::float8[], %s::float8[], %s::float8[])""",
        columns,
    )
    conn.commit()


def kline_rows(conn: psycopg.Connection) -> list[tuple]:
    rows = conn.execute(
        f"SELECT {', '.join(kline.KLINE_COLUMNS)} FROM stock_monthly_kline ORDER BY code, month"
    ).fetchall()
    conn.rollback()
    return rows


def prepared(s: Server, rows: list[Row] | None = None) -> kline.EnsureResult:
    result = kline.ensure_monthly_kline(s.conn, license=s.license)
    s.conn.commit()
    if rows:
        load(s.conn, rows)
    return result


# --- The minute table --------------------------------------------------------------------------


def test_minute_table_is_idempotent_and_one_bar_per_code_minute(server):
    conn = server.conn
    assert minute_table.ensure_minute_table(conn) == minute_table.MinuteTable(created=True, hypertable=True)
    assert minute_table.ensure_minute_table(conn) == minute_table.MinuteTable(created=False, hypertable=True)
    conn.commit()
    dims = conn.execute("""SELECT column_name, time_interval FROM timescaledb_information.dimensions
                           WHERE hypertable_schema = current_schema() AND hypertable_name = 'stock_1min_qfq'
                        """).fetchall()
    assert dims == [("time", timedelta(days=30))]
    indexes = conn.execute("""SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()
                              AND tablename = 'stock_1min_qfq'""").fetchall()
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    assert [d for (d,) in indexes] == [
        (
            f"CREATE UNIQUE INDEX stock_1min_qfq_code_time ON {schema}.stock_1min_qfq USING btree (code, "
            '"time" DESC)'
        )
    ]
    row = (datetime(2024, 1, 2, 9, 31), "600000.SH", "浦发银行", 10.0, 10.5, 9.5, 10.25, 100.0, 1000.0)
    load(conn, [row])
    with pytest.raises(errors.UniqueViolation):
        load(conn, [row])
    conn.rollback()
    # what a loader does instead: replace the bar
    conn.execute(
        """INSERT INTO stock_1min_qfq VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (code, time) DO UPDATE SET close = EXCLUDED.close""",
        (*row[:6], 10.5, *row[7:]),
    )
    assert conn.execute("SELECT count(*), max(close) FROM stock_1min_qfq").fetchone() == (1, 10.5)
    conn.rollback()


def test_minute_table_in_another_table_name(native):
    assert minute_table.ensure_minute_table(native.conn, table="probe_minutes").created is True
    assert minute_table.ensure_minute_table(native.conn, table="probe_minutes").created is False
    with pytest.raises(ValueError):
        minute_table.ensure_minute_table(native.conn, table="bad name; DROP")


# --- Creating the K-line -----------------------------------------------------------------------


def test_ensure_table_path_is_idempotent(native):
    assert native.license == "apache"
    first = kline.ensure_monthly_kline(native.conn, license=native.license)
    second = kline.ensure_monthly_kline(native.conn, license=native.license)
    native.conn.commit()
    assert (first.path, first.created, second.created, second.dropped) == ("table", True, False, False)
    indexes = {
        name
        for (name,) in native.conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = "
            "'stock_monthly_kline'"
        )
    }
    assert indexes == {"stock_monthly_kline_pkey", "idx_monthly_code_time"}
    columns = native.conn.execute("""SELECT column_name, data_type FROM information_schema.columns
                                     WHERE table_schema = current_schema() AND table_name = \
'stock_monthly_kline'
                                     ORDER BY ordinal_position""").fetchall()
    assert [c for c, _ in columns] == list(kline.KLINE_COLUMNS)
    assert columns[0][1] == "timestamp without time zone"


def test_ensure_cagg_path_is_idempotent(pglite):
    assert pglite.license == "timescale"
    first = kline.ensure_monthly_kline(pglite.conn, license=pglite.license)
    pglite.conn.commit()
    second = kline.ensure_monthly_kline(pglite.conn, license=pglite.license)
    pglite.conn.commit()
    assert (first.path, first.created, second.created) == ("continuous_aggregate", True, False)
    assert first.policy_job_id is not None and first.policy_job_id == second.policy_job_id
    conn = pglite.conn
    jobs = conn.execute("""SELECT config->>'start_offset', config->>'end_offset', schedule_interval
                           FROM timescaledb_information.jobs WHERE hypertable_schema = current_schema()
                           AND proc_name = 'policy_refresh_continuous_aggregate'""").fetchall()
    assert jobs == [("3 mons", "01:00:00", timedelta(minutes=30))]
    assert conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_monthly_code_time'"
    ).fetchone() == (1,)
    assert (
        conn.execute("SELECT obj_description('stock_monthly_kline'::regclass, 'pg_class')").fetchone()[0]
        == "marketdata_assets kline definition sha256=" + kline.definition_sha256()
    )
    conn.rollback()


SEED_VERBATIM = """CREATE MATERIALIZED VIEW stock_monthly_kline
WITH (timescaledb.continuous) AS
SELECT
    time_bucket('1 month', time) AS month,
    code,
    last(name, time) as name,  -- 取该月最后一条记录的股票名称 (处理更名情况)
    first(open, time) as open,
    max(high) as high,
    min(low) as low,
    last(close, time) as close,
    sum(volume) as volume,
    sum(amount) as amount
FROM stock_1min_qfq
WHERE volume >= 0  -- volume/amount >= 0 会隐式过滤掉 NULL 记录 (视为无效脏数据)
  AND amount >= 0

  -- 以下逻辑不检查价格正负，以支持前复权可能出现的负价格
  AND high >= GREATEST(open, close)
  AND low <= LEAST(open, close)
GROUP BY month, code
WITH NO DATA"""


def test_cagg_definition_change_is_detected_and_only_recreate_drops(pglite):
    conn = pglite.conn
    minute_table.ensure_minute_table(conn)
    # a continuous aggregate made by the seed's own script is the same definition: adopted as is
    conn.execute(SEED_VERBATIM)
    conn.commit()
    assert kline.ensure_monthly_kline(conn, license="timescale").created is False
    conn.commit()
    kline.drop_monthly_kline(conn)
    conn.commit()
    # an older definition (without the amount rule) must not be used silently
    conn.execute(SEED_VERBATIM.replace("  AND amount >= 0\n", ""))
    conn.commit()
    load(conn, synthetic_bars())
    with pytest.raises(kline.KlineDefinitionChanged, match="recreate=True") as raised:
        kline.ensure_monthly_kline(conn, license="timescale")
    conn.rollback()
    assert "amount >=" in str(raised.value)  # the diff names the difference
    assert conn.execute(
        "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
        "WHERE view_schema = current_schema()"
    ).fetchone() == (1,)
    conn.rollback()
    result = kline.ensure_monthly_kline(conn, license="timescale", recreate=True)
    conn.commit()
    assert (result.dropped, result.created) == (True, True)
    assert kline.ensure_monthly_kline(conn, license="timescale").created is False
    conn.commit()
    kline.force_backfill(conn, license="timescale")
    assert kline_rows(conn) == expected_kline(synthetic_bars())


def test_table_definition_change_is_detected(native):
    conn = native.conn
    prepared(native, synthetic_bars())
    kline.force_backfill(conn, license=native.license)
    conn.execute("COMMENT ON TABLE stock_monthly_kline IS 'marketdata_assets kline definition sha256=0ld'")
    conn.commit()
    with pytest.raises(kline.KlineDefinitionChanged, match="recreate=True"):
        kline.ensure_monthly_kline(conn, license=native.license)
    conn.rollback()
    assert len(kline_rows(conn)) == 9  # nothing dropped
    result = kline.ensure_monthly_kline(conn, license=native.license, recreate=True)
    conn.commit()
    assert (result.dropped, result.created) == (True, True)
    assert kline_rows(conn) == []


def test_object_of_the_other_path_is_refused(native):
    prepared(native)
    # a table built on an Apache server, then the database moved to a server with the TSL: refused
    # before anything is created
    with pytest.raises(kline.KlineDefinitionChanged, match="not a continuous aggregate"):
        kline.ensure_monthly_kline(native.conn, license="timescale")
    native.conn.rollback()
    assert kline.ensure_monthly_kline(native.conn, license="apache").created is False
    native.conn.rollback()


# --- Refreshing --------------------------------------------------------------------------------


def test_force_backfill(server):
    rows = synthetic_bars()
    created = prepared(server, rows)
    assert created.created is True
    assert kline_rows(server.conn) == []  # WITH NO DATA / empty table
    result = kline.force_backfill(server.conn, license=server.license)
    assert kline_rows(server.conn) == expected_kline(rows)
    assert result.action == "force_backfill" and result.window_start == datetime(2000, 1, 1)
    now = server.conn.execute("SELECT (now() AT TIME ZONE 'Asia/Shanghai')::timestamp").fetchone()[0]
    server.conn.rollback()
    assert result.window_end == datetime(now.year, now.month, 1)
    assert result.rows_in_window == 9 and result.latest_month == MAR and result.seconds >= 0
    if server.license == "timescale":
        assert result.path == "continuous_aggregate"
        assert result.watermark == APR
        assert result.job["job_id"] >= 1000
    else:
        assert result.path == "table" and result.rows_inserted == 9 and result.watermark is None
    # the connection is left as it came: idle, its own time zone
    assert server.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert server.conn.autocommit is False
    assert server.conn.execute("SHOW TimeZone").fetchone()[0] != "Asia/Shanghai"
    server.conn.rollback()


def test_refresh_of_one_month_touches_only_that_month(server):
    rows = synthetic_bars()
    prepared(server, rows)
    kline.force_backfill(server.conn, license=server.license)
    before = kline_rows(server.conn)
    # every month changes in the minute table...
    server.conn.execute("UPDATE stock_1min_qfq SET volume = volume * 2, amount = amount * 2")
    server.conn.commit()
    # ...but only February is recomputed
    result = kline.refresh_window(server.conn, FEB, MAR, license=server.license)
    after = kline_rows(server.conn)
    assert (result.window_start, result.window_end, result.months, result.rows_in_window) == (FEB, MAR, 1, 3)
    doubled = [r[:7] + (r[7] * 2, r[8] * 2) for r in before]
    for old, new, twice in zip(before, after, doubled):
        assert new == (twice if old[0] == FEB else old), old[:2]
    if server.license != "timescale":
        assert (result.rows_deleted, result.rows_inserted) == (3, 3)
    with pytest.raises(ValueError, match="not a month start"):
        kline.refresh_window(server.conn, datetime(2024, 2, 15), MAR, license=server.license)
    with pytest.raises(ValueError, match="empty"):
        kline.refresh_window(server.conn, MAR, FEB, license=server.license)


def test_refresh_needs_a_connection_outside_a_transaction(native):
    prepared(native)
    native.conn.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="outside a transaction"):
        kline.refresh_window(native.conn, JAN, FEB, license=native.license)
    native.conn.rollback()


def test_cleaning_rules(native):
    rows = synthetic_bars()
    prepared(native, rows)
    kline.force_backfill(native.conn, license=native.license)
    got = {(r[1], r[0]): r for r in kline_rows(native.conn)}
    assert len(got) == 9
    clean_jan_600000 = sorted(r for r in rows if r[1] == "600000.SH" and r[0].month == 1 and r[2] != "脏")
    # negative volume bar (09:30, open 99) dropped: January opens with the first clean bar
    assert got["600000.SH", JAN][3] == clean_jan_600000[0][3] != 99.0
    # high < close bar (Feb 28 15:01, close 11) dropped: February closes with the last clean bar
    assert got["600000.SH", FEB][6] != 11.0
    # low > open bar (high 80) dropped
    assert got["600000.SH", MAR][4] < 80
    # negative amount bar (open 50) and NULL volume bar dropped
    assert got["000001.SZ", JAN][3] != 50.0 and got["000001.SZ", MAR][7] is not None
    # negative (forward-adjusted) prices kept
    assert got["300750.SZ", JAN][5] < 0 and got["300750.SZ", JAN][6] < 0
    # no name "脏" from any dropped bar; the renamed stock takes its last name of each month
    assert {r[2] for r in got.values()} == {"浦发银行", "宁德时代", "深发展A", "平安银行"}
    assert got["000001.SZ", JAN][2] == "深发展A" and got["000001.SZ", FEB][2] == "平安银行"
    # the bar at 2024-02-01 00:00 belongs to February, the one at 01-31 23:59 to January
    assert got["600000.SH", JAN][6] == 10.625 and got["600000.SH", FEB][3] == 10.625


def test_both_servers_give_identical_monthly_klines(native, pglite):
    """THE KEY TEST: same minute bars, Apache-license table path vs continuous aggregate."""
    rows = synthetic_bars()
    assert prepared(native, rows).path == "table"
    assert prepared(pglite, rows).path == "continuous_aggregate"
    kline.force_backfill(native.conn, license=native.license)
    kline.force_backfill(pglite.conn, license=pglite.license)
    table_rows, cagg_rows = kline_rows(native.conn), kline_rows(pglite.conn)
    assert table_rows == cagg_rows == expected_kline(rows)
    assert len(table_rows) == 9
    # and a window refresh after a reload keeps them identical
    for s in (native, pglite):
        s.conn.execute("""UPDATE stock_1min_qfq SET close = close + 0.125, high = high + 0.125
                          WHERE code = '300750.SZ' AND time >= '2024-02-01' AND time < '2024-03-01'""")
        s.conn.commit()
        kline.refresh_window(s.conn, FEB, MAR, license=s.license)
    assert kline_rows(native.conn) == kline_rows(pglite.conn)


def test_plain_postgres_dialect_matches(native):
    """Without the extension (date_trunc + ordered aggregates): the same rows."""
    rows = synthetic_bars()
    result = kline.ensure_monthly_kline(native.conn, license=None)
    native.conn.commit()
    load(native.conn, rows)
    kline.force_backfill(native.conn, license=None)
    assert result.path == "table"
    assert kline_rows(native.conn) == expected_kline(rows)
    assert "date_trunc('month', time)" in kline.monthly_select("postgres")


def test_run_policy_now_refreshes_the_policy_window_on_both_paths(native, pglite):
    now = native.conn.execute("SELECT (now() AT TIME ZONE 'Asia/Shanghai')::timestamp").fetchone()[0]
    native.conn.rollback()
    this_month = datetime(now.year, now.month, 1)
    months = [kline._add_months(this_month, -n) for n in range(5, -1, -1)]
    rows = []
    for i, month in enumerate(months):
        for code in ("600000.SH", "000001.SZ"):
            rows.append(
                bar(
                    month + timedelta(days=1, hours=10),
                    code,
                    "甲",
                    10.0 + i,
                    10.5 + i,
                    9.5 + i,
                    10.25 + i,
                    100.0,
                )
            )
    expected_months = kline._months(
        kline._ceil_month(kline._minus_months(now, 3)), kline._floor_month(now - timedelta(hours=1))
    )
    got = {}
    for s in (native, pglite):
        prepared(s, rows)
        result = kline.run_policy_now(s.conn, license=s.license)
        got[s.name] = kline_rows(s.conn)
        assert result.action == "run_policy" and result.months == len(expected_months)
        assert sorted({r[0] for r in got[s.name]}) == expected_months
    assert got["native"] == got["pglite"] == expected_kline(rows, tuple(expected_months))


# --- Validation queries (seed 6.1 A-E) ---------------------------------------------------------


def test_validations(server):
    t = datetime(2024, 5, 6, 10, 0)
    rows = [
        # A: +1100% within the month (a warning)
        bar(t, "AAA", "甲", 1.0, 1.5, 1.0, 1.0, 100.0),
        bar(t + timedelta(days=20), "AAA", "甲", 12.0, 12.5, 11.5, 12.0, 100.0),
        # D: volume without amount (amount 0 passes the cleaning)
        bar(t, "DDD", "丁", 5.0, 5.5, 4.5, 5.0, 100.0, 0.0),
        # E: the last bar of the month has no name
        bar(t, "EEE", "戊", 5.0, 5.5, 4.5, 5.0, 100.0),
        bar(t + timedelta(minutes=1), "EEE", None, 5.0, 5.5, 4.5, 5.0, 100.0),
        # fine
        bar(t, "OK", "好", 5.0, 5.5, 4.5, 5.25, 100.0),
    ]
    prepared(server, rows)
    kline.refresh_window(server.conn, datetime(2024, 5, 1), datetime(2024, 6, 1), license=server.license)
    results = {r.key: r for r in kline.run_validations(server.conn, sample_size=3)}
    assert [v.key for v in kline.VALIDATIONS] == ["A", "B", "C", "D", "E"]
    assert {k: (r.rows_found, r.blocking) for k, r in results.items()} == {
        "A": (1, False),
        "B": (0, True),
        "C": (0, True),
        "D": (1, True),
        "E": (1, True),
    }
    assert results["A"].sample_rows[0]["code"] == "AAA" and results["A"].sample_rows[0]["close"] == 12.0
    assert results["D"].sample_rows[0]["code"] == "DDD"
    assert results["E"].sample_rows[0]["code"] == "EEE" and results["E"].sample_rows[0]["name"] is None
    assert results["B"].passed and results["B"].sample_rows == []
    assert server.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# --- The PGlite server itself ------------------------------------------------------------------


def test_pglite_refuses_copy_from_stdin_and_survives(pglite):
    conn = pglite.conn
    minute_table.ensure_minute_table(conn)
    conn.commit()
    with (
        pytest.raises(errors.FeatureNotSupported, match="COPY ... FROM STDIN is not supported"),
        conn.cursor().copy("COPY stock_1min_qfq (time, code) FROM STDIN") as copy,
    ):
        copy.write_row((datetime(2024, 1, 2, 9, 31), "X"))
    # the backend raised it: the transaction is aborted like on any error
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.rollback()
    with conn.cursor().copy("COPY (SELECT 1 AS one) TO STDOUT") as copy:  # COPY TO works
        assert list(copy.rows()) == [("1",)]
    assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
    conn.rollback()


def test_pglite_resets_the_session_between_clients(pglite_server):
    first = pglite_connect(pglite_server)
    first.autocommit = True  # session-level state, not undone by a rollback
    first.execute("CREATE TABLE IF NOT EXISTS public.reset_probe (a int)")
    first.execute("CREATE TEMP TABLE leak (a int)")
    first.execute("SET TIME ZONE 'Asia/Shanghai'")
    first.execute("SET search_path TO pg_catalog")
    first.execute("SET application_name = 'first'")
    for _ in range(6):  # psycopg prepares _pg3_0 from the 5th execution
        first.execute("SELECT %s::int", (1,))
    first.execute("PREPARE mine AS SELECT 1")
    first.execute("SELECT pg_advisory_lock(7)")
    first.execute("BEGIN")
    first.execute("INSERT INTO public.reset_probe VALUES (1)")
    first.close()  # leaves mid-transaction
    with pglite_connect(pglite_server) as second:
        state = second.execute("""SELECT current_setting('TimeZone'), current_setting('search_path'),
            current_setting('application_name'), to_regclass('pg_temp.leak'),
            (SELECT count(*) FROM pg_prepared_statements), (SELECT count(*) FROM public.reset_probe),
            (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')""").fetchone()
        assert state == ("GMT", '"$user", public', "", None, 0, 0, 0)
        for _ in range(6):  # the same statement name again: no "_pg3_0 already exists"
            second.execute("SELECT %s::int", (2,))
        assert "emscripten" in second.execute("SELECT version()").fetchone()[0].lower()
        second.execute("DROP TABLE public.reset_probe")
