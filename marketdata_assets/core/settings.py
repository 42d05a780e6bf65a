"""Environment variables the project reads, with the local-stack defaults.

One table so the README, the resources, the stack script and docker/ agree on names.
Values are read at call time (never cached at import) so tests can point a fresh
process at other servers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    description: str
    secret: bool = False
    stack_only: bool = False  # only the local stack reads it (not docker/)


SETTINGS: tuple[Setting, ...] = (
    Setting("MARKETDATA_STATE_DIR", "", "Writable state: landing areas, quarantine, the embedded ClickHouse, "
            "the local stack's data and logs. Empty means <repo>/.stack."),
    Setting("MINUTE_BARS_LANDING_DIR", "", "Where A-share 1-minute CSV files are dropped (watched by a sensor). "
            "Empty means <state dir>/landing/minute_bars."),
    Setting("LANDING_SENSOR_INTERVAL_S", "30", "Seconds between two looks of a landing-area sensor (minute-bar "
            "CSVs, Binance dump files, alpha files and packages); read when the definitions load."),
    # Timestamps from outside (core/plausibility.py): every parser and writer rejects rows outside these.
    Setting("TIMESTAMP_FUTURE_TOLERANCE_MINUTES", "10", "How far after now (in the venue's time zone) a timestamp "
            "from a file or vendor may lie before its row is rejected as implausible (a 2062 typo for 2026)."),
    Setting("TIMESTAMP_EARLIEST", "", "Per-venue earliest plausible day, overriding the built-in table of first "
            "sessions and launches (SSE 1990-12-19, BINANCE 2017-07-14, ALPHA_API 2016-01-01, ...): "
            "VENUE=YYYY-MM-DD items separated by commas. Older rows are rejected as implausible."),
    # Dagster's own storage (read by dagster.yaml).
    Setting("DAGSTER_PG_HOST", "127.0.0.1", "Postgres host for Dagster run/event/schedule storage."),
    Setting("DAGSTER_PG_PORT", "55432", "Its port."),
    Setting("DAGSTER_PG_USER", "postgres", "Its user."),
    Setting("DAGSTER_PG_PASSWORD", "", "Its password.", secret=True),
    Setting("DAGSTER_PG_DB", "dagster", "Its database."),
    # The market database (TimescaleDB).
    Setting("TIMESCALE_HOST", "127.0.0.1", "TimescaleDB host for minute bars and the monthly K-line."),
    Setting("TIMESCALE_PORT", "55432", "Its port."),
    Setting("TIMESCALE_USER", "postgres", "Its user."),
    Setting("TIMESCALE_PASSWORD", "", "Its password.", secret=True),
    Setting("TIMESCALE_DB", "marketdata", "Its database."),
    Setting("TIMESCALE_SSLMODE", "prefer", "libpq sslmode (disable, prefer, require, verify-full)."),
    Setting("TIMESCALE_POOL_SIZE", "4", "Connections per process (1 for a single-session server such as PGlite)."),
    Setting("MINUTE_BARS_MIGRATE_MAX_ROWS", "20000000", "A plain stock_1min_qfq table holding at most this many "
            "rows is made a hypertable by the next bootstrap, its rows migrated; above it the run fails once "
            "saying how to migrate."),
    Setting("MARKETDATA_HOLIDAYS_FILE", "", "YAML holiday file for days beyond what exchange-calendars knows (e.g. "
            "`XSHG: [2027-01-01]`, calendar or venue codes); those days are judged provisionally (WARN). Empty: weekdays."),
    Setting("STACK_PGLITE_PORT", "55433", "Port of the local stack's PGlite server: PostgreSQL 17 + TimescaleDB "
            "with the TSL features (continuous aggregates), database postgres, one session at a time.", stack_only=True),
    # MongoDB.
    Setting("MONGODB_URI", "mongodb://127.0.0.1:57017", "MongoDB URI without credentials."),
    Setting("MONGODB_USERNAME", "", "MongoDB user (empty: no auth)."),
    Setting("MONGODB_PASSWORD", "", "MongoDB password.", secret=True),
    # Live capture (issue #23): the collector publishes normalized messages to NATS JetStream.
    Setting("NATS_URL", "nats://127.0.0.1:54222", "NATS server (with JetStream) the live collector publishes to; "
            "the local stack starts one on this port. docker/ has no NATS service yet.", stack_only=True),
    # ClickHouse.
    Setting("CLICKHOUSE_DSN", "", "chdb:///path (embedded engine), chdb://memory, or http(s)://host:port of a "
            "server. Empty means chdb://<state dir>/clickhouse."),
    Setting("CLICKHOUSE_USER", "default", "ClickHouse user (server DSNs only)."),
    Setting("CLICKHOUSE_PASSWORD", "", "ClickHouse password (server DSNs only).", secret=True),
    Setting("CLICKHOUSE_DATABASE", "marketdata", "ClickHouse database holding the tick tables."),
    # Market-data sources of the ticks domain (seeds 002, 003).
    Setting("TICKS_PROVIDERS_CONFIG", "", "The sources config file (rate limits, concurrency, workers, universes). "
            "Empty means marketdata_assets/sources/data_providers.yaml."),
    Setting("TUSHARE_BASE_URL", "http://api.waditu.com", "Tushare Pro API host."),
    Setting("TUSHARE_TOKEN", "", "Tushare Pro token; A-share runs fail without it.", secret=True),
    Setting("YAHOO_BASE_URL", "https://query2.finance.yahoo.com", "Yahoo Finance chart v8 host."),
    Setting("BINANCE_BASE_URL", "https://api.binance.com", "Binance spot REST host."),
    Setting("BINANCE_UM_BASE_URL", "https://fapi.binance.com", "Binance USD-M futures REST host."),
    Setting("OKX_BASE_URL", "https://www.okx.com", "OKX v5 host."),
    Setting("DERIBIT_BASE_URL", "https://www.deribit.com", "Deribit v2 host."),
    Setting("BINANCE_ARCHIVE_BASE_URL", "https://data.binance.vision", "data.binance.vision host of the Binance "
            "daily and monthly archives (.zip + .zip.CHECKSUM)."),
    Setting("BINANCE_DUMPS_LANDING_DIR", "", "Where data.binance.vision daily dump CSVs are dropped (watched by a "
            "sensor). Empty means <state dir>/landing/binance_dumps."),
    # The alpha API and the alpha store (seed 000).
    Setting("ALPHA_API_BASE_URL", "https://api.worldquantbrain.com", "Base URL of the BRAIN-style alpha API "
            "(a replay server's in tests and `make run`)."),
    Setting("ALPHA_API_ACCOUNTS", "main", "Comma-separated account names: the account dimension of the alpha "
            "file partitions. Each NAME needs ALPHA_API_USER_<NAME> and ALPHA_API_PASSWORD_<NAME>."),
    Setting("ALPHA_API_REQUESTS_PER_MINUTE", "240", "Request rate limit per account."),
    Setting("ALPHA_API_MAX_CONCURRENCY", "4", "Requests in flight per account."),
    Setting("ALPHA_LANDING_DIR", "", "Alpha landing area: fetched files in alphas/<TYPE>/<YYYY-MM>/<account>/<id>.json "
            "and dropped packages in packages/ (watched by a sensor). Empty means <state dir>/landing/alpha_api."),
    Setting("ALPHA_PACKAGES_DIR", "", "Where monthly alpha packages are built (<TYPE>/<YYYY-MM>/<account>.jsonl.gz "
            "+ manifest). Empty means <state dir>/alpha_packages."),
    Setting("ALPHA_DB_REGULAR", "regular_alphas", "MongoDB database of REGULAR alphas (seed's db_name_regular)."),
    Setting("ALPHA_DB_SUPER", "super_alphas", "MongoDB database of SUPER alphas (seed's db_name_super)."),
    Setting("ALPHA_COLLECTION", "alphas", "Collection name in both alpha databases."),
    # Operations.
    Setting("MARKETDATA_DEMO", "auto", "What `make run` serves replays for: auto (every source whose base URL or "
            "credentials are not set), on (every source), off (none: the real vendors)."),
    Setting("METRICS_HOST", "127.0.0.1", "Address the Prometheus exporter (/metrics, /health, /status) listens on."),
    Setting("METRICS_PORT", "9108", "Its port."),
    Setting("PROMETHEUS_MULTIPROC_DIR", "", "Where every process (runs, steps, sensors) writes its metric samples for "
            "the exporter to merge. Empty means <state dir>/metrics."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str) -> str:
    """The variable's value, or its documented default."""
    setting = _BY_NAME[name]
    value = os.environ.get(name)
    return value if value not in (None, "") else setting.default


def landing_sensor_interval_s() -> int:
    value = get("LANDING_SENSOR_INTERVAL_S")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"LANDING_SENSOR_INTERVAL_S must be a whole number of seconds >= 1, got {value!r}")
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


def live_landing_dir() -> Path:
    """The live collector's raw landing files (<venue>/<channel>/<hour>.jsonl.zst)."""
    return state_dir() / "landing" / "live"


def quarantine_dir(domain: str) -> Path:
    """Rejected input of a domain, with a reason file beside each item."""
    return state_dir() / "quarantine" / domain


def clickhouse_dsn() -> str:
    return get("CLICKHOUSE_DSN") or f"chdb://{state_dir() / 'clickhouse'}"


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


def write_dotenv(path: Path = DOTENV) -> Path:
    """The project `.env` that `dagster dev`, `dg` and `dagster asset materialize` read from the
    working directory, so the plain tools work in an activated venv. Dagster lets `.env` win over
    the environment, so every line is `NAME=${NAME:-default}`: python-dotenv (which Dagster reads
    it with) expands it from the environment of the reading process, so a variable you export
    always wins and the file only fills in what is unset. Defaults are the effective values now
    (the settings table's, or what you exported when it was written). Secrets are never copied
    from the environment: a secret's line is `${NAME:-}` unless you wrote a value into it (kept on
    regeneration; a value written there is your choice and wins)."""
    old = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                old[name.strip()] = value
    environ = apply_defaults(dict(os.environ))
    lines = ["# Generated by `make env` from marketdata_assets/core/settings.py; regenerated by `make run`/`make test`.",
             "# NAME=${NAME:-default}: a variable set in your environment wins; the default fills in when unset.",
             "# A secret's line may be edited to hold its value (kept on regeneration; it then wins)."]
    for name, value, secret in [(s.name, environ[s.name], s.secret) for s in SETTINGS] + \
            [("DAGSTER_HOME", environ["DAGSTER_HOME"], False)]:
        written = old.get(name, "")
        if secret and written and written != f"${{{name}:-}}":
            lines.append(f"{name}={written}")
        elif secret or not _UNSAFE_IN_DOTENV & set(value):
            lines.append(f"{name}=${{{name}:-{'' if secret else value}}}")
        else:
            lines.append(f"# {name}: its value holds a character a .env default cannot; export it instead")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


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
