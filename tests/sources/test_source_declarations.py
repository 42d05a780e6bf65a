"""Every source declares itself in one shape (sources/interface.Source) and the registry lists them all:
the declarations are what the README's table, the venue registry and the engine's feeds read."""

from __future__ import annotations

import pkgutil

import yaml

import marketdata_assets.sources as sources_pkg
from marketdata_assets.core.http import ApiClient, ErrorTable, Limits
from marketdata_assets.datasets.frames import DATASETS
from marketdata_assets.sources.config import DEFAULT_CONFIG
from marketdata_assets.sources.interface import FILES, HISTORY, SNAPSHOT, Reach, Source
from marketdata_assets.sources.registry import SOURCES, datasets_table, source
from marketdata_assets.sources.venues import CLIENTS, serves

# Datasets stored outside ClickHouse (their tables are TimescaleDB's and MongoDB's).
OTHER_STORES = {"stock_1min_qfq", "alphas"}


def test_every_source_package_declares_a_source_the_registry_lists():
    # the interfaces (REST and streams, the compiled frame reader's), the registry and the config: modules
    # of sources/ that are no source
    packages = {m.name for m in pkgutil.iter_modules(sources_pkg.__path__)} - {
        "interface",
        "stream",
        "_reader",
        "registry",
        "venues",
        "config",
        "config_schema",
    }
    declared_in = {type(s).__module__ for s in SOURCES.values()}
    assert declared_in == {Source.__module__}
    for name in packages:
        module = __import__(f"marketdata_assets.sources.{name}", fromlist=["_"])
        mine = [v for v in vars(module).values() if isinstance(v, Source)]
        assert mine, f"sources/{name} declares no Source"
        assert all(SOURCES.get(s.name) is s for s in mine), (
            f"sources/{name}: a declaration the registry lacks"
        )


def test_each_declaration_is_complete_and_consistent():
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())["sources"]
    for s in SOURCES.values():
        assert s.name == s.name.upper() and source(s.name.lower()) is s
        assert set(s.datasets.values()) <= {HISTORY, SNAPSHOT, FILES}, s.name
        assert set(s.datasets) <= set(DATASETS) | OTHER_STORES, (s.name, set(s.datasets) - set(DATASETS))
        assert set(s.reach) <= {d for d, how in s.datasets.items() if how == HISTORY}, s.name
        if s.client is not None:
            assert issubclass(s.client, ApiClient), s.name
            assert isinstance(s.errors, ErrorTable) and isinstance(s.limits, Limits), s.name
        if s.config is not None:
            assert s.config in config, f"{s.name}: no {s.config!r} entry in data_providers.yaml"


def test_a_datasets_fidelity_names_sources_that_load_it_from_files_the_most_faithful_first():
    for spec in DATASETS.values():
        for name in spec.fidelity:
            assert SOURCES[name].datasets.get(spec.name) == FILES, (spec.name, name)
        assert [spec.rank(name) for name in spec.fidelity] == list(range(len(spec.fidelity)))
    trades = DATASETS["trades"]
    assert trades.fidelity == ("BINANCE_ARCHIVE", "BINANCE_DUMPS")
    assert trades.outranks("BINANCE_ARCHIVE", "BINANCE_DUMPS") and trades.outranks("BINANCE_DUMPS", "BINANCE")
    # the venues' APIs and streams rank alike (the last of their loads wins), and unknown ones with them
    assert not trades.outranks("BINANCE", "BINANCE_UM_LIVE") and not trades.outranks(
        "BINANCE_UM_LIVE", "BINANCE"
    )
    assert not trades.outranks("", "BINANCE") and not trades.outranks("BINANCE_ARCHIVE", "BINANCE_ARCHIVE")


def test_the_venue_registry_and_serves_read_the_declarations():
    assert CLIENTS == {name: SOURCES[name].client for name in ("BINANCE", "BINANCE_UM", "OKX", "DERIBIT")}
    for venue in CLIENTS:
        for dataset, how in SOURCES[venue].datasets.items():
            assert serves(venue, dataset) == how
        assert serves(venue, "agg_trades") is None  # archives only


def test_the_table_has_a_column_per_source_and_a_row_per_dataset():
    lines = datasets_table().splitlines()
    assert lines[0] == "| " + " | ".join(["dataset", *SOURCES]) + " |"
    assert any(line.startswith("| alphas | ") and line.endswith("| history |") for line in lines)


def test_every_declared_reach_says_where_older_days_come_from_and_who_loads_them():
    from marketdata_assets.definitions import defs

    assets = {key.to_user_string() for key in defs().resolve_all_asset_keys()}
    declared = {(s.name, dataset): reach for s in SOURCES.values() for dataset, reach in s.reach.items()}
    assert {("BINANCE_UM", "trades"), ("BINANCE_UM", "open_interest"), ("OKX", "funding")} <= set(declared)
    for (name, dataset), reach in declared.items():
        assert isinstance(reach, Reach) and reach.span.total_seconds() > 0, (name, dataset)
        assert reach.older_from.strip() and reach.doc.startswith("https://"), (name, dataset)
        # named loaders exist; none named: the text says so
        assert set(reach.assets) <= assets, (name, dataset, set(reach.assets) - assets)
        assert reach.assets or reach.older_from.startswith("nowhere in this project"), (name, dataset)
    assert declared[("BINANCE_UM", "trades")].text == "48 hours"
    assert declared[("OKX", "funding")].text == "90 days"
    # a venue's REACH is its Source's reach: what serves() and the runs read is what the table shows
    for venue, client in CLIENTS.items():
        assert dict(getattr(client, "REACH", {})) == dict(SOURCES[venue].reach), venue


def test_each_stock_feed_plans_every_slice_of_a_block_once_and_the_registry_names_the_feeds():
    """A stock feed's declaration (`StockFeed`) is what the equities assets and checks use: its feeds
    take each slice key of a block into exactly one job of the source's datasets, its session has bars on
    a trading day of its venue, and an unknown feed is refused naming the known ones."""
    from datetime import date

    from marketdata_assets.datasets.slices import SliceKey
    from marketdata_assets.sources.registry import STOCK_FEEDS, stock_feed

    assert sorted(STOCK_FEEDS) == sorted(name for name, s in SOURCES.items() if s.feed is not None)
    assert sorted(STOCK_FEEDS) == ["TUSHARE", "YAHOO"]
    days = [date(2026, 3, 2), date(2026, 3, 3)]  # a Monday and Tuesday: both trade in Shanghai and New York
    venues = {"TUSHARE": ("SSE", ["600000.SH", "601318.SH"]), "YAHOO": ("XNYS", ["AAPL", "MSFT"])}
    for name, feed in STOCK_FEEDS.items():
        venue, instruments = venues[name]
        keys = [
            SliceKey(d, venue, i, day) for d in SOURCES[name].datasets for day in days for i in instruments
        ]
        planned = [
            key for f in feed.feeds(object, keys, workers=1, attempts=1) for job in f.jobs for key in job.keys
        ]
        assert sorted(planned) == sorted(keys), name  # each once
        assert all(f.source == name for f in feed.feeds(object, keys, workers=1, attempts=1))
        opens = feed.session_bar_opens(venue, days[0])
        assert 0 < len(opens) <= feed.bars_a_day and opens == sorted(opens), name
    try:
        stock_feed("NOPE")
    except ValueError as error:
        assert "TUSHARE" in str(error) and "YAHOO" in str(error)
    else:
        raise AssertionError("an unknown stock feed was accepted")


def test_the_alpha_apis_declaration_is_what_the_alpha_assets_reach_it_by():
    """`AccountApi`: the accounts setting read and checked, each account's variables, a month's window in
    the API's zone (New York: March's 31 days, an hour short across the DST change), a bad month refused
    with an error the assets do not retry; a source that is no account API refused by name."""
    import pytest

    from marketdata_assets.sources.registry import account_api

    declared = account_api()
    assert declared.account_names(" main, research ") == ["main", "research"]
    assert declared.credential_vars("research") == ("ALPHA_API_USER_RESEARCH", "ALPHA_API_PASSWORD_RESEARCH")
    start, end = declared.month_window("2026-03")
    assert start.tzinfo is declared.timezone and start.hour == 0
    assert start.utcoffset().total_seconds() == -5 * 3600  # standard time on March 1st
    assert end.utcoffset().total_seconds() == -4 * 3600  # daylight time by April
    assert end.timestamp() - start.timestamp() == 31 * 86_400 - 3_600  # 31 days, one hour short
    with pytest.raises(declared.refusals, match="2026-13"):
        declared.month_window("2026-13")
    with pytest.raises(declared.refusals, match="ALPHA_API_ACCOUNTS"):
        declared.account_names(" , ")
    with pytest.raises(ValueError, match="not read per account"):
        account_api("BINANCE")


def test_the_minute_files_declaration_reads_a_vendor_file_and_names_a_bad_one(tmp_path):
    """`MinuteFiles` is the minute load's way in: a vendor file's months read without loading it, its
    batches through the reader with the built-in profiles (their fingerprint stable), a file it cannot
    read refused with its own error naming the file; a source of no files refused by name."""
    from datetime import date

    import pytest

    from marketdata_assets.replay.minute_csv import make_bars, render, trading_days, write_text
    from marketdata_assets.sources.registry import minute_files

    files = minute_files()
    days = [*trading_days(date(2026, 1, 29), 2), *trading_days(date(2026, 2, 2), 1)]  # January and February
    truth = make_bars("600000.SH", days)
    path = write_text(tmp_path / "sh600000.csv", render(truth, "cn_minute"))
    assert [str(m)[:7] for m in files.time_range(path).months] == ["2026-01", "2026-02"]
    profiles = files.profiles(None)
    assert files.fingerprint(profiles) == files.fingerprint(files.profiles(None))
    rows = sum(batch.height for batch in files.open(path, profiles).batches())
    assert rows == truth.height > 0  # every bar of the file
    bad = write_text(tmp_path / "bad.csv", "nothing,here\n1,2\n")
    with pytest.raises(files.file_error, match="bad.csv"):
        files.time_range(bad)
    with pytest.raises(ValueError, match="no minute-bar files"):
        minute_files("BINANCE")
