"""The README's recipe for a new crypto venue, followed once end to end on a copy of the package.

The copy gets exactly what the recipe lists, nothing else: a source package `sources/toyex/`
(client with its error and limit tables, one method per dataset, its declaration), one line in
`sources/registry.py`, a replay `replay/toyex.py` speaking its wire format, and a `toyex:` entry
(plus its instruments) in `sources/data_providers.yaml`. No line of `defs/`, `resources/` or
`sources/config.py` is touched: the config's entries, the source resources and the crypto assets'
venue map come from the declarations. A fresh interpreter then loads the code location and
materializes `crypto_trades` for TOYEX:BTCUSD from the replay into ClickHouse (its own embedded
store), and the rows must be the replay's trades, each once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PACKAGE = '''"""Toyex: a venue added by the README's recipe (tests/test_new_venue_recipe.py)."""

from datetime import datetime
from typing import ClassVar

import polars as pl

from marketdata_assets.core.http import ApiClient, ErrorTable, Limits, Page, describe_request
from marketdata_assets.datasets.wire import TradeColumns, epoch_us, field, finish_trades, number, positive
from marketdata_assets.sources.interface import HISTORY, venue_source

VENUE = "TOYEX"


class ToyexClient(ApiClient):
    api_name = "Toyex"
    name = VENUE
    ERRORS = ErrorTable(exact={"TOO_MANY": "rate_limited"})
    LIMITS = Limits(requests_per_minute=600, max_concurrency=2)
    DATASETS: ClassVar[dict[str, str]] = {"trades": HISTORY}

    def __init__(self, base_url: str = "https://api.toyex.invalid", **kwargs):
        super().__init__(base_url, **kwargs)

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        params = {"instrument": instrument, "from": int(start.timestamp() * 1000), "to": int(end.timestamp() * 1000)}
        page = Page(VENUE, instrument, start.date(), describe_request("GET", "/trades", params))
        body = await self.call("GET", "/trades", page=page, params=params)
        cols = TradeColumns()
        for i, trade in enumerate(field(body, "trades", "answer", page)):
            what = f"trade #{i}"
            price = positive(number(field(trade, "p", what, page), what, page), what, page)
            quantity = positive(number(field(trade, "q", what, page), what, page), what, page, "quantity")
            cols.add(epoch_us(field(trade, "t", what, page), what, page), str(trade["id"]), price, quantity,
                     price * quantity, field(trade, "side", what, page), int(trade["id"]))
        return finish_trades([cols.frame(VENUE, instrument)], start, end)


TOYEX = venue_source(VENUE, ToyexClient, "toyex")
'''

REPLAY = '''"""A replay of Toyex's trades endpoint: one trade every 15 minutes, deterministic."""

from urllib.parse import parse_qs, urlsplit

from marketdata_assets.replay import BackgroundServer, json_reply

STEP_MS = 15 * 60 * 1000


def trades_of(start_ms: int, end_ms: int) -> list[dict]:
    first = -(-start_ms // STEP_MS)
    return [{"id": i, "t": i * STEP_MS, "p": 100 + (i % 50) / 4, "q": (i % 7 + 1) / 100,
             "side": "buy" if i % 2 else "sell"} for i in range(first, -(-end_ms // STEP_MS))]


class ToyexReplay(BackgroundServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.listen(host, port, self.dispatch, name="toyex")

    def dispatch(self, method, target, headers, body):
        url = urlsplit(target)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path != "/trades":
            return json_reply(404, {"code": "NOT_FOUND"})
        return json_reply(200, {"trades": trades_of(int(query["from"]), int(query["to"]))})
'''

RUN = '''
import json, os
from datetime import datetime, timedelta, timezone
import dagster as dg
from marketdata_assets.replay.toyex import ToyexReplay, trades_of
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.config import SourcesConfigError

day = datetime.now(timezone.utc).date() - timedelta(days=1)
start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
truth = trades_of(int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000))
try:
    load_sources_config({without_entry!r})
    refused = ""
except SourcesConfigError as error:
    refused = str(error)
with ToyexReplay() as replay:
    os.environ["TOYEX_BASE_URL"] = replay.base_url
    from marketdata_assets.definitions import defs
    d = defs()
    clickhouse = ClickHouseResource(dsn={dsn!r}, database="recipe")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("crypto_instruments", ["TOYEX:BTCUSD"])
        result = dg.materialize([d.get_assets_def("crypto_trades")], resources={{**d.resources, "clickhouse": clickhouse}},
                                instance=instance, selection=["crypto_trades"], raise_on_error=False,
                                partition_key=dg.MultiPartitionKey({{"day": day.isoformat(), "instrument": "TOYEX:BTCUSD"}}))
    with clickhouse.get_client() as client:
        rows = client.query("SELECT count(), uniqExact(trade_id), round(sum(quantity), 6), min(price) "
                            "FROM recipe.trades_v WHERE venue = 'TOYEX' AND instrument = 'BTCUSD'").result_rows[0]
print(json.dumps({{"success": result.success, "rows": list(rows), "refused": refused, "resource": type(d.resources["toyex"]).__name__,
                  "truth": [len(truth), len(truth), round(sum(t["q"] for t in truth), 6), min(t["p"] for t in truth)]}}))
'''


def _follow_the_recipe(tree: Path) -> Path:
    """The recipe's steps on the copy; returns the config without the new entry (for the refusal)."""
    package = tree / "marketdata_assets"
    (package / "sources" / "toyex").mkdir()
    (package / "sources" / "toyex" / "__init__.py").write_text(PACKAGE)
    (package / "replay" / "toyex.py").write_text(REPLAY)
    registry = package / "sources" / "registry.py"
    text = registry.read_text()
    assert "    okx,\n    tushare,\n" in text and "    alpha_api.ALPHA_API," in text
    text = text.replace("    okx,\n    tushare,\n", "    okx,\n    toyex,\n    tushare,\n")
    registry.write_text(text.replace("    alpha_api.ALPHA_API,", "    alpha_api.ALPHA_API, toyex.TOYEX,"))
    config = package / "sources" / "data_providers.yaml"
    without_entry = tree / "without_entry.yaml"
    shutil.copy(config, without_entry)
    text = config.read_text()
    assert "\nsources:" in text and "      BINANCE: [BTCUSDT" in text
    text = text.replace("\nsources:", "\nsources:\n  toyex:\n    base_url: https://api.toyex.invalid\n"
                                      "    base_url_env: TOYEX_BASE_URL\n    requests_per_minute: 600\n", 1)
    config.write_text(text.replace("      BINANCE: [BTCUSDT", "      TOYEX: [BTCUSD]\n      BINANCE: [BTCUSDT", 1))
    return without_entry


def test_a_new_venue_is_a_package_a_registry_line_a_replay_and_a_config_entry(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "marketdata_assets", tree / "marketdata_assets", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")  # the code location's project file
    without_entry = _follow_the_recipe(tree)
    env = {key: value for key, value in os.environ.items() if key != "TICKS_PROVIDERS_CONFIG"}
    script = RUN.format(dsn=f"chdb://{tmp_path / 'ch'}", without_entry=str(without_entry))
    done = subprocess.run([sys.executable, "-c", script], cwd=tree, env={**env, "PYTHONPATH": str(tree)},
                          capture_output=True, text=True, timeout=300)  # a hang guard
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "sources.toyex: missing" in found["refused"]  # the entry is required once declared
    assert found["resource"] == "CryptoVenueResource"  # built by the resources' loop
    assert found["success"], done.stderr[-3000:]
    assert found["rows"] == found["truth"] and found["truth"][0] == 96  # every trade of the day, each once
