"""Binance spot public market data (`/api/v3/...`) as the venue answers it.

`aggTrades` (symbol, fromId | startTime/endTime at most 1 h apart, limit ≤ 1000), `trades`,
`historicalTrades` (symbol, fromId, limit ≤ 1000: individual trades, the dump files' ids, see
`DumpTrades`; ids the WebSocket replay sent answer as it sent them, `live_book.LiveInstrument.emitted`),
`klines` (interval=1m), `depth`, `ticker/24hr` (the rolling 24 hours before now:
last trade, volumes from the tape, best bid/ask from a book of the market's; without a symbol every
symbol of the reference universe, volumes from `volumes`), `exchangeInfo`, `ping`, `time`.
Prices and quantities are 8-decimal strings, times milliseconds, or MICROSECONDS when the request
carries `X-MBX-TIME-UNIT: MICROSECOND`.
Every answer carries `X-MBX-USED-WEIGHT-1M`: request weight counted per fixed window of
`weight_window_s` against `binance_weight_limit`, beyond it 429 + Retry-After + -1003. Errors
are `{"code": -1xxx, "msg": ...}`; a ban is 418, the WAF a 403 HTML page. The venue's paths,
limits and formats are attributes and methods of `Binance`, which `binance_um.BinanceUm` (USD-M
futures) subclasses.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar

from marketdata_assets.replay import Reply, json_reply
from marketdata_assets.replay.crypto import reference, volumes
from marketdata_assets.replay.crypto.config import BINANCE, Fault, ReplayConfig
from marketdata_assets.replay.crypto.tape import (
    DAY_US,
    EPOCH_DAY,
    MINUTE_US,
    base_and_quote,
    binance_trade_span,
    day_of_us,
)
from marketdata_assets.replay.crypto.venue import VendorError, Venue, damage, middle, retry_after

HOUR_US = 3_600_000_000
WEIGHTS = {
    "aggTrades": 4,
    "trades": 25,
    "historicalTrades": 25,
    "klines": 2,
    "24hr": 2,
    "exchangeInfo": 20,
}  # depth: by limit
BAD_NUMBER = "6O123.45"
WAF_PAGE = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<HTML><HEAD><META '
    b'HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n<TITLE>ERROR: The request '
    b"could not be satisfied</TITLE>\n</HEAD><BODY>\n<H1>403 ERROR</H1>\n<H2>The request could not be "
    b'satisfied.</H2>\n<HR noshade size="1px">\nRequest blocked.\n</BODY></HTML>'
)


def fmt8(value: float) -> str:
    """Fixed 8 decimals ("0.01633102")."""
    return f"{value:.8f}"


def request_weight(path: str, query: dict) -> int:
    name = path.rsplit("/", 1)[-1]
    if name == "depth":
        try:
            n = int(query.get("limit") or 100)
        except ValueError:
            n = 100
        return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250
    if name == "24hr" and not query.get("symbol"):
        return 80  # "symbol parameter is omitted: 80"
    return WEIGHTS.get(name, 1)


class Params:
    """A request's query as Binance reads it: integers, times (ms, or µs where asked and where the
    value is that large), limits; `out` writes a time in the unit asked for."""

    def __init__(self, query: dict, micro: bool = False):
        self.query, self.micro = query, micro

    def integer(self, name: str) -> int | None:
        value = self.query.get(name)
        if value in (None, ""):
            return None
        if not value.lstrip("-").isdigit():
            raise illegal_characters(name)
        return int(value)

    def time(self, name: str) -> int | None:
        number = self.integer(name)
        if number is None:
            return None
        return number if number >= 100_000_000_000_000 else number * 1000

    def limit(self, default: int, maximum: int) -> int:
        value = self.integer("limit")
        return default if value is None else max(1, min(maximum, value))

    def out(self, us: int) -> int:
        return us if self.micro else us // 1000


def illegal_characters(name: str) -> VendorError:
    return VendorError(
        400,
        {
            "code": -1100,
            "msg": f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        },
    )


@dataclass
class DumpDay:
    """One day of individual trades, as columns (ids count up from `first_id`)."""

    first_id: int
    ts: list[int]  # epoch µs (whole milliseconds before the dumps switched to microseconds)
    price: list[float]
    qty: list[float]
    quote: list[float]
    sell: list[bool]  # the taker sold: isBuyerMaker


class DumpTrades:
    """Binance's individual trades as the dump files hold them: the day of (instrument, day) is
    replay.binance_dumps.generate_trades(instrument, day, `dump_trades_per_day`, the instrument's
    `dump_seed_by_instrument` seed or 0), so `historicalTrades` answers the ids and values of the
    files written with those settings. The generator gives each day its own block of ids, so the
    ids between one day's last trade and the next day's first do not exist here: a page skips them
    (Binance's own ids run on without a gap). Only trades before `now`."""

    CACHED = 16

    def __init__(self, config: ReplayConfig):
        self.config = config
        self.lock = threading.RLock()
        self.days: OrderedDict[tuple[str, date], DumpDay] = OrderedDict()
        self.firsts: dict[tuple[str, date], int] = {}

    def first_id(self, instrument: str, day: date) -> int:
        """The id of the day's first trade (the generator's; it does not depend on the count or seed)."""
        from marketdata_assets.replay.binance_dumps import iter_generated_trades

        key = (instrument, day)
        if key not in self.firsts:
            self.firsts[key] = int(next(iter_generated_trades(instrument, day, 1))["seq"][0])
        return self.firsts[key]

    def day(self, instrument: str, day: date) -> DumpDay:
        from marketdata_assets.replay.binance_dumps import generate_trades

        key = (instrument, day)
        with self.lock:
            found = self.days.get(key)
            if found is None:
                seed = self.config.dump_seed_by_instrument.get(instrument, 0)
                frame = generate_trades(instrument, day, self.config.dump_trades_per_day, seed)
                found = DumpDay(
                    int(frame["seq"][0]) if frame.height else self.first_id(instrument, day),
                    frame["ts"].dt.epoch("us").to_list(),
                    frame["price"].to_list(),
                    frame["quantity"].to_list(),
                    frame["amount"].to_list(),
                    (frame["side"] == "sell").to_list(),
                )
                self.days[key] = found
                while len(self.days) > self.CACHED:
                    self.days.popitem(last=False)
            else:
                self.days.move_to_end(key)
            return found

    def day_of_id(self, instrument: str, trade_id: int, last: date) -> date:
        """The last day up to `last` whose first id is <= trade_id (the first day if none is)."""
        days = [EPOCH_DAY + timedelta(days=k) for k in range((last - EPOCH_DAY).days + 1)]
        found = bisect.bisect_right(days, trade_id, key=lambda d: self.first_id(instrument, d)) - 1
        return days[max(0, found)]

    def from_id(self, instrument: str, from_id: int, limit: int, now_us: int) -> list[tuple[DumpDay, int]]:
        """Up to `limit` trades with id >= from_id, ascending (before now)."""
        last = day_of_us(now_us - 1)
        day = self.day_of_id(instrument, from_id, last)
        out: list[tuple[DumpDay, int]] = []
        while len(out) < limit and day <= last:
            tape = self.day(instrument, day)
            for i in range(max(0, from_id - tape.first_id), len(tape.ts)):
                if tape.ts[i] >= now_us or len(out) >= limit:
                    return out
                out.append((tape, i))
            day += timedelta(days=1)
        return out

    def latest(self, instrument: str, limit: int, now_us: int) -> list[tuple[DumpDay, int]]:
        """The newest `limit` trades before now, oldest first."""
        out: list[tuple[DumpDay, int]] = []
        day = day_of_us(now_us - 1)
        while len(out) < limit and day >= EPOCH_DAY:
            tape = self.day(instrument, day)
            i = bisect.bisect_left(tape.ts, now_us) - 1
            while i >= 0 and len(out) < limit:
                out.append((tape, i))
                i -= 1
            day -= timedelta(days=1)
        return out[::-1]


INVALID_SYMBOL = VendorError(400, {"code": -1121, "msg": "Invalid symbol."})
COMBINATION = VendorError(400, {"code": -1128, "msg": "Combination of optional parameters invalid."})
SYMBOL_STATUSES = ("PRE_TRADING", "TRADING", "POST_TRADING", "END_OF_DAY", "HALT", "AUCTION_MATCH", "BREAK")


def symbols_param(query: dict) -> list[str] | None:
    """`symbols` as Binance takes it: a JSON array literal (["BTCUSDT","BNBBTC"]); -1100 otherwise."""
    value = query.get("symbols")
    if value in (None, ""):
        return None
    try:
        names = json.loads(value)
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise VendorError(
            400,
            {
                "code": -1100,
                "msg": "Illegal characters found in parameter 'symbols'; legal range "
                'is \'^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$\'.',
            },
        )
    return names


def spot_symbol(item: reference.Instrument) -> dict:
    """One `symbols[]` record of GET /api/v3/exchangeInfo."""
    t = item.terms
    return {
        "symbol": item.name,
        "status": item.status,
        "baseAsset": item.base,
        "baseAssetPrecision": 8,
        "quoteAsset": item.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "opoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": item.quote == "USDT",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt8(t.tick),
                "maxPrice": fmt8(max(1_000_000.0, t.tick * 1e6)),
                "tickSize": fmt8(t.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt8(t.step),
                "maxQty": fmt8(9_000_000 if t.step >= 1 else 9_000.0),
                "stepSize": fmt8(t.step),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt8(0),
                "maxQty": fmt8(100_000.0),
                "stepSize": fmt8(0),
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt8(0.0001 if item.quote == "BTC" else 5.0),
                "applyMinToMarket": True,
                "maxNotional": fmt8(9_000_000.0),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"] if item.quote == "USDT" else ["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    }


def too_much_weight(limit: int) -> dict:
    return {
        "code": -1003,
        "msg": f"Too much request weight used; current limit is {limit} request weight per "
        f"1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
    }


class Binance(Venue):
    name = BINANCE
    prefix = "/api/v3/"
    instrument_param = "symbol"
    endpoints: ClassVar[dict[str, str]] = {
        "aggTrades": "trades",
        "trades": "trades",
        "historicalTrades": "trades",
        "depth": "book",
        "klines": "bars",
        "24hr": "tickers",
        "exchangeInfo": "reference",
    }
    bar_decimals = 8
    bar_trade_counts = True
    KLINE_MAX = 1000
    DEPTH_DEFAULT, DEPTH_MAX = 100, 5000
    agg_best_match = True  # aggTrades records carry `M`
    prev_close = True  # ticker/24hr carries prevClosePrice

    def __init__(self, *args):
        super().__init__(*args)
        self.dumps = DumpTrades(self.config)
        self.weight_window: int | None = None
        self.weight_used = 0

    def reset(self) -> None:
        super().reset()
        self.weight_window, self.weight_used = None, 0

    # ---- limits ----------------------------------------------------------------------------

    @property
    def weight_limit(self) -> int:
        return self.config.binance_weight_limit

    def request_weight(self, path: str, query: dict) -> int:
        return request_weight(path, query)

    def admit(self, path: str, query: dict) -> tuple[dict[str, str], Reply | None]:
        window = int(time.time() // self.config.weight_window_s)
        if window != self.weight_window:
            self.weight_window, self.weight_used = window, 0
        self.weight_used += self.request_weight(path, query)
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.weight_used), "X-MBX-USED-WEIGHT": str(self.weight_used)}
        if self.weight_used <= self.weight_limit:
            return headers, None
        self.limit_refusals += 1
        remaining = (window + 1) * self.config.weight_window_s - time.time()
        return headers, json_reply(
            429,
            too_much_weight(self.weight_limit),
            {**headers, "Retry-After": str(max(1, math.ceil(remaining)))},
        )

    # ---- answers ---------------------------------------------------------------------------

    def _checked_instrument(self, query: dict, param: str = "symbol") -> str:
        """The instrument `param` names, one of the venue's; the venue's error otherwise."""
        instrument = query.get(param)
        if not instrument:
            raise VendorError(
                400,
                {
                    "code": -1102,
                    "msg": f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.",
                },
            )
        if instrument not in self.config.instruments.get(self.name, []) or not self.market.exists(
            self.name, instrument
        ):
            raise INVALID_SYMBOL  # not listed yet, delisted or expired: not in exchangeInfo either
        return instrument

    def answer(self, path: str, query: dict, headers) -> Any:
        market = self.market
        p = Params(query, (headers.get("X-MBX-TIME-UNIT") or "").upper() == "MICROSECOND")
        name = path.removeprefix(self.prefix)
        if name == "ping":
            return {}
        if name == "time":
            return {"serverTime": int(time.time() * 1000)}
        if name == "exchangeInfo":
            return self.exchange_info(query)
        if name == "ticker/24hr" and not query.get("symbol"):
            return self.all_tickers(p)
        instrument = self._checked_instrument(query)
        if name == "aggTrades":
            return self.agg_trades(instrument, p)
        if name == "trades":
            rows = market.latest(self.name, instrument, p.limit(500, 1000))
            return [
                {
                    "id": tape.first_id + i,
                    "price": fmt8(tape.price[i]),
                    "qty": fmt8(tape.size[i]),
                    "quoteQty": fmt8(tape.price[i] * tape.size[i]),
                    "time": p.out(tape.ts[i]),
                    "isBuyerMaker": not tape.buy[i],
                    "isBestMatch": True,
                }
                for tape, i in rows
            ]
        if name == "historicalTrades":
            n, from_id, now = p.limit(500, 1000), p.integer("fromId"), market.now_us()
            live = market.live_trades.get((self.name, instrument))
            sent = live.emitted_from(from_id, n) if live is not None and from_id is not None else None
            if sent is not None:  # ids the WebSocket replay sent: exactly as it sent them
                return [
                    {
                        "id": i,
                        "price": fmt8(price),
                        "qty": fmt8(size),
                        "quoteQty": fmt8(price * size),
                        "time": p.out(ms * 1000),
                        "isBuyerMaker": not buy,
                        "isBestMatch": True,
                    }
                    for i, ms, price, size, buy in sent
                ]
            trades = (
                self.dumps.latest(instrument, n, now)
                if from_id is None
                else self.dumps.from_id(instrument, max(0, from_id), n, now)
            )
            return [
                {
                    "id": day.first_id + i,
                    "price": fmt8(day.price[i]),
                    "qty": fmt8(day.qty[i]),
                    "quoteQty": fmt8(day.quote[i]),
                    "time": p.out(day.ts[i]),
                    "isBuyerMaker": day.sell[i],
                    "isBestMatch": True,
                }
                for day, i in trades
            ]
        if name == "klines":
            return self.klines(instrument, p)
        if name == "depth":
            return self.depth(instrument, p)
        if name == "ticker/24hr":
            stats = self.day_stats(instrument, p)
            _, bids, asks, _ = market.book(self.name, instrument, 1)
            at = list(stats).index("lastQty") + 1  # Binance's field order: bid/ask after the last trade
            items = list(stats.items())
            best = [
                ("bidPrice", fmt8(bids[0][0])),
                ("bidQty", fmt8(bids[0][1])),
                ("askPrice", fmt8(asks[0][0])),
                ("askQty", fmt8(asks[0][1])),
            ]
            return dict(items[:at] + best + items[at:])
        raise VendorError(404, {"code": -1000, "msg": f"Unknown path {path}"})

    def agg_trades(self, instrument: str, p: Params, oldest_us: int | None = None) -> list[dict]:
        """`aggTrades` by startTime/endTime (at most 1 h apart), fromId or the latest; trades before
        `oldest_us` do not exist (a venue keeping a limited history)."""
        market, query, n = self.market, p.query, p.limit(500, 1000)
        start, end = p.time("startTime"), p.time("endTime")
        from_id = query.get("fromId")
        if from_id not in (None, "") and (start is not None or end is not None):
            raise VendorError(400, {"code": -1128, "msg": "Combination of optional parameters invalid."})
        if start is not None and end is not None:
            if end - start > HOUR_US:
                raise VendorError(
                    400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}
                )
            rows = market.rows_between(self.name, instrument, max(start, oldest_us or 0), end, n)
        elif start is not None:
            rows = market.rows_between(self.name, instrument, max(start, oldest_us or 0), start + HOUR_US, n)
        elif end is not None:
            rows = market.rows_between(
                self.name, instrument, max(end - HOUR_US, oldest_us or 0), end, n, newest_first=True
            )[::-1]
        elif from_id not in (None, ""):
            rows = [
                r
                for r in market.rows_from_id(self.name, instrument, int(from_id), n)
                if oldest_us is None or r[0].ts[r[1]] >= oldest_us
            ]
        else:
            rows = market.latest(self.name, instrument, n)
        out = []
        for tape, i in rows:
            a = tape.first_id + i
            f, last = binance_trade_span(a)
            record = {
                "a": a,
                "p": fmt8(tape.price[i]),
                "q": fmt8(tape.size[i]),
                "f": f,
                "l": last,
                "T": p.out(tape.ts[i]),
                "m": not tape.buy[i],
            }
            if self.agg_best_match:
                record["M"] = True
            out.append(record)
        return out

    def kline_window(self, p: Params, n: int) -> tuple[int, int, bool]:
        """(first, last, newest): the minute opens a klines request covers (newest: keep the last n)."""
        start, end = p.time("startTime"), p.time("endTime")
        now = self.market.now_us()
        if start is not None:
            return start, min(end if end is not None else now, start + n * MINUTE_US - 1), False
        hi = min(end if end is not None else now, now - MINUTE_US)
        return hi - n * MINUTE_US + 1, hi, True

    def klines(self, instrument: str, p: Params) -> list[list]:
        if p.query.get("interval") != "1m":
            raise VendorError(400, {"code": -1120, "msg": "Invalid interval."})
        n = p.limit(500, self.KLINE_MAX)
        lo, hi, newest = self.kline_window(p, n)
        bars = self.market.bars_between(self.name, instrument, lo, hi)
        out = []
        for bar in bars[-n:] if newest else bars[:n]:
            ts, o, h, low, c, vol, quote, count, _, tb_base, tb_quote = bar
            out.append(
                [
                    p.out(ts),
                    fmt8(o),
                    fmt8(h),
                    fmt8(low),
                    fmt8(c),
                    fmt8(vol),
                    p.out(ts + MINUTE_US) - 1,
                    fmt8(quote),
                    count,
                    fmt8(tb_base),
                    fmt8(tb_quote),
                    "0",
                ]
            )
        return out

    def depth_times(self, ts_us: int) -> dict:
        """The times a depth answer carries (spot: none)."""
        return {}

    def depth(self, instrument: str, p: Params) -> dict:
        depth = p.limit(self.DEPTH_DEFAULT, self.DEPTH_MAX)
        update_id, bids, asks, ts = self.market.book(self.name, instrument, depth)
        return {
            "lastUpdateId": update_id,
            **self.depth_times(ts),
            "bids": [[fmt8(px), fmt8(q)] for px, q in bids],
            "asks": [[fmt8(px), fmt8(q)] for px, q in asks],
        }

    def day_stats(self, instrument: str, p: Params) -> dict:
        """The `ticker/24hr` statistics of the rolling 24 hours before now, from the tape (spot adds
        prevClosePrice and the best bid/ask)."""
        now = self.market.now_us()
        rows = self.market.rows_between(self.name, instrument, now - DAY_US, now - 1)
        prices = [tape.price[i] for tape, i in rows]
        sizes = [base_and_quote(tape.spec, tape.price[i], tape.size[i]) for tape, i in rows]
        volume, value = sum(b for b, _ in sizes), sum(q for _, q in sizes)
        first, last = (prices[0], prices[-1]) if prices else (0.0, 0.0)
        stats = {
            "symbol": instrument,
            "priceChange": fmt8(last - first),
            "priceChangePercent": f"{(last / first - 1) * 100 if first else 0:.3f}",
            "weightedAvgPrice": fmt8(value / volume if volume else 0.0),
        }
        if self.prev_close:
            stats["prevClosePrice"] = fmt8(self._close_before(instrument, now - DAY_US))
        last_qty = rows[-1][0].size[rows[-1][1]] if rows else 0.0
        stats.update(
            {
                "lastPrice": fmt8(last),
                "lastQty": fmt8(last_qty),
                "openPrice": fmt8(first),
                "highPrice": fmt8(max(prices, default=0.0)),
                "lowPrice": fmt8(min(prices, default=0.0)),
                "volume": fmt8(volume),
                "quoteVolume": fmt8(value),
                "openTime": p.out(now - DAY_US),
                "closeTime": p.out(now),
                "firstId": rows[0][0].first_id + rows[0][1] if rows else -1,
                "lastId": rows[-1][0].first_id + rows[-1][1] if rows else -1,
                "count": len(rows),
            }
        )
        return stats

    def all_tickers(self, p: Params) -> list[dict]:
        """`ticker/24hr` without a symbol: every symbol live now, in the documented FULL shape (MINI with
        `type=MINI`), its 24 h volume from `volumes` (the configured symbols' too: one answer for the whole
        universe, not a tape each)."""
        if (p.query.get("type") or "FULL") not in ("FULL", "MINI"):
            raise VendorError(400, {"code": -1100, "msg": "Illegal characters found in parameter 'type'."})
        now = self.market.now_us()
        return [
            self.volume_stats(item, now, p.query.get("type") == "MINI", p)
            for item in reference.universe(self.config.seed, now).live(self.name, now)
        ]

    def volume_stats(self, item: reference.Instrument, now: int, mini: bool, p: Params) -> dict:
        """One symbol's record of `all_tickers` (spot's FULL adds prevClosePrice and the best bid and ask)."""
        quote, last = volumes.quote_volume(self.config.seed, item, now), volumes.last_price(item)
        opened = last * (1 + 0.04 * (reference.unit("open", item.name, now // DAY_US) - 0.5))
        count = int(quote / last / item.terms.step) % 900_000 + 1 if quote else 0
        first_id = int(reference.unit("first-id", item.name) * 1e9)
        times = {
            "openTime": p.out(now - DAY_US),
            "closeTime": p.out(now),
            "firstId": first_id,
            "lastId": first_id + count - 1,
            "count": count,
        }
        prices = {
            "openPrice": fmt8(opened),
            "highPrice": fmt8(max(opened, last) * 1.01),
            "lowPrice": fmt8(min(opened, last) * 0.99),
            "lastPrice": fmt8(last),
        }
        sizes = {"volume": fmt8(quote / last), "quoteVolume": fmt8(quote)}
        if mini:
            return {"symbol": item.name, **prices, **sizes, **times}
        spot = self.prev_close  # spot's FULL record: prevClosePrice and the book's best (USD-M's has neither)
        tick = item.terms.tick
        return {
            "symbol": item.name,
            "priceChange": fmt8(last - opened),
            "priceChangePercent": f"{(last / opened - 1) * 100:.3f}",
            "weightedAvgPrice": fmt8((opened + last) / 2),
            **({"prevClosePrice": fmt8(opened)} if spot else {}),
            "lastPrice": prices["lastPrice"],
            "lastQty": fmt8(item.terms.step),
            **(
                {
                    "bidPrice": fmt8(last - tick),
                    "bidQty": fmt8(item.terms.step * 10),
                    "askPrice": fmt8(last + tick),
                    "askQty": fmt8(item.terms.step * 10),
                }
                if spot
                else {}
            ),
            "openPrice": prices["openPrice"],
            "highPrice": prices["highPrice"],
            "lowPrice": prices["lowPrice"],
            **sizes,
            **times,
        }

    def _close_before(self, instrument: str, us: int) -> float:
        before = self.market.rows_before_ts(self.name, instrument, us, 1)
        return before[0][0].price[before[0][1]] if before else 0.0

    # ---- reference -------------------------------------------------------------------------

    def rate_limits(self) -> list[dict]:
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ]

    def listed(self, query: dict) -> list[reference.Instrument]:
        """The venue's instruments live now that `symbol` / `symbols` name (all without them): -1121
        if one is not (a delisted symbol is not), -1128 for both at once."""
        now = self.market.now_us()
        universe = reference.universe(self.config.seed, now)
        named = symbols_param(query)
        if query.get("symbol"):
            if named is not None:
                raise COMBINATION
            named = [query["symbol"]]
        if named is None:
            return universe.live(self.name, now)
        found = [universe.get(self.name, n) for n in named]
        if any(item is None or not item.live(now) for item in found):
            raise INVALID_SYMBOL
        return found

    def exchange_info(self, query: dict) -> dict:
        """GET /api/v3/exchangeInfo: symbols live now (optionally `symbol`, `symbols`, `symbolStatus`)."""
        status = query.get("symbolStatus")
        if status is not None and status not in SYMBOL_STATUSES:
            raise VendorError(400, {"code": -1122, "msg": "Invalid symbolStatus."})
        if status is not None and (query.get("symbol") or query.get("symbols")):
            raise COMBINATION
        symbols = [spot_symbol(i) for i in self.listed(query) if status is None or i.status == status]
        sor = [s["symbol"] for s in symbols if s["symbol"] in ("BTCUSDT", "BTCFDUSD")]
        return {
            "timezone": "UTC",
            "serverTime": self.market.now_us() // 1000,
            "rateLimits": self.rate_limits(),
            "exchangeFilters": [],
            "symbols": symbols,
            **({"sors": [{"baseAsset": "BTC", "symbols": sor}]} if len(sor) > 1 else {}),
        }

    # ---- faults ----------------------------------------------------------------------------

    def fault_reply(self, fault: Fault) -> Reply:
        fault_kind = fault.kind
        if fault_kind == "rate_limit":
            return json_reply(fault.status or 429, too_much_weight(self.weight_limit), retry_after(fault))
        if fault_kind == "ban":
            seconds = float(fault.retry_after or 120)
            until = int((time.time() + seconds) * 1000)
            return json_reply(
                fault.status or 418,
                {
                    "code": -1003,
                    "msg": (
                        f"Way too much request weight used; IP banned until {until}. Please use WebSocket "
                        "Streams for live updates to avoid bans."
                    ),
                },
                {"Retry-After": str(int(seconds))},
            )
        if fault_kind == "server_error":
            return json_reply(
                fault.status or 503,
                {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
            )
        if fault_kind == "waf":
            return Reply(fault.status or 403, WAF_PAGE, {"Content-Type": "text/html"})
        if fault_kind == "unauthorized":
            return json_reply(
                fault.status or 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
            )
        return json_reply(
            fault.status or 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        )

    def mutate(self, payload: Any, path: str, fault_kind: str) -> None:
        name = path.rsplit("/", 1)[-1]
        if name in ("aggTrades", "trades", "historicalTrades") and payload:
            damage(middle(payload), "p" if name == "aggTrades" else "price", fault_kind, BAD_NUMBER)
        elif name == "klines" and payload:
            damage(middle(payload), 4, fault_kind, BAD_NUMBER)  # the close
        elif name == "24hr" and isinstance(payload, list):  # every symbol's: a volume damaged
            if payload:
                damage(middle(payload), "quoteVolume", fault_kind, BAD_NUMBER)
        elif name == "24hr":
            damage(payload, "lastPrice", fault_kind, BAD_NUMBER)
        elif name == "exchangeInfo" and payload.get("symbols"):
            symbol = middle(payload["symbols"])
            if fault_kind == "missing_field":
                del symbol["status"]
            else:
                symbol["filters"][0]["tickSize"] = BAD_NUMBER
        elif name == "depth":
            if fault_kind == "missing_field":
                del payload["lastUpdateId"]
            elif payload["bids"]:
                payload["bids"][0][0] = BAD_NUMBER
