"""Binance USD-M futures public market data (`/fapi/v1/...`, `/futures/data/...`) as the venue
answers it, for venue BINANCE_UM: the spot venue's code (`binance.Binance`) over USD-M's paths,
weights (`config.binance_um_weight_limit`, 2400 a minute) and formats.

Trades, klines, depth and tickers from the BINANCE_UM tapes; premium index, funding, mark/index klines
and open interest from `derived`. Endpoints, their limits and reach: docs/tests.md,
"The Binance USD-M futures REST replay".
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from marketdata_assets.replay.crypto import derived, reference
from marketdata_assets.replay.crypto.binance import BAD_NUMBER, Binance, Params, fmt8
from marketdata_assets.replay.crypto.config import BINANCE_UM
from marketdata_assets.replay.crypto.okx import fmt_plain
from marketdata_assets.replay.crypto.tape import DAY_US, EPOCH_DAY, MINUTE_US, day_us
from marketdata_assets.replay.crypto.venue import VendorError, damage, middle

HOUR_US = 3_600_000_000
PERPETUAL_DELIVERY_MS = 4_133_404_800_000  # a perpetual's deliveryDate (2100-12-25 08:00 UTC)
TRADES_REACH_US = 48 * HOUR_US
OPEN_INTEREST_REACH_US = 30 * DAY_US
OI_PERIODS = {
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "12h": 720,
    "1d": 1440,
}  # minutes
# instrument -> (adjustedFundingRateCap, adjustedFundingRateFloor, fundingIntervalHours): fundingInfo
FUNDING_INFO: dict[str, tuple[str, str, int]] = {
    "BTCUSDT": ("0.03000000", "-0.03000000", 8),
    "ETHUSDT": ("0.02000000", "-0.02000000", 4),
}
FUNDING_HOURS = 8
WEIGHTS = {
    "aggTrades": 20,
    "ticker/24hr": 1,
    "ticker/bookTicker": 2,
    "premiumIndex": 1,
    "fundingRate": 0,
    "fundingInfo": 0,
    "openInterestHist": 0,
}


def request_weight(name: str, query: dict) -> int:
    """USD-M weights: klines (and mark/index klines) and depth by limit, the rest by endpoint."""
    try:
        n = int(query.get("limit") or 500)
    except ValueError:
        n = 500
    if name in ("klines", "markPriceKlines", "indexPriceKlines"):
        return 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10
    if name == "depth":
        return 2 if n <= 50 else 5 if n <= 100 else 10 if n <= 500 else 20
    if name == "ticker/24hr" and not query.get("symbol"):
        return 40  # "40 when the symbol parameter is omitted"
    return WEIGHTS.get(name, 1)


def decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def um_symbol(item: reference.Instrument) -> dict:
    """One `symbols[]` record of GET /fapi/v1/exchangeInfo."""
    t = item.terms
    delivery = item.expires_us // 1000 if item.expires_us is not None else PERPETUAL_DELIVERY_MS
    return {
        "symbol": item.name,
        "pair": item.family,
        "contractType": item.alias,
        "deliveryDate": delivery,
        "onboardDate": item.listed_us // 1000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": item.base,
        "quoteAsset": item.quote,
        "marginAsset": item.settle,
        "pricePrecision": decimals(t.tick),
        "quantityPrecision": decimals(t.step),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "minPrice": fmt_plain(t.tick),
                "maxPrice": fmt_plain(t.tick * 10_000_000),
                "filterType": "PRICE_FILTER",
                "tickSize": fmt_plain(t.tick),
            },
            {
                "stepSize": fmt_plain(t.step),
                "filterType": "LOT_SIZE",
                "maxQty": fmt_plain(t.step * 1_000_000),
                "minQty": fmt_plain(t.step),
            },
            {
                "stepSize": fmt_plain(t.step),
                "filterType": "MARKET_LOT_SIZE",
                "maxQty": fmt_plain(t.step * 120_000),
                "minQty": fmt_plain(t.step),
            },
            {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
            {"notional": "5" if item.kind == "perpetual" else "100", "filterType": "MIN_NOTIONAL"},
            {
                "multiplierDown": "0.9500",
                "multiplierUp": "1.0500",
                "multiplierDecimal": "4",
                "filterType": "PERCENT_PRICE",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def funding_hours(instrument: str) -> int:
    return FUNDING_INFO[instrument][2] if instrument in FUNDING_INFO else FUNDING_HOURS


class BinanceUm(Binance):
    name = BINANCE_UM
    prefix = ("/fapi/v1/", "/futures/data/")  # str.startswith takes a tuple: the server routes both
    endpoints: ClassVar[dict[str, str]] = {
        "aggTrades": "trades",
        "klines": "bars",
        "depth": "book",
        "24hr": "tickers",
        "bookTicker": "tickers",
        "premiumIndex": "tickers",
        "fundingRate": "funding",
        "fundingInfo": "funding_info",
        "openInterestHist": "open_interest",
        "markPriceKlines": "mark_bars",
        "indexPriceKlines": "index_bars",
        "exchangeInfo": "reference",
    }
    KLINE_MAX = 1500
    DEPTH_DEFAULT, DEPTH_MAX = 500, 1000
    agg_best_match = False
    prev_close = False

    @property
    def weight_limit(self) -> int:
        return self.config.binance_um_weight_limit

    def request_weight(self, path: str, query: dict) -> int:
        return request_weight(self.api_path(path), query)

    def instrument(self, query: dict) -> str | None:
        return query.get("symbol") or query.get("pair")

    @staticmethod
    def api_path(path: str) -> str:
        """`/fapi/v1/ticker/24hr` -> `ticker/24hr`, `/futures/data/openInterestHist` -> `openInterestHist`."""
        return path.split("/", 3)[-1]

    def depth_times(self, ts_us: int) -> dict:
        return {"E": ts_us // 1000 + 3, "T": ts_us // 1000}

    # ---- answers ---------------------------------------------------------------------------

    def answer(self, path: str, query: dict, headers) -> Any:
        p, name, now = Params(query), self.api_path(path), self.market.now_us()
        if name == "ping":
            return {}
        if name == "time":
            return {"serverTime": now // 1000}
        if name == "exchangeInfo":
            return self.exchange_info(query)
        if name == "fundingInfo":
            return [
                {
                    "symbol": instrument,
                    "adjustedFundingRateCap": cap,
                    "adjustedFundingRateFloor": floor,
                    "fundingIntervalHours": hours,
                    "disclaimer": False,
                }
                for instrument, (cap, floor, hours) in FUNDING_INFO.items()
                if instrument in self.config.instruments.get(self.name, [])
            ]
        if name == "ticker/24hr" and not query.get("symbol"):
            return self.all_tickers(p)
        instrument = self._checked_instrument(query, "pair" if name == "indexPriceKlines" else "symbol")
        if name == "aggTrades":
            return self.agg_trades(instrument, p, oldest_us=now - TRADES_REACH_US)
        if name == "klines":
            return self.klines(instrument, p)
        if name == "depth":
            return self.depth(instrument, p)
        if name == "ticker/24hr":
            return self.day_stats(instrument, p)
        if name == "ticker/bookTicker":
            _, bids, asks, ts = self.market.book(self.name, instrument, 1)
            return {
                "symbol": instrument,
                "bidPrice": fmt8(bids[0][0]),
                "bidQty": fmt8(bids[0][1]),
                "askPrice": fmt8(asks[0][0]),
                "askQty": fmt8(asks[0][1]),
                "time": ts // 1000,
            }
        if name == "premiumIndex":
            return self.premium_index(instrument, now)
        if name == "fundingRate":
            return self.funding_rate(instrument, p, now)
        if name == "markPriceKlines":
            return self.price_klines(instrument, p, derived.mark_bar)
        if name == "indexPriceKlines":
            return self.price_klines(instrument, p, derived.index_bar)
        if name == "openInterestHist":
            return self.open_interest(instrument, p, now)
        raise VendorError(404, {"code": -1000, "msg": f"Unknown path {path}"})

    def premium_index(self, instrument: str, now: int) -> dict:
        minute = now - now % MINUTE_US - MINUTE_US  # the last minute that ended
        mark = derived.mark_bar(self.market, self.name, instrument, minute)[3]
        index = derived.index_bar(self.market, self.name, instrument, minute)[3]
        hours = funding_hours(instrument)
        settled = derived.settlements(now - hours * HOUR_US, now, hours)[-1]
        return {
            "symbol": instrument,
            "markPrice": fmt8(mark),
            "indexPrice": fmt8(index),
            "estimatedSettlePrice": fmt8(index),
            "lastFundingRate": fmt8(derived.funding_rate(self.market, self.name, instrument, settled, hours)),
            "interestRate": fmt8(derived.INTEREST),
            "nextFundingTime": (settled + hours * HOUR_US) // 1000,
            "time": now // 1000,
        }

    def funding_rate(self, instrument: str, p: Params, now: int) -> list[dict]:
        n, hours = p.limit(100, 1000), funding_hours(instrument)
        start, end = p.time("startTime"), p.time("endTime")
        hi = now if end is None else min(end, now)
        if start is not None:
            times = derived.settlements(max(start, day_us(EPOCH_DAY)), hi, hours)[:n]
        else:
            times = derived.settlements(max(hi - n * hours * HOUR_US, day_us(EPOCH_DAY)), hi, hours)[-n:]
        return [
            {
                "symbol": instrument,
                "fundingTime": t // 1000,
                "fundingRate": fmt8(derived.funding_rate(self.market, self.name, instrument, t, hours)),
                "markPrice": fmt8(derived.mark_bar(self.market, self.name, instrument, t - MINUTE_US)[3]),
            }
            for t in times
        ]

    def price_klines(self, instrument: str, p: Params, bar) -> list[list]:
        """Mark or index price klines (`bar`: derived.mark_bar / index_bar) of the minutes that ended."""
        if p.query.get("interval") != "1m":
            raise VendorError(400, {"code": -1120, "msg": "Invalid interval."})
        n = p.limit(500, self.KLINE_MAX)
        lo, hi, newest = self.kline_window(p, n)
        hi = min(hi, self.market.now_us() - MINUTE_US)
        first = max(-(-lo // MINUTE_US) * MINUTE_US, day_us(EPOCH_DAY))
        minutes = list(range(first, hi + 1, MINUTE_US)) if hi >= first else []
        out = []
        for minute in minutes[-n:] if newest else minutes[:n]:
            o, h, low, c = bar(self.market, self.name, instrument, minute)
            out.append(
                [
                    minute // 1000,
                    fmt8(o),
                    fmt8(h),
                    fmt8(low),
                    fmt8(c),
                    "0",
                    (minute + MINUTE_US) // 1000 - 1,
                    "0",
                    60,
                    "0",
                    "0",
                    "0",
                ]
            )
        return out

    def open_interest(self, instrument: str, p: Params, now: int) -> list[dict]:
        period = p.query.get("period")
        if period not in OI_PERIODS:
            raise VendorError(400, {"code": -1130, "msg": "Data sent for parameter 'period' is not valid."})
        step, n = OI_PERIODS[period] * MINUTE_US, p.limit(30, 500)
        start, end = p.time("startTime"), p.time("endTime")
        hi = now if end is None else min(end, now)
        lo = max(now - OPEN_INTEREST_REACH_US, start if start is not None else 0)
        first = -(-lo // step) * step
        times = range(first, hi + 1, step) if hi >= first else range(0)
        times = times[:n] if start is not None else times[-n:]
        rows = []
        for t in times:
            contracts = derived.open_interest(self.market, self.name, instrument, t)
            mark = derived.mark_bar(self.market, self.name, instrument, t - MINUTE_US)[3]
            rows.append(
                {
                    "symbol": instrument,
                    "sumOpenInterest": fmt8(contracts),
                    "sumOpenInterestValue": fmt8(contracts * mark),
                    "timestamp": t // 1000,
                }
            )
        return rows

    # ---- reference -------------------------------------------------------------------------

    def rate_limits(self) -> list[dict]:
        return [
            {
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_limit,
                "rateLimitType": "REQUEST_WEIGHT",
            },
            {"interval": "MINUTE", "intervalNum": 1, "limit": 1200, "rateLimitType": "ORDERS"},
            {"interval": "SECOND", "intervalNum": 10, "limit": 300, "rateLimitType": "ORDERS"},
        ]

    def exchange_info(self, query: dict) -> dict:
        """GET /fapi/v1/exchangeInfo: every contract live now (no parameters, weight 1)."""
        now = self.market.now_us()
        symbols = [um_symbol(i) for i in reference.universe(self.config.seed, now).live(self.name, now)]
        return {
            "timezone": "UTC",
            "serverTime": now // 1000,
            "rateLimits": self.rate_limits(),
            "exchangeFilters": [],
            "assets": [
                {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"}
                for a in ("USDT", "USDC", "BTC", "BNB", "ETH")
            ],
            "symbols": symbols,
        }

    # ---- faults ----------------------------------------------------------------------------

    def mutate(self, payload: Any, path: str, fault_kind: str) -> None:
        name = path.rsplit("/", 1)[-1]
        if name == "fundingRate" and payload:
            damage(middle(payload), "fundingRate", fault_kind, BAD_NUMBER)
        elif name == "fundingInfo" and payload:
            key = "symbol" if fault_kind == "missing_field" else "fundingIntervalHours"
            damage(middle(payload), key, fault_kind, BAD_NUMBER)
        elif name == "openInterestHist" and payload:
            damage(middle(payload), "sumOpenInterest", fault_kind, BAD_NUMBER)
        elif name in ("markPriceKlines", "indexPriceKlines") and payload:
            damage(middle(payload), 4, fault_kind, BAD_NUMBER)  # the close
        elif name == "bookTicker":
            damage(payload, "bidPrice", fault_kind, BAD_NUMBER)
        elif name == "premiumIndex":
            damage(payload, "markPrice", fault_kind, BAD_NUMBER)
        else:  # aggTrades, klines, depth, 24hr
            super().mutate(payload, path, fault_kind)
