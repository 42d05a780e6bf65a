"""Deribit v2 public market data (`/api/v2/public/...`) as the venue answers it.

`get_last_trades_by_instrument_and_time`, `get_last_trades_by_instrument` (start_seq/end_seq),
`get_order_book`, `get_tradingview_chart_data` (resolution=1), `get_time`. Every answer, errors
included, is a JSON-RPC envelope with usIn/usOut/usDiff/testnet; numbers are JSON numbers,
inverse perpetuals count amounts in USD. Errors: -32602 invalid params, -32601 unknown method,
10028 too many requests, 13009 unauthorized.
"""

from __future__ import annotations

import random
import time
from typing import Any, ClassVar

from marketdata_assets.replay import Reply, json_reply
from marketdata_assets.replay.crypto.config import DERIBIT, Fault
from marketdata_assets.replay.crypto.tape import DayTape, instrument_spec
from marketdata_assets.replay.crypto.venue import VendorError, Venue, damage, middle, retry_after

TRADES = ("get_last_trades_by_instrument_and_time", "get_last_trades_by_instrument")
METHODS = (*TRADES, "get_order_book", "get_tradingview_chart_data")
BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)
NGINX_PAGE = ("<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad Gateway</h1>"
              "</center><hr><center>nginx</center></body></html>")


def invalid(reason: str, param: str) -> VendorError:
    return VendorError(400, {"error": {"message": "Invalid params", "data": {"reason": reason, "param": param},
                                       "code": -32602}})


def rpc(payload: Any, query: dict) -> dict:
    """The JSON-RPC envelope: `error` when the payload is one, else `result`."""
    us_in = int(time.time() * 1_000_000)
    envelope: dict[str, Any] = {"jsonrpc": "2.0"}
    if "id" in query:
        envelope["id"] = int(query["id"]) if query["id"].isdigit() else query["id"]
    if isinstance(payload, dict) and "error" in payload and len(payload) == 1:
        envelope["error"] = payload["error"]
    else:
        envelope["result"] = payload
    us_out = us_in + 37
    envelope.update({"usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in, "testnet": False})
    return envelope


def rpc_error(message: str, code: int, **extra) -> dict:
    return rpc({"error": {"message": message, **extra, "code": code}}, {})


class Deribit(Venue):
    name = DERIBIT
    prefix = "/api/v2/"
    instrument_param = "instrument_name"
    endpoints: ClassVar[dict[str, str]] = {**dict.fromkeys(TRADES, "trades"), "get_order_book": "book",
                                           "get_tradingview_chart_data": "bars"}

    def envelope(self, payload: Any, query: dict) -> Any:
        return rpc(payload, query)

    def trade_id(self, instrument: str, seq: int) -> str:
        root = instrument.split("-")[0].split("_")[0]
        return str(seq) if root == "BTC" else f"{root}-{seq}"

    def answer(self, path: str, query: dict, headers) -> Any:
        method = path.rsplit("/", 1)[-1]

        def int_param(name: str, required: bool = False) -> int | None:
            value = query.get(name)
            if value in (None, ""):
                if required:
                    raise invalid("required", name)
                return None
            if not value.lstrip("-").isdigit():
                raise invalid("must be integer", name)
            return int(value)

        if method == "get_time":
            return int(time.time() * 1000)
        if not path.startswith("/api/v2/public/") or method not in METHODS:
            raise VendorError(400, {"error": {"message": "Method not found", "code": -32601}})
        inst = query.get("instrument_name")
        if not inst:
            raise invalid("required", "instrument_name")
        if inst not in self.config.instruments.get(DERIBIT, []):
            raise invalid("instrument not found", "instrument_name")
        if method in TRADES:
            count = int_param("count") or 10
            if not 1 <= count <= 1000:
                raise invalid("must be between 1 and 1000", "count")
            sorting = query.get("sorting") or "default"
            if sorting not in ("asc", "desc", "default"):
                raise invalid("must be one of asc, desc, default", "sorting")
            if method == "get_last_trades_by_instrument_and_time":
                start, end = int_param("start_timestamp", True), int_param("end_timestamp", True)
                rows = self.market.rows_between(DERIBIT, inst, start * 1000, end * 1000 + 999, count + 1,
                                                newest_first=sorting != "asc")
                if sorting != "asc":
                    rows.reverse()
            else:
                start_seq, end_seq = int_param("start_seq"), int_param("end_seq")
                if start_seq is None and end_seq is None:
                    rows = self.market.latest(DERIBIT, inst, count)
                else:
                    first = start_seq if start_seq is not None else end_seq - count + 1
                    wanted = count + 1 if end_seq is None else max(0, min(count + 1, end_seq - first + 1))
                    rows = self.market.rows_from_id(DERIBIT, inst, first, wanted)
            if sorting == "asc":
                page, has_more = rows[:count], len(rows) > count
            else:
                page, has_more = list(reversed(rows[-count:])), len(rows) > count
            return {"trades": [self._trade(inst, tape, i) for tape, i in page], "has_more": has_more}
        if method == "get_order_book":
            depth = int_param("depth") or 20
            if depth not in BOOK_DEPTHS:
                raise invalid(f"must be one of {', '.join(map(str, BOOK_DEPTHS))}", "depth")
            return self._book(inst, depth)
        start, end = int_param("start_timestamp", True), int_param("end_timestamp", True)
        if (query.get("resolution") or "") != "1":
            raise invalid("only resolution 1 is replayed", "resolution")
        end = min(end, start + 10_000 * 60_000 - 1)  # at most 10000 candles an answer
        bars = self.market.bars_between(DERIBIT, inst, start * 1000, end * 1000 + 999)
        if not bars:
            return {"volume": [], "ticks": [], "status": "no_data", "open": [], "low": [], "high": [], "cost": [],
                    "close": []}
        return {"volume": [b[5] for b in bars], "ticks": [b[0] // 1000 for b in bars], "status": "ok",
                "open": [b[1] for b in bars], "low": [b[3] for b in bars], "high": [b[2] for b in bars],
                "cost": [b[6] for b in bars], "close": [b[4] for b in bars]}

    def _book(self, inst: str, depth: int) -> dict:
        update_id, bids, asks, ts = self.market.book(DERIBIT, inst, depth)
        best_bid, best_ask = bids[0], asks[0]
        mid = (best_bid[0] + best_ask[0]) / 2
        inverse = instrument_spec(DERIBIT, inst).kind == "inverse"
        return {
            "timestamp": ts // 1000, "state": "open", "stats": {"volume": 12345.6789, "volume_usd": 7.4e8,
                                                               "price_change": 1.23, "low": mid * 0.97,
                                                               "high": mid * 1.02},
            "settlement_price": round(mid, 2), "open_interest": 1.1e9 if inverse else 1234.5,
            "min_price": round(mid * 0.97, 1), "max_price": round(mid * 1.03, 1), "mark_price": round(mid, 2),
            "last_price": best_ask[0], "instrument_name": inst, "index_price": round(mid - 3.21, 2),
            "funding_8h": 0.00001234, "current_funding": 0.0, "interest_value": 0.0123,
            "change_id": update_id, "bids": [[p, q] for p, q in bids], "asks": [[p, q] for p, q in asks],
            "best_bid_price": best_bid[0], "best_bid_amount": best_bid[1], "best_ask_price": best_ask[0],
            "best_ask_amount": best_ask[1], "estimated_delivery_price": round(mid - 3.21, 2)}

    def _trade(self, inst: str, tape: DayTape, i: int) -> dict:
        seq = tape.first_id + i
        price = tape.price[i]
        previous = tape.price[i - 1] if i else tape.open_price
        tick_direction = 0 if price > previous else 2 if price < previous else (1 if tape.buy[i] else 3)
        rng = random.Random(seq)
        trade = {"trade_seq": seq, "trade_id": self.trade_id(inst, seq), "timestamp": tape.ts[i] // 1000,
                 "tick_direction": tick_direction, "price": price, "mark_price": round(price + rng.uniform(-2, 2), 2),
                 "instrument_name": inst, "index_price": round(price + rng.uniform(-5, 5), 2),
                 "direction": "buy" if tape.buy[i] else "sell", "amount": tape.size[i]}
        if tape.spec.kind == "inverse":
            trade["contracts"] = tape.size[i] / tape.spec.size_step
        if rng.random() < 0.01:
            trade["liquidation"] = "M"
        return trade

    def fault_reply(self, fault: Fault) -> Reply:
        kind = fault.kind
        if kind == "rate_limit":
            return json_reply(fault.status or 429, rpc_error("too_many_requests", 10028), retry_after(fault))
        if kind == "server_error":
            status = fault.status or 503
            return Reply(status, NGINX_PAGE.format(status=status).encode(), {"Content-Type": "text/html"})
        if kind == "unauthorized":
            return json_reply(fault.status or 400, rpc_error("unauthorized", 13009))
        return json_reply(fault.status or 400, rpc_error("Invalid params", -32602,
                                                         data={"reason": "wrong format", "param": "instrument_name"}))

    def mutate(self, payload: Any, path: str, kind: str) -> None:
        result = payload.get("result")
        if not isinstance(result, dict):
            return
        name = path.rsplit("/", 1)[-1]
        missing = kind == "missing_field"
        if name.startswith("get_last_trades"):
            trades = result.get("trades") or []
            if trades:
                damage(middle(trades), "price", kind, "n/a")
        elif name == "get_order_book":
            if missing:
                del result["bids"]
            elif result.get("asks"):
                result["asks"][0][0] = "n/a"
        elif result.get("close"):
            if missing:
                del result["close"]
            else:
                result["close"][len(result["close"]) // 2] = "n/a"
