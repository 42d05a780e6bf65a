"""Every source declares itself in one shape (sources/interface.Source) and the registry lists them all:
the declarations are what the README's table, the venue registry and the engine's feeds read."""

from __future__ import annotations

import pkgutil

import yaml

import marketdata_assets.sources as sources_pkg
from marketdata_assets.core.http import ApiClient, ErrorTable, Limits
from marketdata_assets.datasets.frames import DATASETS
from marketdata_assets.sources.config import DEFAULT_CONFIG
from marketdata_assets.sources.interface import FILES, HISTORY, SNAPSHOT, Source
from marketdata_assets.sources.registry import SOURCES, datasets_table, source
from marketdata_assets.sources.venues import CLIENTS, serves

# Datasets stored outside ClickHouse (their tables are TimescaleDB's and MongoDB's).
OTHER_STORES = {"stock_1min_qfq", "alphas"}


def test_every_source_package_declares_a_source_the_registry_lists():
    # the interfaces (REST and streams), the registry and the config: modules of sources/ that are no source
    packages = {m.name for m in pkgutil.iter_modules(sources_pkg.__path__)} - {
        "interface", "stream", "registry", "venues", "config", "config_schema"}
    declared_in = {type(s).__module__ for s in SOURCES.values()}
    assert declared_in == {Source.__module__}
    for name in packages:
        module = __import__(f"marketdata_assets.sources.{name}", fromlist=["_"])
        mine = [v for v in vars(module).values() if isinstance(v, Source)]
        assert mine, f"sources/{name} declares no Source"
        assert all(SOURCES.get(s.name) is s for s in mine), f"sources/{name}: a declaration the registry lacks"


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
