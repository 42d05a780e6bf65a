"""OKX v5 public market data (`/api/v5/...`) as the venue answers it.

Trades (the WebSocket replay's as it sent them), books, candles, ticker, funding, open interest,
liquidations and mark/index candles, the reference universe's instruments and tickers (24 h volumes,
`volumes`), in OKX's string envelope with its HTTP-200 errors and its
per-path limit; a contract's series come from `derived`. Endpoints, limits and the derived series:
docs/tests.md, "The OKX v5 REST replay".
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Any, ClassVar

from marketdata_assets.replay import Reply, json_reply
from marketdata_assets.replay.crypto import derived, reference, volumes
from marketdata_assets.replay.crypto.config import OKX, Fault, ReplayConfig
from marketdata_assets.replay.crypto.tape import (
    DAY_US,
    MINUTE_US,
    Market,
    base_and_quote,
    day_of_us,
    day_us,
)
from marketdata_assets.replay.crypto.venue import VendorError, Venue, damage, middle, retry_after

TRADES_PATHS = ("/api/v5/market/history-trades", "/api/v5/market/trades")
BOOKS_PATH = "/api/v5/market/books"
CANDLES_PATHS = ("/api/v5/market/history-candles", "/api/v5/market/candles")
TICKER_PATH = "/api/v5/market/ticker"
TICKERS_PATH = "/api/v5/market/tickers"
FUNDING_PATH = "/api/v5/public/funding-rate-history"
OPEN_INTEREST_PATH = "/api/v5/rubik/stat/contracts/open-interest-history"
LIQUIDATIONS_PATH = "/api/v5/public/liquidation-orders"
MARK_CANDLES_PATH = "/api/v5/market/history-mark-price-candles"
INDEX_CANDLES_PATH = "/api/v5/market/history-index-candles"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
UNDERLYING_PATH = "/api/v5/public/underlying"  # {"code":"0","data":[["BTC-USD","ETH-USD"]],"msg":""}
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
KINDS = {"SPOT": "spot", "MARGIN": "spot", "SWAP": "perpetual", "FUTURES": "future", "OPTION": "option"}
PATHS = (
    INSTRUMENTS_PATH,
    UNDERLYING_PATH,
    *TRADES_PATHS,
    BOOKS_PATH,
    *CANDLES_PATHS,
    TICKER_PATH,
    TICKERS_PATH,
    FUNDING_PATH,
    OPEN_INTEREST_PATH,
    LIQUIDATIONS_PATH,
    MARK_CANDLES_PATH,
    INDEX_CANDLES_PATH,
)
FUNDING_HOURS = 8
OI_STEP_US = 5 * MINUTE_US
LIQUIDATION_DAYS = 1  # "liquidation orders in the last day" (older docs)
WINDOW_S = 2.0  # okx_requests_per_2s counts requests per path in this sliding window


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


UNKNOWN = VendorError(200, {"code": "51001", "data": [], "msg": "Instrument ID or Spread ID doesn't exist."})


def instrument_record(item: reference.Instrument, inst_type: str, now_us: int) -> dict:
    """One `data[]` record of GET /api/v5/public/instruments, every field OKX documents (strings but
    instIdCode, futureSettlement, tradeQuoteCcyList and upcChg)."""
    t = reference.terms_at(OKX, item.name, now_us, now_us)
    spot, inverse = item.kind == "spot", t.size_unit == "inverse_contracts"
    text = lambda v: fmt_plain(v) if v is not None else ""
    lever = (
        "10" if inst_type == "MARGIN" else "" if spot or item.kind == "option" else "100" if inverse else "50"
    )
    return {
        "alias": item.alias,
        "auctionEndTime": "",
        "baseCcy": item.base if spot else "",
        "category": "1",
        "contTdSwTime": "",
        "ctMult": "" if spot else text(t.ct_mult),
        "ctType": "" if spot or item.kind == "option" else "inverse" if inverse else "linear",
        "ctVal": "" if spot else text(t.ct_val),
        "ctValCcy": "" if spot else "USD" if inverse else item.base,
        "groupId": "1",
        "instCategory": "1",
        "upcChg": [],
        "expTime": text(item.expires_us // 1000 if item.expires_us is not None else None),
        "futureSettlement": False,
        "instFamily": item.family,
        "instId": item.name,
        "instIdCode": item.number,
        "instType": inst_type,
        "lever": lever,
        "listTime": str(item.listed_us // 1000),
        "lotSz": text(t.step),
        "maxIcebergSz": "999999999",
        "maxLmtAmt": "20000000",
        "maxLmtSz": "999999999",
        "maxMktAmt": "1000000" if spot else "",
        "maxMktSz": "1000000",
        "maxPlatOILmt": "",
        "maxStopSz": "1000000",
        "maxTriggerSz": "999999999",
        "maxTwapSz": "999999999",
        "minSz": text(t.step),
        "openType": "",
        "optType": item.option_type or "",
        "posLmtAmt": "",
        "posLmtPct": "",
        "preMktSwTime": "",
        "quoteCcy": item.quote if spot else "",
        "ruleType": "normal",
        "settleCcy": item.settle,
        "state": "live",
        "stk": text(item.strike),
        "tickSz": text(t.tick),
        "tradeQuoteCcyList": [item.quote] if spot else [],
        "uly": item.family,
    }


def ticker_record(seed: int, item: reference.Instrument, inst_type: str, now_us: int) -> dict:
    """One `data[]` record of GET /api/v5/market/tickers, every field OKX documents (strings)."""
    usd, last = volumes.usd_volume(seed, item, now_us), volumes.last_price(item)
    t = reference.terms_at(OKX, item.name, now_us, now_us)
    if item.kind == "spot":
        vol_ccy = usd / volumes.usd_price(item.quote)  # the quote
        vol = vol_ccy / last  # the base
    else:  # the base coin traded (an option's: the premium over its price, the coin notional), in contracts
        vol_ccy = usd / volumes.usd_price(item.base) / (last if item.kind == "option" else 1.0)
        vol = (usd if t.size_unit == "inverse_contracts" else vol_ccy) / t.contract_value  # inverse: USD each
    opened = last * (1 + 0.04 * (reference.unit("open", item.name, now_us // DAY_US) - 0.5))
    text = lambda v: fmt_plain(round(v, 8))
    return {
        "instType": inst_type,
        "instId": item.name,
        "last": text(last),
        "lastSz": text(t.step),
        "askPx": text(last + t.tick),
        "askSz": text(t.step * 10),
        "bidPx": text(max(t.tick, last - t.tick)),
        "bidSz": text(t.step * 10),
        "open24h": text(opened),
        "high24h": text(max(opened, last) * 1.01),
        "low24h": text(min(opened, last) * 0.99),
        "volCcy24h": text(vol_ccy),
        "vol24h": text(vol),
        "sodUtc0": text(opened),
        "sodUtc8": text(opened),
        "ts": str(now_us // 1000),
    }


def is_contract(instrument: str) -> bool:
    """BTC-USDT-SWAP, BTC-USD-250328: a contract; BTC-USDT: a spot pair."""
    return len(instrument.split("-")) >= 3


def family_of(instrument: str) -> str:
    return "-".join(instrument.split("-")[:2])


class Okx(Venue):
    name = OKX
    prefix = "/api/v5/"
    instrument_param = "instId"
    endpoints: ClassVar[dict[str, str]] = {
        "history-trades": "trades",
        "trades": "trades",
        "books": "book",
        "history-candles": "bars",
        "candles": "bars",
        "ticker": "tickers",
        "funding-rate-history": "funding",
        "open-interest-history": "open_interest",
        "liquidation-orders": "liquidations",
        "history-mark-price-candles": "mark_bars",
        "history-index-candles": "index_bars",
        "instruments": "reference",
        "underlying": "reference",
        "tickers": "volumes",
    }

    def __init__(self, config: ReplayConfig, market: Market):
        super().__init__(config, market)
        self.sent: dict[str, deque[float]] = {}  # path -> times of the requests admitted in the window
        self.liquidation_index: dict[tuple, list[int]] = {}  # (instrument, day) -> tape indexes

    def instrument(self, query: dict) -> str | None:
        if query.get("instId"):
            return query["instId"]
        family = query.get("instFamily") or query.get("uly")  # liquidation-orders: a SWAP family's perpetual
        return f"{family}-SWAP" if family and query.get("instType") == "SWAP" else family

    def admit(self, path: str, query: dict) -> tuple[dict[str, str], Reply | None]:
        limit = self.config.okx_requests_per_2s
        if limit <= 0:
            return {}, None
        now = time.monotonic()
        sent = self.sent.setdefault(path, deque())
        while sent and sent[0] <= now - WINDOW_S:
            sent.popleft()
        if len(sent) >= limit:
            self.limit_refusals += 1
            return {}, json_reply(429, {"code": "50011", "msg": "Too Many Requests"})
        sent.append(now)
        return {}, None

    def reset(self) -> None:
        super().reset()
        self.sent.clear()

    def answer(self, path: str, query: dict, headers) -> Any:
        if path not in PATHS:
            raise VendorError(
                404,
                {
                    "msg": "Not Found",
                    "code": 404,
                    "error_code": "404",
                    "error_message": "Not Found",
                    "detail": f"The requested path {path} was not found",
                    "data": {},
                },
            )

        def int_param(name: str) -> int | None:
            value = query.get(name)
            if value in (None, ""):
                return None
            if not value.isdigit():
                raise parameter_error(name)
            return int(value)

        if path == INSTRUMENTS_PATH:
            return self._instruments(query)
        if path == UNDERLYING_PATH:
            return self._underlying(query)
        if path == TICKERS_PATH:
            return self._tickers(query)
        n = max(1, min(100, int_param("limit") or 100))
        if path == LIQUIDATIONS_PATH:
            return self._liquidations(query, int_param("after"), int_param("before"), n)
        inst = query.get("instId")
        if not inst:
            raise VendorError(200, {"code": "50014", "data": [], "msg": "Parameter instId can not be empty."})
        if path == INDEX_CANDLES_PATH:
            after, before = int_param("after"), int_param("before")
            return self._price_candles(self._index_tape(inst), "index", after, before, n, query.get("bar"))
        if inst not in self.config.instruments.get(OKX, []) or not self.market.exists(OKX, inst):
            raise UNKNOWN  # not listed yet or expired: gone from the instruments too
        if path in (FUNDING_PATH, OPEN_INTEREST_PATH, MARK_CANDLES_PATH) and not is_contract(inst):
            raise parameter_error("instId")
        if path == TICKER_PATH:
            return self._ticker(inst)
        if path == FUNDING_PATH:
            return self._funding(
                inst, int_param("after"), int_param("before"), max(1, min(400, int_param("limit") or 400))
            )
        if path == OPEN_INTEREST_PATH:
            if (query.get("period") or "5m") != "5m":
                raise parameter_error("period")
            return self._open_interest(inst, int_param("end"), int_param("begin"), n)
        if path == MARK_CANDLES_PATH:
            after, before = int_param("after"), int_param("before")
            return self._price_candles(inst, "mark", after, before, n, query.get("bar"))
        if path in TRADES_PATHS:
            return self._trades(
                path, inst, query.get("type") or "1", int_param("after"), int_param("before"), n
            )
        if path == BOOKS_PATH:
            _, bids, asks, ts = self.market.book(OKX, inst, max(1, min(400, int_param("sz") or 1)))
            rng = random.Random(f"okx-orders:{ts}")
            return ok(
                [
                    {
                        "asks": [[fmt_plain(p), fmt_plain(q), "0", str(rng.randint(1, 30))] for p, q in asks],
                        "bids": [[fmt_plain(p), fmt_plain(q), "0", str(rng.randint(1, 30))] for p, q in bids],
                        "ts": str(ts // 1000),
                    }
                ]
            )
        if (query.get("bar") or "1m") != "1m":
            raise parameter_error("bar")
        return self._candles(inst, int_param("after"), int_param("before"), n)

    def _trades(
        self, path: str, inst: str, paging: str, after: int | None, before: int | None, n: int
    ) -> dict:
        market = self.market
        if path == "/api/v5/market/trades" or (after is None and before is None):
            rows = market.rows_before_id(OKX, inst, market.last_id(OKX, inst) + 1, n)
        elif paging == "2":
            if after is not None:
                rows = market.rows_before_ts(OKX, inst, after * 1000, n)
            else:
                rows = market.rows_between(OKX, inst, before * 1000 + 1000, market.now_us(), n)[::-1]
        elif paging == "1":
            live = market.live_trades.get((OKX, inst))
            sent = live.emitted_before(after, n) if live is not None and after is not None else None
            if sent is not None:  # ids the WebSocket replay sent: exactly as it sent them
                return ok(
                    [
                        {
                            "instId": inst,
                            "side": "buy" if buy else "sell",
                            "sz": fmt_plain(size),
                            "px": fmt_plain(price),
                            "source": "0",
                            "tradeId": str(i),
                            "ts": str(ms),
                        }
                        for i, ms, price, size, buy in sent
                    ]
                )
            if after is not None:
                rows = market.rows_before_id(OKX, inst, after, n)
            else:
                rows = list(reversed(market.rows_from_id(OKX, inst, before + 1, n)))
        else:
            raise parameter_error("type")
        return ok(
            [
                {
                    "instId": inst,
                    "side": "buy" if tape.buy[i] else "sell",
                    "sz": fmt_plain(tape.size[i]),
                    "px": fmt_plain(tape.price[i]),
                    "source": "0",
                    "tradeId": str(tape.first_id + i),
                    "ts": str(tape.ts[i] // 1000),
                }
                for tape, i in rows
            ]
        )

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
        spec = self.market.spec(OKX, inst)
        data = []
        for bar in reversed(bars):
            ts, o, h, lo_p, c, vol, quote, _, size_vol = bar[:9]
            confirm = "1" if ts + MINUTE_US <= now else "0"
            vol_ccy = quote if spec.size_unit == "base" else vol
            data.append(
                [
                    str(ts // 1000),
                    fmt_plain(o),
                    fmt_plain(h),
                    fmt_plain(lo_p),
                    fmt_plain(c),
                    fmt_plain(size_vol),
                    fmt_plain(vol_ccy),
                    fmt_plain(quote),
                    confirm,
                ]
            )
        return ok(data)

    # ---- reference ---------------------------------------------------------------------------

    def _underlying(self, query: dict) -> dict:
        """GET /api/v5/public/underlying?instType=SWAP|FUTURES|OPTION: the families live now, in one array."""
        inst_type = query.get("instType")
        if inst_type not in ("SWAP", "FUTURES", "OPTION"):
            raise parameter_error("instType")
        now = self.market.now_us()
        families = sorted(
            {
                i.family
                for i in reference.universe(self.config.seed, now).live(OKX, now)
                if i.kind == KINDS[inst_type] and i.family
            }
        )
        return ok([families])

    def _instruments(self, query: dict) -> dict:
        """GET /api/v5/public/instruments: the instruments of `instType` live now, by `uly` /
        `instFamily` (required for OPTION) and `instId`; ctVal as valid now."""
        inst_type = query.get("instType")
        if not inst_type:
            raise VendorError(
                200, {"code": "50014", "data": [], "msg": "Parameter instType can not be empty."}
            )
        if inst_type not in INST_TYPES:
            raise parameter_error("instType")
        family = query.get("instFamily") or query.get("uly")
        if inst_type == "OPTION" and not family:
            raise VendorError(
                200, {"code": "50015", "data": [], "msg": "Either parameter uly or instFamily is required."}
            )
        now = self.market.now_us()
        found = [
            i
            for i in reference.universe(self.config.seed, now).live(OKX, now)
            if i.kind == KINDS[inst_type]
            and (inst_type != "MARGIN" or i.quote == "USDT")
            and (inst_type in ("SPOT", "MARGIN") or not family or i.family == family)
        ]
        if query.get("instId"):
            found = [i for i in found if i.name == query["instId"]]
            if not found:
                raise UNKNOWN
        return ok([instrument_record(i, inst_type, now) for i in found])

    def _tickers(self, query: dict) -> dict:
        """GET /api/v5/market/tickers: every instrument of `instType` live now (by `instFamily` / `uly`), its
        24 h volumes from `volumes` as OKX documents them: volCcy24h the quote for SPOT, the base coin for
        derivatives; vol24h base for SPOT, contracts for derivatives."""
        inst_type = query.get("instType")
        if not inst_type:
            raise VendorError(
                200, {"code": "50014", "data": [], "msg": "Parameter instType can not be empty."}
            )
        if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION"):
            raise parameter_error("instType")
        family, now = query.get("instFamily") or query.get("uly"), self.market.now_us()
        found = [
            i
            for i in reference.universe(self.config.seed, now).live(OKX, now)
            if i.kind == KINDS[inst_type] and (inst_type == "SPOT" or not family or i.family == family)
        ]
        return ok([ticker_record(self.config.seed, i, inst_type, now) for i in found])

    # ---- the derived datasets ----------------------------------------------------------------

    def _index_tape(self, index: str) -> str:
        """The tape an index is computed on: the perpetual's, else the spot pair's (51001 if neither)."""
        configured = self.config.instruments.get(OKX, [])
        for inst in (f"{index}-SWAP", index):
            if inst in configured:
                return inst
        raise UNKNOWN

    def _ticker(self, inst: str) -> dict:
        market, spec = self.market, self.market.spec(OKX, inst)
        now = market.now_us()
        _, bids, asks, ts = market.book(OKX, inst, 1)
        day = market.rows_between(OKX, inst, now - DAY_US, now - 1)
        last = day[-1] if day else (market.rows_before_ts(OKX, inst, now, 1) or [None])[0]
        vol = vol_ccy = 0.0
        for tape, i in day:
            base, quote = base_and_quote(tape.spec, tape.price[i], tape.size[i])
            vol += tape.size[i]
            vol_ccy += quote if spec.size_unit == "base" else base  # spot: quote; contracts: base
        prices = [tape.price[i] for tape, i in day]
        text = lambda v: fmt_plain(v) if v is not None else ""
        last_px, last_sz = (last[0].price[last[1]], last[0].size[last[1]]) if last else (None, 0)
        return ok(
            [
                {
                    "instType": "SWAP" if is_contract(inst) else "SPOT",
                    "instId": inst,
                    "last": text(last_px),
                    "lastSz": text(last_sz),
                    "askPx": text(asks[0][0] if asks else None),
                    "askSz": text(asks[0][1] if asks else None),
                    "bidPx": text(bids[0][0] if bids else None),
                    "bidSz": text(bids[0][1] if bids else None),
                    "open24h": text(prices[0] if prices else None),
                    "high24h": text(max(prices) if prices else None),
                    "low24h": text(min(prices) if prices else None),
                    "volCcy24h": fmt_plain(vol_ccy),
                    "vol24h": fmt_plain(vol),
                    "sodUtc0": text(market.tape(OKX, inst, day_of_us(now)).open_price),
                    "sodUtc8": "",
                    "ts": str(ts // 1000),
                }
            ]
        )

    def _funding(self, inst: str, after: int | None, before: int | None, n: int) -> dict:
        """Settlements every FUNDING_HOURS up to now, newest first: fundingTime < after, > before."""
        step = FUNDING_HOURS * derived.HOUR_US
        hi = self.market.now_us()
        if after is not None:
            hi = min(hi, after * 1000 - 1)
        hi -= hi % step
        if before is not None and after is None:  # the oldest n newer than `before`
            lo = before * 1000 + 1
            times = derived.settlements(lo, min(hi, lo + n * step), FUNDING_HOURS)[:n]
        else:  # the newest n older than `after` (and newer than `before`)
            lo = max(hi - (n - 1) * step, before * 1000 + 1 if before is not None else 0)
            times = derived.settlements(lo, hi, FUNDING_HOURS)
        data = []
        for t in reversed(times):
            rate = fmt_plain(derived.funding_rate(self.market, OKX, inst, t, FUNDING_HOURS))
            data.append(
                {
                    "formulaType": "withRate",
                    "fundingRate": rate,
                    "fundingTime": str(t // 1000),
                    "instId": inst,
                    "instType": "SWAP",
                    "method": "current_period",
                    "realizedRate": rate,
                }
            )
        return ok(data)

    def open_interest_row(self, inst: str, ts: int) -> tuple[float, float, float]:
        """(oi contracts, oiCcy coin, oiUsd) at `ts`, a multiple of 5 minutes (the minute before it
        has ended: its mark price values the coin)."""
        spec = self.market.spec(OKX, inst, ts)  # the contract value valid at ts
        contracts = derived.open_interest(self.market, OKX, inst, ts)
        price = derived.mark_bar(self.market, OKX, inst, ts - MINUTE_US)[3]
        inverse = spec.size_unit in ("inverse", "inverse_contracts")
        coin = contracts * spec.ct_val / price if inverse else contracts * spec.ct_val
        return contracts, coin, coin * price

    def _open_interest(self, inst: str, end: int | None, begin: int | None, n: int) -> dict:
        """Every 5 minutes up to now, newest first: ts < end, ts > begin."""
        hi = self.market.now_us()
        if end is not None:
            hi = min(hi, end * 1000 - 1)
        hi -= hi % OI_STEP_US
        lo = hi - (n - 1) * OI_STEP_US
        if begin is not None:
            lo = max(lo, begin * 1000 + 1)
        data = []
        for ts in reversed(range(-(-lo // OI_STEP_US) * OI_STEP_US, hi + 1, OI_STEP_US)):
            oi, coin, usd = self.open_interest_row(inst, ts)
            data.append([str(ts // 1000), fmt_plain(oi), fmt_plain(coin), fmt_plain(usd)])
        return ok(data)

    def liquidation_rows(self, inst: str, lo_us: int, hi_us: int) -> list[tuple]:
        """The tape's liquidations of `inst` with lo_us <= ts <= hi_us (and before now), newest
        first, as (tape, index)."""
        out: list[tuple] = []
        hi_us = min(hi_us, self.market.now_us() - 1)
        if hi_us < lo_us:
            return out
        day = day_of_us(hi_us)
        while day_us(day) + DAY_US > lo_us:
            tape = self.market.tape(OKX, inst, day)
            key = (inst, day)
            if key not in self.liquidation_index:
                seed = self.config.seed
                self.liquidation_index[key] = [
                    i for i in range(tape.n) if derived.is_liquidation(seed, OKX, inst, tape.first_id + i)
                ]
            picked = self.liquidation_index[key]
            for i in reversed(picked):
                if lo_us <= tape.ts[i] <= hi_us:
                    out.append((tape, i))
            day = day_of_us(day_us(day) - 1)
        return out

    def _liquidations(self, query: dict, after: int | None, before: int | None, n: int) -> dict:
        """Filled liquidations of an instrument family's SWAP (or FUTURES), the last LIQUIDATION_DAYS,
        newest first, ts < after, ts > before, at most n details [inferred: the limit counts details]."""
        inst_type = query.get("instType")
        if inst_type not in ("SWAP", "FUTURES", "MARGIN", "OPTION"):
            raise parameter_error("instType")
        family = query.get("instFamily") or query.get("uly")
        if not family:
            raise VendorError(
                200, {"code": "50014", "data": [], "msg": "Parameter instFamily can not be empty."}
            )
        configured = self.config.instruments.get(OKX, [])
        contract_type = {"SWAP": "perpetual", "FUTURES": "future"}.get(inst_type)
        members = [
            i
            for i in configured
            if family_of(i) == family
            and len(i.split("-")) == 3
            and ("perpetual" if i.endswith("-SWAP") else "future") == contract_type
        ]
        if not members and inst_type in ("SWAP", "FUTURES"):
            raise UNKNOWN
        if (query.get("state") or "unfilled") != "filled" or inst_type not in ("SWAP", "FUTURES"):
            return ok([])
        now = self.market.now_us()
        lo = max(now - LIQUIDATION_DAYS * DAY_US, before * 1000 + 1 if before is not None else 0)
        hi = after * 1000 - 1 if after is not None else now
        rows = sorted(
            (row for inst in members for row in self.liquidation_rows(inst, lo, hi)),
            key=lambda row: (row[0].ts[row[1]], row[0].first_id + row[1]),
            reverse=True,
        )
        rows = rows[-n:] if before is not None and after is None else rows[:n]
        data = []
        for inst in members:
            details = [
                {
                    "bkLoss": "0",
                    "bkPx": fmt_plain(tape.price[i]),
                    "ccy": "",
                    "posSide": "short" if tape.buy[i] else "long",
                    "side": "buy" if tape.buy[i] else "sell",  # the order that closed the position
                    "sz": fmt_plain(tape.size[i]),
                    "ts": str(tape.ts[i] // 1000),
                }
                for tape, i in rows
                if tape.instrument == inst
            ]
            if details:
                data.append(
                    {
                        "details": details,
                        "instFamily": family,
                        "instId": inst,
                        "instType": inst_type,
                        "totalLoss": "0",
                        "uly": family,
                    }
                )
        return ok(data)

    def _price_candles(
        self, inst: str, price: str, after: int | None, before: int | None, n: int, bar: str | None
    ) -> dict:
        """Mark or index 1-minute candles of minutes that have ended, newest first: ts < after, ts >
        before (`before` alone: the oldest n newer than it)."""
        if (bar or "1m") != "1m":
            raise parameter_error("bar")
        now = self.market.now_us()
        hi = now - now % MINUTE_US - MINUTE_US  # the last minute that has ended
        if after is not None:
            hi = min(hi, after * 1000 - 1)
        hi -= hi % MINUTE_US
        if before is not None and after is None:
            lo = before * 1000 + 1
            lo = -(-lo // MINUTE_US) * MINUTE_US
            minutes = list(range(lo, min(hi, lo + (n - 1) * MINUTE_US) + 1, MINUTE_US))
        else:
            lo = hi - (n - 1) * MINUTE_US
            if before is not None:
                lo = max(lo, before * 1000 + 1)
            minutes = list(range(-(-lo // MINUTE_US) * MINUTE_US, hi + 1, MINUTE_US))
        bar_of = derived.mark_bar if price == "mark" else derived.index_bar
        data = []
        for minute in reversed(minutes):
            o, h, lo_p, c = bar_of(self.market, OKX, inst, minute)
            data.append([str(minute // 1000), fmt_plain(o), fmt_plain(h), fmt_plain(lo_p), fmt_plain(c), "1"])
        return ok(data)

    def fault_reply(self, fault: Fault) -> Reply:
        fault_kind = fault.kind
        if fault_kind == "rate_limit":
            return json_reply(
                fault.status or 429, {"msg": "Too Many Requests", "code": "50011"}, retry_after(fault)
            )
        if fault_kind == "server_error":
            return json_reply(
                fault.status or 503,
                {
                    "code": "50001",
                    "msg": "Service temporarily unavailable. Please try again later.",
                    "data": [],
                },
            )
        if fault_kind == "unauthorized":
            return json_reply(fault.status or 401, {"msg": "Invalid OK-ACCESS-KEY", "code": "50111"})
        return json_reply(fault.status or 200, {"code": "51000", "data": [], "msg": "Parameter instId error"})

    def mutate(self, payload: Any, path: str, fault_kind: str) -> None:
        data = payload.get("data") or []
        if not data:
            return
        name = path.rsplit("/", 1)[-1]
        missing = fault_kind == "missing_field"
        if name in ("history-trades", "trades"):
            damage(middle(data), "px", fault_kind, "6O123.4")
        elif name == "ticker":
            damage(data[0], "bidPx", fault_kind, "6O123.4")
        elif name == "tickers":
            damage(middle(data), "volCcy24h", fault_kind, "2O22")
        elif name == "instruments":
            damage(middle(data), "ctVal" if data[0]["instType"] != "SPOT" else "tickSz", fault_kind, "0.O1")
        elif name == "funding-rate-history":
            damage(middle(data), "realizedRate", fault_kind, "0.0O01")
        elif name == "liquidation-orders":
            details = middle(data)["details"]
            damage(middle(details), "bkPx", fault_kind, "6O123.4")
        elif name in ("open-interest-history", "history-mark-price-candles", "history-index-candles"):
            row = middle(data)
            if missing:
                del row[2:]
            else:
                row[2] = "6O123.4"
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
