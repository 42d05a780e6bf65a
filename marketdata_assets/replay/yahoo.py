"""The replay of Yahoo Finance chart v8 (1-minute bars of stocks on several exchanges): its format,
quirks, limits and faults.

Answers `GET /v8/finance/chart/{symbol}` as Yahoo does, with its window limits, error bodies and
faults; the ground truth is `yahoo_minutes`, and `replay.stocks` serves it beside Tushare's on one
port. Format, limits and faults: docs/tests.md, "The Yahoo Finance chart replay".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from marketdata_assets.replay import Reply
from marketdata_assets.replay.stock_market import (
    Fault,
    SourceReplay,
    is_session_day,
    r2,
    reference_price,
    seeded_random,
    session_end,
    vendor_json,
)

YAHOO_DELISTED = "No data found, symbol may be delisted"


@dataclass(frozen=True)
class Exchange:
    code: str  # meta.exchangeName
    full_name: str  # meta.fullExchangeName
    currency: str  # as Yahoo writes it
    timezone: str  # meta.exchangeTimezoneName
    open: tuple[int, int]
    close: tuple[int, int]
    price_lo: float
    price_hi: float


YAHOO_EXCHANGES: dict[str, Exchange] = {
    "": Exchange("NMS", "NasdaqGS", "USD", "America/New_York", (9, 30), (16, 0), 20, 400),
    "L": Exchange("LSE", "LSE", "GBp", "Europe/London", (8, 0), (16, 30), 50, 3000),
    "JO": Exchange("JNB", "Johannesburg", "ZAc", "Africa/Johannesburg", (9, 0), (17, 0), 1000, 50000),
    "TA": Exchange("TLV", "Tel Aviv", "ILA", "Asia/Jerusalem", (9, 59), (17, 14), 500, 20000),
    "DE": Exchange("GER", "XETRA", "EUR", "Europe/Berlin", (9, 0), (17, 30), 10, 500),
}


def yahoo_exchange(instrument: str) -> Exchange:
    suffix = instrument.rsplit(".", 1)[1].upper() if "." in instrument else ""
    return YAHOO_EXCHANGES.get(suffix, YAHOO_EXCHANGES[""])


def float32(x: float | None) -> float | None:
    """What Yahoo sends: the value stored as float32 and printed as float64 (101.2 → 101.19999694824219)."""
    return None if x is None else struct.unpack("<f", struct.pack("<f", x))[0]


@lru_cache(maxsize=4096)
def yahoo_minutes(
    seed: int,
    instrument: str,
    day: date,
    null_rate: float = 0.02,
    partial_rate: float = 0.01,
    holidays: tuple[str, ...] = (),
) -> tuple[tuple, ...]:
    """The day's regular-session 1-minute rows, oldest first: (epoch_s, open, high, low, close,
    volume, fill, missing_field) with CLEAN prices in the quote currency (pence for GBp);
    fill "ok" | "empty" (every value null) | "partial" (`missing_field` null); the truth endpoint
    names that column `kind`."""
    ex = yahoo_exchange(instrument)
    if not is_session_day(day, holidays, ex.code):
        return ()
    tz = ZoneInfo(ex.timezone)
    rng = seeded_random(seed, "yahoo", instrument, day)
    t = datetime(day.year, day.month, day.day, *ex.open, tzinfo=tz)
    end = datetime(day.year, day.month, day.day, *ex.close, tzinfo=tz)
    early = session_end(ex.code, day)  # a day the exchange closes early: no bars after its close
    end = min(end, early) if early is not None else end
    last = r2(reference_price(seed, instrument, day, ex.price_lo, ex.price_hi))
    rows = []
    first = True
    while t < end:
        o = last
        c = max(0.01, r2(o * (1 + rng.gauss(0, 0.0009))))
        h = r2(max(o, c) * (1 + abs(rng.gauss(0, 0.0004))))
        lo = max(0.01, r2(min(o, c) * (1 - abs(rng.gauss(0, 0.0004)))))
        vol = 0 if first and rng.random() < 0.5 else int(rng.lognormvariate(8.0, 1.0))
        draw = rng.random()
        missing = rng.choice(["open", "high", "low", "close", "volume"])
        fill = "empty" if draw < null_rate else "partial" if draw < null_rate + partial_rate else "ok"
        rows.append((int(t.timestamp()), o, h, lo, c, vol, fill, missing if fill == "partial" else None))
        last = c
        first = False
        t = (t.astimezone(UTC) + timedelta(minutes=1)).astimezone(tz)
    return tuple(rows)


class YahooReplay(SourceReplay):
    """Yahoo's side of the stocks replay: answers the chart API."""

    def rows(self, instrument: str, day: date) -> list[tuple]:
        """The day's rows in the exchange's local calendar, oldest first (see `yahoo_minutes`)."""
        return list(
            yahoo_minutes(
                self.config.seed,
                instrument,
                day,
                self.config.yahoo_null_minute_rate,
                self.config.yahoo_partial_rate,
                self.config.holiday_tuple(),
            )
        )

    def _error(self, status: int, code: str, description: str) -> Reply:
        return vendor_json(
            status, {"chart": {"result": None, "error": {"code": code, "description": description}}}
        )

    def answer(self, instrument: str, query: str) -> Reply:
        """`GET /v8/finance/chart/{instrument}?{query}`."""
        args = dict(parse_qsl(query, keep_blank_values=True))
        instruments = [instrument.upper()]
        fault = self.host.fire_faults("yahoo", "chart", instruments)
        fault_kind = fault.kind if fault else None
        if fault_kind == "too_many_requests":
            self.host.record("yahoo", "chart", instruments, 429, None, fault_kind)
            return Reply(429, fault.body.encode(), {"Content-Type": "text/plain;charset=utf-8"})
        if fault_kind == "http_error":
            self.host.record("yahoo", "chart", instruments, fault.status, None, fault_kind)
            return Reply(
                fault.status,
                b"<html><body><b>Http/1.1 Service Unavailable</b></body></html>",
                {"Content-Type": "text/html"},
            )
        if fault_kind == "not_found":
            self.host.record("yahoo", "chart", instruments, 404, None, fault_kind)
            return self._error(404, "Not Found", YAHOO_DELISTED)
        if fault_kind == "bad_request":
            self.host.record("yahoo", "chart", instruments, 400, None, fault_kind)
            return self._error(400, "Bad Request", fault.message or "Invalid input - bad request")
        reply = self._chart(instrument, args, fault)
        self.host.record("yahoo", "chart", instruments, reply.status, None, fault_kind)
        return reply

    def _chart(self, instrument: str, args: dict, fault: Fault | None) -> Reply:
        config = self.config
        interval = args.get("interval", "1d")
        if interval != "1m":
            return self._error(
                400,
                "Bad Request",
                f"Invalid input - interval={interval} is not supported by this replay. Valid intervals: [1m]",
            )
        now = int(self.host.now())
        requested_range = args.get("range")
        try:
            if "period1" in args or "period2" in args:
                period1 = int(args.get("period1") or 0)
                period2 = int(args.get("period2") or now)
                requested_range = None
            else:
                requested_range = requested_range or "1d"
                days = {"1d": 1, "5d": 5, "7d": 7}.get(requested_range)
                if days is None:
                    return self._error(
                        400,
                        "Bad Request",
                        f"Invalid input - range={requested_range} is not "
                        "supported for 1m. Valid ranges: [1d, 5d, 7d]",
                    )
                period2, period1 = now, now - days * 86400
        except ValueError:
            return self._error(400, "Bad Request", "Invalid input - period1 and period2 must be integers")
        if period1 > period2:
            return self._error(
                400,
                "Bad Request",
                f"Invalid input - start date cannot be after end date. "
                f"startDate = {period1}, endDate = {period2}",
            )
        if period2 - period1 > config.yahoo_max_window_days * 86400:
            return self._error(
                422,
                "Unprocessable Entity",
                f"1m data not available for startTime={period1} and endTime={period2}. Only "
                f"{config.yahoo_max_window_days:g} days worth of 1m granularity data are "
                "allowed to be fetched per request.",
            )
        if config.yahoo_days_back is not None and period1 < now - config.yahoo_days_back * 86400:
            return self._error(
                422,
                "Unprocessable Entity",
                f"1m data not available for startTime={period1} and endTime={period2}. The "
                f"requested range must be within the last {config.yahoo_days_back:g} days.",
            )
        period2 = min(period2, now)
        ex = yahoo_exchange(instrument)
        tz = ZoneInfo(ex.timezone)
        rows, periods = [], []
        day = datetime.fromtimestamp(period1, tz).date()
        last_day = datetime.fromtimestamp(max(period1, period2 - 1), tz).date()
        while day <= last_day:
            day_rows = self.rows(instrument, day)
            if day_rows:
                opens = datetime(day.year, day.month, day.day, *ex.open, tzinfo=tz)
                closes = datetime(day.year, day.month, day.day, *ex.close, tzinfo=tz)
                periods.append(
                    [
                        {
                            "timezone": opens.tzname(),
                            "start": int(opens.timestamp()),
                            "end": int(closes.timestamp()),
                            "gmtoffset": int(opens.utcoffset().total_seconds()),
                        }
                    ]
                )
            rows.extend(r for r in day_rows if period1 <= r[0] < period2)
            day += timedelta(days=1)
        payload = self._chart_payload(instrument, ex, tz, rows, periods, requested_range, now)
        if fault and fault.kind in ("missing_field", "non_numeric"):
            result = payload["chart"]["result"][0]
            quote = result["indicators"]["quote"][0]
            if fault.kind == "missing_field":
                if fault.field.startswith("meta."):
                    result["meta"].pop(fault.field[5:], None)
                elif fault.field == "timestamp":
                    result.pop("timestamp", None)
                else:
                    quote.pop(fault.field, None)
            elif quote.get(fault.field):
                quote[fault.field][len(quote[fault.field]) // 2] = fault.value
        reply = vendor_json(200, payload)
        if fault and fault.kind == "malformed_json":
            reply.body = reply.body[: max(1, len(reply.body) // 2)]
        return reply

    def _chart_payload(
        self,
        instrument: str,
        ex: Exchange,
        tz: ZoneInfo,
        rows: list[tuple],
        periods: list,
        requested_range: str | None,
        now: int,
    ) -> dict:
        now_local = datetime.fromtimestamp(now, tz)
        last_close = next((float32(r[4]) for r in reversed(rows) if r[4] is not None and r[6] == "ok"), None)
        meta: dict[str, Any] = {
            "currency": ex.currency,
            "symbol": instrument,
            "exchangeName": ex.code,
            "fullExchangeName": ex.full_name,
            "instrumentType": "EQUITY",
            "firstTradeDate": 567585000,
            "regularMarketTime": now,
            "hasPrePostMarketData": True,
            "gmtoffset": int(now_local.utcoffset().total_seconds()),
            "timezone": now_local.tzname(),
            "exchangeTimezoneName": ex.timezone,
            "regularMarketPrice": last_close,
            "chartPreviousClose": float32(rows[0][1]) if rows else None,
            "scale": 3,
            "priceHint": 2,
            "currentTradingPeriod": {
                name: {
                    "timezone": now_local.tzname(),
                    "start": now - 3600,
                    "end": now,
                    "gmtoffset": int(now_local.utcoffset().total_seconds()),
                }
                for name in ("pre", "regular", "post")
            },
            "tradingPeriods": periods,
            "dataGranularity": "1m",
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
        if requested_range:
            meta["range"] = requested_range
        result: dict[str, Any] = {"meta": meta}
        if rows:
            quote: dict[str, list] = {"volume": [], "close": [], "open": [], "high": [], "low": []}
            for ts, o, h, lo, c, vol, fill, missing in rows:
                values = {
                    "open": float32(o),
                    "high": float32(h),
                    "low": float32(lo),
                    "close": float32(c),
                    "volume": vol,
                }
                if fill == "empty":
                    values = dict.fromkeys(values)
                elif fill == "partial":
                    values[missing] = None
                for key, column in quote.items():
                    column.append(values[key])
            result["timestamp"] = [r[0] for r in rows]
            result["indicators"] = {"quote": [quote]}
        else:
            result["indicators"] = {"quote": [{}]}
        return {"chart": {"result": [result], "error": None}}

    # ---- control -------------------------------------------------------------------------------
