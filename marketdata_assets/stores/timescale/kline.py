"""Monthly K-line (`stock_monthly_kline`) from 1-minute bars (`stock_1min_qfq`).

Plain functions over a psycopg 3 connection (no Dagster): a continuous aggregate where the server's
TimescaleDB license has them, else a table refreshed with the same SELECT; identical rows either way.
Over 500 lines: the two ways and their SQL, kept side by side so they stay equal. Design, limits and
refresh bounds: docs/minute-bars.md, "The K-line's two ways to the same rows".
"""

from __future__ import annotations

import difflib
import hashlib
import time as _time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from marketdata_assets.stores.timescale.minute_table import BAR_COLUMNS_DDL, MINUTE_TABLE, ensure_minute_table

KLINE = "stock_monthly_kline"
KLINE_INDEX = "idx_monthly_code_time"
SESSION_TIME_ZONE = "Asia/Shanghai"
BACKFILL_START = datetime(2000, 1, 1)
POLICY_START_OFFSET = "3 months"
POLICY_END_OFFSET = "1 hour"
POLICY_SCHEDULE_INTERVAL = "30 minutes"
AUTO = "auto"

MINUTE_COLUMNS = ("time", "code", "name", "open", "high", "low", "close", "volume", "amount")
KLINE_COLUMNS = ("month", "code", "name", "open", "high", "low", "close", "volume", "amount")

# --- The K-line's SELECT: one body for every path ---------------------------------------------

_CLEANING = """volume >= 0  -- also drops NULL volume/amount (dirty rows)
  AND amount >= 0
  -- prices are not checked for sign: forward-adjusted (qfq) prices can be negative
  AND high >= GREATEST(open, close)
  AND low <= LEAST(open, close)"""

_SELECT_LIST = {
    "timescaledb": """time_bucket('1 month', time) AS month,
    code,
    last(name, time) AS name,
    first(open, time) AS open,
    max(high) AS high,
    min(low) AS low,
    last(close, time) AS close,
    sum(volume) AS volume,
    sum(amount) AS amount""",
    # Without the extension: the same values (time is unique per code, so ordering is total).
    "postgres": """date_trunc('month', time) AS month,
    code,
    (array_agg(name ORDER BY time DESC))[1] AS name,
    (array_agg(open ORDER BY time))[1] AS open,
    max(high) AS high,
    min(low) AS low,
    (array_agg(close ORDER BY time DESC))[1] AS close,
    sum(volume) AS volume,
    sum(amount) AS amount""",
}


def cleaning_rules() -> tuple[str, ...]:
    """The conditions of the cleaning WHERE, one by one ("volume >= 0", "amount >= 0", ...): a
    minute row reaches the K-line only when every one is TRUE (NULL fails). Parsed from the SQL
    itself, so a report naming the rule that dropped a row can never drift from the definition."""
    text = " ".join(line.split("--", 1)[0] for line in _CLEANING.splitlines())
    return tuple(" ".join(part.split()) for part in text.split(" AND "))


def monthly_select(dialect: str = "timescaledb", windowed: bool = False) -> str:
    """The K-line's SELECT. `windowed` adds ``time >= %(start)s AND time < %(end)s`` (table path)."""
    where = _CLEANING + ("\n  AND time >= %(start)s AND time < %(end)s" if windowed else "")
    return f"SELECT\n    {_SELECT_LIST[dialect]}\nFROM {MINUTE_TABLE}\nWHERE {where}\nGROUP BY month, code"


MONTHLY_SELECT = monthly_select()


def definition_sha256(select: str = MONTHLY_SELECT) -> str:
    """SHA-256 of the SELECT with comments dropped and whitespace collapsed."""
    lines = [line.split("--", 1)[0] for line in select.splitlines()]
    return hashlib.sha256(" ".join(" ".join(lines).split()).encode()).hexdigest()


_COMMENT_PREFIX = "marketdata_assets kline definition sha256="

CAGG_DDL = (
    f"CREATE MATERIALIZED VIEW {KLINE}\nWITH (timescaledb.continuous) AS\n{MONTHLY_SELECT}\nWITH NO DATA"
)
KLINE_TABLE_DDL = f"""CREATE TABLE {KLINE} (
    month timestamp without time zone NOT NULL,
{BAR_COLUMNS_DDL},
    PRIMARY KEY (code, month)
)"""
KLINE_INDEX_DDL = f"CREATE INDEX IF NOT EXISTS {KLINE_INDEX} ON {KLINE} (code, month DESC)"
POLICY_SQL = f"""SELECT add_continuous_aggregate_policy('{KLINE}',
    start_offset => INTERVAL '{POLICY_START_OFFSET}',
    end_offset => INTERVAL '{POLICY_END_OFFSET}',
    schedule_interval => INTERVAL '{POLICY_SCHEDULE_INTERVAL}',
    if_not_exists => TRUE)"""
REFRESH_SQL = f"CALL refresh_continuous_aggregate('{KLINE}', %s::timestamp, %s::timestamp)"
BACKFILL_SQL = f"CALL refresh_continuous_aggregate('{KLINE}', '2000-01-01'::timestamp, now()::timestamp)"

# The table path's refresh transaction: the planner takes the cleaning WHERE for far more selective than
# it is and sorts every row of the window for a GroupAggregate (on disk); one group per code and month
# is a small hash table (2x faster on a month of 5M rows). No JIT: compiling costs more than it saves.
REFRESH_WORK_MEM = "64MB"
REFRESH_SETTINGS = (
    "SELECT set_config('enable_sort', 'off', true), set_config('work_mem', %(work_mem)s, true), "
    "set_config('jit', 'off', true)"
)

# --- Validation queries (A-E) ------------------------------------------------------------------

VALIDATION_A_EXTREME_GAIN = f"""SELECT * FROM {KLINE}
WHERE open > 0 AND (close - open) / open > 10.0"""
VALIDATION_B_NEGATIVE_VOLUME_AMOUNT = f"""SELECT * FROM {KLINE}
WHERE volume < 0 OR amount < 0"""
VALIDATION_C_PRICE_LOGIC = f"""SELECT * FROM {KLINE}
WHERE high < low
   OR high < open
   OR high < close
   OR low > open
   OR low > close"""
VALIDATION_D_VOLUME_WITHOUT_AMOUNT = f"""SELECT * FROM {KLINE}
WHERE volume > 0 AND amount = 0"""
VALIDATION_E_MISSING_NAME = f"""SELECT * FROM {KLINE} WHERE name IS NULL"""


@dataclass(frozen=True)
class Validation:
    key: str
    name: str
    sql: str
    blocking: bool
    description: str


VALIDATIONS: tuple[Validation, ...] = (
    Validation(
        "A",
        "extreme_monthly_gain",
        VALIDATION_A_EXTREME_GAIN,
        False,
        "Months whose close is over 11x the open (gain > 1000%): worth a look, not an error.",
    ),
    Validation(
        "B",
        "negative_volume_or_amount",
        VALIDATION_B_NEGATIVE_VOLUME_AMOUNT,
        True,
        "Negative volume or amount (expected: 0 rows; negative qfq prices are allowed).",
    ),
    Validation(
        "C",
        "price_logic",
        VALIDATION_C_PRICE_LOGIC,
        True,
        "high below low/open/close or low above open/close (expected: 0 rows).",
    ),
    Validation(
        "D",
        "volume_without_amount",
        VALIDATION_D_VOLUME_WITHOUT_AMOUNT,
        True,
        "Volume traded but amount 0 (expected: 0 rows).",
    ),
    Validation(
        "E",
        "missing_name",
        VALIDATION_E_MISSING_NAME,
        True,
        "last(name) is NULL: no stock name for the month (expected: 0 rows).",
    ),
)


@dataclass(frozen=True)
class ValidationResult:
    key: str
    name: str
    blocking: bool
    rows_found: int
    sample_rows: list[dict]
    description: str

    @property
    def passed(self) -> bool:
        return self.rows_found == 0


# --- Results and errors ------------------------------------------------------------------------


class KlineDefinitionChanged(RuntimeError):
    """The stored stock_monthly_kline was built from another definition than the code's."""


@dataclass(frozen=True)
class EnsureResult:
    path: str  # "continuous_aggregate" or "table"
    created: bool  # True: new and empty, a force_backfill is due
    dropped: bool  # recreate=True dropped an existing object
    policy_job_id: int | None = None


@dataclass(frozen=True)
class RefreshResult:
    path: str
    action: str  # "refresh_window", "force_backfill", "run_policy"
    window_start: datetime | None  # month start
    window_end: datetime | None  # month start, exclusive
    seconds: float
    months: int = 0  # complete months in [window_start, window_end): the ones recomputed
    rows_deleted: int | None = None  # table path
    rows_inserted: int | None = None  # table path
    rows_in_window: int | None = None
    watermark: datetime | None = None  # continuous aggregate: end of the materialized range
    latest_month: datetime | None = None
    job: dict | None = None  # continuous aggregate: policy job and its stats

    def as_metadata(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, (datetime, date, timedelta)):
                return str(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return {k: plain(v) for k, v in self.__dict__.items()}


# --- Helpers -----------------------------------------------------------------------------------


def detect_license(conn: psycopg.Connection) -> str | None:
    """'timescale', 'apache', or None when the timescaledb extension is not installed."""
    with _read_only(conn), conn.cursor() as cur:
        row = cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        if not row:
            return None
        return cur.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]


def _resolve_license(conn: psycopg.Connection, license: str | None) -> str | None:
    if license == AUTO:
        return detect_license(conn)
    if license not in ("timescale", "apache", None):
        raise ValueError(f"unknown TimescaleDB license {license!r}: expected 'timescale', 'apache' or None")
    return license


def _path(license: str | None) -> str:
    return "continuous_aggregate" if license == "timescale" else "table"


def _dialect(license: str | None) -> str:
    return "postgres" if license is None else "timescaledb"


def aggregation_path(license: str | None) -> str:
    """What the K-line is built with on a server of this license, in words (for a run's metadata)."""
    if license == "timescale":
        return "continuous aggregate (time_bucket, first/last) with its refresh policy"
    if license is not None:
        return (
            "table refreshed per month with time_bucket and first/last (TimescaleDB "
            f"{license} license: no continuous aggregates)"
        )
    return (
        "degraded: no TimescaleDB, so a table refreshed per month with date_trunc('month') and ordered "
        "array_agg instead of time_bucket/first/last (the same rows)"
    )


@contextmanager
def _transaction(conn: psycopg.Connection) -> Iterator[None]:
    """Commit at the end on an idle connection; a savepoint inside the caller's transaction."""
    with conn.transaction():
        yield


@contextmanager
def _read_only(conn: psycopg.Connection) -> Iterator[None]:
    """Queries only: an idle connection is left idle (its implicit transaction rolled back)."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        yield
    finally:
        if idle and not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()


@contextmanager
def _refresh_session(conn: psycopg.Connection) -> Iterator[None]:
    """Autocommit and TimeZone Asia/Shanghai for the duration; both restored afterwards."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError(
            "a K-line refresh needs a connection outside a transaction (CALL "
            "refresh_continuous_aggregate cannot run in one): commit or roll back first"
        )
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        previous = conn.execute("SELECT current_setting('TimeZone')").fetchone()[0]
        conn.execute("SELECT set_config('TimeZone', %s, false)", (SESSION_TIME_ZONE,))
        try:
            yield
        finally:
            if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                conn.execute("SELECT set_config('TimeZone', %s, false)", (previous,))
    finally:
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.autocommit = autocommit


def _month_start(value: date | datetime, what: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError(f"{what} {value!r}: expected a naive (Beijing wall-clock) month start")
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    else:
        raise TypeError(f"{what} must be a date or datetime, not {type(value).__name__}")
    if result != datetime(result.year, result.month, 1):
        raise ValueError(f"{what} {value!r} is not a month start (YYYY-MM-01 00:00)")
    return result


def _add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1)


def _floor_month(value: datetime) -> datetime:
    return datetime(value.year, value.month, 1)


def _ceil_month(value: datetime) -> datetime:
    floor = _floor_month(value)
    return floor if floor == value else _add_months(floor, 1)


def _months(start: datetime, end: datetime) -> list[datetime]:
    months, month = [], start
    while month < end:
        months.append(month)
        month = _add_months(month, 1)
    return months


def _minus_months(value: datetime, n: int) -> datetime:
    """value - n months with Postgres' calendar arithmetic (day clamped to the month's length)."""
    first = _add_months(_floor_month(value), -n)
    last_day = (_add_months(first, 1) - timedelta(days=1)).day
    return value.replace(year=first.year, month=first.month, day=min(value.day, last_day))


def _beijing_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT (now() AT TIME ZONE %s)::timestamp", (SESSION_TIME_ZONE,)).fetchone()[0]


def _kline_relkind(conn: psycopg.Connection) -> str | None:
    """pg_class.relkind of stock_monthly_kline in the current schema (where CREATE puts it), or None."""
    row = conn.execute(
        """SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = current_schema() AND c.relname = %s""",
        (KLINE,),
    ).fetchone()
    return row[0] if row else None


def _cagg_definition(conn: psycopg.Connection) -> str | None:
    """The stored query of the continuous aggregate in the current schema, or None."""
    if detect_license(conn) is None:
        return None
    row = conn.execute(
        """SELECT view_definition FROM timescaledb_information.continuous_aggregates
                          WHERE view_schema = current_schema() AND view_name = %s""",
        (KLINE,),
    ).fetchone()
    return row[0] if row else None


def _deparsed(conn: psycopg.Connection, select: str) -> str:
    """The server's own rendering of `select` (what a continuous aggregate stores)."""
    with _transaction(conn):
        conn.execute(f"CREATE TEMP VIEW _kline_definition_probe AS {select}")
        text = conn.execute("SELECT pg_get_viewdef('_kline_definition_probe'::regclass)").fetchone()[0]
        conn.execute("DROP VIEW _kline_definition_probe")
    return text


def _comment(conn: psycopg.Connection) -> str | None:
    return conn.execute(
        """SELECT obj_description(c.oid, 'pg_class') FROM pg_class c
                           JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = current_schema() AND c.relname = %s""",
        (KLINE,),
    ).fetchone()[0]


def _recreate_hint() -> str:
    return (
        "Recreate it explicitly: ensure_monthly_kline(conn, recreate=True) drops it "
        f"(DROP ... {KLINE} CASCADE: index and refresh policy too) and creates it again; then run "
        "force_backfill(conn). Nothing is dropped without recreate=True."
    )


# --- The monthly K-line ------------------------------------------------------------------------


def drop_monthly_kline(conn: psycopg.Connection) -> str | None:
    """DROP stock_monthly_kline (continuous aggregate, view or table) with CASCADE. Returns what
    was dropped, or None if there was nothing. Only called explicitly (recreate=True, tests)."""
    with _transaction(conn):
        relkind = _kline_relkind(conn)
        if relkind is None:
            return None
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        target = sql.Identifier(schema, KLINE)
        if _cagg_definition(conn) is not None:
            conn.execute(sql.SQL("DROP MATERIALIZED VIEW {} CASCADE").format(target))
            return "continuous_aggregate"
        statement = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}.get(relkind)
        if statement is None:
            raise RuntimeError(f"{KLINE} is a relation with relkind {relkind!r}; drop it by hand")
        conn.execute(sql.SQL(f"DROP {statement} {{}} CASCADE").format(target))
        return {"r": "table", "p": "table", "v": "view", "m": "materialized_view"}[relkind]


def ensure_monthly_kline(
    conn: psycopg.Connection, *, license: str | None = AUTO, recreate: bool = False
) -> EnsureResult:
    """Create stock_monthly_kline (and the minute table) if absent, check an existing one against the
    code's definition, ensure its index (and, for a continuous aggregate, its refresh policy).

    Raises KlineDefinitionChanged when the existing object differs from the code; `recreate=True`
    drops it first. A result with created=True means empty: run force_backfill next."""
    with _transaction(conn):
        license = _resolve_license(conn, license)
        path = _path(license)
        ensure_minute_table(conn)
        dropped = False
        if recreate:
            dropped = drop_monthly_kline(conn) is not None
        if path == "continuous_aggregate":
            created = _ensure_cagg(conn)
            conn.execute(KLINE_INDEX_DDL)
            conn.execute(POLICY_SQL)
            job = _policy_job(conn)
            return EnsureResult(path, created, dropped, job["job_id"] if job else None)
        created = _ensure_table(conn)
        conn.execute(KLINE_INDEX_DDL)
        return EnsureResult(path, created, dropped)


def _ensure_cagg(conn: psycopg.Connection) -> bool:
    stored = _cagg_definition(conn)
    if stored is None:
        if _kline_relkind(conn) is not None:
            raise KlineDefinitionChanged(
                f"{KLINE} exists but is not a continuous aggregate (it was built on a server without "
                f"continuous aggregates); this server has them. {_recreate_hint()}"
            )
        conn.execute(CAGG_DDL)
        conn.execute(
            sql.SQL("COMMENT ON VIEW {} IS {}").format(
                sql.Identifier(KLINE), sql.Literal(_COMMENT_PREFIX + definition_sha256())
            )
        )
        return True
    expected = _deparsed(conn, MONTHLY_SELECT)
    if stored.strip() != expected.strip():
        diff = "\n".join(
            difflib.unified_diff(
                expected.strip().splitlines(), stored.strip().splitlines(), "code", "stored", lineterm="", n=1
            )
        )
        raise KlineDefinitionChanged(
            f"the continuous aggregate {KLINE} was created from another SELECT than the code's; its rows "
            f"would not follow the current definition. Differences:\n{diff}\n{_recreate_hint()}"
        )
    return False


def _ensure_table(conn: psycopg.Connection) -> bool:
    comment = _COMMENT_PREFIX + definition_sha256()
    relkind = _kline_relkind(conn)
    if relkind is None:
        conn.execute(KLINE_TABLE_DDL)
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(KLINE), sql.Literal(comment)))
        return True
    if _cagg_definition(conn) is not None or relkind not in ("r", "p"):
        raise KlineDefinitionChanged(
            f"{KLINE} exists but is not a table (a continuous aggregate or a view), and this server "
            f"refreshes the K-line as a table. {_recreate_hint()}"
        )
    stored = _comment(conn)
    if stored != comment:
        raise KlineDefinitionChanged(
            f"the table {KLINE} was filled with another definition than the code's (its comment holds "
            f"{stored!r}, the code's SELECT is {comment!r}); months refreshed from now on would follow "
            f"a different rule than the others. {_recreate_hint()}"
        )
    return False


# --- Refresh -----------------------------------------------------------------------------------


def refresh_window(
    conn: psycopg.Connection,
    start_month: date | datetime,
    end_month_exclusive: date | datetime,
    *,
    license: str | None = AUTO,
) -> RefreshResult:
    """Recompute the months in [start_month, end_month_exclusive) (naive month starts), exactly those.

    Continuous aggregate: CALL refresh_continuous_aggregate in autocommit, session TimeZone
    Asia/Shanghai. Table: one transaction deleting the window's rows and inserting the SELECT
    restricted to time in the window. The connection must not be inside a transaction; it is left
    as it came (autocommit setting and TimeZone restored)."""
    start = _month_start(start_month, "start_month")
    end = _month_start(end_month_exclusive, "end_month_exclusive")
    if not start < end:
        raise ValueError(f"empty refresh window [{start}, {end})")
    with _refresh_session(conn):
        return _refresh(conn, _resolve_license(conn, license), start, end, "refresh_window")


def force_backfill(conn: psycopg.Connection, *, license: str | None = AUTO) -> RefreshResult:
    """Refresh everything from 2000-01-01 to now() (Beijing time): every complete month in between.
    The month in progress is not included (as with a refresh_continuous_aggregate call up to now())."""
    with _refresh_session(conn):
        license = _resolve_license(conn, license)
        end = _floor_month(_beijing_now(conn))
        if _path(license) == "table":
            return _refresh(conn, license, BACKFILL_START, end, "force_backfill")
        started = _time.monotonic()
        conn.execute(BACKFILL_SQL)
        return _result(conn, license, "force_backfill", BACKFILL_START, end, started)


def run_policy_now(conn: psycopg.Connection, *, license: str | None = AUTO) -> RefreshResult:
    """Run the refresh policy once, now: CALL run_job(job_id) for the continuous aggregate (PGlite has
    no background workers); on the table path, the same window: the complete months inside
    [now() - 3 months, now() - 1 hour] (Beijing time)."""
    with _refresh_session(conn):
        license = _resolve_license(conn, license)
        now = _beijing_now(conn)
        start = _ceil_month(_minus_months(now, 3))
        end = max(start, _floor_month(now - timedelta(hours=1)))
        if _path(license) == "table":
            if start == end:
                return _result(conn, license, "run_policy", start, end, _time.monotonic(), 0, 0)
            return _refresh(conn, license, start, end, "run_policy")
        job = _policy_job(conn)
        if job is None:
            raise RuntimeError(f"no refresh policy on {KLINE}: run ensure_monthly_kline first")
        started = _time.monotonic()
        conn.execute("CALL run_job(%s)", (job["job_id"],))
        return _result(conn, license, "run_policy", start, end, started)


def _refresh(
    conn: psycopg.Connection, license: str | None, start: datetime, end: datetime, action: str
) -> RefreshResult:
    started = _time.monotonic()
    if _path(license) == "continuous_aggregate":
        conn.execute(REFRESH_SQL, (start, end))
        return _result(conn, license, action, start, end, started)
    insert = f"INSERT INTO {KLINE} ({', '.join(KLINE_COLUMNS)})\n" + monthly_select(
        _dialect(license), windowed=True
    )
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(REFRESH_SETTINGS, {"work_mem": REFRESH_WORK_MEM})
        cur.execute(
            f"DELETE FROM {KLINE} WHERE month >= %(start)s AND month < %(end)s", {"start": start, "end": end}
        )
        deleted = cur.rowcount
        cur.execute(insert, {"start": start, "end": end})
        inserted = cur.rowcount
    return _result(conn, license, action, start, end, started, deleted, inserted)


def rows_by_month(conn: psycopg.Connection, start: date, end: date) -> dict[date, int]:
    """The K-line's rows (one per code) of each month in [start, end)."""
    rows = conn.execute(
        f"SELECT month, count(*) FROM {KLINE} WHERE month >= %s AND month < %s GROUP BY month", (start, end)
    ).fetchall()
    return {(month.date() if isinstance(month, datetime) else month): n for month, n in rows}


def _result(
    conn: psycopg.Connection,
    license: str | None,
    action: str,
    start: datetime,
    end: datetime,
    started: float,
    deleted: int | None = None,
    inserted: int | None = None,
) -> RefreshResult:
    seconds = round(_time.monotonic() - started, 3)
    status = _status(conn, license)
    rows_in_window = conn.execute(
        f"SELECT count(*) FROM {KLINE} WHERE month >= %s AND month < %s", (start, end)
    ).fetchone()[0]
    return RefreshResult(
        path=_path(license),
        action=action,
        window_start=start,
        window_end=end,
        seconds=seconds,
        months=len(_months(start, end)),
        rows_deleted=deleted,
        rows_inserted=inserted,
        rows_in_window=rows_in_window,
        watermark=status["watermark"],
        latest_month=status["latest_month"],
        job=status["job"],
    )


# --- Status ------------------------------------------------------------------------------------

_UNIX_EPOCH = datetime(1970, 1, 1)


def _policy_job(conn: psycopg.Connection) -> dict | None:
    if detect_license(conn) is None:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT j.job_id, j.schedule_interval, j.config, j.scheduled, j.next_start,
                   s.last_run_started_at, s.last_successful_finish, s.last_run_status, s.job_status,
                   s.last_run_duration, s.total_runs, s.total_successes, s.total_failures
            FROM timescaledb_information.jobs j
            LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
            WHERE j.proc_name = 'policy_refresh_continuous_aggregate'
              AND j.hypertable_schema = current_schema() AND j.hypertable_name = %s
            ORDER BY j.job_id LIMIT 1""",
            (KLINE,),
        ).fetchone()


def _watermark(conn: psycopg.Connection) -> datetime | None:
    """End of the materialized range of the continuous aggregate (None if nothing materialized)."""
    row = conn.execute(
        """SELECT _timescaledb_functions.cagg_watermark(mat_hypertable_id)
                          FROM _timescaledb_catalog.continuous_agg
                          WHERE user_view_schema = current_schema() AND user_view_name = %s""",
        (KLINE,),
    ).fetchone()
    if not row or row[0] is None:
        return None
    try:
        value = _UNIX_EPOCH + timedelta(microseconds=row[0])  # internal time: microseconds since 1970
    except OverflowError:
        return None
    return value if value > datetime(1900, 1, 1) else None  # the minimum means "nothing yet"


def _status(conn: psycopg.Connection, license: str | None) -> dict:
    path = _path(license)
    if _kline_relkind(conn) is None:
        return {
            "path": path,
            "exists": False,
            "rows": 0,
            "latest_month": None,
            "watermark": None,
            "job": None,
        }
    rows, latest = conn.execute(f"SELECT count(*), max(month) FROM {KLINE}").fetchone()
    cagg = path == "continuous_aggregate" and _cagg_definition(conn) is not None
    return {
        "path": path,
        "exists": True,
        "rows": rows,
        "latest_month": latest,
        "watermark": _watermark(conn) if cagg else None,
        "job": _policy_job(conn) if cagg else None,
    }


# --- Validation --------------------------------------------------------------------------------


def run_validations(
    conn: psycopg.Connection, sample_size: int = 5, validations: Sequence[Validation] = VALIDATIONS
) -> list[ValidationResult]:
    """Run the validation queries A-E: rows found and a few sample rows each (A warns, B-E block)."""
    results = []
    with _read_only(conn), conn.cursor(row_factory=dict_row) as cur:
        for check in validations:
            found = cur.execute(f"SELECT count(*) AS n FROM ({check.sql}) v").fetchone()["n"]
            sample = (
                cur.execute(
                    f"SELECT * FROM ({check.sql}) v ORDER BY code, month LIMIT %s", (sample_size,)
                ).fetchall()
                if found
                else []
            )
            results.append(
                ValidationResult(check.key, check.name, check.blocking, found, sample, check.description)
            )
    return results
