"""The peer for `bench live_capture`: cryptofeed's Binance feed (trades and L2 books: it parses every
frame, checks the diffs' U/u and keeps its books from the sender's REST snapshots) fed by
bench/live_sender.py; run by the peer venv's python (bench/peer_venv.py), never the project's.

Sinks: `noop` (callbacks that only count) or `redis` (cryptofeed's `TradeStream`: XADD per trade to
`benchpeer-trades-BINANCE-<symbol>` at `--redis-url`; its keys are deleted before the run, their
length reported after). Counts from the first frame for `--seconds`, stops the feed and waits for
the redis writer to have written every trade handed to it (cryptofeed's own stop can end the writer
with its queue's tail unwritten), then prints one JSON line like bench/live_capture_roles.py's.
uvloop by default, as cryptofeed's FeedHandler does (`--loop asyncio`: the plain loop, like ours).

Overridden in cryptofeed (2.4.1), nothing on its per-frame path made cheaper:
- endpoints: the sender's ws:// and http:// instead of binance.com (`websocket_endpoints`,
  `rest_endpoints`); `WSAsyncConn` refuses any address but wss://, so the feed module's name is
  bound to a subclass that lets ws:// through. Connect options are cryptofeed's (pings every 10 s,
  no size cap) but `max_queue` 256 like our roles (cryptofeed's None reads ahead without bound: the
  REST snapshot, fetched at the first diff, then lands ~30k diffs past what the feed has handled
  and over half the diffs are dropped as stale, cheaply) and `close_timeout` 1 (the close is off
  the clock);
- the symbol map: built by cryptofeed's own `_parse_symbol_data` from a local exchangeInfo-shaped
  dict instead of a GET of /api/v3/exchangeInfo (a startup step, the sender has no such endpoint);
- trades: cryptofeed subscribes to `aggTrade`; the sender (like our collector) sends raw `trade`
  events (id `t`, not `a`), so the channel name, the handler's dispatch and `_trade`'s id field
  follow that. `message_handler` is cryptofeed's own otherwise (same parse, same calls), plus a
  counter of the messages it is handed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from decimal import Decimal
from importlib.metadata import version
from typing import ClassVar
from urllib.parse import urlsplit

from cryptofeed import feed as feed_module
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
from cryptofeed.defines import BINANCE, BUY, L2_BOOK, SELL, TRADES
from cryptofeed.exchanges import Binance
from cryptofeed.symbols import Symbols
from cryptofeed.types import Trade
from yapic import json as yjson

LOG = logging.getLogger("feedhandler")
QUOTES = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB")
REDIS_KEY = "benchpeer-trades"  # cryptofeed's default is `trades`: ours stays apart from anything else


class PlainWSConn(WSAsyncConn):
    """cryptofeed's websocket connection, allowed a plain ws:// address (the sender is on loopback)."""

    def __init__(self, address: str, conn_id: str, **kwargs):
        super().__init__("wss://" + address.removeprefix("ws://"), conn_id, **kwargs)
        self.address = address


feed_module.WSAsyncConn = PlainWSConn  # Feed.connect builds its connections from this name


class BenchBinance(Binance):
    """cryptofeed's Binance spot feed on the sender's raw `trade` events; counts its messages."""

    websocket_channels: ClassVar[dict] = {**Binance.websocket_channels, TRADES: "trade"}
    frames = 0
    on_first = staticmethod(lambda: None)

    async def message_handler(self, msg: str, conn, timestamp: float):
        if not self.frames:
            self.on_first()
        self.frames += 1
        # from here: Binance.message_handler (public streams), `trade` dispatched where it has `aggTrade`
        msg = yjson.loads(msg, parse_float=Decimal)
        pair, _ = msg["stream"].split("@", 1)
        msg = msg["data"]
        pair = pair.upper()
        if "e" in msg:
            if msg["e"] == "depthUpdate":
                await self._book(msg, pair, timestamp)
            elif msg["e"] == "trade":
                await self._trade(msg, timestamp)
            else:
                LOG.warning("%s: Unexpected message received: %s", self.id, msg)
        else:
            LOG.warning("%s: Unexpected message received: %s", self.id, msg)

    async def _trade(self, msg: dict, timestamp: float):
        """Binance._trade with the raw trade's id `t` (an aggTrade's is `a`)."""
        t = Trade(
            self.id,
            self.exchange_symbol_to_std_symbol(msg["s"]),
            SELL if msg["m"] else BUY,
            Decimal(msg["q"]),
            Decimal(msg["p"]),
            self.timestamp_normalize(msg["T"]),
            id=str(msg["t"]),
            raw=msg,
        )
        await self.callback(TRADES, t, timestamp)


def make_feed(
    url: str, rest_url: str, instruments: list[str], callbacks: dict, max_queue: int | None
) -> BenchBinance:
    """The feed on the sender's endpoints, its symbol map made locally (see the module doc)."""
    BenchBinance.websocket_endpoints = [
        WebsocketEndpoint(url, options={"max_queue": max_queue, "close_timeout": 1})
    ]
    BenchBinance.rest_endpoints = [
        RestEndpoint(
            rest_url, routes=Routes("/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}")
        )
    ]
    info = {
        "symbols": [
            {"symbol": s, "baseAsset": s[: -len(q)], "quoteAsset": q, "filters": [{"tickSize": "0.01"}]}
            for s in instruments
            for q in [next(q for q in QUOTES if s.endswith(q))]
        ]
    }
    mapping, extra = Binance._parse_symbol_data(info)
    Symbols.set(BINANCE, mapping, extra)
    return BenchBinance(symbols=list(mapping), channels=[TRADES, L2_BOOK], callbacks=callbacks)


class Tally(logging.Handler):
    """Counts, and keeps the first few of, cryptofeed's warnings (resyncs, reconnects, odd messages)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count, self.first = 0, []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(record.getMessage()[:300])


def redis_entries(redis_url: str, clear: bool) -> int:
    """The entries of the peer's trade streams (deleted first when `clear`)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{REDIS_KEY}-*"))
    if clear and keys:
        client.delete(*keys)
        return 0
    return sum(client.xlen(k) for k in keys)


async def run(args: argparse.Namespace) -> dict:
    counts = {"trades": 0, "book_updates": 0, "snapshots": 0}

    async def on_trade(trade, receipt_timestamp):
        counts["trades"] += 1

    async def on_book(book, receipt_timestamp):
        counts["book_updates" if book.delta is not None else "snapshots"] += 1

    trades, sink = [on_trade], None
    if args.sink == "redis":
        from cryptofeed.backends.redis import TradeStream

        parts = urlsplit(args.redis_url)
        sink = TradeStream(host=parts.hostname, port=parts.port or 6379, key=REDIS_KEY)
        sink.redis = args.redis_url  # cryptofeed builds its URL from host and port only: keep the db number
        trades.append(sink)
    feed = make_feed(
        args.url,
        args.rest_url,
        args.instruments.split(","),
        {TRADES: trades, L2_BOOK: on_book},
        args.max_queue or None,
    )
    first, marks = asyncio.Event(), []
    feed.on_first = lambda: (marks.extend((time.perf_counter(), time.process_time())), first.set())
    feed.start(asyncio.get_running_loop())
    await asyncio.wait_for(first.wait(), 60)
    await asyncio.sleep(args.seconds - (time.perf_counter() - marks[0]))
    feed.stop()  # its connection handler hands no further message to the feed
    if sink is not None:
        await sink.queue.join()  # every trade handed to the backend written (its writer marks them done)
        await sink.stop()  # then what feed.shutdown() does first: the stop sentinel; its writer ends
        await sink.worker
    wall, cpu = time.perf_counter() - marks[0], time.process_time() - marks[1]
    await feed.shutdown()  # closes the connection (off the clock, like the bare role's close)
    levels = {pair: [len(book.book.bids), len(book.book.asks)] for pair, book in feed._l2_book.items()}
    return {
        "frames": feed.frames,
        **counts,
        "ws_received": sum(c.conn.received for c in feed.connection_handlers),
        "book_levels": levels,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python bench/live_capture_peer.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", required=True, help="the sender's ws://host:port")
    parser.add_argument("--rest-url", required=True, help="the sender's http://host:port")
    parser.add_argument("--instruments", default="BTCUSDT")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--sink", choices=("noop", "redis"), default="noop")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:56379/0")
    parser.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="the websocket's frame queue (0: none, cryptofeed's default)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="cryptofeed's FeedHandler installs uvloop by default",
    )
    args = parser.parse_args(argv)
    tally = Tally()
    LOG.addHandler(tally)
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.sink == "redis":
        redis_entries(args.redis_url, clear=True)
    result = asyncio.run(run(args))
    result["skipped"] = result["frames"] - result["trades"] - result["book_updates"]
    if args.sink == "redis":
        result["redis_entries"] = redis_entries(args.redis_url, clear=False)
    result.update(
        warnings=tally.count,
        first_warnings=tally.first,
        version=version("cryptofeed"),
        sink=args.sink,
        loop=args.loop,
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
