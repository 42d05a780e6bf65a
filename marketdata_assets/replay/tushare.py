"""The replay of Tushare Pro (the A-share minute and daily bars): its formats, limits and faults.

Answers `stk_mins`, `daily` and `stock_basic` as the real API does (JSON envelope, errors with HTTP
200), with its row caps, tokens, per-minute/hour/day limits and faults; the ground truth is
`ashare_minutes` / `ashare_daily`, and `replay.stocks` serves it beside Yahoo's on one port.
Endpoints, limits and faults: docs/ticks.md, "The Tushare Pro replay".
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from marketdata_assets.core.naming import a_share_venue
from marketdata_assets.replay import Reply, a_share_listing
from marketdata_assets.replay.stock_market import (
    Host,
    SourceReplay,
    is_session_day,
    r2,
    reference_price,
    seeded_random,
    vendor_json,
)
from marketdata_assets.sources.tushare.records import DAILY_FIELDS, STK_MINS_FIELDS

CHINA = ZoneInfo("Asia/Shanghai")
TUSHARE_DOC = "https://tushare.pro/document/1?doc_id=108"
TS_CODE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")


def tushare_minute_limit_message(limit: int) -> str:
    return f"抱歉，您每分钟最多访问该接口{limit}次，权限的具体详情访问：{TUSHARE_DOC}。"


def tushare_hour_limit_message(limit: int) -> str:
    return f"抱歉，您每小时最多访问该接口{limit}次，权限的具体详情访问：{TUSHARE_DOC}。"


def tushare_day_limit_message(limit: int) -> str:
    return f"抱歉，您每天最多访问该接口{limit}次，权限的具体详情访问：{TUSHARE_DOC}。"


TUSHARE_PERMISSION_MESSAGE = f"抱歉，您没有访问该接口的权限，权限的具体详情访问：{TUSHARE_DOC}。"
TUSHARE_BAD_TOKEN_MESSAGE = "您的token不对，请确认。"


def _cn_labels(auction_bar: bool) -> list[str]:
    labels = ["09:30"] if auction_bar else []
    for start, end in (((9, 31), (11, 30)), ((13, 1), (15, 0))):
        t = datetime(2000, 1, 1, *start)
        stop = datetime(2000, 1, 1, *end)
        while t <= stop:
            labels.append(t.strftime("%H:%M"))
            t += timedelta(minutes=1)
    return labels


@lru_cache(maxsize=4096)
def ashare_minutes(
    seed: int, ts_code: str, day: date, auction_bar: bool = True, holidays: tuple[str, ...] = ()
) -> tuple[tuple, ...]:
    """The day's `stk_mins` rows, OLDEST first, in the API's field order (STK_MINS_FIELDS):
    (ts_code, "YYYY-MM-DD HH:MM:SS", open, close, high, low, vol shares, amount yuan)."""
    if not is_session_day(day, holidays, _venue(ts_code)):
        return ()
    rng = seeded_random(seed, "cn", ts_code, day)
    ref = reference_price(seed, ts_code, day, 3.0, 180.0)
    auction = max(0.05, r2(ref * (1 + rng.gauss(0, 0.006))))
    auction_vol = float(100 * max(1, int(rng.lognormvariate(7.2, 0.6))))
    rows: list[tuple] = []
    last = auction
    stamp = day.isoformat()

    def bar(label: str, o: float, c: float, h: float, lo: float, vol: float) -> None:
        vwap = (o + h + lo + c) / 4
        amount = round(vol * vwap, 2) if vol else 0.0
        rows.append((ts_code, f"{stamp} {label}:00", o, c, h, lo, float(vol), amount))

    if auction_bar:
        bar("09:30", auction, auction, auction, auction, auction_vol)
    for label in _cn_labels(False):
        if label in ("14:58", "14:59"):  # the closing call auction is collecting orders: no trades
            bar(label, last, last, last, last, 0.0)
            continue
        if label == "15:00":
            close = max(0.01, r2(last * (1 + rng.gauss(0, 0.0008))))
            vol = float(100 * max(1, int(rng.lognormvariate(6.8, 0.5))))
            bar(label, close, close, close, close, vol)
            last = close
            continue
        o = last
        c = max(0.01, r2(o * (1 + rng.gauss(0, 0.0012))))
        h = r2(max(o, c) * (1 + abs(rng.gauss(0, 0.0006))))
        lo = max(0.01, r2(min(o, c) * (1 - abs(rng.gauss(0, 0.0006)))))
        vol = 100 * max(0, int(rng.lognormvariate(5.0, 0.9)))
        if rng.random() < 0.05:
            vol += rng.randint(1, 99)  # odd lots exist on the sell side
        if label == "09:31" and not auction_bar:
            vol += auction_vol
        bar(label, o, c, h, lo, float(vol))
        last = c
    return tuple(rows)


def _venue(ts_code: str) -> str | None:
    """The exchange of a code (SSE, SZSE, BSE), whose calendar says its sessions; None for a code of no
    exchange."""
    try:
        return a_share_venue(ts_code)
    except (KeyError, ValueError):
        return None


def _previous_session(day: date, holidays: tuple[str, ...], venue: str | None = None) -> date:
    d = day - timedelta(days=1)
    while not is_session_day(d, holidays, venue):
        d -= timedelta(days=1)
    return d


@lru_cache(maxsize=4096)
def ashare_daily(
    seed: int, ts_code: str, day: date, auction_bar: bool = True, holidays: tuple[str, ...] = ()
) -> tuple | None:
    """The day's `daily` row in DAILY_FIELDS order (vol in lots, amount in thousands of yuan),
    aggregated from the minute bars; None on a non-session day."""
    bars = ashare_minutes(seed, ts_code, day, auction_bar, holidays)
    if not bars:
        return None
    prev = ashare_minutes(
        seed, ts_code, _previous_session(day, holidays, _venue(ts_code)), auction_bar, holidays
    )
    o, c = bars[0][2], bars[-1][3]
    h, lo = max(b[4] for b in bars), min(b[5] for b in bars)
    vol = sum(b[6] for b in bars)
    amount = sum(b[7] for b in bars)
    pre_close = prev[-1][3]
    change = r2(c - pre_close)
    return (
        ts_code,
        day.strftime("%Y%m%d"),
        o,
        h,
        lo,
        c,
        pre_close,
        change,
        round(change / pre_close * 100, 4),
        round(vol / 100, 2),
        round(amount / 1000, 3),
    )


def _parse_cn_time(text: str, end: bool) -> datetime | None:
    text = (text or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y%m%d %H:%M:%S", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            d = datetime.strptime(text, fmt)
            return d + timedelta(days=1, seconds=-1) if end else d
        except ValueError:
            pass
    return None


class TushareReplay(SourceReplay):
    """Tushare Pro's side of the stocks replay: answers its API, counts its calls against the limits."""

    def __init__(self, host: Host):
        super().__init__(host)
        self.minute_counts: dict[tuple[str, str, int], int] = {}
        self.total_counts: dict[tuple[str, str], int] = {}

    def minutes(self, ts_code: str, day: date) -> list[tuple]:
        """The day's stk_mins rows, oldest first (STK_MINS_FIELDS order); none where the listing
        says the code does not trade that day."""
        if not self.trades_on(ts_code, day):
            return []
        return list(
            ashare_minutes(
                self.config.seed,
                ts_code.upper(),
                day,
                self.config.tushare_auction_bar,
                self.config.holiday_tuple(),
            )
        )

    def daily(self, ts_code: str, day: date) -> tuple | None:
        if not self.trades_on(ts_code, day):
            return None
        return ashare_daily(
            self.config.seed,
            ts_code.upper(),
            day,
            self.config.tushare_auction_bar,
            self.config.holiday_tuple(),
        )

    def trades_on(self, ts_code: str, day: date) -> bool:
        return a_share_listing.trades_on(self.config.seed, self.config.tushare_listed, ts_code.upper(), day)

    def listing(self) -> list[list]:
        """Every row stock_basic knows (every status), in a_share_listing.FIELDS order, by ts_code."""
        return [list(row) for row in a_share_listing.listing(self.config.seed, self.config.tushare_listed)]

    def reset(self) -> None:
        """Forget the calls counted against the limits (under the host's lock)."""
        self.minute_counts.clear()
        self.total_counts.clear()

    def _reply(self, code: int, msg: str, data: Any = None) -> Reply:
        payload = {
            "request_id": uuid.UUID(int=random.getrandbits(128)).hex,
            "code": code,
            "msg": msg,
            "data": data,
        }
        return vendor_json(200, payload)

    def answer(self, path_api: str | None, body: bytes) -> Reply:
        """A call of the API named by the path (`/dataapi/{api_name}`) or, for the legacy SDK, the body."""
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")  # noqa: TRY004 - answered like any bad body
        except ValueError:
            self.host.record("tushare", path_api or "?", [], 200, -2001)
            return self._reply(-2001, "请求参数格式错误，请使用JSON格式")
        api = path_api or str(request.get("api_name") or "")
        token = str(request.get("token") or "")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            params = {}
        instruments = [c.strip().upper() for c in str(params.get("ts_code") or "").split(",") if c.strip()]
        config = self.config
        fault = self.host.fire_faults("tushare", api, instruments)
        if (
            not token
            or (config.tushare_tokens is not None and token not in config.tushare_tokens)
            or (fault and fault.kind == "bad_token")
        ):
            self.host.record("tushare", api, instruments, 200, 40101, fault and fault.kind)
            return self._reply(40101, TUSHARE_BAD_TOKEN_MESSAGE)
        if fault and fault.kind == "http_error":
            self.host.record("tushare", api, instruments, fault.status, None, fault.kind)
            return Reply(
                fault.status,
                f"<html><body><h1>{fault.status} Server Error</h1></body></html>".encode(),
                {"Content-Type": "text/html"},
            )
        if fault and fault.kind == "tushare_permission":
            self.host.record("tushare", api, instruments, 200, 40203, fault.kind)
            return self._reply(40203, TUSHARE_PERMISSION_MESSAGE)
        if fault and fault.kind == "tushare_error":
            self.host.record("tushare", api, instruments, 200, fault.code, fault.kind)
            return self._reply(fault.code, fault.message or TUSHARE_PERMISSION_MESSAGE)
        if api not in ("stk_mins", "daily", "stock_basic"):
            self.host.record("tushare", api, instruments, 200, -2001)
            return self._reply(-2001, f"接口名称 {api!r} 不存在，请确认。")
        refusal = self._count_call(token, api)
        if refusal:
            self.host.record("tushare", api, instruments, 200, 40203, "rate_limit")
            return self._reply(40203, refusal)
        result = {"stk_mins": self._stk_mins, "daily": self._daily, "stock_basic": self._stock_basic}[api](
            params
        )
        if isinstance(result, str):
            self.host.record("tushare", api, instruments, 200, -2001)
            return self._reply(-2001, result)
        fields, items, has_more = result
        wanted = request.get("fields") or ""
        if isinstance(wanted, str):
            wanted = [f.strip() for f in wanted.split(",") if f.strip()]
        if api == "stock_basic" and not wanted:
            wanted = list(a_share_listing.DEFAULT_FIELDS)
        if wanted:
            keep = [f for f in wanted if f in fields]
            index = [fields.index(f) for f in keep]
            fields, items = keep, [[row[i] for i in index] for row in items]
        if fault and fault.kind == "missing_field" and fault.field in fields:
            i = fields.index(fault.field)
            fields = fields[:i] + fields[i + 1 :]
            items = [row[:i] + row[i + 1 :] for row in items]
        if fault and fault.kind == "non_numeric" and fault.field in fields and items:
            items[len(items) // 2][fields.index(fault.field)] = fault.value
        data = {"fields": fields, "items": items, "has_more": has_more, "count": -1}
        reply = self._reply(0, "", None if fault and fault.kind == "null_data" else data)
        if fault and fault.kind == "malformed_json":
            reply.body = reply.body[: max(1, len(reply.body) // 2)]
        self.host.record("tushare", api, instruments, 200, 0, fault and fault.kind)
        return reply

    def _count_call(self, token: str, api: str) -> str | None:
        """Count an accepted call against the limits; the refusal message if a limit is reached."""
        config = self.config
        with self.host.lock:
            total_key = (token, api)
            total = self.total_counts.get(total_key, 0)
            if config.tushare_day_limit is not None and total >= config.tushare_day_limit:
                return tushare_day_limit_message(config.tushare_day_limit)
            if config.tushare_hour_limit is not None and total >= config.tushare_hour_limit:
                return tushare_hour_limit_message(config.tushare_hour_limit)
            window = int(time.time() // config.limit_window_s)
            minute_key = (token, api, window)
            in_window = self.minute_counts.get(minute_key, 0)
            if config.tushare_minute_limit is not None and in_window >= config.tushare_minute_limit:
                return tushare_minute_limit_message(config.tushare_minute_limit)
            self.minute_counts = {k: v for k, v in self.minute_counts.items() if k[2] >= window - 1}
            self.minute_counts[minute_key] = in_window + 1
            self.total_counts[total_key] = total + 1
        return None

    def _stk_mins(self, params: dict) -> tuple[list[str], list[list], bool] | str:
        code = str(params.get("ts_code") or "").strip().upper()
        if not TS_CODE.match(code):
            return "必填参数ts_code格式错误或缺失（单个代码，如 600000.SH）"
        if str(params.get("freq") or "1min") != "1min":
            return f"freq {params.get('freq')!r} 不受本回放支持（仅 1min）"
        end = _parse_cn_time(str(params.get("end_date") or ""), end=True) or datetime.now(CHINA).replace(
            tzinfo=None
        )
        start = _parse_cn_time(str(params.get("start_date") or ""), end=False) or (end - timedelta(days=30))
        rows: list[list] = []
        day = end.date()
        while day >= start.date():
            for row in reversed(self.minutes(code, day)):
                when = datetime.strptime(row[1], "%Y-%m-%d %H:%M:%S")
                if start <= when <= end:
                    rows.append(list(row))
            if len(rows) > self.config.stk_mins_row_limit:
                break
            day -= timedelta(days=1)
        truncated = len(rows) > self.config.stk_mins_row_limit
        rows = rows[: self.config.stk_mins_row_limit]
        return list(STK_MINS_FIELDS), rows, truncated and self.config.has_more

    def _daily(self, params: dict) -> tuple[list[str], list[list], bool] | str:
        codes = [c.strip().upper() for c in str(params.get("ts_code") or "").split(",") if c.strip()]
        if not codes or not all(TS_CODE.match(c) for c in codes):
            return "必填参数ts_code格式错误或缺失（如 600000.SH 或 600000.SH,000001.SZ）"
        try:
            if params.get("trade_date"):
                start = end = datetime.strptime(str(params["trade_date"]), "%Y%m%d").date()
            else:
                end = (
                    datetime.strptime(str(params["end_date"]), "%Y%m%d").date()
                    if params.get("end_date")
                    else datetime.now(CHINA).date()
                )
                start = (
                    datetime.strptime(str(params["start_date"]), "%Y%m%d").date()
                    if params.get("start_date")
                    else end - timedelta(days=365)
                )
        except ValueError:
            return "日期参数格式错误，请使用 YYYYMMDD"
        rows: list[list] = []
        day = end
        while day >= start and len(rows) <= self.config.daily_row_limit:
            for code in codes:
                row = self.daily(code, day)
                if row:
                    rows.append(list(row))
            day -= timedelta(days=1)
        truncated = len(rows) > self.config.daily_row_limit
        return list(DAILY_FIELDS), rows[: self.config.daily_row_limit], truncated and self.config.has_more

    def _stock_basic(self, params: dict) -> tuple[list[str], list[list], bool] | str:
        status = str(params.get("list_status") or "L").strip().upper()
        if status not in ("L", "D", "P", "G"):
            return "list_status 参数错误，可选值 L D P G"
        exchange = str(params.get("exchange") or "").strip().upper()
        if exchange not in ("", "SSE", "SZSE", "BSE"):
            return "exchange 参数错误，可选值 SSE SZSE BSE"
        codes = {c.strip().upper() for c in str(params.get("ts_code") or "").split(",") if c.strip()}
        market = str(params.get("market") or "").strip()
        at = a_share_listing.FIELDS.index
        rows = [
            row
            for row in self.listing()
            if row[at("list_status")] == status
            and (not exchange or row[at("exchange")] == exchange)
            and (not codes or row[0] in codes)
            and (not market or row[at("market")] == market)
        ]
        limit = self.config.stock_basic_row_limit
        return list(a_share_listing.FIELDS), rows[:limit], len(rows) > limit and self.config.has_more
