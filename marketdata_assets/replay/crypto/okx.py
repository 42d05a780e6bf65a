"""OKX v5 public market data (`/api/v5/market/...`) as the venue answers it.

`history-trades` (type=1 pages by tradeId, type=2 by ts; after/before, limit ≤ 100, newest
first), `trades`, `books` (sz ≤ 400, levels `[px, sz, "0", numOrders]`), `history-candles` and
`candles` (bar=1m, newest first). Every value is a string in the envelope
`{"code": "0", "msg": "", "data": [...]}`; most errors come back with HTTP 200 and a non-zero
`code` (50011 rate limit, 50014/51000/51001 parameters).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from marketdata_assets.replay import Reply, json_reply
from marketdata_assets.replay.crypto.config import OKX, Fault
from marketdata_assets.replay.crypto.tape import MINUTE_US, instrument_spec
from marketdata_assets.replay.crypto.venue import VendorError, Venue, damage, middle, retry_after

TRADES = ("/api/v5/market/history-trades", "/api/v5/market/trades")
BOOKS = "/api/v5/market/books"
CANDLES = ("/api/v5/market/history-candles", "/api/v5/market/candles")


def fmt_plain(value: float) -> str:
    """The shortest exact decimal, no exponent, no trailing zeros ("29963.2", "0.00001", "1")."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.12f}".rstrip("0").rstrip(".")
    elif text.endswith(".0"):
        text = text[:-2]
    return text


def parameter_error(name: str) -> VendorError:
    return VendorError(200, {"code": "51000", "data": [], "msg": f"Parameter {name} error"})


def ok(data: list) -> dict:
    return {"code": "0", "msg": "", "data": data}


class Okx(Venue):
    name = OKX
    prefix = "/api/v5/"
    instrument_param = "instId"
    endpoints: ClassVar[dict[str, str]] = {"history-trades": "trades", "trades": "trades", "books": "book",
                                           "history-candles": "bars", "candles": "bars"}

    def answer(self, path: str, query: dict, headers) -> Any:
        if path not in (*TRADES, BOOKS, *CANDLES):
            raise VendorError(404, {"msg": "Not Found", "code": 404, "error_code": "404", "error_message": "Not Found",
                                    "detail": f"The requested path {path} was not found", "data": {}})
        inst = query.get("instId")
        if not inst:
            raise VendorError(200, {"code": "50014", "data": [], "msg": "Parameter instId can not be empty."})
        if inst not in self.config.instruments.get(OKX, []):
            raise VendorError(200, {"code": "51001", "data": [], "msg": "Instrument ID or Spread ID doesn't exist."})

        def int_param(name: str) -> int | None:
            value = query.get(name)
            if value in (None, ""):
                return None
            if not value.isdigit():
                raise parameter_error(name)
            return int(value)

        n = max(1, min(100, int_param("limit") or 100))
        if path in TRADES:
            return self._trades(path, inst, query.get("type") or "1", int_param("after"), int_param("before"), n)
        if path == BOOKS:
            _, bids, asks, ts = self.market.book(OKX, inst, max(1, min(400, int_param("sz") or 1)))
            rng = random.Random(f"okx-orders:{ts}")
            return ok([{"asks": [[fmt_plain(p), fmt_plain(q), "0", str(rng.randint(1, 30))] for p, q in asks],
                        "bids": [[fmt_plain(p), fmt_plain(q), "0", str(rng.randint(1, 30))] for p, q in bids],
                        "ts": str(ts // 1000)}])
        if (query.get("bar") or "1m") != "1m":
            raise parameter_error("bar")
        return self._candles(inst, int_param("after"), int_param("before"), n)

    def _trades(self, path: str, inst: str, kind: str, after: int | None, before: int | None, n: int) -> dict:
        market = self.market
        if path == "/api/v5/market/trades" or (after is None and before is None):
            rows = market.rows_before_id(OKX, inst, market.last_id(OKX, inst) + 1, n)
        elif kind == "2":
            if after is not None:
                rows = market.rows_before_ts(OKX, inst, after * 1000, n)
            else:
                rows = market.rows_between(OKX, inst, before * 1000 + 1000, market.now_us(), n)[::-1]
        elif kind == "1":
            if after is not None:
                rows = market.rows_before_id(OKX, inst, after, n)
            else:
                rows = list(reversed(market.rows_from_id(OKX, inst, before + 1, n)))
        else:
            raise parameter_error("type")
        return ok([{"instId": inst, "side": "buy" if tape.buy[i] else "sell", "sz": fmt_plain(tape.size[i]),
                    "px": fmt_plain(tape.price[i]), "source": "0", "tradeId": str(tape.first_id + i),
                    "ts": str(tape.ts[i] // 1000)} for tape, i in rows])

    def _candles(self, inst: str, after: int | None, before: int | None, n: int) -> dict:
        now = self.market.now_us()
        hi = min(now - MINUTE_US, after * 1000 - 1) if after is not None else now - MINUTE_US
        if before is not None and after is None:  # the oldest n newer than `before`
            lo = before * 1000 + 1
            bars = self.market.bars_between(OKX, inst, lo, min(hi, lo + n * MINUTE_US - 1))[:n]
        else:  # the newest n older than `after` (and newer than `before`)
            lo = hi - n * MINUTE_US + 1
            if before is not None:
                lo = max(lo, before * 1000 + 1)
            bars = self.market.bars_between(OKX, inst, lo, hi)[-n:]
        spec = instrument_spec(OKX, inst)
        data = []
        for bar in reversed(bars):
            ts, o, h, lo_p, c, vol, quote, _, size_vol = bar[:9]
            confirm = "1" if ts + MINUTE_US <= now else "0"
            vol_ccy = quote if spec.kind == "base" else vol
            data.append([str(ts // 1000), fmt_plain(o), fmt_plain(h), fmt_plain(lo_p), fmt_plain(c),
                         fmt_plain(size_vol), fmt_plain(vol_ccy), fmt_plain(quote), confirm])
        return ok(data)

    def fault_reply(self, fault: Fault) -> Reply:
        kind = fault.kind
        if kind == "rate_limit":
            return json_reply(fault.status or 429, {"msg": "Too Many Requests", "code": "50011"}, retry_after(fault))
        if kind == "server_error":
            return json_reply(fault.status or 503, {"code": "50001", "msg": "Service temporarily unavailable. Please "
                                                                            "try again later.", "data": []})
        if kind == "unauthorized":
            return json_reply(fault.status or 401, {"msg": "Invalid OK-ACCESS-KEY", "code": "50111"})
        return json_reply(fault.status or 200, {"code": "51000", "data": [], "msg": "Parameter instId error"})

    def mutate(self, payload: Any, path: str, kind: str) -> None:
        data = payload.get("data") or []
        if not data:
            return
        name = path.rsplit("/", 1)[-1]
        missing = kind == "missing_field"
        if name in ("history-trades", "trades"):
            damage(middle(data), "px", kind, "6O123.4")
        elif name == "books":
            if missing:
                del data[0]["bids"]
            elif data[0]["asks"]:
                data[0]["asks"][0][0] = "6O123.4"
        else:
            row = middle(data)
            if missing:
                del row[5:]
            else:
                row[4] = "6O123.4"
