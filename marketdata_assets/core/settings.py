"""Environment variables the project reads, with the local-stack defaults.

One table so the README, the resources, the stack script and docker/ agree on names.
Values are read at call time (never cached at import) so tests can point a fresh
process at other servers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    description: str
    secret: bool = False
    stack_only: bool = (
        False  # not wired into docker/ (the local stack reads it, or no docker service uses it)
    )
    read_by: tuple[str, ...] = ()  # the files that read it (under marketdata_assets/, else the repo root)
    group: str = ""  # its section in docs/configuration.md (set by _group)


LIVE_GROUP = "Live capture (NATS JetStream)"  # its section in docs/configuration.md


def _group(title: str, *settings: Setting) -> tuple[Setting, ...]:
    return tuple(replace(s, group=title) for s in settings)


_PG = ("instance/dagster.yaml", "orchestration/runs.py")  # Dagster's storage, and the CLI's check of it
_TSDB = ("resources/__init__.py",)  # the TimescaleResource, MongoResource, ClickHouseResource, alpha API
_SOURCES = (
    "sources/config.py",
    "resources/sources.py",
    "apps/demo.py",
)  # a base_url_env of data_providers.yaml

# A vendor host's variable replaces the base_url of its entry in the sources config file when set; it
# has no default of its own, so a generated default (apply_defaults, the project .env) never hides a
# base_url the user wrote into their copy of the file (docs/quickstart.md step 3).
_FILE_URL = "; empty: the sources config file's base_url ({})."

SETTINGS: tuple[Setting, ...] = (
    *_group(
        "State, landing areas and sensors",
        Setting(
            "MARKETDATA_STATE_DIR",
            "",
            "Writable state: landing areas, quarantine, "
            "the local stack's data and logs, `DAGSTER_HOME`. Empty means <repo>/.stack.",
            read_by=("core/settings.py", "scripts/stack.py"),
        ),
        Setting(
            "MINUTE_BARS_LANDING_DIR",
            "",
            "Where A-share 1-minute CSV files are dropped; the minute_bar_files "
            "sensor watches it. Empty means <state dir>/landing/minute_bars.",
            read_by=("defs/equities/sensors.py", "defs/equities/minute_bars.py", "apps/cli/equities.py"),
        ),
        Setting(
            "MARKETDATA_EXPORT_DIR",
            "",
            "Root of the Parquet export (<dataset>/venue=<V>/date=<YYYY-MM-DD>/"
            "part-0.parquet, readable by DuckDB and Polars). Empty means <state dir>/export.",
            read_by=("read/export.py", "defs/exports/assets.py"),
        ),
        Setting(
            "LANDING_SENSOR_INTERVAL_S",
            "30",
            "Seconds between two looks of each landing-area sensor (minute-bar "
            "CSVs, Binance dump files, alpha files and packages); read when the definitions load.",
            read_by=("defs/equities/sensors.py", "defs/archives/sensors.py", "defs/alphas/sensors.py"),
        ),
    ),
    *_group(
        "Timestamps and calendars",
        Setting(
            "TIMESTAMP_FUTURE_TOLERANCE_MINUTES",
            "10",
            "How far after now (in the venue's time zone) a "
            "timestamp from a file or vendor may lie before its row is rejected as implausible (a 2062 typo "
            "for 2026).",
            read_by=("core/plausibility.py",),
        ),
        Setting(
            "TIMESTAMP_EARLIEST",
            "",
            "Per-venue earliest plausible day, `VENUE=YYYY-MM-DD` items separated by "
            "commas, overriding the built-in first sessions and launches (core/plausibility.py: SSE "
            "1990-12-19, SZSE 1990-12-01, BSE 2021-11-15, BINANCE 2017-07-14, OKX 2017-01-01, DERIBIT "
            "2016-06-01, ALPHA_API 2016-01-01, other venues 1980-01-01). Older rows are rejected as "
            "implausible.",
            read_by=("core/plausibility.py",),
        ),
        Setting(
            "MARKETDATA_HOLIDAYS_FILE",
            "",
            "YAML holidays for days after the last session the installed "
            "exchange-calendars knows (`XSHG: [2027-01-01, 2027-02-08]`; calendar or venue codes). Such days "
            "are judged as weekdays minus these holidays, and the checks say so with a WARN naming the "
            "library version to upgrade. Empty: weekdays.",
            read_by=("core/calendars.py",),
        ),
    ),
    *_group(
        "Dagster's storage (Postgres)",
        Setting(
            "DAGSTER_PG_HOST",
            "127.0.0.1",
            "Postgres host for Dagster's run, event-log and schedule storage.",
            read_by=_PG,
        ),
        Setting("DAGSTER_PG_PORT", "55432", "Its port.", read_by=(*_PG, "scripts/stack.py")),
        Setting("DAGSTER_PG_USER", "postgres", "Its user.", read_by=_PG),
        Setting("DAGSTER_PG_PASSWORD", "", "Its password.", secret=True, read_by=_PG),
        Setting("DAGSTER_PG_DB", "dagster", "Its database.", read_by=(*_PG, "scripts/stack.py")),
    ),
    *_group(
        "TimescaleDB (minute bars, monthly K-line)",
        Setting(
            "TIMESCALE_HOST",
            "127.0.0.1",
            "TimescaleDB host holding minute bars and the monthly K-line.",
            read_by=(*_TSDB, "scripts/stack.py"),
        ),
        Setting("TIMESCALE_PORT", "55432", "Its port.", read_by=(*_TSDB, "scripts/stack.py")),
        Setting("TIMESCALE_USER", "postgres", "Its user.", read_by=_TSDB),
        Setting("TIMESCALE_PASSWORD", "", "Its password.", secret=True, read_by=_TSDB),
        Setting("TIMESCALE_DB", "marketdata", "Its database.", read_by=(*_TSDB, "scripts/stack.py")),
        Setting(
            "TIMESCALE_SSLMODE",
            "prefer",
            "libpq sslmode (disable, prefer, require, verify-full).",
            read_by=_TSDB,
        ),
        Setting(
            "TIMESCALE_POOL_SIZE",
            "4",
            "Connections per process (forced to 1 on a single-session server such as PGlite).",
            read_by=_TSDB,
        ),
        Setting(
            "MINUTE_BARS_MIGRATE_MAX_ROWS",
            "20000000",
            "A plain stock_1min_qfq table holding at most this "
            "many rows is made a hypertable by the next run, its rows migrated; above it the run fails once, "
            "naming the command that migrates it.",
            read_by=("defs/equities/minute_bars.py",),
        ),
        Setting(
            "STACK_PGLITE_PORT",
            "55433",
            "Port of the local stack's PGlite server: PostgreSQL 17 + "
            "TimescaleDB with the TSL features (continuous aggregates), database postgres, one session at a "
            "time.",
            stack_only=True,
            read_by=("scripts/stack.py",),
        ),
    ),
    *_group(
        "MongoDB (alphas)",
        Setting(
            "MONGODB_URI",
            "mongodb://127.0.0.1:57017",
            "MongoDB URI, without credentials.",
            read_by=(*_TSDB, "scripts/stack.py"),
        ),
        Setting(
            "MONGODB_USERNAME",
            "",
            "MongoDB user (authSource admin); empty means `marketdata` on the local "
            "stack's server, else no authentication.",
            read_by=_TSDB,
        ),
        Setting("MONGODB_PASSWORD", "", "MongoDB password.", secret=True, read_by=_TSDB),
    ),
    *_group(
        LIVE_GROUP,
        Setting(
            "MARKETDATA_COMPILED",
            "auto",
            "The collector's compiled hot path (Cython, built by `make install`): `auto` uses it when "
            "built (a warning names what runs in pure Python when it is not), `1` requires it (an import "
            "fails without it), `0` runs the pure-Python originals, which give identical results.",
            stack_only=True,
            read_by=("core/compiled.py",),
        ),
        Setting(
            "NATS_URL",
            "nats://127.0.0.1:54222",
            "NATS server (with JetStream) the live collector publishes "
            "to; the local stack starts one on this port. docker/compose.yaml runs one (`nats`).",
            read_by=("apps/collector.py", "scripts/stack.py", "apps/cli/live.py"),
        ),
        Setting(
            "NATS_TOKEN",
            "",
            "The NATS server's token (its `authorization`); empty: the local stack's generated "
            "one when NATS_URL is on this machine, else none.",
            secret=True,
            read_by=("stores/jetstream.py", "scripts/stack.py"),
        ),
        Setting(
            "NATS_STREAM_REPLICAS",
            "1",
            "Copies of the live stream on a JetStream cluster (deploy/k8s runs three "
            "servers and sets 3); the local stack's single server takes 1.",
            read_by=("apps/cli/live.py",),
        ),
        Setting(
            "COLLECTOR_METRICS_HOST",
            "127.0.0.1",
            "Address the live collector (`marketdata collect`) serves "
            "its /metrics, /health and /status on, and where the `live_collector_status` sensor asks "
            "(docker: the `collector` service, which listens on every address).",
            read_by=("apps/cli/live.py", "defs/live/health.py"),
        ),
        Setting(
            "COLLECTOR_METRICS_PORT",
            "9109",
            "Its port (0: a free one; `off`: no endpoints).",
            read_by=("apps/cli/live.py", "defs/live/health.py"),
        ),
        Setting(
            "LIVE_PARTITIONS_START",
            "2026-11-01",
            "The first day (UTC) of the hourly live partitions: when "
            "your live capture began (earlier hours have no landing files to load).",
            read_by=("defs/live/partitions.py",),
        ),
        Setting(
            "COLLECTOR_PART",
            "",
            "This collector's part of each venue's universe, `K/N` (every instrument in "
            "exactly one of N parts, by a stable hash of its name; the channels of every instrument in part "
            "1); empty: all of it. `--part` wins.",
            read_by=("apps/cli/live.py",),
        ),
        Setting(
            "COLLECTOR_RESOLVE_S",
            "3600",
            "How often the collector resolves a rule's universe again from the "
            "instrument master and applies it without a restart (0: never). `--resolve-every-s` wins.",
            read_by=("apps/cli/live.py",),
        ),
        Setting(
            "SYMBOLS",
            "",
            "The collector's instruments, a comma list of VENUE:NAME (a bare "
            "name: Binance's, or the only enabled venue's; empty: each enabled venue's universe resolved "
            "today from the instrument master, with the sources config's explicit instruments); "
            "`--instruments` wins.",
            read_by=("apps/cli/live.py",),
        ),
        Setting(
            "CLICKHOUSE_DIRECT_WRITE",
            "false",
            "(or `clickhouse_direct_write`) The "
            "collector also writes its trades to ClickHouse `trades_live` in batches (for a machine without "
            "NATS, with `--no-nats`).",
            read_by=("apps/cli/live.py",),
        ),
        Setting(
            "REDIS_CACHE",
            "false",
            "(or `redis_cache`) The collector keeps the last "
            "trade, ticker and top of book per instrument in Redis (`md:latest:<venue>:<instrument>` "
            "hashes); `scripts/stack up` starts redis-server when it is on (docker: `--profile cache`).",
            read_by=("apps/cli/live.py", "scripts/stack.py"),
        ),
        Setting(
            "REDIS_URL",
            "redis://127.0.0.1:56379/0",
            "Redis of the latest-state cache (REDIS_CACHE); the local "
            "stack starts one on this port when the cache is on (and for `make test`); docker: the `redis` "
            "service.",
            read_by=("apps/cli/live.py", "scripts/stack.py"),
        ),
        Setting(
            "REDIS_PASSWORD",
            "",
            "Redis' password (`requirepass`); empty: the local stack's generated one when "
            "REDIS_URL is on this machine, else none.",
            secret=True,
            read_by=("stores/redis_cache.py", "scripts/stack.py"),
        ),
    ),
    *_group(
        "ClickHouse (ticks, bars, archives)",
        Setting(
            "CLICKHOUSE_DSN",
            "",
            "http(s)://host:port of a ClickHouse server, chdb:///path (the engine "
            "inside this one process only), or chdb://memory. Empty means the local stack's engine server: "
            "http://127.0.0.1:<STACK_CLICKHOUSE_PORT>, serving <state dir>/clickhouse to every local "
            "process.",
            read_by=(*_TSDB, "orchestration/pools.py", "scripts/stack.py"),
        ),
        Setting(
            "STACK_CLICKHOUSE_PORT",
            "58123",
            "Port of the local stack's ClickHouse engine server (chDB behind "
            "ClickHouse's HTTP interface; CLICKHOUSE_DSN empty).",
            stack_only=True,
            read_by=("core/settings.py", "scripts/stack.py"),
        ),
        Setting("CLICKHOUSE_USER", "default", "ClickHouse user (server DSNs only).", read_by=_TSDB),
        Setting(
            "CLICKHOUSE_PASSWORD", "", "ClickHouse password (server DSNs only).", secret=True, read_by=_TSDB
        ),
        Setting(
            "CLICKHOUSE_DATABASE",
            "marketdata",
            "ClickHouse database of the tick tables (created if missing).",
            read_by=_TSDB,
        ),
        Setting(
            "CLICKHOUSE_CLUSTER",
            "",
            "Cluster mode (docs/scale-out.md): the name of a cluster of the "
            "server's remote_servers; the tables are created ON CLUSTER as Replicated*MergeTree tables "
            "behind Distributed ones sharded by instrument, inserts use a quorum and deduplication tokens. "
            "Empty: one node (the embedded engine or one server).",
            stack_only=True,
            read_by=("stores/clickhouse/cluster.py",),
        ),
    ),
    *_group(
        "Market-data sources",
        Setting(
            "TICKS_PROVIDERS_CONFIG",
            "",
            "The sources config file (rate limits, concurrency, workers, "
            "retries, instrument universes; see its section below). Empty means "
            "marketdata_assets/sources/data_providers.yaml.",
            read_by=("sources/config.py", "resources/sources.py", "apps/cli/equities.py"),
        ),
        Setting(
            "TUSHARE_BASE_URL",
            "",
            "Tushare Pro API host" + _FILE_URL.format("http://api.waditu.com"),
            read_by=_SOURCES,
        ),
        Setting(
            "TUSHARE_TOKEN",
            "",
            "Tushare Pro token; A-share runs fail without it (the variable's name is "
            "sources.tushare.token_env).",
            secret=True,
            read_by=("sources/tushare/client.py", "resources/sources.py"),
        ),
        Setting(
            "YAHOO_BASE_URL",
            "",
            "Yahoo Finance chart v8 host" + _FILE_URL.format("https://query2.finance.yahoo.com"),
            read_by=_SOURCES,
        ),
        Setting(
            "BINANCE_BASE_URL",
            "",
            "Binance spot REST host" + _FILE_URL.format("https://api.binance.com"),
            read_by=_SOURCES,
        ),
        Setting(
            "BINANCE_UM_BASE_URL",
            "",
            "Binance USD-M futures REST host" + _FILE_URL.format("https://fapi.binance.com"),
            read_by=_SOURCES,
        ),
        Setting(
            "OKX_BASE_URL", "", "OKX v5 host" + _FILE_URL.format("https://www.okx.com"), read_by=_SOURCES
        ),
        Setting(
            "DERIBIT_BASE_URL",
            "",
            "Deribit v2 host" + _FILE_URL.format("https://www.deribit.com"),
            read_by=_SOURCES,
        ),
        Setting(
            "BINANCE_ARCHIVE_BASE_URL",
            "",
            "Host of the Binance daily and monthly archives (.zip + "
            ".zip.CHECKSUM, data.binance.vision's layout)" + _FILE_URL.format("https://data.binance.vision"),
            read_by=_SOURCES,
        ),
        Setting(
            "BINANCE_DUMPS_LANDING_DIR",
            "",
            "Where data.binance.vision daily dump CSVs are dropped; the "
            "binance_dump_files sensor watches it. Empty means <state dir>/landing/binance_dumps.",
            read_by=("defs/archives/sensors.py", "defs/archives/dumps.py"),
        ),
    ),
    *_group(
        "The alpha API and the alpha store",
        Setting(
            "ALPHA_API_BASE_URL",
            "https://api.worldquantbrain.com",
            "Base URL of the BRAIN-style alpha API (`make run` and the tests point it at the replay server).",
            read_by=(*_TSDB, "apps/demo.py"),
        ),
        Setting(
            "ALPHA_API_ACCOUNTS",
            "main",
            "Comma-separated account names: the account dimension of "
            "alpha_files (read when the code location loads). Each NAME needs ALPHA_API_USER_<NAME> and "
            "ALPHA_API_PASSWORD_<NAME>.",
            read_by=("defs/alphas/partitions.py", "resources/alphas.py", "apps/cli/alphas.py"),
        ),
        Setting("ALPHA_API_REQUESTS_PER_MINUTE", "240", "Request rate limit per account.", read_by=_TSDB),
        Setting("ALPHA_API_MAX_CONCURRENCY", "4", "Requests in flight per account.", read_by=_TSDB),
        Setting(
            "ALPHA_LANDING_DIR",
            "",
            "Alpha landing area: fetched files in "
            "alphas/<TYPE>/<YYYY-MM>/<account>/<id>.json and dropped packages in packages/ (the "
            "alpha_landing_files sensor watches it). Empty means <state dir>/landing/alpha_api.",
            read_by=(
                "defs/alphas/assets.py",
                "defs/alphas/sensors.py",
                "defs/alphas/coverage.py",
                "apps/cli/alphas.py",
            ),
        ),
        Setting(
            "ALPHA_PACKAGES_DIR",
            "",
            "Where alpha_packages builds monthly packages "
            "(<TYPE>/<YYYY-MM>/<account>.jsonl.gz + .manifest.json). Empty means <state dir>/alpha_packages.",
            read_by=("defs/alphas/assets.py",),
        ),
        Setting(
            "ALPHA_DB_REGULAR",
            "regular_alphas",
            "MongoDB database of REGULAR alphas (AlphaStoreResource's db_name_regular).",
            read_by=_TSDB,
        ),
        Setting(
            "ALPHA_DB_SUPER",
            "super_alphas",
            "MongoDB database of SUPER alphas (AlphaStoreResource's db_name_super).",
            read_by=_TSDB,
        ),
        Setting(
            "ALPHA_COLLECTION",
            "alphas",
            "Collection name in both alpha databases; the import ledger is "
            "import_ledger in the regular database.",
            read_by=_TSDB,
        ),
    ),
    *_group(
        "Operations: demo and metrics",
        Setting(
            "MARKETDATA_DEMO",
            "auto",
            "What `make run` serves replays for: auto (every source whose base URL "
            "or credentials are not set), on (every source), off (none: the real vendors).",
            read_by=("apps/demo.py", "apps/main.py", "apps/exporter.py"),
        ),
        Setting(
            "METRICS_HOST",
            "127.0.0.1",
            "Address the Prometheus exporter (/metrics, /health, /status) that `make run` starts listens on.",
            read_by=("apps/exporter.py", "apps/demo.py"),
        ),
        Setting("METRICS_PORT", "9108", "Its port.", read_by=("apps/exporter.py", "apps/demo.py")),
        Setting(
            "PROMETHEUS_MULTIPROC_DIR",
            "",
            "Where every process (runs, steps, sensors) writes its metric "
            "samples for the exporter to merge. Empty means <state dir>/metrics.",
            read_by=("core/metrics.py", "apps/exporter.py"),
        ),
    ),
)

# Variables read beside the table: DAGSTER_HOME (derived from the state dir when unset; `.env` gets its
# effective value), and the credentials of each alpha API account.
MORE_VARIABLES: tuple[Setting, ...] = (
    *_group(
        "State, landing areas and sensors",
        Setting(
            "DAGSTER_HOME",
            "",
            "Dagster instance directory; holds a link to the repo's instance/dagster.yaml "
            "(created automatically). Empty means <state dir>/dagster_home.",
            read_by=("core/settings.py",),
        ),
    ),
    *_group(
        "The alpha API and the alpha store",
        Setting(
            "ALPHA_API_USER_<NAME>",
            "",
            "User of account NAME of ALPHA_API_ACCOUNTS (upper-cased, other "
            "characters as _); read when a fetch starts, never in config, logs or the UI.",
            secret=True,
            read_by=("sources/alpha_api.py",),
        ),
        Setting(
            "ALPHA_API_PASSWORD_<NAME>", "", "Its password.", secret=True, read_by=("sources/alpha_api.py",)
        ),
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def reference(declared: tuple[Setting, ...] = ()) -> str:
    """Every variable as Markdown tables by group (docs/configuration.md, written by
    apps/configuration.py): name, default (a secret's never shown), meaning, the files that read it;
    `declared`: those the layers above declare (each live venue's ENABLE_<VENUE>, in its group)."""
    from marketdata_assets.core.markdown import prose, table

    every = SETTINGS + declared + MORE_VARIABLES
    sections = []
    for group in dict.fromkeys(s.group for s in every):
        rows = [
            (
                f"`{s.name}`",
                _shown_default(s),
                prose(s.description),
                ", ".join(f"`{path}`" for path in s.read_by),
            )
            for s in every
            if s.group == group
        ]
        sections.append(f"### {group}\n\n" + table(["variable", "default", "meaning", "read by"], rows))
    return "\n\n".join(sections)


def _shown_default(setting: Setting) -> str:
    if setting.secret:
        return "(secret, no default)"
    return f"`{setting.default}`" if setting.default else "*(empty)*"


def known(name: str) -> bool:
    """Whether the settings table declares `name`."""
    return name in _BY_NAME


def is_secret(name: str) -> bool:
    return name in _BY_NAME and _BY_NAME[name].secret


def get(name: str) -> str:
    """The variable's value, or its documented default (a stack server's credential: the generated one
    while the server it opens is the local stack's)."""
    setting = _BY_NAME[name]
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    return _generated(name) or setting.default


# The local stack's servers let no one in without credentials, generated once per state directory
# (<state dir>/stack-secrets, mode 0600). A credential left unset takes its generated value while the
# address it opens is the stack's own, so a server elsewhere never receives the stack's secret.
STACK_SECRET_NAMES = ("postgres", "mongodb", "clickhouse", "nats", "redis")
_STACK_SECRET_OF = {
    "DAGSTER_PG_PASSWORD": "postgres",
    "TIMESCALE_PASSWORD": "postgres",
    "MONGODB_PASSWORD": "mongodb",
    "CLICKHOUSE_PASSWORD": "clickhouse",
    "NATS_TOKEN": "nats",
    "REDIS_PASSWORD": "redis",
}
_STACK_CREDENTIALS = {**{name: "" for name in _STACK_SECRET_OF}, "MONGODB_USERNAME": "marketdata"}
_LOCAL_HOSTS = ("127.0.0.1", "localhost")


def _stack_serves(name: str) -> bool:
    """Whether the server `name` opens is the local stack's (scripts/stack.py serves these addresses)."""
    from urllib.parse import urlsplit

    if name == "DAGSTER_PG_PASSWORD":
        return get("DAGSTER_PG_HOST") in _LOCAL_HOSTS
    if (
        name == "TIMESCALE_PASSWORD"
    ):  # the stack's Postgres, or its PGlite server (the same role and password)
        return get("TIMESCALE_HOST") in _LOCAL_HOSTS and get("TIMESCALE_PORT") in (
            get("DAGSTER_PG_PORT"),
            get("STACK_PGLITE_PORT"),
        )
    if name == "CLICKHOUSE_PASSWORD":
        return clickhouse_dsn() == stack_clickhouse_url()
    url = get(
        {
            "MONGODB_PASSWORD": "MONGODB_URI",
            "MONGODB_USERNAME": "MONGODB_URI",
            "NATS_TOKEN": "NATS_URL",
            "REDIS_PASSWORD": "REDIS_URL",
        }[name]
    )
    return "," not in url and urlsplit(url).hostname in _LOCAL_HOSTS


def mongo_auth() -> dict[str, str]:
    """pymongo's credential options from MONGODB_USERNAME/MONGODB_PASSWORD (none without a user)."""
    user = get("MONGODB_USERNAME")
    return {"username": user, "password": get("MONGODB_PASSWORD"), "authSource": "admin"} if user else {}


def stack_secrets() -> dict[str, str]:
    """The local stack's generated secrets, one per server, created on first use (and completed when a
    server was added since); the file is the owner's alone."""
    import fcntl
    import secrets

    root = state_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / "stack-secrets"
    with open(root / ".stack-secrets.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = {}
        if path.exists():
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and value:
                    known[key] = value
        if all(known.get(key) for key in STACK_SECRET_NAMES):
            return known
        known = {key: known.get(key) or secrets.token_urlsafe(24) for key in STACK_SECRET_NAMES} | known
        write_private(
            path,
            "# The local stack's credentials (scripts/stack.py); an exported variable wins.\n"
            + "".join(f"{key}={value}\n" for key, value in known.items()),
        )
        return known


def write_private(path: Path, text: str) -> Path:
    """A file only its owner can read (it holds a secret), written whole: never readable by others, even
    while it is being written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(text)
    tmp.replace(path)
    return path


def landing_sensor_interval_s() -> int:
    value = get("LANDING_SENSOR_INTERVAL_S")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"LANDING_SENSOR_INTERVAL_S must be a whole number of seconds >= 1, got {value!r}")
    return int(value)


def nats_stream_replicas() -> int:
    value = get("NATS_STREAM_REPLICAS")
    if value not in ("1", "2", "3", "4", "5"):
        raise ValueError(
            f"NATS_STREAM_REPLICAS must be 1 to 5 (JetStream keeps at most 5 copies), got {value!r}"
        )
    return int(value)


def minute_bars_migrate_max_rows() -> int:
    value = get("MINUTE_BARS_MIGRATE_MAX_ROWS").replace("_", "").replace(",", "")
    if not value.isdigit():
        raise ValueError(f"MINUTE_BARS_MIGRATE_MAX_ROWS must be a whole number of rows, got {value!r}")
    return int(value)


def state_dir() -> Path:
    configured = os.environ.get("MARKETDATA_STATE_DIR")
    return Path(configured).resolve() if configured else PROJECT_ROOT / ".stack"


def _directory(name: str, *default: str) -> Path:
    """The directory a variable names, else `default` under the state dir."""
    configured = os.environ.get(name)
    return Path(configured).resolve() if configured else state_dir().joinpath(*default)


def minute_bars_landing_dir() -> Path:
    return _directory("MINUTE_BARS_LANDING_DIR", "landing", "minute_bars")


def binance_dumps_landing_dir() -> Path:
    return _directory("BINANCE_DUMPS_LANDING_DIR", "landing", "binance_dumps")


def alpha_landing_dir() -> Path:
    return _directory("ALPHA_LANDING_DIR", "landing", "alpha_api")


def alpha_packages_dir() -> Path:
    return _directory("ALPHA_PACKAGES_DIR", "alpha_packages")


def export_dir() -> Path:
    return _directory("MARKETDATA_EXPORT_DIR", "export")


def live_landing_dir() -> Path:
    """The live collector's raw landing files (<venue>/<channel>/<hour>.jsonl.zst)."""
    return state_dir() / "landing" / "live"


def quarantine_dir(domain: str) -> Path:
    """Rejected input of a domain, with a reason file beside each item."""
    return state_dir() / "quarantine" / domain


def stack_clickhouse_url() -> str:
    """The local stack's ClickHouse engine server."""
    return f"http://127.0.0.1:{get('STACK_CLICKHOUSE_PORT')}"


def clickhouse_dsn() -> str:
    return get("CLICKHOUSE_DSN") or stack_clickhouse_url()


INSTANCE_YAML = PROJECT_ROOT / "instance" / "dagster.yaml"


def dagster_home() -> Path:
    """DAGSTER_HOME: <state dir>/dagster_home, holding a link to the repo's instance/dagster.yaml
    (not at the repo root, where `dagster dev` would warn that a dagster.yaml there is not used)."""
    configured = os.environ.get("DAGSTER_HOME")
    if configured:
        return Path(configured)
    home = state_dir() / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if link.is_symlink() and link.resolve() != INSTANCE_YAML.resolve():
        link.unlink()  # a link made before the file moved
    if not link.exists():
        link.symlink_to(INSTANCE_YAML)
    return home


def metrics_dir() -> Path:
    return _directory("PROMETHEUS_MULTIPROC_DIR", "metrics")


def apply_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Fill unset variables with their defaults (dagster.yaml needs every one of them set)."""
    environ = os.environ if environ is None else environ
    for setting in SETTINGS:
        environ.setdefault(setting.name, setting.default)
    if environ is os.environ:
        for name in _STACK_CREDENTIALS:
            if not environ.get(name):
                environ[name] = get(name)
    environ["MARKETDATA_STATE_DIR"] = str(state_dir())
    if not environ.get("CLICKHOUSE_DSN"):
        environ["CLICKHOUSE_DSN"] = clickhouse_dsn()
    environ["DAGSTER_HOME"] = str(dagster_home())
    if not environ.get("PROMETHEUS_MULTIPROC_DIR"):
        environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir())
    Path(environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    return environ


DOTENV = PROJECT_ROOT / ".env"


_UNSAFE_IN_DOTENV = set("$}\"'\\#\n")  # a default holding one of these cannot sit inside ${NAME:-...}
# Empty means "under the state directory", resolved when read: the .env leaves them empty unless exported,
# so a MARKETDATA_STATE_DIR exported later moves them too (a .env default cannot name another variable).
# DAGSTER_HOME and PROMETHEUS_MULTIPROC_DIR stay concrete: Dagster and prometheus-client read them
# before any of our code runs (`make` rewrites the .env with the state dir of its run).
_DERIVED_WHEN_EMPTY = frozenset({"CLICKHOUSE_DSN"})


def _generated(name: str) -> str:
    """A stack credential's generated value while its server is the stack's (never an exported value)."""
    if name not in _STACK_CREDENTIALS or not _stack_serves(name):
        return ""
    return _STACK_CREDENTIALS[name] or stack_secrets()[_STACK_SECRET_OF[name]]


def write_dotenv(path: Path = DOTENV) -> Path:
    """The project `.env` that `dagster dev`, `dg` and `dagster asset materialize` read from the
    working directory, so the plain tools work in an activated venv. Dagster lets `.env` win over
    the environment, so every line is `NAME=${NAME:-default}`: python-dotenv (which Dagster reads
    it with) expands it from the environment of the reading process, so a variable you export
    always wins and the file only fills in what is unset. Defaults are the effective values now
    (the settings table's, or what you exported when it was written). Secrets are never copied
    from the environment: a secret's line is `${NAME:-}` unless you wrote a value into it (kept on
    regeneration; a value written there is your choice and wins); its default is the local stack's
    generated credential while its server is the stack's (the file is the owner's alone)."""
    old = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                old[name.strip()] = value
    environ = apply_defaults(dict(os.environ))
    lines = [
        (
            "# Generated by `make env` from marketdata_assets/core/settings.py; regenerated by `make "
            "run`/`make test`."
        ),
        "# NAME=${NAME:-default}: a variable set in your environment wins; the default fills in when unset.",
        "# A secret's line may be edited to hold its value (kept on regeneration; it then wins).",
    ]
    effective = {
        s.name: os.environ.get(s.name, "") if s.name in _DERIVED_WHEN_EMPTY else environ[s.name]
        for s in SETTINGS
    }
    for name, value, secret in [(s.name, effective[s.name], s.secret) for s in SETTINGS] + [
        ("DAGSTER_HOME", environ["DAGSTER_HOME"], False)
    ]:
        written = old.get(name, "")
        if secret and written and not written.startswith(f"${{{name}:-"):
            lines.append(f"{name}={written}")
        elif secret or not _UNSAFE_IN_DOTENV & set(value):
            lines.append(f"{name}=${{{name}:-{_generated(name) if secret else value}}}")
        else:
            lines.append(f"# {name}: its value holds a character a .env default cannot; export it instead")
    return write_private(path, "\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    """`python -m marketdata_assets.core.settings env` prints the effective variables (secrets masked);
    `... exec CMD ARGS` runs CMD with the defaults applied."""
    if argv[:1] == ["exec"] and len(argv) > 1:
        apply_defaults()
        os.execvp(argv[1], argv[1:])
    if argv[:1] == ["dotenv"]:
        print(f"wrote {write_dotenv()}")
        return 0
    if argv[:1] == ["env"]:
        apply_defaults()
        for setting in SETTINGS:
            value = os.environ[setting.name]
            print(f"{setting.name}={'***' if setting.secret and value else value}")
        print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}")
        return 0
    print("usage: python -m marketdata_assets.core.settings env | dotenv | exec CMD [ARGS...]", flush=True)
    return 2


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
