"""Deribit v2 public market data (`/api/v2/public/...`) as the venue answers it.

`get_last_trades_by_instrument_and_time`, `get_last_trades_by_instrument` (start_seq/end_seq; the trade_seqs
the WebSocket replay sent answer as it sent them, `live_book.LiveInstrument.emitted`),
`get_order_book`, `get_tradingview_chart_data` (resolution=1), `ticker`, `get_funding_rate_history`,
`get_book_summary_by_currency` (options: the chain below; futures and spot: every one of the reference
universe, 24 h volumes from `volumes`), `get_instruments`, `get_instrument`, `get_time`. Every answer,
errors included, is a JSON-RPC envelope with usIn/usOut/usDiff/testnet; numbers are JSON numbers, inverse
perpetuals count amounts in USD. Errors: -32602 invalid params, -32601 unknown method, 10028 too many requests
(HTTP 429, also when the credits of `deribit_requests_per_s` run out), 13009 unauthorized.

From the derived series (derived.py): the trades `liquidation_flag` marks; the ticker's mark and
index (the last ended minute's close), current_funding / funding_8h (funding_rate over 1 and 8 hours
to now) and open_interest (derived contracts * `contract_size`, in amount units); hourly funding
history (interest_1h, interest_8h; index_price: the index before the hour; start_timestamp
exclusive, at most `FUNDING_ROWS` rows, the newest [inferred]). An option chain per BTC/ETH
perpetual served (`option_chain`): the next 4 Fridays and the months' last Fridays at 08:00 UTC,
strikes on a grid around the perpetual's last price, mark IVs on a smile, Black-76 mark prices in
coin units, bid/ask around them.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from marketdata_assets.replay import Reply, json_reply
from marketdata_assets.replay.crypto import derived, reference, volumes
from marketdata_assets.replay.crypto.config import DERIBIT, Fault
from marketdata_assets.replay.crypto.derived import HOUR_US
from marketdata_assets.replay.crypto.tape import (
    DAY_US,
    MINUTE_US,
    DayTape,
    Market,
    base_and_quote,
    instrument_spec,
)
from marketdata_assets.replay.crypto.venue import VendorError, Venue, damage, middle, retry_after

TRADE_METHODS = ("get_last_trades_by_instrument_and_time", "get_last_trades_by_instrument")
METHODS = (
    *TRADE_METHODS,
    "get_order_book",
    "get_tradingview_chart_data",
    "ticker",
    "get_funding_rate_history",
    "get_book_summary_by_currency",
    "get_instruments",
    "get_instrument",
)
BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)
CURRENCIES = ("BTC", "ETH", "USDC", "USDT", "EURR")
FUNDING_ROWS = 744  # one get_funding_rate_history answer: about a month, the newest rows [inferred]
STRIKE_STEPS = {"BTC": 1000, "ETH": 50}  # the chains served (with their perpetual)
OPTION_TICK = 0.0001
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
NGINX_PAGE = (
    "<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>"
)


def invalid(reason: str, param: str) -> VendorError:
    return VendorError(
        400,
        {"error": {"message": "Invalid params", "data": {"reason": reason, "param": param}, "code": -32602}},
    )


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


# --------------------------------------------------------------------------------------------
# The derived answers (pure functions of the market: tests recompute them)
# --------------------------------------------------------------------------------------------


def contract_size(instrument: str) -> float:
    """get_instruments' contract_size (reference.terms): USD for inverse contracts (BTC 10, others 1), base
    coin for linear ones (BTC 0.001, others 0.01), 1 coin for options."""
    return reference.terms(DERIBIT, instrument).ct_val


def liquidation_flag(seed: int, instrument: str, seq: int) -> str | None:
    """A trade's `liquidation`: None, or for the trades derived.is_liquidation picks (by trade_seq)
    "M" (maker side liquidated), "T" (taker side) or "MT" (both)."""
    if not derived.is_liquidation(seed, DERIBIT, instrument, seq):
        return None
    u = random.Random(f"liq-side:{seed}:{instrument}:{seq}").random()
    return "M" if u < 0.45 else "T" if u < 0.9 else "MT"


def open_interest(market: Market, instrument: str, ts_us: int) -> float:
    """The ticker's open_interest at `ts_us`: derived contracts in amount units (USD or base coin)."""
    return round(derived.open_interest(market, DERIBIT, instrument, ts_us) * contract_size(instrument), 8)


def ticker(market: Market, instrument: str) -> dict:
    """public/ticker now: best bid/ask of a fresh book (market.book, depth 1), the last 24 hours' trades."""
    now = market.now_us()
    ts = now - now % 1000
    minute = ts - ts % MINUTE_US - MINUTE_US  # the last minute that has ended
    index = derived.index_bar(market, DERIBIT, instrument, minute)[3]
    mark = derived.mark_bar(market, DERIBIT, instrument, minute)[3]
    _, bids, asks, _ = market.book(DERIBIT, instrument, 1)
    rows = market.rows_between(DERIBIT, instrument, ts - DAY_US, ts - 1)
    last = market.rows_before_ts(DERIBIT, instrument, ts, 1)
    volume = volume_usd = 0.0
    for tape, i in rows:
        base, quote = base_and_quote(tape.spec, tape.price[i], tape.size[i])
        volume += base
        volume_usd += quote
    prices = [tape.price[i] for tape, i in rows]
    result = {
        "timestamp": ts // 1000,
        "state": "open",
        "instrument_name": instrument,
        "stats": {
            "volume": round(volume, 8),
            "volume_usd": round(volume_usd, 2),
            "price_change": round((prices[-1] / prices[0] - 1) * 100, 4) if prices else None,
            "low": min(prices) if prices else None,
            "high": max(prices) if prices else None,
        },
        "open_interest": open_interest(market, instrument, ts),
        "mark_price": mark,
        "index_price": index,
        "last_price": last[0][0].price[last[0][1]] if last else None,
        "best_bid_price": bids[0][0],
        "best_bid_amount": bids[0][1],
        "best_ask_price": asks[0][0],
        "best_ask_amount": asks[0][1],
        "settlement_price": mark,
        "estimated_delivery_price": index,
        "min_price": round(mark * 0.97, 1),
        "max_price": round(mark * 1.03, 1),
    }
    if instrument.endswith("-PERPETUAL"):
        result.update(
            current_funding=derived.funding_rate(market, DERIBIT, instrument, ts, 1),
            funding_8h=derived.funding_rate(market, DERIBIT, instrument, ts, 8),
            interest_value=0.0,
        )
    return result


def index_before(market: Market, instrument: str, t_us: int) -> float:
    """The index at `t_us` (on a minute): the close of the minute that ended there."""
    return derived.index_bar(market, DERIBIT, instrument, t_us - MINUTE_US)[3]


def funding_history(market: Market, instrument: str, start_ms: int, end_ms: int) -> list[dict]:
    """The hourly rows of (start_ms, end_ms] before now, at most the newest `FUNDING_ROWS`."""
    last = min(end_ms * 1000, market.now_us())
    first = max((start_ms + 1) * 1000, last - FUNDING_ROWS * HOUR_US)
    return [
        {
            "timestamp": t // 1000,
            "index_price": index_before(market, instrument, t),
            "prev_index_price": index_before(market, instrument, t - HOUR_US),
            "interest_8h": derived.funding_rate(market, DERIBIT, instrument, t, 8),
            "interest_1h": derived.funding_rate(market, DERIBIT, instrument, t, 1),
        }
        for t in derived.settlements(first, last, 1)[-FUNDING_ROWS:]
    ]


def option_expiries(now_us: int) -> list[tuple[datetime, bool]]:
    """(expiry, monthly) ascending: the next 4 Fridays 08:00 UTC after now and the last Fridays of
    this month (if still ahead) and the next."""
    now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)

    def at_eight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, 8, tzinfo=UTC)

    def last_friday(year: int, month: int) -> datetime:
        day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        return at_eight(day - timedelta(days=(day.weekday() - 4) % 7))

    expiries: dict[datetime, bool] = {}
    day = now.date()
    while len(expiries) < 4:
        if day.weekday() == 4 and at_eight(day) > now:
            expiries[at_eight(day)] = False
        day += timedelta(days=1)
    for monthly in (
        last_friday(now.year, now.month),
        last_friday(now.year + now.month // 12, now.month % 12 + 1),
    ):
        if monthly > now:
            expiries[monthly] = True
    return sorted(expiries.items())


def smile(strike: float, forward: float, years: float) -> float:
    """Mark IV in percent: a smile in log-moneyness, higher for the nearest expiries (always > 40)."""
    m = math.log(strike / forward)
    return round(45 + 600 * m * m - 8 * m + 5 / (1 + 52 * years), 2)


def black76(option_type: str, forward: float, strike: float, years: float, sigma: float) -> float:
    """Black-76 undiscounted price in the quote currency (USD) of a call ("C") or put ("P")."""

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    width = sigma * math.sqrt(years)
    d1 = (math.log(forward / strike) + width * width / 2) / width
    d2 = d1 - width
    if option_type == "C":
        return forward * cdf(d1) - strike * cdf(d2)
    return strike * cdf(-d2) - forward * cdf(-d1)


def _unit(*key) -> float:
    return random.Random(repr(key)).random()


def option_chain(market: Market, currency: str) -> list[dict]:
    """get_book_summary_by_currency?currency=&kind=option now: the chain of `currency` if its
    perpetual is served, else none."""
    perpetual = f"{currency}-PERPETUAL"
    if currency not in STRIKE_STEPS or perpetual not in market.config.instruments.get(DERIBIT, []):
        return []
    now = market.now_us()
    last = market.rows_before_ts(DERIBIT, perpetual, now, 1)
    spot = last[0][0].price[last[0][1]] if last else instrument_spec(DERIBIT, perpetual).base_price
    step = STRIKE_STEPS[currency]
    atm = round(spot / step) * step
    out = []
    for expiry, monthly in option_expiries(now):
        years = (expiry.timestamp() * 1_000_000 - now) / (365 * DAY_US)
        forward = round(spot * (1 + 0.02 * years), 2)
        code = f"{expiry.day}{MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"
        for k in range(-5, 6):
            strike = atm + k * step
            if strike <= 0:
                continue
            iv = smile(strike, forward, years)
            for option_type in "CP":
                name = f"{currency}-{code}-{strike}-{option_type}"
                mark = round(black76(option_type, forward, strike, years, iv / 100) / forward, 8)
                bid = round(math.floor(mark * 0.97 / OPTION_TICK) * OPTION_TICK, 4)
                ask = round((math.ceil(mark * 1.03 / OPTION_TICK) + 1) * OPTION_TICK, 4)
                bid = bid if bid >= OPTION_TICK else None
                used = _unit("volume", market.config.seed, name)
                volume = round(50 * used, 1) if used >= 0.25 else 0.0
                out.append(
                    {
                        "volume": volume,
                        "volume_usd": round(volume * mark * spot, 2),
                        "underlying_price": forward,
                        "underlying_index": f"{currency}-{code}" if monthly else f"SYN.{currency}-{code}",
                        "quote_currency": currency,
                        "price_change": None,
                        "open_interest": round(1 + 400 * _unit("oi", market.config.seed, name), 1),
                        "mid_price": round((bid + ask) / 2, 5) if bid is not None else None,
                        "mark_price": mark,
                        "mark_iv": iv,
                        "low": None,
                        "last": None,
                        "high": None,
                        "interest_rate": 0.0,
                        "instrument_name": name,
                        "estimated_delivery_price": spot,
                        "creation_timestamp": now // 1000,
                        "bid_price": bid,
                        "base_currency": currency,
                        "ask_price": ask,
                    }
                )
    return out


def trade_id(instrument: str, seq: int) -> str:
    """Deribit's trade_id of a trade_seq: digits for BTC, "<currency>-<digits>" otherwise."""
    root = instrument.split("-")[0].split("_")[0]
    return str(seq) if root == "BTC" else f"{root}-{seq}"


def sent_page(inst: str, sent: list[tuple], count: int, sorting: str | None) -> dict:
    """A trades page of trade_seqs the WebSocket replay sent, exactly as it sent them (deribit_ws)."""
    page = sent[:count] if sorting == "asc" else list(reversed(sent[-count:]))
    return {
        "trades": [
            {
                "trade_seq": i,
                "trade_id": trade_id(inst, i),
                "timestamp": ms,
                "tick_direction": 0,
                "price": p,
                "amount": q,
                "direction": "buy" if buy else "sell",
                "instrument_name": inst,
                "index_price": p,
                "mark_price": p,
            }
            for i, ms, p, q, buy in page
        ],
        "has_more": len(sent) > count,
    }


class Credits:
    """A bucket refilled at `rate` a second, holding one second's worth at most."""

    def __init__(self):
        self.refilled: float | None = None  # when last refilled (monotonic)
        self.left = 0.0

    def take(self, rate: float, now: float) -> str | None:
        """Spend a credit: None, or the Retry-After (seconds) when none is left; rate <= 0: unlimited."""
        if rate <= 0:
            return None
        if self.refilled is None:
            self.refilled, self.left = now, rate
        self.left = min(rate, self.left + (now - self.refilled) * rate)
        self.refilled = now
        if self.left < 1:
            return str(max(1, math.ceil((1 - self.left) / rate)))
        self.left -= 1
        return None


PERPETUAL_EXPIRY_MS = 32_503_708_800_000  # a perpetual's expiration_timestamp (3000-01-01)
KINDS = ("future", "option", "spot", "future_combo", "option_combo")


def instrument_record(item: reference.Instrument, now_us: int) -> dict:
    """One get_instruments / get_instrument result, every field of Deribit's documented example
    (options add option_type and strike)."""
    t, active = item.terms, item.live(now_us)
    kind = "future" if item.kind == "perpetual" else item.kind
    option = item.kind == "option"
    record = {
        "tick_size": t.tick,
        "tick_size_steps": [],
        "taker_commission": 0.0003 if option else 0.0005,
        "settlement_period": item.alias,
        "settlement_currency": item.settle,
        "quote_currency": item.base if option else item.quote,
        "price_index": item.family,
        "min_trade_amount": t.step,
        "max_liquidation_commission": 0.0075,
        "max_leverage": 50,
        "maker_commission": 0.0003 if option else 0.0,
        "kind": kind,
        "is_active": active,
        "instrument_name": item.name,
        "instrument_id": item.number,
        "instrument_type": "linear" if item.settle in ("USDC", "USDT") else "reversed",
        "expiration_timestamp": item.expires_us // 1000
        if item.expires_us is not None
        else PERPETUAL_EXPIRY_MS,
        "creation_timestamp": item.listed_us // 1000,
        "counter_currency": item.quote,
        "contract_size": t.ct_val,
        "block_trade_tick_size": 0.0001 if option else 0.01,
        "block_trade_min_trade_amount": 25 if option else 200000,
        "block_trade_commission": 0.00015 if option else 0.00025,
        "base_currency": item.base,
        "state": "open" if active else "closed",
        "rfq": False,
    }
    if option:
        record.update(option_type="call" if item.option_type == "C" else "put", strike=item.strike)
    return record


def of_currency(item: reference.Instrument, currency: str) -> bool:
    """An instrument a `currency` parameter asks for: a spot pair by its base, another by its settlement."""
    return currency in ("any", item.base if item.kind == "spot" else item.settle)


def book_volume(seed: int, item: reference.Instrument, now_us: int) -> dict:
    """One future's or spot pair's get_book_summary_by_currency record, the fields of Deribit's documented
    example (volume in the base coin, volume_usd, and volume_notional in the quote: "futures and spots
    only")."""
    usd, last, tick = volumes.usd_volume(seed, item, now_us), volumes.last_price(item), item.terms.tick
    opened = last * (1 + 0.04 * (reference.unit("open", item.name, now_us // DAY_US) - 0.5))
    record = {
        "volume_usd": round(usd, 2),
        "volume": round(usd / volumes.usd_price(item.base), 8),
        "volume_notional": round(usd / volumes.usd_price(item.quote), 2),
        "quote_currency": item.quote,
        "price_change": round((last / opened - 1) * 100, 4),
        "mid_price": last,
        "mark_price": last,
        "low": round(min(opened, last) * 0.99, 8),
        "last": last,
        "instrument_name": item.name,
        "high": round(max(opened, last) * 1.01, 8),
        "creation_timestamp": now_us // 1000,
        "bid_price": round(last - tick, 8),
        "base_currency": item.base,
        "ask_price": round(last + tick, 8),
    }
    if item.kind != "spot":  # "Optional (only for derivatives)"
        record.update(open_interest=round(usd / 4, 2), estimated_delivery_price=last)
    if item.kind == "perpetual":
        record.update(funding_8h=0.0001, current_funding=0.0)
    return record


class Deribit(Venue):
    name = DERIBIT
    prefix = "/api/v2/"
    instrument_param = "instrument_name"
    endpoints: ClassVar[dict[str, str]] = {
        **dict.fromkeys(TRADE_METHODS, "trades"),
        "get_order_book": "book",
        "get_tradingview_chart_data": "bars",
        "ticker": "tickers",
        "get_funding_rate_history": "funding",
        "get_book_summary_by_currency": "option_chain",
        "get_instruments": "reference",
        "get_instrument": "reference",
    }

    def __init__(self, config, market):
        super().__init__(config, market)
        self.credits, self.instrument_credits = Credits(), Credits()

    def instrument(self, query: dict) -> str | None:
        """instrument_name, or the chain ("BTC-OPTIONS") a book summary of options asks for."""
        if "instrument_name" not in query and query.get("currency") and query.get("kind") == "option":
            return f"{query['currency']}-OPTIONS"
        return query.get("instrument_name")

    def admit(self, path: str, query: dict) -> tuple[dict[str, str], Reply | None]:
        """Deribit's credits as buckets: `deribit_requests_per_s` for every request, and
        `deribit_instruments_per_s` for get_instruments besides (its own sustained rate); a request
        without a credit is refused with 10028."""
        buckets = [(self.credits, self.config.deribit_requests_per_s)]
        if path.endswith("/get_instruments"):
            buckets.append((self.instrument_credits, self.config.deribit_instruments_per_s))
        now = time.monotonic()
        for bucket, rate in buckets:
            wait = bucket.take(rate, now)
            if wait is not None:
                self.limit_refusals += 1
                return {}, json_reply(429, rpc_error("too_many_requests", 10028), {"Retry-After": wait})
        return {}, None

    @property
    def refilled(self) -> float | None:
        """When the general bucket was last refilled (None: not since the start or a reset)."""
        return self.credits.refilled

    def reset(self) -> None:
        super().reset()
        self.credits, self.instrument_credits = Credits(), Credits()

    def envelope(self, payload: Any, query: dict) -> Any:
        return rpc(payload, query)

    def trade_id(self, instrument: str, seq: int) -> str:
        return trade_id(instrument, seq)

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
        if method == "get_book_summary_by_currency":
            currency = query.get("currency")
            if not currency:
                raise invalid("required", "currency")
            if currency not in CURRENCIES:
                raise invalid(f"must be one of {', '.join(CURRENCIES)}", "currency")
            return self._book_summaries(currency, query.get("kind"))
        if method == "get_instruments":
            return self._instruments(query)
        inst = query.get("instrument_name")
        if not inst:
            raise invalid("required", "instrument_name")
        if method == "get_instrument":
            return self._instrument(inst)
        if (
            inst not in self.config.instruments.get(DERIBIT, [])
            or self.market.window(DERIBIT, inst)[0] > self.market.now_us()
        ):
            raise invalid("instrument not found", "instrument_name")  # expired ones stay known
        if method == "ticker":
            return ticker(self.market, inst)
        if method == "get_funding_rate_history":
            start, end = int_param("start_timestamp", True), int_param("end_timestamp", True)
            if not inst.endswith("-PERPETUAL"):
                raise invalid("not a perpetual", "instrument_name")  # the code Deribit uses is not documented
            return funding_history(self.market, inst, start, end)
        if method in TRADE_METHODS:
            count = int_param("count") or 10
            if not 1 <= count <= 1000:
                raise invalid("must be between 1 and 1000", "count")
            sorting = query.get("sorting") or "default"
            if sorting not in ("asc", "desc", "default"):
                raise invalid("must be one of asc, desc, default", "sorting")
            return self._trades_page(method, inst, count, sorting, int_param)
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
            return {
                "volume": [],
                "ticks": [],
                "status": "no_data",
                "open": [],
                "low": [],
                "high": [],
                "cost": [],
                "close": [],
            }
        return {
            "volume": [b[5] for b in bars],
            "ticks": [b[0] // 1000 for b in bars],
            "status": "ok",
            "open": [b[1] for b in bars],
            "low": [b[3] for b in bars],
            "high": [b[2] for b in bars],
            "cost": [b[6] for b in bars],
            "close": [b[4] for b in bars],
        }

    def _instruments(self, query: dict) -> list[dict]:
        """public/get_instruments: active instruments of `currency` (or any) and `kind`, or with
        expired=true the recently expired ones."""
        currency, kind, expired = query.get("currency"), query.get("kind"), query.get("expired") or "false"
        if not currency:
            raise invalid("required", "currency")
        if currency not in (*CURRENCIES, "any"):
            raise invalid("invalid currency", "currency")
        if kind not in (None, "", *KINDS):
            raise invalid(f"must be one of {', '.join(KINDS)}", "kind")
        if expired not in ("true", "false"):
            raise invalid("must be boolean", "expired")
        now = self.market.now_us()
        universe = reference.universe(self.config.seed, now)
        found = universe.recently_expired(DERIBIT, now) if expired == "true" else universe.live(DERIBIT, now)
        return [
            instrument_record(i, now)
            for i in found
            if (not kind or ("future" if i.kind == "perpetual" else i.kind) == kind)
            and of_currency(i, currency)
        ]

    def _book_summaries(self, currency: str, kind: str | None) -> list[dict]:
        """get_book_summary_by_currency: options the chain (`option_chain`), futures and spot every one of
        the currency live now (`book_volume`); no kind: all three; combos none."""
        if kind not in (None, "", *KINDS):
            raise invalid(f"must be one of {', '.join(KINDS)}", "kind")
        out = option_chain(self.market, currency) if kind in (None, "", "option") else []
        if kind in (None, "", "future", "spot"):
            now = self.market.now_us()
            out += [
                book_volume(self.config.seed, i, now)
                for i in reference.universe(self.config.seed, now).live(DERIBIT, now)
                if i.kind in ("perpetual", "future", "spot")
                and of_currency(i, currency)
                and kind in (None, "", "future" if i.kind != "spot" else "spot")
            ]
        return out

    def _instrument(self, inst: str) -> dict:
        """public/get_instrument: any instrument listed by now (expired ones with is_active false)."""
        now = self.market.now_us()
        found = reference.universe(self.config.seed, now).get(DERIBIT, inst)
        if found is None or found.listed_us > now:
            raise invalid("instrument not found", "instrument_name")
        return instrument_record(found, now)

    def _book(self, inst: str, depth: int) -> dict:
        update_id, bids, asks, ts = self.market.book(DERIBIT, inst, depth)
        best_bid, best_ask = bids[0], asks[0]
        mid = (best_bid[0] + best_ask[0]) / 2
        return {
            "timestamp": ts // 1000,
            "state": "open",
            "stats": {
                "volume": 12345.6789,
                "volume_usd": 7.4e8,
                "price_change": 1.23,
                "low": mid * 0.97,
                "high": mid * 1.02,
            },
            "settlement_price": round(mid, 2),
            "open_interest": open_interest(self.market, inst, ts),
            "min_price": round(mid * 0.97, 1),
            "max_price": round(mid * 1.03, 1),
            "mark_price": round(mid, 2),
            "last_price": best_ask[0],
            "instrument_name": inst,
            "index_price": round(mid - 3.21, 2),
            "funding_8h": 0.00001234,
            "current_funding": 0.0,
            "interest_value": 0.0123,
            "change_id": update_id,
            "bids": [[p, q] for p, q in bids],
            "asks": [[p, q] for p, q in asks],
            "best_bid_price": best_bid[0],
            "best_bid_amount": best_bid[1],
            "best_ask_price": best_ask[0],
            "best_ask_amount": best_ask[1],
            "estimated_delivery_price": round(mid - 3.21, 2),
        }

    def _trades_page(self, method: str, inst: str, count: int, sorting: str, int_param) -> dict:
        """A `get_last_trades_by_instrument(_and_time)` page: by time, by trade_seq (the ones the
        WebSocket replay sent exactly as sent: `sent_page`) or the latest."""
        if method == "get_last_trades_by_instrument_and_time":
            start, end = int_param("start_timestamp", True), int_param("end_timestamp", True)
            rows = self.market.rows_between(
                DERIBIT, inst, start * 1000, end * 1000 + 999, count + 1, newest_first=sorting != "asc"
            )
            if sorting != "asc":
                rows.reverse()
        else:
            start_seq, end_seq = int_param("start_seq"), int_param("end_seq")
            if start_seq is None and end_seq is None:
                rows = self.market.latest(DERIBIT, inst, count)
            else:
                first = start_seq if start_seq is not None else end_seq - count + 1
                wanted = count + 1 if end_seq is None else max(0, min(count + 1, end_seq - first + 1))
                live = self.market.live_trades.get((DERIBIT, inst))
                sent = live.emitted_from(first, wanted) if live is not None else None
                if sent is not None:  # trade_seqs the WebSocket replay sent: exactly as it sent them
                    return sent_page(inst, sent, count, sorting)
                rows = self.market.rows_from_id(DERIBIT, inst, first, wanted)
                after = rows[-1][0].first_id + rows[-1][1] + 1 if rows else first
                if sorting == "asc" and live is not None and len(rows) < min(wanted, count + 1):
                    # the tape reaches now; the seqs the WebSocket replay sent ahead of it follow
                    sent = live.emitted_from(after, min(wanted, count + 1) - len(rows)) or []
                    page = [self._trade(inst, tape, i) for tape, i in rows]
                    page += sent_page(inst, sent, count - len(page), sorting)["trades"]
                    return {"trades": page[:count], "has_more": len(rows) + len(sent) > count}
        if sorting == "asc":
            page, has_more = rows[:count], len(rows) > count
        else:
            page, has_more = list(reversed(rows[-count:])), len(rows) > count
        return {"trades": [self._trade(inst, tape, i) for tape, i in page], "has_more": has_more}

    def _trade(self, inst: str, tape: DayTape, i: int) -> dict:
        seq = tape.first_id + i
        price = tape.price[i]
        previous = tape.price[i - 1] if i else tape.open_price
        tick_direction = 0 if price > previous else 2 if price < previous else (1 if tape.buy[i] else 3)
        rng = random.Random(seq)
        trade = {
            "trade_seq": seq,
            "trade_id": self.trade_id(inst, seq),
            "timestamp": tape.ts[i] // 1000,
            "tick_direction": tick_direction,
            "price": price,
            "mark_price": round(price + rng.uniform(-2, 2), 2),
            "instrument_name": inst,
            "index_price": round(price + rng.uniform(-5, 5), 2),
            "direction": "buy" if tape.buy[i] else "sell",
            "amount": tape.size[i],
        }
        if tape.spec.size_unit == "inverse":
            trade["contracts"] = tape.size[i] / tape.spec.size_step
        flag = liquidation_flag(self.config.seed, inst, seq)
        if flag is not None:
            trade["liquidation"] = flag
        return trade

    def fault_reply(self, fault: Fault) -> Reply:
        fault_kind = fault.kind
        if fault_kind == "rate_limit":
            return json_reply(fault.status or 429, rpc_error("too_many_requests", 10028), retry_after(fault))
        if fault_kind == "server_error":
            status = fault.status or 503
            return Reply(status, NGINX_PAGE.format(status=status).encode(), {"Content-Type": "text/html"})
        if fault_kind == "unauthorized":
            return json_reply(fault.status or 400, rpc_error("unauthorized", 13009))
        return json_reply(
            fault.status or 400,
            rpc_error("Invalid params", -32602, data={"reason": "wrong format", "param": "instrument_name"}),
        )

    def mutate(self, payload: Any, path: str, fault_kind: str) -> None:
        result = payload.get("result")
        name = path.rsplit("/", 1)[-1]
        missing = fault_kind == "missing_field"
        if name in ("get_funding_rate_history", "get_book_summary_by_currency", "get_instruments"):
            if result:
                record = middle(result)
                key = {"get_funding_rate_history": "interest_1h", "get_instruments": "contract_size"}.get(
                    name, "mark_iv" if "mark_iv" in record else "volume_usd"
                )  # a future's summary: its volume
                damage(record, key, fault_kind, "n/a")
            return
        if not isinstance(result, dict):
            return
        if name.startswith("get_last_trades"):
            trades = result.get("trades") or []
            if trades:
                damage(middle(trades), "price", fault_kind, "n/a")
        elif name == "get_instrument":
            damage(result, "contract_size", fault_kind, "n/a")
        elif name == "ticker":
            if missing:
                del result["timestamp"]
            else:
                result["mark_price"] = "n/a"
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
