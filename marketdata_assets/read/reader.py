"""`Reader`: one session over the three stores, opened lazily, closed once (a context manager).

Connections come from the same settings the Dagster resources use (core/settings.py: CLICKHOUSE_DSN /
_DATABASE / _USER / _PASSWORD, TIMESCALE_*, MONGODB_*, ALPHA_DB_*), or are handed in (a client,
connection or MongoClient the caller owns and closes). Each store is opened on the first read
that needs it. The embedded ClickHouse engine is one process's at a time: a Reader holds its data
directory's lock from its first ClickHouse read until :meth:`Reader.close`, so while it is open the
Dagster steps that write ClickHouse wait, and while one of them runs the Reader waits up to
``lock_timeout_s`` and then fails naming the process holding it (stores/clickhouse/connection.py).
Keep a Reader open for a batch of reads, not for the day.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Self

import polars as pl
import psycopg
import pymongo
import pymongo.errors

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable, scrub
from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.datasets.frames import TRADES_SPEC, spec_for
from marketdata_assets.read import alphas as alpha_reads
from marketdata_assets.read import clickhouse as ch_reads
from marketdata_assets.read import conventions, expected, gaps
from marketdata_assets.read import coverage as cat
from marketdata_assets.read import timescale as ts_reads
from marketdata_assets.sources.config import CRYPTO_SOURCES, load_sources_config
from marketdata_assets.sources.registry import SEQUENCED_DATASETS
from marketdata_assets.stores.clickhouse import connection, history
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse.live import TRADES_LIVE
from marketdata_assets.stores.mongo import alphas as mongo_store

Time = datetime | date | str


class AsOfUnsupported(ValueError):
    """``as_of`` asked of a store that keeps no history (the message says why)."""


def _no_as_of(as_of, what: str, why: str) -> None:
    """AsOfUnsupported when ``as_of`` is given: why, and the command keeping dated snapshots of ``what``."""
    if as_of is not None:
        from marketdata_assets.read import export  # what keeps the dated snapshots (and names the command)

        name = what.lower()
        dataset = next(
            (
                d
                for key, d in (
                    ("minute", export.MINUTE_BARS),
                    ("k-line", export.KLINE_MONTHLY),
                    ("alpha", export.ALPHAS),
                )
                if key in name
            ),
            None,
        )
        days = (
            "; yesterday's bars (UTC) unless --start-date/--end-date name others"
            if dataset == export.MINUTE_BARS
            else ""
        )
        raise AsOfUnsupported(
            f"{what} cannot be read as_of an earlier time: {why}. Read without as_of (what is "
            f"stored now), or keep dated Parquet snapshots to compare (one directory per export "
            f"date under the export directory{days}): {export.snapshot_command(dataset)}"
        )


class Reader:
    """Reads of the stores as Polars frames (see marketdata_assets.read for the API)."""

    def __init__(
        self,
        *,
        clickhouse_dsn: str | None = None,
        clickhouse_database: str | None = None,
        clickhouse_client=None,
        timescale_conn: psycopg.Connection | None = None,
        mongo_client: pymongo.MongoClient | None = None,
        lock_timeout_s: float = 10.0,
    ):
        self.clickhouse_dsn = clickhouse_dsn or settings.clickhouse_dsn()
        self.database = sql_identifier(
            clickhouse_database or settings.get("CLICKHOUSE_DATABASE"), "ClickHouse database"
        )
        self.lock_timeout_s = lock_timeout_s
        self._ch, self._pg, self._mongo = clickhouse_client, timescale_conn, mongo_client
        self._owned: set[str] = set()
        self._locked_dir = None
        self._tables: set[str] | None = None
        self._history_ready = False
        self._stored: dict[str, dict[str, set[str]]] = {}  # dataset -> venue -> instruments stored

    # ---- the stores ----------------------------------------------------------------------------

    def clickhouse(self):
        """The ClickHouse client (opened on first use, under the embedded engine's lock)."""
        if self._ch is None:
            self._ch, self._locked_dir = connection.open_client(
                self.clickhouse_dsn,
                self.database,
                user=settings.get("CLICKHOUSE_USER"),
                password=settings.get("CLICKHOUSE_PASSWORD"),
                lock_timeout_s=self.lock_timeout_s,
                on_wait=self._say_wait,
                create_database=False,
            )
            self._owned.add("clickhouse")
        return self._ch

    def _say_wait(self, holder: str) -> None:
        print(
            connection.wait_line(connection.embedded_dir(self.clickhouse_dsn), holder, self.lock_timeout_s),
            file=sys.stderr,
            flush=True,
        )

    def timescale(self) -> psycopg.Connection:
        """A TimescaleDB connection (autocommit: reads only)."""
        if self._pg is None:
            get = settings.get
            try:
                self._pg = psycopg.connect(
                    host=get("TIMESCALE_HOST"),
                    port=get("TIMESCALE_PORT"),
                    user=get("TIMESCALE_USER"),
                    password=get("TIMESCALE_PASSWORD") or None,
                    dbname=get("TIMESCALE_DB"),
                    sslmode=get("TIMESCALE_SSLMODE"),
                    connect_timeout=5,
                    autocommit=True,
                    application_name="marketdata-assets read",
                )
            except psycopg.OperationalError as error:
                raise StoreUnavailable(
                    "TimescaleDB",
                    f"{get('TIMESCALE_HOST')}:{get('TIMESCALE_PORT')}",
                    scrub(str(error).strip().splitlines()[0], get("TIMESCALE_PASSWORD")),
                    "Start the local stack or set TIMESCALE_HOST/TIMESCALE_PORT.",
                ) from None
            self._owned.add("timescale")
        return self._pg

    def mongo(self) -> pymongo.MongoClient:
        if self._mongo is None:
            self._mongo = pymongo.MongoClient(
                settings.get("MONGODB_URI"),
                serverSelectionTimeoutMS=4000,
                tz_aware=True,
                appname="marketdata-assets read",
                **settings.mongo_auth(),
            )
            self._owned.add("mongo")
        return self._mongo

    def close(self) -> None:
        """Close what this Reader opened (and release the embedded engine's lock)."""
        if "clickhouse" in self._owned and self._ch is not None:
            self._ch.close()
            self._ch = None
            if self._locked_dir is not None:
                connection.release_directory(self._locked_dir)
                self._locked_dir = None
        if "timescale" in self._owned and self._pg is not None:
            self._pg.close()
            self._pg = None
        if "mongo" in self._owned and self._mongo is not None:
            self._mongo.close()
            self._mongo = None
        self._owned.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_table(self, table: str) -> None:
        if self._tables is None or table not in self._tables:
            self._tables = {
                r[0]
                for r in self.clickhouse()
                .query(
                    "SELECT name FROM system.tables WHERE database = {db:String}",
                    parameters={"db": self.database},
                )
                .result_rows
            }
        if table not in self._tables:
            raise LookupError(
                f"no table {table} in the ClickHouse database {self.database} at "
                f"{connection.address(self.clickhouse_dsn)}: nothing loaded there yet, or "
                "CLICKHOUSE_DATABASE / CLICKHOUSE_DSN name another store"
            )

    def _ensure_history(self) -> None:
        """The load history, created (and backfilled once) on a store written before it existed; no DDL
        when it is there (a read-only user can read as_of)."""
        if not self._history_ready:
            try:
                self._require_table(history.LOAD_HISTORY)
            except LookupError:
                history.ensure_history(self.clickhouse(), self.database)
            self._history_ready = True

    # ---- ClickHouse datasets ---------------------------------------------------------------------

    def dataset(
        self,
        name: str,
        venue: str,
        instrument: str | Sequence[str] | None,
        start: Time,
        end: Time,
        *,
        as_of: Time | None = None,
        columns: Sequence[str] | None = None,
        label: str | None = None,
        tz: str | None = None,
        live: bool = False,
    ) -> pl.DataFrame:
        """Rows of a ClickHouse dataset (datasets.frames.DATASETS: trades, bars_1m, funding, ...) of
        ``venue`` and ``instrument`` (one, a list, None: all) with ``ts`` in ``[start, end)`` (naive = UTC,
        or wall-clock in ``tz``), as the store shows them now, or as it showed them at ``as_of``; only
        ``columns`` if given. Bars carry their convention (read.conventions: ``label``, ``adjustment``,
        the zone in ``ts``' dtype) and can be read stamped by their ``label`` start or end, in ``tz``.
        Days with nothing stored warn (read.gaps.MissingDays) naming them. ``live`` (trades): with the
        live rows no hourly load holds yet (today's open hours), each row's ``path`` "history" or "live";
        without it, such rows in the range warn (read.gaps.LiveRowsNotRead)."""
        if name == TRADES_LIVE:  # the catalog lists it beside the datasets: say how it is read
            raise ValueError(
                f"{TRADES_LIVE!r} is the live table (today's trades before their hourly load into trades), "
                "read with the trades: r.trades(venue, instrument, start, end, live=True) (each row's path: "
                "'history' or 'live'; docs/read.md, \"Today\")"
            )
        spec = spec_for(name)
        if live:
            return self._with_live(spec, venue, instrument, start, end, as_of, columns, tz)
        self._require_table(spec.table)
        self._require_stored(spec.name, venue, instrument)
        if as_of is not None:
            self._ensure_history()
        first, last = conventions.store_range(spec.bars, start, end, label, tz)
        frame = ch_reads.read(
            self.clickhouse(),
            self.database,
            spec.name,
            venue,
            instrument,
            first,
            last,
            as_of=as_of,
            columns=columns,
        )
        if as_of is None and spec.key is not None:
            self._warn_missing(spec, venue, instrument, first, last)
        if as_of is None and spec.name == TRADES_SPEC.name:
            self._warn_live(venue, instrument, first, last)
        if spec.bars is not None:
            return conventions.stated(frame, "ts", spec.bars, label, tz)
        return conventions.in_zone(frame, "ts", tz)

    def _with_live(self, spec, venue: str, instrument, start, end, as_of, columns, tz) -> pl.DataFrame:
        """The history rows and after them the live rows no load holds yet, each with its `path`."""
        if spec.name != TRADES_SPEC.name or as_of is not None:
            raise ValueError(
                f"live=True reads trades as they are now (the live table holds trades only, and no "
                f"history of itself): not {spec.name}{' as_of' if as_of is not None else ''}"
            )
        with warnings.catch_warnings():  # the live rows answer what the history misses of today
            warnings.simplefilter("ignore", gaps.LiveRowsNotRead)
            history_rows = self.dataset(spec.name, venue, instrument, start, end, columns=columns, tz=tz)
        live_rows = ch_reads.live_tail(
            self.clickhouse(), self.database, venue, instrument, start, end, columns
        )
        frames = [
            history_rows.with_columns(pl.lit("history").alias(PATH)),
            conventions.in_zone(live_rows, "ts", tz).with_columns(pl.lit("live").alias(PATH)),
        ]
        return pl.concat(frames, how="vertical_relaxed")

    def _warn_live(self, venue: str, instrument, first: datetime, last: datetime) -> None:
        """LiveRowsNotRead when the live table holds trades of the range no hourly load holds yet (asked only
        for ranges reaching the last two days: older hours are loaded)."""
        if last < datetime.now(UTC) - LIVE_REACH:
            return
        count = ch_reads.live_tail_count(self.clickhouse(), self.database, venue, instrument, first, last)
        if count:
            gaps.warn_live(venue, count)

    def _warn_missing(self, spec, venue: str, instrument, first: datetime, last: datetime) -> None:
        """MissingDays naming the days of ``[first, last)`` with no active load (history datasets)."""
        venue, instruments = ch_reads.instruments_of(venue, instrument)
        first, last = ch_reads.time_range(first, last)
        days = gaps.expected_days(
            venue, first.date(), (last - timedelta(microseconds=1)).date(), datetime.now(UTC).date()
        )
        if not days:
            return
        loaded = ct.loaded_slices(self.clickhouse(), self.database, spec.name, venue, days)
        gaps.warn_missing(spec.name, venue, days, loaded, instruments)

    def _require_stored(self, dataset: str, venue: str, instrument) -> None:
        """A venue or instrument with nothing of `dataset` stored is a ValueError naming the closest stored
        names (a typo reads as an error, not as an empty frame)."""
        if dataset not in self._stored:
            self._stored[dataset] = ct.stored_names(self.clickhouse(), self.database, dataset)
            if dataset == TRADES_SPEC.name:  # an instrument collected live and not loaded yet is there too
                for name, names in ch_reads.live_names(self.clickhouse(), self.database).items():
                    self._stored[dataset].setdefault(name, set()).update(names)
        stored = self._stored[dataset]
        venue, instruments = ch_reads.instruments_of(venue, instrument)
        if venue not in stored:
            raise ValueError(
                f"no {dataset} of venue {venue!r} stored{cat.closest(venue, stored)}; venues with "
                f"{dataset}: {', '.join(sorted(stored)) or 'none yet'} (read.Reader().catalog() lists all)"
            )
        for name in instruments or ():
            if name not in stored[venue]:
                raise ValueError(
                    f"no {dataset} of {venue}:{name} stored{cat.closest(name, stored[venue])}; "
                    f"{venue} has {len(stored[venue]):,} instrument(s) with {dataset} "
                    "(read.Reader().catalog() lists them)"
                )

    def catalog(self, required: Sequence[str] = ()) -> pl.DataFrame:
        """What every store holds, one row per dataset x venue x instrument, in the same columns (null where
        one does not apply: docs/read.md, "What is stored"). The ClickHouse datasets: first_day, last_day,
        days (with an active load), days_with_rows, missing_days (the days the instrument's universe
        expects, from history_start to yesterday, with no active load; between first and last for an
        instrument no universe names), missing_reasons (their reasons and the commands that load them:
        read/expected.py), rows, last_loaded_at, failed_days (slices whose latest ingest attempt did not
        succeed) and sources (the sources of the active loads and their days: 'BINANCE 3, BINANCE_ARCHIVE
        1'), and a row for each instrument-dataset expected with nothing stored; the live table (dataset
        ``trades_live``: today's trades before their hourly load) with its ``lag_s``; ``minute_bars`` and
        ``kline_monthly`` (TimescaleDB) per exchange and code; ``alphas`` (MongoDB) per type (venue) and
        region (instrument). A store that cannot be read warns (read.StoreNotRead, naming it) and
        the others are listed; one of `required` ("ClickHouse", "TimescaleDB", "MongoDB") raises."""
        parts = [
            self._catalog_of("ClickHouse", self._clickhouse_catalog, required),
            self._catalog_of("TimescaleDB", lambda: cat.timescale_coverage(self.timescale()), required),
            self._catalog_of(
                "MongoDB",
                lambda: self._mongo_read(lambda: cat.alpha_coverage(self._alpha_collections())),
                required,
            ),
        ]
        return pl.concat([part.select(list(cat.SCHEMA)).cast(dict(cat.SCHEMA)) for part in parts])

    def _clickhouse_catalog(self) -> pl.DataFrame:
        client, config = self.clickhouse(), load_sources_config()
        if not all(ct.exists(client, self.database, table) for table in (ct.LOADS, ct.INGEST_LOG)):
            return cat.of_schema([])  # a fresh store: nothing loaded into it yet
        frame = expected.with_expected(
            ct.coverage(client, self.database),
            expected.stored_days(client, self.database),
            expected.stored_universes(client, self.database, config),
            config.binance_archives,
        )
        return ch_reads.with_live_coverage(client, self.database, frame)

    @staticmethod
    def _catalog_of(store: str, rows, required: Sequence[str] = ()) -> pl.DataFrame:
        """`rows()`, or no rows and a StoreNotRead warning when `store` cannot be reached (raised when it
        is `required`)."""
        try:
            return rows()
        except (
            StoreUnavailable,
            connection.EmbeddedLockTimeout,
            psycopg.OperationalError,
            pymongo.errors.ConnectionFailure,
        ) as error:
            if store in required:
                raise
            gaps.warn_not_read(store, error)
            return cat.of_schema([])

    def instruments(
        self, venue: str | None = None, as_of: Time | None = None, *, history: bool = False
    ) -> pl.DataFrame:
        """The instrument master (`instrument_master`): each instrument of `venue` (None: every venue) as its
        reference data described it at `as_of` (None: now; a day means its end), one row each with the
        version's `valid_from` and `seen`; an instrument listed after `as_of` (as the master knows its
        listing now) is not there, one that ended before is, with its ending status; `look_ahead` marks one
        whose listing no source gave and that the master first saw after `as_of` (there because it was
        listed when first seen: `marketdata instruments` with the archive site reachable dates Binance's).
        `history`: every version up to `as_of` instead."""
        from marketdata_assets.datasets.instruments import Master, frame
        from marketdata_assets.stores.clickhouse.instruments import ensure_instruments_table, read_versions

        if isinstance(as_of, str) and len(as_of.strip()) == 10:
            as_of = date.fromisoformat(as_of.strip())
        when = ch_reads.utc_time(as_of, "as_of") if as_of is not None else None
        if isinstance(as_of, date) and not isinstance(as_of, datetime):
            when = datetime.combine(as_of, datetime.max.time(), UTC)
        client = self.clickhouse()
        ensure_instruments_table(client, self.database)
        versions = read_versions(client, self.database, venue.upper() if venue else None)
        if venue and not versions and venue.upper() not in CRYPTO_SOURCES:  # a typo is not an empty frame
            known = sorted(CRYPTO_SOURCES)
            raise ValueError(
                f"unknown venue {venue!r}{cat.closest(venue.upper(), known)}: the instrument master's venues "
                f"are {', '.join(known)}"
            )
        master = Master(versions)
        keys = [
            key
            for key in master.current()
            if when is None or (listed := master.listing(*key)) is None or listed <= when
        ]
        versions = [v for key in keys for v in master.history(*key) if when is None or v.valid_from <= when]
        if not history:
            latest = {}
            for version in versions:  # oldest first: the last of each instrument is the one valid then
                latest[version.instrument.key] = version
            versions = list(latest.values())
        ahead = {
            key
            for key in keys
            if when is not None and master.listing(*key) is None and master.first_seen(*key) > when
        }
        return (
            frame(versions)
            .with_columns(
                look_ahead=pl.Series([v.instrument.key in ahead for v in versions], dtype=pl.Boolean)
            )
            .sort("venue", "instrument", "valid_from")
        )

    def loads(
        self,
        name: str,
        venue: str | None = None,
        instrument: str | Sequence[str] | None = None,
        start: Time | None = None,
        end: Time | None = None,
    ) -> pl.DataFrame:
        """Every flip of the pointer of a dataset's slices (the load history), newest first per slice:
        venue, instrument, day, load_id, source (the ingest_log source that wrote it; '' when none names
        it), rows, run_id, loaded_at, active (the slice's current load); trades and agg_trades also
        id_sequence (the ids it holds: read.clickhouse.ID_SEQUENCE)."""
        spec = spec_for(name)
        client = self.clickhouse()
        self._ensure_history()
        where, params = ["dataset = {code:String}"], {"code": spec.code}
        if venue is not None:
            venue, instruments = ch_reads.instruments_of(venue, instrument)
            where.append("venue = {venue:String}")
            params["venue"] = venue
            if instruments is not None:
                where.append("instrument IN {instruments:Array(String)}")
                params["instruments"] = instruments
        for bound, value, op in (("first", start, ">="), ("last", end, "<")):
            if value is not None:
                where.append(f"day {op} {{{bound}:Date}}")
                params[bound] = ch_reads.utc_time(value, bound).date()
        db = clickhouse_database(self.database)
        sql = (
            "SELECT venue, instrument, day, load_id, any(source) AS source, any(rows) AS rows, "
            "any(run_id) AS run_id, min(loaded_at) AS loaded_at, load_id IN (SELECT load_id FROM "
            f"{db}.loads FINAL WHERE {' AND '.join(where)}) AS active FROM {db}.{history.LOAD_HISTORY} LEFT "
            f"JOIN ({ct.load_sources_sql(self.database, 'dataset = {code:String}')}) AS s USING (load_id) "
            f"WHERE {' AND '.join(where)} "
            "GROUP BY venue, instrument, day, load_id ORDER BY venue, instrument, day, load_id DESC"
        )
        flips = pl.from_arrow(client.query_arrow(sql, parameters=params)).with_columns(
            pl.col("active").cast(pl.Boolean)
        )
        if spec.name not in SEQUENCED_DATASETS:
            return flips
        pair = pl.concat_str("venue", "source", separator=":")
        names = {
            f"{venue}:{source}": ch_reads.sequence_name(venue, source, spec.name)
            for venue, source in flips.select("venue", "source").unique().iter_rows()
        }
        return flips.with_columns(
            pair.replace_strict(names, return_dtype=ch_reads.ID_SEQUENCE).alias(ch_reads.IDS)
        )

    # ---- TimescaleDB and MongoDB -----------------------------------------------------------------

    def minute_bars(
        self,
        codes: str | Sequence[str] | None,
        start: Time,
        end: Time,
        *,
        label: str | None = None,
        tz: str | None = None,
        as_of: Time | None = None,
    ) -> pl.DataFrame:
        """A-share 1-minute bars (TimescaleDB ``stock_1min_qfq``: stamped by their end, Beijing time,
        forward-adjusted), or stamped by their ``label`` start in ``tz``; days with no bars warn."""
        _no_as_of(
            as_of,
            "minute bars",
            "the loader replaces a file's bars in place (DELETE + COPY in one "
            "transaction) and keeps no earlier values",
        )
        first, last = conventions.store_range(ts_reads.MINUTE_STAMPING, start, end, label, tz)
        self._require_codes(ts_reads.MINUTE_TABLE, "minute bars", codes)
        frame = ts_reads.minute_bars(self.timescale(), codes, first, last)
        self._warn_missing_minutes(codes, first, last)
        return conventions.stated(frame, "time", ts_reads.MINUTE_STAMPING, label, tz)

    def _require_codes(self, table: str, what: str, codes) -> None:
        """A code nothing of `table` is stored for is a ValueError naming the closest stored codes."""
        conn = self.timescale()
        ts_reads.require_table(conn, table)
        cat.require_codes(conn, table, what, ts_reads.codes_of(codes))

    def _warn_missing_minutes(self, codes, first: datetime, last: datetime) -> None:
        """MissingDays naming each code's trading days of the range with no bar stored."""
        wanted = ts_reads.codes_of(codes)
        start, end = ts_reads.beijing_time(first, "start"), ts_reads.beijing_time(last, "end")
        days = gaps.expected_days(
            "SSE",
            start.date(),
            (end - timedelta(microseconds=1)).date(),
            datetime.now(ts_reads.BEIJING).date(),
        )
        if not days:
            return
        gaps.warn_missing(
            "minute bars",
            "A-shares",
            days,
            ts_reads.stored_days(self.timescale(), wanted, start, end),
            wanted,
        )

    def kline(
        self,
        codes: str | Sequence[str] | None,
        start: Time,
        end: Time,
        *,
        tz: str | None = None,
        as_of: Time | None = None,
    ) -> pl.DataFrame:
        """The monthly K-line (``stock_monthly_kline``, forward-adjusted) of ``codes`` for the months in
        ``[start, end)``; ``month`` is the month's first day, 00:00 Beijing (or that instant in ``tz``)."""
        _no_as_of(
            as_of, "the monthly K-line", "it is recomputed from the minute bars, which keep no earlier values"
        )
        first, last = conventions.store_range(ts_reads.KLINE_STAMPING, start, end, None, tz)
        self._require_codes(ts_reads.KLINE, "K-line", codes)
        frame = ts_reads.kline(self.timescale(), codes, first, last)
        return conventions.stated(frame, "month", ts_reads.KLINE_STAMPING, None, tz)

    def alphas(
        self,
        alpha_type: str | None = None,
        start: Time | None = None,
        end: Time | None = None,
        *,
        by: str = "dateCreated",
        region: str | None = None,
        status: str | None = None,
        fields: Sequence[str] = (),
        as_of: Time | None = None,
    ) -> pl.DataFrame:
        """Alphas (MongoDB) whose ``by`` date (dateCreated | dateModified, UTC) is in ``[start, end)``."""
        _no_as_of(as_of, "alphas", "an import deep-merges each alpha into its stored document in place")
        collections = self._alpha_collections()
        first = None if start is None else ch_reads.utc_time(start, "start")
        last = None if end is None else ch_reads.utc_time(end, "end")
        return self._mongo_read(
            lambda: alpha_reads.alphas(
                collections, alpha_type, first, last, by=by, region=region, status=status, fields=fields
            )
        )

    def _mongo_read(self, read):
        """`read()` of MongoDB; the driver's error when the server is away or refuses the login raised as
        StoreUnavailable naming it (one line, no driver dict)."""
        try:
            return read()
        except pymongo.errors.PyMongoError as error:
            if isinstance(error, pymongo.errors.ConnectionFailure) or getattr(error, "code", None) in (
                13,
                18,
            ):
                raise mongo_store.store_unavailable(self.mongo(), error) from None
            raise

    def _alpha_collections(self) -> dict:
        """Alpha type -> its collection (ALPHA_DB_REGULAR / ALPHA_DB_SUPER, ALPHA_COLLECTION)."""
        names = {"REGULAR": settings.get("ALPHA_DB_REGULAR"), "SUPER": settings.get("ALPHA_DB_SUPER")}
        return {t: self.mongo()[db][settings.get("ALPHA_COLLECTION")] for t, db in names.items()}


PATH = (
    "path"  # a live read's column: "history" (a load of the dataset) or "live" (trades_live, not loaded yet)
)
LIVE_REACH = timedelta(days=2)  # hours older than this are loaded (the hourly loads run within the hour)


def _shortcut(name: str):
    """Reader.<name>(venue, instrument, start, end, *, as_of=None, columns=None, ...): ``dataset(name, ...)``
    (its signature: Reader.dataset's but for ``name``)."""

    def read(self: Reader, *args, **kwargs) -> pl.DataFrame:
        return self.dataset(name, *args, **kwargs)

    dataset = inspect.signature(Reader.dataset)
    read.__signature__ = dataset.replace(  # type: ignore[attr-defined]
        parameters=[p for p in dataset.parameters.values() if p.name != "name"]
    )
    spec = spec_for(name)
    read.__name__ = read.__qualname__ = name
    read.__doc__ = (
        f"Rows of {spec.name} (table {spec.table}; columns {', '.join(spec.column_names)}): "
        "see Reader.dataset."
    )
    return read


# The ClickHouse datasets by their usual names (any other: Reader.dataset("klines_1h", ...)).
SHORTCUTS = {
    "trades": "trades",
    "agg_trades": "agg_trades",
    "bars": "bars_1m",
    "daily_bars": "daily_bars",
    "books": "books",
    "funding": "funding",
    "open_interest": "open_interest",
    "factors": "factors",
    "tickers": "tickers",
    "liquidations": "liquidations",
    "mark_bars": "mark_bars_1m",
    "index_bars": "index_bars_1m",
    "option_chain": "option_chain",
}
for _method, _dataset in SHORTCUTS.items():
    setattr(Reader, _method, _shortcut(_dataset))
