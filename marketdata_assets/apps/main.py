"""The main job of `make run`: materialize the whole asset graph on offline replay data.

Runs in-process against the instance in DAGSTER_HOME, step by step (stores, minute bars, alphas,
ticks, the Parquet export, upkeep), on the replays of marketdata_assets.apps.demo unless configured
for real; run again, the loads are skipped and only the refreshes redo work.
The steps: docs/cli.md, "`make run`'s job".
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from marketdata_assets.core import calendars, settings
from marketdata_assets.orchestration.sensing import range_tags

# Codes with their names, and the layouts they are dropped in (the variants seen in real files).
REPLAY_MINUTE_FILES = [
    ("600000.SH", "cn_minute", {"bom": True}),
    ("000001.SZ", "cn_minute", {"encoding": "gbk"}),
    ("688981.SH", "cn_minute", {}),
    ("300750.SZ", "cn_minute", {"bom": True}),
    ("601398.SH", "cn_minute", {"encoding": "gbk"}),
]


def last_complete_months(n: int, today: date | None = None) -> list[date]:
    today = today or datetime.now(ZoneInfo("Asia/Shanghai")).date()
    months, year, month = [], today.year, today.month
    for _ in range(n):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        months.append(date(year, month, 1))
    return sorted(months)


def write_replay_minute_files(landing: Path, months: list[date]) -> list[Path]:
    """Deterministic minute-bar CSVs covering `months`, written once (kept if present)."""
    from marketdata_assets.replay import minute_csv

    first = months[0]
    end = date(months[-1].year + months[-1].month // 12, months[-1].month % 12 + 1, 1)
    days = [d for d in minute_csv.trading_days(first, 80) if d < end]
    written = []
    landing.mkdir(parents=True, exist_ok=True)
    for i, (code, layout, options) in enumerate(REPLAY_MINUTE_FILES):
        path = landing / f"replay_{code}_{first:%Y%m}-{months[-1]:%Y%m}.csv"
        if not path.exists():
            bars = minute_csv.make_bars(code, days, seed=i, base_price=8 + 7 * i, dirty=(i == 0))
            minute_csv.write_text(path, minute_csv.render(bars, layout), **options)
            written.append(path)
    return written


def _group(items, *groups: str) -> list:
    """The partitioned assets of these groups (the domains: defs/<group>/)."""
    return [
        a for a in items if a.partitions_def is not None and set(a.group_names_by_key.values()) <= set(groups)
    ]


def _range_tags(months: list[date]) -> dict:
    return range_tags(f"{months[0]:%Y-%m-%d}", f"{months[-1]:%Y-%m-%d}")


def checks_of(defs: dg.Definitions, assets: list) -> list:
    keys = {key for a in assets for key in a.keys}
    return [c for c in defs.asset_checks or [] if {spec.asset_key for spec in c.check_specs} <= keys]


def last_trading_day(venue: str) -> date:
    """The venue's last trading day before today (its own time zone), from its calendar."""
    today = datetime.now(ZoneInfo(calendars.venue_timezone(venue))).date()
    return calendars.trading_days(venue, today - timedelta(days=20), today - timedelta(days=1))[-1]


DUMP_INSTRUMENTS = ("BTCUSDT", "ETHUSDT")
# The day of the replayed dump files and archives: always the same one, because the file replays
# number each day's trade ids from their own base, so two consecutive replayed days would show an
# id hole at midnight (a day-after-day `make run` would fail trade_ids_continuous on the replay).
REPLAY_FILE_DAY = date(2025, 1, 2)


def tick_steps(instance: dg.DagsterInstance, ticks: list) -> list[tuple[str, list, dict, object]]:
    """Ticks runs on the replays: the snapshots' partitions added to the instance, dump files written once."""
    from marketdata_assets.defs._common.partitions import crypto_venues
    from marketdata_assets.defs.crypto.assets import CRYPTO_ASSETS, SNAPSHOT_ASSETS
    from marketdata_assets.defs.crypto.partitions import crypto_instruments, option_chains
    from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
    from marketdata_assets.sources.config import load_sources_config

    instruments = load_sources_config().crypto_partition_keys()
    chains = option_chains.get_partition_keys()
    venues = crypto_venues.get_partition_keys()
    instance.add_dynamic_partitions(crypto_instruments.name, instruments)  # the snapshots' partitions
    yesterday = datetime.now(ZoneInfo("UTC")).date() - timedelta(days=1)
    landing = settings.binance_dumps_landing_dir()
    landing.mkdir(parents=True, exist_ok=True)
    for i, instrument in enumerate(DUMP_INSTRUMENTS):
        path = landing / f"{instrument}-trades-{REPLAY_FILE_DAY}.csv"
        if not path.exists():
            write_dump(path, generate_trades(instrument, REPLAY_FILE_DAY, 20_000, seed=i))

    def keys(*names: str) -> list:
        return [dg.AssetKey(name) for name in names]

    def day_range(day: date, first: str, last: str) -> dict:
        return range_tags(f"{day}|{first}", f"{day}|{last}")

    a_share_day, yahoo_day = last_trading_day("SSE"), last_trading_day("NYSE")
    return [
        ("instrument master", ticks + [keys("instrument_master")], {}, None),  # the universes resolve from it
        (
            f"crypto history datasets {yesterday}",
            ticks + [keys(*CRYPTO_ASSETS.values())],
            day_range(yesterday, venues[0], venues[-1]),
            None,
        ),
        (
            "crypto snapshots (books, tickers, open interest)",
            ticks + [keys(*(a for a, _ in SNAPSHOT_ASSETS.values()))],
            range_tags(instruments[0], instruments[-1]),
            None,
        ),
        ("option chains", ticks + [keys("crypto_option_chains")], range_tags(chains[0], chains[-1]), None),
        (
            f"crypto factors {yesterday}",
            ticks + [keys("crypto_factors")],
            day_range(yesterday, venues[0], venues[-1]),
            None,
        ),
        (
            f"A-share bars {a_share_day}",
            ticks + [keys("a_share_bars_1m", "a_share_daily_bars")],
            {},
            f"{a_share_day}",
        ),
        (f"Yahoo bars {yahoo_day}", ticks + [keys("yahoo_bars_1m")], {}, f"{yahoo_day}"),
        (
            f"Binance dumps {REPLAY_FILE_DAY}",
            ticks + [keys("binance_dump_trades")],
            day_range(REPLAY_FILE_DAY, "BINANCE", "BINANCE"),
            None,
        ),
    ]


def archive_steps(archives: list) -> list[tuple[str, list, dict, object]]:
    """One day's Binance archives (every configured dataset and instrument) from the replay."""
    from marketdata_assets.defs.archives.archives import ARCHIVE_ASSETS, VENUES

    day = REPLAY_FILE_DAY
    tags = range_tags(f"{day}|{VENUES[0]}", f"{day}|{VENUES[-1]}")
    selection = [dg.AssetKey(a) for a in ARCHIVE_ASSETS.values()]
    return [(f"Binance archives {day}", archives + [selection], tags, None)]


def plan(
    defs: dg.Definitions, instance: dg.DagsterInstance | None = None
) -> list[tuple[str, list, dict, object]]:
    """(label, assets and checks, run tags, partition key) in dependency order. In a ticks step the
    last element of the assets list is the selection (asset keys) among the others."""
    from marketdata_assets.defs.alphas.partitions import alpha_accounts
    from marketdata_assets.defs.archives.archives import ARCHIVE_ASSETS
    from marketdata_assets.defs.equities.partitions import minute_bar_months

    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    months = last_complete_months(3)
    write_replay_minute_files(settings.minute_bars_landing_dir(), months)
    bars = [a for a in _group(assets, "equities") if a.partitions_def == minute_bar_months]
    alpha_months = last_complete_months(3, datetime.now(ZoneInfo("America/New_York")).date())
    alphas = _group(assets, "alphas")
    fetch = [a for a in alphas if dg.AssetKey("alpha_files") in a.keys]
    monthly_alphas = [a for a in alphas if a not in fetch]
    unpartitioned = [a for a in assets if a.partitions_def is None]
    stores = [a for a in unpartitioned if not any(a.asset_deps.values())]  # the tables and collections
    upkeep = [
        a
        for a in unpartitioned
        if a not in stores  # re-checks, compaction, coverage: of what is loaded
        and dg.AssetKey("instrument_master") not in a.keys
    ]  # (the master: a step of its own, first)
    steps = [
        ("stores", stores, {}, None),
        (
            f"minute bars {months[0]:%Y-%m}..{months[-1]:%Y-%m}",
            bars + checks_of(defs, bars),
            _range_tags(months),
            None,
        ),
    ]
    steps += [
        (
            f"alpha files {month:%Y-%m} {account}",
            fetch,
            {},
            dg.MultiPartitionKey({"month": f"{month:%Y-%m-%d}", "account": account}),
        )
        for month in alpha_months
        for account in alpha_accounts.get_partition_keys()
    ]
    steps.append(
        (
            f"alphas {alpha_months[0]:%Y-%m}..{alpha_months[-1]:%Y-%m}",
            monthly_alphas + checks_of(defs, monthly_alphas) + [a.to_source_asset() for a in fetch],
            _range_tags(alpha_months),
            None,
        )
    )
    if instance is not None:
        archived = {dg.AssetKey(name) for name in ARCHIVE_ASSETS.values()}
        archives = [a for a in _group(assets, "archives") if set(a.keys) <= archived]
        master = [
            a for a in unpartitioned if a not in stores + upkeep
        ]  # instrument_master: the universes' source
        ticks = [
            a for a in _group(assets, "crypto", "equities", "archives") if a not in bars + archives
        ] + master
        sources = [
            a.to_source_asset() for a in unpartitioned if a in stores + upkeep
        ]  # (the master runs in ticks)
        steps += tick_steps(instance, ticks + checks_of(defs, ticks) + sources)
        steps += archive_steps(archives + checks_of(defs, archives) + sources)
        exports = _group(assets, "exports")
        yesterday = datetime.now(ZoneInfo("UTC")).date() - timedelta(days=1)
        steps.append((f"Parquet export {yesterday}", exports + checks_of(defs, exports), {}, f"{yesterday}"))
    steps.append(("upkeep and coverage", upkeep + checks_of(defs, upkeep), {}, None))
    return steps


def main(preamble: tuple[str, ...] = (), after_step: Callable[[str], list[str]] | None = None) -> int:
    """Materialize the graph. The caller (marketdata_assets.apps.demo, `make run`) has already pointed the
    environment at the replays of the sources that have no real configuration. Runs found dead are
    cleaned up first; a stopped storage or Ctrl-C ends it with one line. `after_step` (a step's label ->
    lines to print) runs after each step. What it printed, after the caller's `preamble`, is kept for the
    README's sample (apps.readme)."""
    from marketdata_assets.apps.launch import Interrupted, exit_code, launch, storage_watch, summary
    from marketdata_assets.apps.readme import record
    from marketdata_assets.definitions import defs as load_defs
    from marketdata_assets.orchestration.instance import command_instance

    defs = load_defs()
    outcomes, printed = [], []
    try:
        if not storage_answers():
            return STORAGE_DOWN
        with storage_watch(), command_instance() as instance:
            sweep_and_say(instance)
            for label, assets, tags, partition_key in plan(defs, instance):
                selection = assets.pop() if assets and isinstance(assets[-1], list) else None
                outcome = launch(
                    label,
                    assets,
                    instance=instance,
                    resources=defs.resources or {},
                    partition_key=partition_key,
                    selection=selection,
                    tags={"marketdata/launched_by": "make run", **tags},
                )
                print(outcome.line(), flush=True)
                for line in outcome.error_lines():
                    print(line, file=sys.stderr, flush=True)
                outcomes.append(outcome)
                printed.append(outcome.line())
                for line in after_step(label) if after_step is not None else []:
                    print(line, flush=True)
                    printed.append(line)
    except Interrupted as interrupted:
        print(f"make run: {interrupted}", file=sys.stderr, flush=True)
        return INTERRUPTED
    print(f"make run: {summary(outcomes)}", flush=True)
    record([*preamble, *printed, f"make run: {summary(outcomes)}"])
    return exit_code(outcomes)  # 1 a step failed, 4 one stored a partial result, else 0


STORAGE_DOWN = 3  # exit codes, as the marketdata command's
INTERRUPTED = 130


def storage_answers() -> bool:
    from marketdata_assets.orchestration.runs import storage_reachable

    error = storage_reachable()
    if error is not None:
        print(f"make run: FAILED: {error}", file=sys.stderr, flush=True)
    return error is None


def sweep_and_say(instance: dg.DagsterInstance) -> None:
    from marketdata_assets.core.sweep import swept_line
    from marketdata_assets.orchestration.runs import sweep

    line = swept_line(*sweep(instance))
    if line:
        print(f"make run: {line}", flush=True)
