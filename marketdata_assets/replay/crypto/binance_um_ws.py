"""Binance USD-M futures WebSocket market streams, replayed (venue BINANCE_UM; the protocol as
sources/binance/futures_stream.py documents it): spot's replay (binance_ws.py: combined streams,
SUBSCRIBE, limits, faults) with USD-M's streams, on the BINANCE_UM tapes and books.

aggTrade, depth (chained by `pu`), bookTicker, kline, markPrice and forceOrder streams, the all-market
arrays, and `bad_frame`: docs/tests.md, "The Binance USD-M WebSocket replay".
"""

from __future__ import annotations

from marketdata_assets.replay.crypto import derived
from marketdata_assets.replay.crypto.binance_um import BinanceUm
from marketdata_assets.replay.crypto.binance_ws import STREAM_KINDS, BinanceWsReplay
from marketdata_assets.replay.crypto.config import BINANCE_UM
from marketdata_assets.replay.crypto.live_book import LiveInstrument, fmt8
from marketdata_assets.replay.crypto.tape import binance_trade_span

UM_STREAM_KINDS = (*STREAM_KINDS, "aggTrade", "markPrice@1s", "forceOrder")


class BinanceUmWsReplay(BinanceWsReplay):
    venue = BINANCE_UM
    path = ""
    stream_kinds = UM_STREAM_KINDS
    trade_kind = "aggTrade"
    all_market = ("!forceOrder@arr", "!markPrice@arr@1s", "!markPrice@arr")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rest_venue = BinanceUm(self.market.config, self.market)

    def depth_event(self, live: LiveInstrument, event_ms: int, skip: bool) -> dict:
        event = live.step(event_ms, skip=skip)
        first, last = event["U"], event["u"]
        return {**event, "U": first + 1 if last > first else first, "T": event_ms, "pu": first - 1}

    def trades(self, live: LiveInstrument, count: int, event_ms: int) -> list[dict]:
        out = []
        for agg_id, price, size, buy in live.tape_trades(count):
            first, last = binance_trade_span(agg_id)
            out.append(
                {
                    "e": "aggTrade",
                    "E": event_ms,
                    "s": live.instrument,
                    "a": agg_id,
                    "p": fmt8(price),
                    "q": fmt8(size),
                    "f": first,
                    "l": last,
                    "T": event_ms,
                    "m": not buy,
                }
            )
        return out

    def book_ticker(self, ticker: dict, event_ms: int) -> dict:
        return {"e": "bookTicker", **ticker, "E": event_ms, "T": event_ms}

    def extras(self, name: str, live: LiveInstrument, trades: list[dict], event_ms: int) -> None:
        lower = name.lower()
        mark = None
        if self.due("markPrice", name, self.config.derived_every_s):
            p = self.rest_venue.premium_index(name, self.market.now_us())
            mark = {
                "e": "markPriceUpdate",
                "E": event_ms,
                "s": name,
                "p": p["markPrice"],
                "i": p["indexPrice"],
                "P": p["estimatedSettlePrice"],
                "r": p["lastFundingRate"],
                "T": p["nextFundingTime"],
            }
        seed = self.market.config.seed
        liquidations = [
            {
                "e": "forceOrder",
                "E": event_ms,
                "o": {
                    "s": name,
                    "S": "BUY" if t["m"] else "SELL",
                    "o": "LIMIT",
                    "f": "IOC",
                    "q": t["q"],
                    "p": t["p"],
                    "ap": t["p"],
                    "X": "FILLED",
                    "l": t["q"],
                    "z": t["q"],
                    "T": t["T"],
                },
            }
            for t in trades
            if derived.is_liquidation(seed, BINANCE_UM, name, t["a"])
        ]
        # the venue pushes the latest liquidation of each 1000 ms only
        liquidations = liquidations[-1:] if liquidations and self.due("forceOrder", name, 1.0) else []
        for client in list(self.clients.values()):
            if mark is not None:
                self._deliver(client, f"{lower}@markPrice@1s", mark)
                for every in ("!markPrice@arr@1s", "!markPrice@arr"):
                    self._deliver(client, every, [mark])
            for order in liquidations:
                self._deliver(client, f"{lower}@forceOrder", order)
                self._deliver(client, "!forceOrder@arr", order)


def main(argv: list[str] | None = None) -> int:
    """`python -m marketdata_assets.replay.crypto.binance_um_ws --port 8770 --rest-port 8771`: USD-M's
    WebSocket streams and the REST replay on one market (its /fapi/v1/depth fits the stream)."""
    from marketdata_assets.replay.crypto.ws_main import run

    return run(BinanceUmWsReplay, "binance_um_ws", 8770, argv)


if __name__ == "__main__":
    raise SystemExit(main())
