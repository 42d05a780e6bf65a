"""The README's recipe for a new stock feed, followed once end to end on a copy of the package.

The copy gets exactly what the recipe lists, nothing else: a source package `sources/toystock/` (client with
its error and limit tables, the feeds of a block of days, its `StockFeed` declaration), one line in
`sources/registry.py`, a replay `replay/toystock.py` speaking its wire format, a `toystock:` entry (with its
universe) in `sources/data_providers.yaml`. No line of `defs/` or `resources/` is touched: the stock feeds'
assets, partitions, checks, pool, job and schedules and its resource come from the declarations. A fresh
interpreter then loads the code location and materializes one day of `toy_daily_bars` (with its checks) from
the replay into ClickHouse (its own embedded store), and the stored rows must be the replay's bars.
"""

from __future__ import annotations

import pytest

from tests.support.recipe import package_copy, replace_once, run_fresh, sources_of, touched

PACKAGE = '''"""Toystock: a stock feed added by the README's recipe (tests/test_new_stock_feed_recipe.py):
daily bars, `GET /daily?symbol=&from=&to=` -> `{"bars": [ToyBar]}`."""

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import msgspec
import polars as pl

from marketdata_assets.core.http import ApiClient, ErrorTable, Limits, Page, describe_request
from marketdata_assets.datasets.declared import check, columns, frame_of, is_positive, page_of
from marketdata_assets.datasets.frames import DAILY_BARS_SCHEMA
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.datasets.wire import record_of
from marketdata_assets.sources.interface import HISTORY, Option, Source, StockDays, StockFeed

SOURCE, VENUE = "TOYSTOCK", "TOYX"


class ToyAnswer(msgspec.Struct):
    bars: list[Any]  # the days' bars, oldest first (each a ToyBar)


class ToyBar(msgspec.Struct):
    day: str        # the trade date, YYYY-MM-DD
    open: float
    high: float
    low: float
    close: float
    volume: float   # shares
    amount: float   # in the quote currency


class ToystockClient(ApiClient):
    api_name = "Toystock"
    ERRORS = ErrorTable(exact={"TOO_MANY": "rate_limited"})
    LIMITS = Limits(requests_per_minute=600, max_concurrency=2)

    def __init__(self, base_url: str = "https://api.toystock.invalid", **kwargs):
        super().__init__(base_url, **kwargs)

    async def daily(self, symbol: str, first: date, last: date) -> pl.DataFrame:
        params = {"symbol": symbol, "from": first.isoformat(), "to": last.isoformat()}
        page = Page(SOURCE, symbol, first, describe_request("GET", "/daily", params))
        body = await self.call("GET", "/daily", page=page, params=params)
        bars = page_of(ToyBar, record_of(ToyAnswer, body, "answer", page).bars, "bar", page)
        cols = columns(bars, ToyBar.__struct_fields__)
        check(cols, (is_positive("open"), is_positive("close")), "bar #{i} ({day})", page, body)
        days = [datetime.combine(date.fromisoformat(d), time(), UTC) for d in cols["day"]]
        ts = [int(day.timestamp() * 1000) for day in days]
        return frame_of(DAILY_BARS_SCHEMA, VENUE, symbol, ts, **cols)


async def _daily(api, job: Job):
    days = sorted({key.day for key in job.keys})
    return await api.daily(job.keys[0].instrument, days[0], days[-1])


def feeds(client, keys: Sequence[SliceKey], *, workers: int, attempts: int) -> list[Feed]:
    """A block's feeds: one, a `daily` request per symbol over the block's days."""
    by_symbol: dict[str, list[SliceKey]] = {}
    for key in keys:
        by_symbol.setdefault(key.instrument, []).append(key)
    jobs = [Job(tuple(mine)) for mine in by_symbol.values()]
    return [Feed(SOURCE, jobs, _daily, client, workers=workers, attempts=attempts, skip_empty_days=True,
                 by_day=True)]


TOYSTOCK = Source(
    SOURCE, (VENUE,), {"daily_bars": HISTORY}, ToystockClient, "toystock",
    options={"symbols": Option([], "list", description="Its universe.")},
    feed=StockFeed(
        feeds, lambda venue, day: [], 30, 1,
        prefix="toy", universe="toystock", what="Toystock daily bars (`sources.toystock.symbols`)",
        label="Toystock bars", vendor="Toystock",
        days=StockDays("UTC", "America/New_York", time(17, 30), time(20), lambda config: date(2025, 1, 1)),
        assets={"daily_bars": "Toystock daily bars per UTC day, in ClickHouse `daily_bars`."},
        instruments=lambda config: config.sources["toystock"].option("symbols"),
        normalize=str.upper, slice_venue=lambda symbol: VENUE,
    ),
)
'''

REPLAY = '''"""A replay of Toystock's daily endpoint: a bar per symbol and weekday, deterministic."""

from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

from marketdata_assets.replay import BackgroundServer, json_reply


def bars_of(symbol: str, first: date, last: date) -> list[dict]:
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    out = []
    for day in (d for d in days if d.weekday() < 5):
        base = 10 + sum(map(ord, symbol)) % 50 + day.toordinal() % 7
        volume = 1000.0 * day.day
        out.append({"day": day.isoformat(), "open": base, "high": base + 1.5, "low": base - 0.5,
                    "close": base + 0.25, "volume": volume, "amount": (base + 0.25) * volume})
    return out


class ToystockReplay(BackgroundServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.listen(host, port, self.dispatch, name="toystock")

    def dispatch(self, method, target, headers, body):
        url = urlsplit(target)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path != "/daily":
            return json_reply(404, {"code": "NOT_FOUND"})
        first, last = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
        return json_reply(200, {"bars": bars_of(query["symbol"], first, last)})
'''

RUN = """
import json, os
from datetime import date
import dagster as dg
from marketdata_assets.replay.toystock import ToystockReplay, bars_of

replay = ToystockReplay().start()
os.environ["TOYSTOCK_BASE_URL"] = replay.base_url  # before defs(): the resource takes the variable
from marketdata_assets.definitions import defs
from marketdata_assets.resources import ClickHouseResource
d = defs()
repo = d.get_repository_def()
clickhouse = ClickHouseResource(dsn=os.environ["CLICKHOUSE_DSN"], database="stock_recipe")
day = date(2025, 6, 5)  # a Thursday
asset = d.get_assets_def("toy_daily_bars")
checks = [c for c in d.asset_checks or [] if asset.key in {k.asset_key for k in c.check_keys}]
with dg.DagsterInstance.ephemeral() as instance:
    result = dg.materialize([asset, *checks], resources={**d.resources, "clickhouse": clickhouse},
                            instance=instance, partition_key=day.isoformat(), raise_on_error=False)
with clickhouse.get_client() as client:
    rows = client.query("SELECT instrument, toString(toDate(ts)), open, high, low, close, volume, amount "
                        "FROM stock_recipe.daily_bars_v WHERE venue = 'TOYX' ORDER BY instrument").result_rows
replay.stop()
truth = [[s, b["day"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["amount"]]
         for s in ("AAA", "BBB", "CCC") for b in bars_of(s, day, day)]
print(json.dumps({
    "success": result.success, "rows": [list(r) for r in rows], "truth": truth,
    "checks": {e.check_name: e.passed for e in result.get_asset_check_evaluations()},
    "pool": sorted(asset.op.pools) if hasattr(asset.op, "pools") else [asset.op.pool],
    "timezone": asset.partitions_def.timezone, "first": asset.partitions_def.get_first_partition_key(),
    "jobs": sorted(j.name for j in repo.get_all_jobs() if j.name.startswith("toy")),
    "schedules": sorted((s.name, s.cron_schedule, s.execution_timezone) for s in repo.schedule_defs
                        if s.name.startswith("toy")),
    "resource": type(d.resources["toystock"]).__name__,
}))
"""


def _follow_the_recipe(tree) -> None:
    package = tree / "marketdata_assets"
    (package / "sources" / "toystock").mkdir()
    (package / "sources" / "toystock" / "__init__.py").write_text(PACKAGE)
    (package / "replay" / "toystock.py").write_text(REPLAY)
    registry = package / "sources" / "registry.py"
    replace_once(registry, "    okx,\n    tushare,\n", "    okx,\n    toystock,\n    tushare,\n")
    replace_once(registry, "        yahoo.YAHOO,", "        yahoo.YAHOO,\n        toystock.TOYSTOCK,")
    replace_once(
        package / "sources" / "data_providers.yaml",
        "\nsources:",
        "\nsources:\n  toystock:\n    base_url: https://api.toystock.invalid\n"
        "    base_url_env: TOYSTOCK_BASE_URL\n    requests_per_minute: 600\n    symbols: [AAA, BBB, CCC]\n",
    )


@pytest.fixture(scope="module")
def followed(tmp_path_factory) -> dict:
    """The recipe followed once on a copy of the package, then one fresh interpreter runs RUN; what it
    printed, and the files the recipe touched."""
    tmp = tmp_path_factory.mktemp("stock_recipe")
    tree = package_copy(tmp)
    before = sources_of(tree)
    _follow_the_recipe(tree)
    changed = touched(before, tree)
    (found,), stderr = run_fresh(tmp, tree, RUN, "stock_recipe")
    return {**found, "touched": changed, "stderr": stderr}


def test_a_new_stock_feed_is_a_package_a_registry_line_a_replay_a_config_entry_and_no_line_of_defs(followed):
    assert followed["touched"] == [
        "replay/toystock.py",
        "sources/data_providers.yaml",
        "sources/registry.py",
        "sources/toystock/__init__.py",
    ]  # nothing under defs/
    assert followed["resource"] == "StockFeedResource"  # the generic one: no resource type to write
    assert followed["pool"] == ["toystock"]  # one step of the feed at a time, in its own pool
    assert (followed["timezone"], followed["first"]) == ("UTC", "2025-01-01")  # its declared calendar
    assert followed["jobs"] == ["toy_bars_job"]
    assert followed["schedules"] == [
        ["toy_after_close", "30 17 * * 1-5", "America/New_York"],
        ["toy_catch_up", "0 20 * * *", "America/New_York"],
    ]


def test_the_new_feed_s_day_is_loaded_from_its_replay_into_clickhouse_and_checked(followed):
    assert followed["success"], followed["stderr"]
    assert followed["rows"] == followed["truth"] and len(followed["truth"]) == 3  # each symbol's bar, once
    assert followed["checks"] and all(followed["checks"].values()), followed["checks"]
