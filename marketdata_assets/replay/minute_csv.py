"""Realistic A-share 1-minute CSV files (replay data for `make run`, tests and benchmarks): generated, never
committed.

`make_bars` builds ground truth in the normalized schema (volume in shares, amount in yuan) with the
real dirty patterns of vendors' files; `render` writes it in one of the stored layouts with a
chosen code style, time style, volume unit, encoding, BOM and line ends; tests parse the file back
and compare with the ground truth.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from marketdata_assets.sources.minute_csv.reader import MINUTE_SCHEMA

NAMES = {
    "600000.SH": "浦发银行",
    "000001.SZ": "平安银行",
    "688981.SH": "中芯国际",
    "300750.SZ": "宁德时代",
    "830799.BJ": "艾融软件",
    "000001.SH": "上证指数",
    "601398.SH": "工商银行",
}


def trading_minutes(day: date, first_bar: time = time(9, 31)) -> list[datetime]:
    """09:31..11:30 and 13:01..15:00 (240 bars); first_bar=09:30 adds the auction bar (241, Tushare)."""
    out = []
    start = datetime.combine(day, first_bar)
    t = start
    while t <= datetime.combine(day, time(11, 30)):
        out.append(t)
        t += timedelta(minutes=1)
    t = datetime.combine(day, time(13, 1))
    while t <= datetime.combine(day, time(15, 0)):
        out.append(t)
        t += timedelta(minutes=1)
    return out


def trading_days(start: date, count: int, venue: str = "SSE") -> list[date]:
    """The first `count` trading days from `start` on, by the exchange calendar (core/calendars:
    weekends AND holidays skipped, as real files have no bars on 2026-10-01; past the last year the
    installed exchange-calendars knows, its provisional weekdays minus MARKETDATA_HOLIDAYS_FILE)."""
    from marketdata_assets.core import calendars

    days: list[date] = []
    while len(days) < count:
        end = start + timedelta(days=2 * (count - len(days)) + 30)
        days += calendars.trading_days(venue, start, end)[: count - len(days)]
        start = end + timedelta(days=1)
    return days


def f32(value: float) -> float:
    """float32 cent noise as vendors store it: 10.23 -> 10.229999542236328."""
    return float(np.float32(value))


def make_bars(
    code: str = "600000.SH",
    days: Sequence[date] = (date(2026, 1, 5),),
    *,
    seed: int = 0,
    base_price: float = 10.0,
    dirty: bool = False,
    negative: bool = False,
    float32_noise: bool = False,
    with_name: bool = True,
) -> pl.DataFrame:
    """Ground-truth minute bars in MINUTE_SCHEMA (volume shares, multiples of 100 outside STAR/BJ).

    dirty: open = 0 on a bar, a zero-volume flat placeholder at 14:59, 14:58 missing, the 09:31 bar
    with the auction folded in, a null close and a null amount. negative: qfq prices below zero."""
    rng = random.Random(seed)
    star_or_bj = code.startswith("688") or code.endswith(".BJ")
    rows = []
    price = -abs(base_price) if negative else base_price
    for day in days:
        for i, t in enumerate(trading_minutes(day)):
            if dirty and t.time() == time(14, 58):
                continue
            o = round(price, 2)
            c = round(o + rng.uniform(-0.05, 0.05), 2)
            h = round(max(o, c) + rng.uniform(0, 0.03), 2)
            low = round(min(o, c) - rng.uniform(0, 0.03), 2)
            lots = rng.randint(1, 5000) * (40 if i == 0 else 1)
            volume = float(lots * 100 + (rng.randint(0, 99) if star_or_bj else 0))
            amount = round(volume * abs((o + c) / 2) * rng.uniform(0.998, 1.002), 2)
            if dirty and t.time() == time(14, 59):
                o = h = low = c = round(price, 2)
                volume, amount = 0.0, 0.0
            if float32_noise:
                o, h, low, c = f32(o), f32(h), f32(low), f32(c)
            rows.append((t, code, NAMES.get(code) if with_name else None, o, h, low, c, volume, amount))
            price = c
        if dirty:
            rows[-200] = (*rows[-200][:3], 0.0, *rows[-200][4:])  # open = 0 (older rows)
            rows[-150] = (*rows[-150][:6], None, *rows[-150][7:])  # null close
            rows[-100] = (*rows[-100][:8], None)  # null amount
    return pl.DataFrame(rows, schema=MINUTE_SCHEMA, orient="row")


# ---- formatting -------------------------------------------------------------------------------

_EXCHANGE_JQ = {"SH": "XSHG", "SZ": "XSHE", "BJ": "BJ"}
_CODE_STYLES: dict[str, Callable[[str, str, str], str]] = {  # (code, digits, exchange) -> the code as written
    "suffix": lambda code, digits, exchange: code,
    "suffix_lower": lambda code, digits, exchange: code.lower(),
    "prefix_lower": lambda code, digits, exchange: exchange.lower() + digits,
    "prefix_upper": lambda code, digits, exchange: exchange + digits,
    "baostock": lambda code, digits, exchange: f"{exchange.lower()}.{digits}",
    "bare": lambda code, digits, exchange: digits,
    "joinquant": lambda code, digits, exchange: f"{digits}.{_EXCHANGE_JQ[exchange]}",
    "yahoo": lambda code, digits, exchange: f"{digits}.{'SS' if exchange == 'SH' else exchange}",
}
_TIME_STYLES: dict[str, Callable[[datetime], str]] = {  # one style formatted a row, not every one
    "iso_seconds": lambda t: t.strftime("%Y-%m-%d %H:%M:%S"),
    "iso_minute": lambda t: t.strftime("%Y-%m-%d %H:%M"),
    "slash_minute": lambda t: t.strftime("%Y/%m/%d %H:%M"),
    "excel": lambda t: f"{t.year}/{t.month}/{t.day} {t.hour}:{t.minute:02d}",
    "compact": lambda t: t.strftime("%Y%m%d %H%M%S"),
    "iso_t": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S"),
}


def format_code(code: str, style: str) -> str:
    digits, exchange = code.split(".")
    return _CODE_STYLES[style](code, digits, exchange)


def format_time(t: datetime, style: str) -> str:
    return _TIME_STYLES[style](t)


def format_number(value: float | None) -> str:
    if value is None:
        return ""
    return repr(float(value))


# layout -> (header, value getters in order). Values come from a normalized row dict plus the
# rendering options (code/time style, volume divisor).
Getter = Callable[[dict, dict], str]


def _t(row, o):
    return format_time(row["time"], o["time_style"])


def _c(row, o):
    return format_code(row["code"], o["code_style"])


def _n(col):
    def get(row, o):
        value = row[col]
        if col == "volume" and value is not None:
            value = value / o["volume_divisor"]
            if value == int(value):
                return str(int(value))
        return format_number(value)

    return get


def _name(row, o):
    return row["name"] or ""


LAYOUTS: dict[str, tuple[list[str], list[Getter]]] = {
    "symbol_dt": (
        ["symbol", "dt", "open", "close", "high", "low", "vol"],
        [_c, _t, _n("open"), _n("close"), _n("high"), _n("low"), _n("volume")],
    ),
    "day_ohlcva": (
        ["day", "open", "high", "low", "close", "volume", "amount"],
        [_t, _n("open"), _n("high"), _n("low"), _n("close"), _n("volume"), _n("amount")],
    ),
    "cn_minute": (
        ["时间", "代码", "名称", "开盘价", "收盘价", "最高价", "最低价", "成交量", "成交额", "涨幅", "振幅"],
        [
            _t,
            _c,
            _name,
            _n("open"),
            _n("close"),
            _n("high"),
            _n("low"),
            _n("volume"),
            _n("amount"),
            lambda r, o: "0.12%",
            lambda r, o: "0.50%",
        ],
    ),
    "tushare": (
        ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"],
        [_c, _t, _n("open"), _n("close"), _n("high"), _n("low"), _n("volume"), _n("amount")],
    ),
    "generic": (
        ["datetime", "code", "open", "high", "low", "close", "volume", "money"],
        [_t, _c, _n("open"), _n("high"), _n("low"), _n("close"), _n("volume"), _n("amount")],
    ),
}


def render(
    df: pl.DataFrame,
    layout: str,
    *,
    code_style: str = "suffix",
    time_style: str = "iso_seconds",
    volume_unit: str = "shares",
    line_end: str = "\n",
    header_case: Callable[[str], str] = str,
    column_order: Sequence[int] | None = None,
    trailing_newline: bool = True,
) -> str:
    header, getters = LAYOUTS[layout]
    options = {
        "code_style": code_style,
        "time_style": time_style,
        "volume_divisor": 100.0 if volume_unit == "lots" else 1.0,
    }
    order = list(column_order) if column_order is not None else list(range(len(header)))
    lines = [",".join(header_case(header[i]) for i in order)]
    for row in df.iter_rows(named=True):
        values = [getter(row, options) for getter in getters]
        lines.append(",".join(values[i] for i in order))
    return line_end.join(lines) + (line_end if trailing_newline else "")


def write_text(path: Path, text: str, *, encoding: str = "utf-8", bom: bool = False) -> Path:
    data = text.encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def expected(df: pl.DataFrame, layout: str) -> pl.DataFrame:
    """What parsing a rendered file must give: columns the layout lacks become null."""
    out = df
    if layout in ("symbol_dt",):
        out = out.with_columns(amount=pl.lit(None, dtype=pl.Float64))
    if layout not in ("cn_minute",):
        out = out.with_columns(name=pl.lit(None, dtype=pl.String))
    return out


def big_file(
    path: Path,
    codes: Sequence[str] = ("600000.SH", "000001.SZ"),
    days: int = 20,
    seed: int = 7,
    layout: str = "tushare",
    **render_options,
) -> tuple[Path, pl.DataFrame]:
    """A multi-code, multi-day file (several batches at a small block size) and its ground truth."""
    frames = [
        make_bars(code, trading_days(date(2026, 1, 5), days), seed=seed + i, base_price=10 + 5 * i)
        for i, code in enumerate(codes)
    ]
    truth = pl.concat(frames)
    write_text(path, render(truth, layout, **render_options))
    return path, expected(truth, layout)
