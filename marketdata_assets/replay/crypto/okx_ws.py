"""OKX's public WebSocket v5, replayed (the protocol as sources/okx/stream.py documents it).

Subscriptions, ping/pong and the idle close; `books` snapshots and updates with real seqIds and
checksums, the tape's trades, and tickers, mark price, funding, open interest, liquidations and candles
from the REST replay's generators, so live and REST agree. What it serves, its faults and limits:
docs/tests.md, "The OKX WebSocket replay".
"""

from __future__ import annotations

import asyncio
import json

from marketdata_assets.replay.crypto import derived
from marketdata_assets.replay.crypto.config import OKX
from marketdata_assets.replay.crypto.live_book import LiveInstrument, last_closed_bar, open_bar
from marketdata_assets.replay.crypto.okx import FUNDING_HOURS, OI_STEP_US, Okx, fmt_plain
from marketdata_assets.replay.crypto.tape import MINUTE_US, instrument_spec
from marketdata_assets.replay.crypto.ws_replay import Move, VenueWsReplay
from marketdata_assets.replay.crypto.ws_server import Client
from marketdata_assets.sources.okx.stream import (
    CHECKSUM_LEVELS,
    SERVICE_UPGRADE,
    checksum,
    is_contract,
    is_swap,
)

CHANNELS = ("trades", "books", "tickers", "mark-price", "funding-rate", "open-interest")
BUSINESS_CHANNELS = ("candle1m",)
BUSINESS_PATH = "/ws/v5/business"


def text(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))


class OkxWsReplay(VenueWsReplay):
    venue = OKX
    path = "/ws/v5/public"
    other_paths = (BUSINESS_PATH,)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rest_venue = Okx(self.market.config, self.market)
        self.last_trade: dict[str, tuple] = {}

    def _valid(self, client: Client, channel: str, instrument: str) -> bool:
        if client.path == BUSINESS_PATH:
            return channel in BUSINESS_CHANNELS and instrument in self.instruments
        if channel == "liquidation-orders":
            return instrument == "SWAP"
        return (
            channel in CHANNELS
            and instrument in self.instruments
            and (channel != "funding-rate" or is_swap(instrument))
            and (channel not in ("mark-price", "open-interest") or is_contract(instrument))
        )

    def _levels(self, pairs) -> list[list[str]]:
        return [[p, q, "0", "1"] for p, q in pairs]

    def _checksum(self, live: LiveInstrument) -> int:
        _, bids, asks = live.top(CHECKSUM_LEVELS)
        return checksum(bids, asks)

    async def control(self, client: Client, message: str | bytes) -> bool:
        if message == "ping":
            self.counts["pings"] += 1
            self.reply(client, "pong")
            return True
        try:
            request = json.loads(message)
            op, args, request_id = request["op"], request["args"], request.get("id")
            args = [(str(a["channel"]), str(a.get("instId") or a["instType"])) for a in args]
        except (ValueError, KeyError, TypeError):
            self.reply(
                client,
                text(
                    {
                        "event": "error",
                        "code": "60012",
                        "msg": f"Invalid request: {message!s:.200}",
                        "connId": str(client.number),
                    }
                ),
            )
            return True
        head = {"id": request_id} if request_id is not None else {}
        if op == "subscribe" and self.refuse_subscribe():
            self.reply(
                client,
                text(
                    {
                        **head,
                        "event": "error",
                        "code": "60012",
                        "msg": "Invalid request: service temporarily unavailable",
                        "connId": str(client.number),
                    }
                ),
            )
            return True
        for channel, instrument in args:
            if op not in ("subscribe", "unsubscribe") or not self._valid(client, channel, instrument):
                self.reply(
                    client,
                    text(
                        {
                            **head,
                            "event": "error",
                            "code": "60018",
                            "msg": f"Wrong URL or channel:{channel},instId:{instrument} doesn't exist",
                            "connId": str(client.number),
                        }
                    ),
                )
                continue
            self._subscribe(client, op, channel, instrument, head)
        return True

    def _subscribe(self, client: Client, op: str, channel: str, instrument: str, head: dict) -> None:
        key = f"{instrument}@{channel}"
        field = "instType" if channel == "liquidation-orders" else "instId"
        self.reply(
            client,
            text(
                {
                    **head,
                    "event": op,
                    "arg": {"channel": channel, field: instrument},
                    "connId": str(client.number),
                }
            ),
        )
        if op == "unsubscribe":
            client.streams.discard(key)
            return
        client.streams.add(key)
        if channel == "books":
            live = self.instruments[instrument]
            update_id, bids, asks = live.top(400)
            self.send_data(
                client,
                text(
                    {
                        "arg": {"channel": "books", "instId": instrument},
                        "action": "snapshot",
                        "data": [
                            {
                                "asks": self._levels(asks),
                                "bids": self._levels(bids),
                                "ts": str(live.market.now_us() // 1000),
                                "checksum": checksum(bids[:CHECKSUM_LEVELS], asks[:CHECKSUM_LEVELS]),
                                "prevSeqId": -1,
                                "seqId": update_id,
                            }
                        ],
                    }
                ),
            )

    def publish(self, name: str, live: LiveInstrument, move: Move) -> None:
        cs = self._checksum(live) + (1 if move.bad_checksum else 0)
        book = text(
            {
                "arg": {"channel": "books", "instId": name},
                "action": "update",
                "data": [
                    {
                        "asks": self._levels(move.asks),
                        "bids": self._levels(move.bids),
                        "ts": str(move.event_ms),
                        "checksum": cs,
                        "prevSeqId": move.first - 1,
                        "seqId": move.last,
                    }
                ],
            }
        )
        trades = [
            text(
                {
                    "arg": {"channel": "trades", "instId": name},
                    "data": [
                        {
                            "instId": name,
                            "tradeId": str(i),
                            "px": fmt_plain(p),
                            "sz": fmt_plain(q),
                            "side": "buy" if buy else "sell",
                            "ts": str(move.event_ms),
                            "count": "1",
                        }
                        for i, p, q, buy in chunk
                    ],
                }
            )
            for chunk in self.trade_pushes(move)
        ]
        for client in list(self.clients.values()):
            if f"{name}@books" in client.streams:
                self.send_data(client, book)
            if f"{name}@trades" in client.streams:
                for push in trades:
                    self.send_data(client, push)
        if move.trades:
            self.last_trade[name] = move.trades[-1]
        pushes = self._derived(name, live, move)
        if is_swap(name):
            pushes.append(("SWAP@liquidation-orders", self._liquidations(name, move)))
        for client in list(self.clients.values()):
            for key, push in pushes:
                if push is not None and key in client.streams:
                    self.send_data(client, push)
        self._candles(name, move.event_ms)

    def _push(self, channel: str, arg: dict, data: list) -> str | None:
        """The push, or None when no client subscribes to it (so a `bad_frame` fault waits for one)."""
        key = f"{arg.get('instId', arg.get('instType'))}@{channel}"
        if not any(key in client.streams for client in self.clients.values()):
            return None
        return text(
            {
                "arg": arg if "instType" in arg else {"channel": channel, **arg},
                "data": self.maybe_damaged(channel, data),
            }
        )

    def _derived(self, name: str, live: LiveInstrument, move: Move) -> list[tuple[str, str | None]]:
        """(landing channel, push) of tickers and, when due, mark-price, funding-rate, open-interest."""
        out: list[tuple[str, str | None]] = []
        ts = str(move.event_ms)
        _, bids, asks = live.top(1)
        if bids and asks and self.due("tickers", name, self.config.ticker_every_s):
            _, px, sz, _ = self.last_trade.get(name, (0, float(bids[0][0]), 0.0, True))
            out.append(
                (
                    f"{name}@tickers",
                    self._push(
                        "tickers",
                        {"instId": name},
                        [
                            {
                                "instType": "SWAP" if is_swap(name) else "SPOT",
                                "instId": name,
                                "last": fmt_plain(px),
                                "lastSz": fmt_plain(sz),
                                "askPx": asks[0][0],
                                "askSz": asks[0][1],
                                "bidPx": bids[0][0],
                                "bidSz": bids[0][1],
                                "ts": ts,
                            }
                        ],
                    ),
                )
            )
        if not is_contract(name) or not self.due("derived", name, self.config.derived_every_s):
            return out
        now = self.market.now_us()
        mark = derived.mark_bar(self.market, OKX, name, now - now % MINUTE_US - MINUTE_US)[3]
        out.append(
            (
                f"{name}@mark-price",
                self._push(
                    "mark-price",
                    {"instId": name},
                    [
                        {
                            "instType": "SWAP" if is_swap(name) else "FUTURES",
                            "instId": name,
                            "markPx": fmt_plain(mark),
                            "ts": ts,
                        }
                    ],
                ),
            )
        )
        grid = now - now % OI_STEP_US
        oi, coin, usd = self.rest_venue.open_interest_row(name, grid)
        out.append(
            (
                f"{name}@open-interest",
                self._push(
                    "open-interest",
                    {"instId": name},
                    [
                        {
                            "instType": "SWAP",
                            "instId": name,
                            "oi": fmt_plain(oi),
                            "oiCcy": fmt_plain(coin),
                            "oiUsd": fmt_plain(usd),
                            "ts": str(grid // 1000),
                        }
                    ],
                ),
            )
        )
        if is_swap(name):
            step = FUNDING_HOURS * derived.HOUR_US
            settle = now - now % step + step
            rate = fmt_plain(derived.funding_rate(self.market, OKX, name, settle, FUNDING_HOURS))
            out.append(
                (
                    f"{name}@funding-rate",
                    self._push(
                        "funding-rate",
                        {"instId": name},
                        [
                            {
                                "instType": "SWAP",
                                "instId": name,
                                "fundingRate": rate,
                                "fundingTime": str(settle // 1000),
                                "nextFundingTime": str((settle + step) // 1000),
                                "method": "current_period",
                                "formulaType": "withRate",
                                "ts": ts,
                            }
                        ],
                    ),
                )
            )
        return out

    def _liquidations(self, name: str, move: Move) -> str | None:
        """The move's liquidated trades (derived.is_liquidation, as REST's liquidation-orders)."""
        seed = self.market.config.seed
        picked = [t for t in move.trades if derived.is_liquidation(seed, OKX, name, t[0])]
        if not picked:
            return None
        details = [
            {
                "bkLoss": "0",
                "bkPx": fmt_plain(p),
                "ccy": "",
                "posSide": "short" if buy else "long",
                "side": "buy" if buy else "sell",
                "sz": fmt_plain(q),
                "ts": str(move.event_ms),
            }
            for _, p, q, buy in picked
        ]
        family = name.rsplit("-", 1)[0]
        return self._push(
            "liquidation-orders",
            {"channel": "liquidation-orders", "instType": "SWAP"},
            [{"details": details, "instFamily": family, "instId": name, "instType": "SWAP", "uly": family}],
        )

    def _candles(self, name: str, event_ms: int) -> None:
        """candle1m on the business endpoint: the open bar about every second, the last closed bar
        to each subscriber that has not had it (docs/tests.md, "The OKX WebSocket replay")."""
        stream = f"{name}@candle1m"
        clients = [c for c in self.clients.values() if stream in c.streams]
        if not clients:
            return
        now = self.market.now_us()
        closed = last_closed_bar(self.market, OKX, name, now)
        update = (
            self._candle(name, open_bar(self.market, OKX, name, now), "0")
            if self.due("candle", name, 1.0)
            else None
        )
        for client in clients:
            if closed is not None and client.bars_sent.get(stream) != closed[0]:
                client.bars_sent[stream] = closed[0]
                self.send_data(client, self._candle(name, closed, "1"))
            if update is not None:
                self.send_data(client, update)

    def _candle(self, name: str, bar: tuple, confirm: str) -> str | None:
        ts, o, h, low, c, vol, quote, _, size_vol = bar[:9]
        vol_ccy = quote if instrument_spec(OKX, name).size_unit == "base" else vol
        return self._push(
            "candle1m",
            {"instId": name},
            [
                [
                    str(ts // 1000),
                    fmt_plain(o),
                    fmt_plain(h),
                    fmt_plain(low),
                    fmt_plain(c),
                    fmt_plain(size_vol),
                    fmt_plain(vol_ccy),
                    fmt_plain(quote),
                    confirm,
                ]
            ],
        )

    def announce_cut(self, client: Client) -> float:
        """OKX's service-upgrade notice, `cut_notice_s` (OKX: ~30 s) before the connection is closed."""
        self.reply(
            client,
            text(
                {
                    "event": "notice",
                    "code": SERVICE_UPGRADE,
                    "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                    "connId": str(client.number),
                }
            ),
        )
        return self.config.cut_notice_s

    def check_idle(self) -> None:
        now = asyncio.get_running_loop().time()
        for client in list(self.clients.values()):
            if now - max(client.last_in, client.last_out) > self.config.idle_s and not client.stalled:
                self.counts["idle_closes"] += 1
                asyncio.ensure_future(client.connection.close(4004, "No data received in 30s."))


def main(argv: list[str] | None = None) -> int:
    """`python -m marketdata_assets.replay.crypto.okx_ws --port 8768`: OKX's public WebSocket on the
    replay market, until Ctrl-C or SIGTERM."""
    from marketdata_assets.replay.crypto.ws_main import run

    return run(OkxWsReplay, "okx_ws", 8768, argv)


if __name__ == "__main__":
    raise SystemExit(main())
