"""The README's recipe for a new crypto venue, followed once end to end on a copy of the package.

The copy gets exactly what the recipe lists, nothing else: a source package `sources/toyex/`
(client with its error and limit tables, one method per dataset, its declaration), one line in
`sources/registry.py`, a replay `replay/toyex.py` speaking its wire format, and a `toyex:` entry
(plus its instruments) in `sources/data_providers.yaml`. No line of `defs/`, `resources/` or
`sources/config.py` is touched: the config's entries, the source resources and the crypto assets'
venue map come from the declarations. The recipe is followed once; a fresh interpreter then runs
`marketdata collect` of the venue's stream, loads the code location and materializes `crypto_trades`
for TOYEX:BTCUSD from the replay and the hourly live assets into ClickHouse (its own embedded store,
a database for each path), and the rows must be the replay's trades, each once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.recipe import package_copy, run_fresh

PACKAGE = '''"""Toyex: a venue added by the README's recipe (tests/test_new_venue_recipe.py)."""

from datetime import datetime
from typing import Any, ClassVar

import polars as pl

import msgspec

from marketdata_assets.core.http import ApiClient, ErrorTable, Limits, Page, describe_request
from marketdata_assets.datasets.declared import frame_of, page_of
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.frames import TRADES_SCHEMA
from marketdata_assets.datasets.wire import finish_trades, record_of
from marketdata_assets.sources.interface import HISTORY, venue_source
from marketdata_assets.sources.toyex.stream import ToyexStream, trade_columns

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
        params = {"instrument": instrument, "from": int(start.timestamp() * 1000), \
"to": int(end.timestamp() * 1000)}
        page = Page(VENUE, instrument, start.date(), describe_request("GET", "/trades", params))
        body = await self.call("GET", "/trades", page=page, params=params)
        cols = trade_columns(record_of(ToyexTrades, body, "answer", page).trades, page)
        frame = frame_of(TRADES_SCHEMA, VENUE, instrument, cols["t"], trade_id=[str(i) for i in cols["id"]],
                         price=cols["p"], quantity=cols["q"], amount=[p * q for p, q in zip(cols["p"], \
cols["q"])],
                         side=cols["side"], seq=cols["id"])
        return finish_trades([frame], start, end)

    async def listing(self) -> list[Instrument]:
        """Its reference endpoint: `GET /instruments` -> `{"instruments": [ToyexInstrument]}`."""
        page = Page(VENUE, "instruments", None, describe_request("GET", "/instruments", {}))
        body = await self.call("GET", "/instruments", page=page)
        return [Instrument(VENUE, r.symbol, "spot", r.base, r.quote, r.quote, False, 1.0, 1.0, r.base, \
r.tick, r.lot,
                           r.lot, None, None, "live" if r.trading else "suspended")
                for r in page_of(ToyexInstrument, record_of(ToyexInstruments, body, "answer", page)
                                 .instruments, "instrument", page)]


class ToyexTrades(msgspec.Struct):
    trades: list[Any]  # the page's trades, oldest first: [{id, t (ms), p, q, side}] (read by trade_columns)


class ToyexInstruments(msgspec.Struct):
    instruments: list[Any]  # every instrument listed (each a ToyexInstrument)


class ToyexInstrument(msgspec.Struct):
    symbol: str     # BTCUSD
    base: str       # BTC
    quote: str      # USD
    tick: float     # price increment
    lot: float      # size increment (base units)
    trading: bool   # open for trading now


TOYEX = venue_source(VENUE, ToyexClient, "toyex", stream=ToyexStream)
'''

STREAM = '''"""Toyex's WebSocket: `{"op": "subscribe", "id", "channels": ["<instrument>@trades" | "@book" | \
"@funding"]}`,
answered `{"id", "ok": true}` or `{"id", "error": {"code", "msg"}}`; pushes `{"channel", "data"}`: trades
`[{id, t (ms), p, q, side}]`, funding `{rate, next (ms), ts}`; the book `{"channel", "type": snapshot |
update, "seq", "prev", "bids", "asks", "ts"}`, each update's prev the seq before it."""

import json

import msgspec

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import Int64, check, columns, each, is_epoch, is_finite, \
is_positive, page_of
from marketdata_assets.datasets.frames import epoch_to_us
from marketdata_assets.datasets.normalized import Funding
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.sources.stream import (BOOK_TOPS, BOOKS, FUNDING, MARK_FUNDING, TRADES, \
ChainedBookSync, Frame,
                                              StreamBase, json_text, record_message, trade_messages, \
venue_number)

VENUE = "TOYEX"
KINDS = {"trades": TRADES, "book": BOOKS, "funding": FUNDING}


class ToyTrade(msgspec.Struct):
    """One trade, as the REST answer and the trades channel both send it."""

    id: Int64   # trade id: the row's trade_id and seq
    t: Int64    # trade time, epoch ms
    p: float    # price, quote per base (a number on REST, text on the stream)
    q: float    # quantity, base units
    side: str   # the taker's side


TRADE_RULES = (is_epoch("t"), is_finite("p"), is_finite("q"), is_positive("p", "price"), is_positive("q", \
"quantity"),
               each("side", ("buy", "sell").__contains__, "{what} side is {value!r}, not buy/sell"))


def trade_columns(data, page):
    """A page of trades (REST's or a push) as checked columns: the one parse both paths use."""
    cols = columns(page_of(ToyTrade, data, "trade", page), ToyTrade.__struct_fields__)
    check(cols, TRADE_RULES, "trade #{i} (id={id})", page, data)
    return cols


class ToyexBook(ChainedBookSync):
    def on_frame(self, data: dict) -> str:
        if data["type"] == "snapshot":
            return self.on_snapshot(data["seq"], data["bids"], data["asks"])
        return self.on_update(data["prev"], data["seq"], data["bids"], data["asks"])


class ToyexStream(StreamBase):
    venue, ws_url, live_source = VENUE, "wss://ws.toyex.invalid", "TOYEX_LIVE"
    supported, default_instruments = (TRADES, BOOKS, FUNDING), ("BTCUSD",)
    landed = {MARK_FUNDING: ("{}@funding",), BOOKS: (BOOK_TOPS,)}

    def channels(self, instruments, depth_speed_ms):
        return [f"{i}@{kind}" for i in instruments for kind, dataset in KINDS.items() if dataset in \
self.datasets]

    def subscribe_messages(self, channels, first_id, op="subscribe"):
        return [(first_id, json_text({"op": op, "id": first_id, "channels": channels}))] if channels else []

    def unsubscribe_messages(self, channels, first_id):
        return self.subscribe_messages(channels, first_id, "unsubscribe")

    def decode(self, text):
        frame = json.loads(text)
        if "error" in frame:
            return Frame("error", request_id=frame.get("id"), error=json_text(frame["error"]),
                         code=str(frame["error"].get("code")))
        if frame.get("ok"):
            return Frame("ack", request_id=frame.get("id"))
        instrument, _, kind = str(frame.get("channel", "")).partition("@")
        if kind not in KINDS:
            return Frame("unknown")
        return Frame("event", frame["channel"], KINDS[kind], instrument, \
frame if kind == "book" else frame["data"])

    def new_book(self, instrument):
        return ToyexBook(instrument)

    def trades(self, frame, recv_ns=0):
        c = trade_columns(frame.data, Page(VENUE, frame.instrument))
        return [Trade(VENUE, frame.instrument, str(i), p, q, p * q, side, i, epoch_to_us(t), t, recv_ns)
                for i, t, p, q, side in zip(c["id"], c["t"], c["p"], c["q"], c["side"])]

    def messages(self, frame, recv_ns):
        if frame.dataset == TRADES:
            return trade_messages(self.trades(frame, recv_ns))
        f = frame.data
        return [record_message(FUNDING, VENUE, frame.instrument, f["ts"], f["ts"], recv_ns,
                               Funding(venue_number(f["rate"]), int(f["next"])))]
'''

REPLAY = '''"""A replay of Toyex's trades endpoint: one trade every 15 minutes, deterministic."""

import json
import threading
from urllib.parse import parse_qs, urlsplit

from websockets.sync.server import serve

from marketdata_assets.replay import BackgroundServer, json_reply

STEP_MS = 15 * 60 * 1000


def trades_of(start_ms: int, end_ms: int) -> list[dict]:
    first = -(-start_ms // STEP_MS)
    return [{"id": i, "t": i * STEP_MS, "p": 100 + (i % 50) / 4, "q": (i % 7 + 1) / 100,
             "side": "buy" if i % 2 else "sell"} for i in range(first, -(-end_ms // STEP_MS))]


def live_trades_of(count: int, start_ms: int) -> list[dict]:
    return [{"id": i, "t": start_ms + i * 10, "p": f"{100 + (i % 9) / 4:.2f}", "q": f"0.0{i % 7 + 1}",
             "side": "buy" if i % 2 else "sell"} for i in range(1, count + 1)]


class ToyexWsReplay:
    """Toyex's WebSocket: after a subscribe, every trade of `live_trades_of`, a book (snapshot, then
    updates), a funding sample; then quiet until closed."""

    def __init__(self, count: int, start_ms: int):
        self.truth = live_trades_of(count, start_ms)
        self.start_ms = start_ms
        self.server = serve(self.handle, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"

    def handle(self, ws) -> None:
        request = json.loads(ws.recv())
        ws.send(json.dumps({"id": request["id"], "ok": True}))
        for channel in request["channels"]:
            instrument, _, kind = channel.partition("@")
            if kind == "book":
                ws.send(json.dumps({"channel": channel, "type": "snapshot", "seq": 1, "prev": 0, \
"ts": self.start_ms,
                                    "bids": [["99.5", "2"], ["99", "1"]], "asks": [["100.5", "1"]]}))
                ws.send(json.dumps({"channel": channel, "type": "update", "seq": 2, "prev": 1, \
"ts": self.start_ms + 5,
                                    "bids": [["99.5", "3"]], "asks": []}))
            elif kind == "funding":
                ws.send(json.dumps({"channel": channel, "data": {"rate": "0.0001", \
"next": self.start_ms + 3600_000,
                                                                 "ts": self.start_ms}}))
        for k in range(0, len(self.truth), 10):
            ws.send(json.dumps({"channel": "BTCUSD@trades", "data": self.truth[k:k + 10]}))
        for _ in ws:
            pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


class ToyexReplay(BackgroundServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.listen(host, port, self.dispatch, name="toyex")

    def dispatch(self, method, target, headers, body):
        url = urlsplit(target)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/instruments":
            return json_reply(200, {"instruments": [{"symbol": "BTCUSD", "base": "BTC", "quote": "USD", \
"tick": 0.5,
                                                     "lot": 0.001, "trading": True}]})
        if url.path != "/trades":
            return json_reply(404, {"code": "NOT_FOUND"})
        return json_reply(200, {"trades": trades_of(int(query["from"]), int(query["to"]))})
'''

RUN_LIVE = """
import json, os, re, signal, subprocess, sys, time, urllib.request
from pathlib import Path
import dagster as dg
from marketdata_assets.replay.toyex import ToyexReplay, ToyexWsReplay

replay = ToyexReplay().start()  # the REST replay, for RUN_REST: its URL in the environment the definitions \
read
os.environ["TOYEX_BASE_URL"] = replay.base_url
state = Path({state!r})
landing, count, start_ms = state / "landing" / "live", 60, int(time.time() * 1000) - 3000
with ToyexWsReplay(count, start_ms) as ws:
    collector = subprocess.Popen([sys.executable, "-c", "from marketdata_assets.apps.cli import main; \
main()", "collect",
                                  "--venue", "toyex", "--url", f"TOYEX={{ws.url}}", "--instruments", \
"TOYEX:BTCUSD",
                                  "--no-nats", "--direct-write", "--metrics-port", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = collector.stderr.readline()
    found = re.search(r"endpoints (http://\\S+)", line)
    assert found, line + collector.stderr.read()[-3000:]
    url = found.group(1)
    deadline = time.monotonic() + 60
    while True:  # every trade taken, and the book's first top-N snapshot landed
        counters = json.loads(urllib.request.urlopen(url + "/status").read())["collector"]
        if counters["trades"] >= count and counters["book_tops_landed"] >= 1:
            break
        assert time.monotonic() < deadline, counters
        time.sleep(0.1)
    collector.send_signal(signal.SIGINT)
    out, err = collector.communicate(timeout=60)
assert collector.returncode == 0, err[-3000:]
from marketdata_assets.definitions import defs
from marketdata_assets.resources import ClickHouseResource
d = defs()
clickhouse = ClickHouseResource(dsn=os.environ["CLICKHOUSE_DSN"], database="recipe")
# one client held open to the end (as tests/conftest.py's clickhouse_dsn): the embedded engine starts once,
# not again at each step's open after the last client closed; the steps open and close their own
keeper = ClickHouseResource(dsn=os.environ["CLICKHOUSE_DSN"], database="default")
with keeper.get_client():  # opened, and open until keeper.close()
    pass
hours = sorted({{p.name[:14] for p in (landing / "TOYEX" / "BTCUSD@trades").glob("*.jsonl.zst")}})
results = {{}}
with dg.DagsterInstance.ephemeral() as instance:
    for name in ("live_trades", "live_mark_funding", "live_books"):
        asset = d.get_assets_def(name)
        checks = [c for c in d.asset_checks or [] if dg.AssetKey(name) in {{k.asset_key for k in \
c.check_keys}}]
        for hour in hours:
            result = dg.materialize([asset, *checks], resources={{**d.resources, "clickhouse": clickhouse}},
                                    instance=instance, partition_key=f"{{hour[:10]}}-{{hour[11:13]}}:00",
                                    raise_on_error=False, run_config={{"ops": {{name: {{"config": {{
                                        "instruments": ["TOYEX:BTCUSD"]}}}}}}}})
            results[f"{{name}} {{hour}}"] = [result.success, {{e.check_name: e.passed for e in
                                                               result.get_asset_check_evaluations()}}]
with clickhouse.get_client() as client:
    def rows(sql):
        return [list(r) for r in client.query(sql).result_rows]
    live = rows("SELECT trade_id, price, quantity, amount, side FROM recipe.trades_live FINAL WHERE venue = \
'TOYEX' "
                "ORDER BY toUInt64(trade_id)")
    hourly = rows("SELECT trade_id, price, quantity, amount, side FROM recipe.trades_v WHERE venue = 'TOYEX' "
                  "ORDER BY toUInt64(trade_id)")
    funding = rows("SELECT funding_rate, toUnixTimestamp64Milli(next_funding_time) FROM \
recipe.mark_funding_v "
                   "WHERE venue = 'TOYEX'")
    books = rows("SELECT count(), uniqExact(update_id) FROM recipe.book_snapshots_v WHERE venue = 'TOYEX'")
print(json.dumps({{"results": results, "live": live, "hourly": hourly, "funding": funding, "books": books,
                  "truth": [[str(t["id"]), float(t["p"]), float(t["q"]), float(t["p"]) * float(t["q"]), \
t["side"]]
                            for t in ws.truth], "next": start_ms + 3600_000}}))
"""


# The REST path, after RUN_LIVE in the same interpreter (its `d`, the replay's URL set before `defs()`):
# the config without the entry is refused; crypto_trades of yesterday and the venue's instrument master.
RUN_REST = """
from datetime import datetime, timedelta, timezone
from marketdata_assets.replay.toyex import trades_of
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
clickhouse = ClickHouseResource(dsn=os.environ["CLICKHOUSE_DSN"], database="recipe_rest")
with dg.DagsterInstance.ephemeral() as instance:
    result = dg.materialize([d.get_assets_def("crypto_trades")], resources={{**d.resources, \
"clickhouse": clickhouse}},
                            instance=instance, selection=["crypto_trades"], raise_on_error=False,
                            partition_key=dg.MultiPartitionKey({{"day": day.isoformat(), "venue": "TOYEX"}}))
    master = dg.materialize([d.get_assets_def("instrument_master")], resources={{**d.resources, \
"clickhouse": clickhouse}},
                            instance=instance, raise_on_error=False,
                            run_config={{"ops": {{"instrument_master": {{"config": {{"venues": \
["TOYEX"]}}}}}}}})
with clickhouse.get_client() as client:
    rows = client.query("SELECT count(), uniqExact(trade_id), round(sum(quantity), 6), min(price) "
                        "FROM recipe_rest.trades_v WHERE venue = 'TOYEX' AND instrument = \
'BTCUSD'").result_rows[0]
    listed = client.query("SELECT instrument, tick_size, status FROM recipe_rest.instruments FINAL "
                          "WHERE venue = 'TOYEX'").result_rows
replay.stop()
keeper.close()
print(json.dumps({{"success": result.success, "rows": list(rows), "master": master.success,
                  "listed": [list(r) for r in listed], "refused": refused, \
"resource": type(d.resources["toyex"]).__name__,
                  "truth": [len(truth), len(truth), round(sum(t["q"] for t in truth), 6), \
min(t["p"] for t in truth)]}}))
"""


def _follow_the_recipe(tree: Path) -> Path:
    """The recipe's steps on the copy; returns the config without the new entry (for the refusal)."""
    package = tree / "marketdata_assets"
    (package / "sources" / "toyex").mkdir()
    (package / "sources" / "toyex" / "__init__.py").write_text(PACKAGE)
    (package / "sources" / "toyex" / "stream.py").write_text(STREAM)
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
    text = text.replace(
        "\nsources:",
        "\nsources:\n  toyex:\n    base_url: https://api.toyex.invalid\n"
        "    base_url_env: TOYEX_BASE_URL\n    requests_per_minute: 600\n",
        1,
    )
    config.write_text(
        text.replace("      BINANCE: [BTCUSDT", "      TOYEX: [BTCUSD]\n      BINANCE: [BTCUSDT", 1)
    )
    return without_entry


@pytest.fixture(scope="module")
def followed(tmp_path_factory) -> dict:
    """The recipe followed once on a copy of the package, then one fresh interpreter: RUN_LIVE (`marketdata
    collect` as its child, the hourly live assets), then RUN_REST; {"live": ..., "rest": ...} they printed."""
    tmp = tmp_path_factory.mktemp("recipe")
    tree = package_copy(tmp)
    without_entry = _follow_the_recipe(tree)
    script = RUN_LIVE.format(state=str(tmp / "state")) + RUN_REST.format(without_entry=str(without_entry))
    printed, stderr = run_fresh(tmp, tree, script, "recipe")
    (live,) = [found for found in printed if "results" in found]
    (rest,) = [found for found in printed if "success" in found]
    return {"live": live, "rest": rest, "stderr": stderr}


def test_a_new_venue_is_a_package_a_registry_line_a_replay_and_a_config_entry(followed):
    found = followed["rest"]
    assert "sources.toyex: missing" in found["refused"]  # the entry is required once declared
    assert found["resource"] == "CryptoVenueResource"  # built by the resources' loop
    assert found["success"], followed["stderr"]
    assert found["rows"] == found["truth"] and found["truth"][0] == 96  # every trade of the day, each once
    assert found["master"] and found["listed"] == [
        ["BTCUSD", 0.5, "live"]
    ]  # its reference endpoint, in the master


def test_the_new_venue_streams_live_through_marketdata_collect_to_trades_live_and_the_hourly_loads(followed):
    """The same recipe, with the venue's stream (trades, a book, funding) in its package: `marketdata collect`
    (direct writes, no NATS) lands it and fills trades_live; the hourly live assets load trades, the
    funding sample and the book from the landing, and trades_live equals the hourly trades row for row."""
    found = followed["live"]
    assert found["results"] and all(
        ok and all(checks.values()) for ok, checks in found["results"].values()
    ), found["results"]
    assert found["live"] == found["hourly"] == found["truth"]  # every trade once, the same row on both paths
    assert found["funding"] == [[0.0001, found["next"]]]
    assert found["books"][0][0] > 0 and found["books"][0][1] >= 1
