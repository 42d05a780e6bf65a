"""Column profiles for A-share 1-minute bar CSVs, header detection and stock-code normalization.

A profile says how one source's CSV maps to the normalized bar columns and in which units it counts;
built-in profiles cover the layouts people and vendors store, :func:`load_profiles` adds more from
configuration. The profile JSON schema, time formats, units and code spellings: docs/minute-bars.md,
"Column profiles".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from marketdata_assets.core.naming import EXCHANGE_ALIASES, EXCHANGE_BY_PREFIX, exchange_by_prefix

NUMERIC_COLUMNS = ("open", "high", "low", "close", "volume", "amount")
TARGETS = frozenset({"time", "date", "clock", "code", "name", *NUMERIC_COLUMNS})
DEFAULT_ENCODINGS = ("utf-8-sig", "gbk", "gb18030")
VOLUME_UNITS = {"shares": 1.0, "lots": 100.0}
AMOUNT_UNITS = {"yuan": 1.0, "thousands": 1000.0, "ten_thousands": 10000.0}
CODE_FORMATS = ("auto", "suffix", "prefix", "joinquant", "bare")
SEPARATORS = (",", "\t", ";", "|")
# Bump when the reader's built-in rules change what a profile accepts ("auto" time layouts, code
# forms, whole-file checks): files quarantined under another profiles_fingerprint are retried.
PARSER_VERSION = 1
_PROFILE_KEYS = {
    "name",
    "columns",
    "required",
    "encodings",
    "time_formats",
    "volume_unit",
    "volume_unit_fallback",
    "amount_unit",
    "code_format",
    "separator",
    "description",
}


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvProfile:
    """How one source's minute-bar CSV maps to the normalized columns (see the module docstring)."""

    name: str
    columns: Mapping[str, str]  # normalized (casefolded) source header -> target
    required: tuple[str, ...] = ()
    encodings: tuple[str, ...] = DEFAULT_ENCODINGS
    time_formats: tuple[str, ...] = ("auto",)
    volume_unit: str = "shares"
    volume_unit_fallback: str = "shares"
    amount_unit: str = "yuan"
    code_format: str = "auto"
    separator: str | None = None
    description: str = field(default="", compare=False)

    def sources_for(self, target: str) -> list[str]:
        return [source for source, mapped in self.columns.items() if mapped == target]

    def match(self, headers: Sequence[str]) -> HeaderMatch | None:
        """The column positions of each target in `headers`, or None when a required one is missing."""
        positions = {normalize_header(h): i for i, h in reversed(list(enumerate(headers)))}
        found: dict[str, int] = {}
        for source, target in self.columns.items():
            if target not in found and source in positions:
                found[target] = positions[source]
        if any(target not in found for target in self.required):
            return None
        if "time" in found:
            found.pop("date", None)
            found.pop("clock", None)
        elif not ("date" in found and "clock" in found):
            return None
        return HeaderMatch(self, found)

    def missing(self, headers: Sequence[str]) -> list[str]:
        """Required targets (with the headers accepted for them) absent from `headers`: for error messages."""
        present = {normalize_header(h) for h in headers}
        out = []
        for target in self.required:
            sources = self.sources_for(target)
            if not any(s in present for s in sources):
                out.append(f"{target} ({'/'.join(sources)})")
        return out


@dataclass(frozen=True)
class HeaderMatch:
    profile: CsvProfile
    positions: Mapping[str, int]  # target -> 0-based column index in the file

    @property
    def score(self) -> int:
        return len(self.positions)


def normalize_header(header: str) -> str:
    return header.replace("\ufeff", "").strip().strip('"').strip("'").strip().casefold()


def profile_from_dict(spec: Mapping) -> CsvProfile:
    """Validate one profile dict (schema in the module docstring)."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"a CSV profile must be a dict, got {type(spec).__name__}")
    name = spec.get("name")
    where = f"CSV profile {name!r}"
    if not isinstance(name, str) or not name:
        raise ValueError(f"CSV profile without a 'name': {dict(spec)!r}")
    unknown = set(spec) - _PROFILE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_PROFILE_KEYS)})")
    columns = spec.get("columns")
    if not isinstance(columns, Mapping) or not columns:
        raise ValueError(f"{where}: 'columns' must be a non-empty dict of source header -> target")
    normalized: dict[str, str] = {}
    for source, target in columns.items():
        if not isinstance(source, str) or not normalize_header(source):
            raise ValueError(f"{where}: bad source header {source!r}")
        if target not in TARGETS:
            raise ValueError(
                f"{where}: column {source!r} maps to unknown target {target!r} (targets: {sorted(TARGETS)})"
            )
        normalized[normalize_header(source)] = target
    mapped = set(normalized.values())
    if "time" not in mapped and not {"date", "clock"} <= mapped:
        raise ValueError(f"{where}: no 'time' column (or 'date' + 'clock' columns) in 'columns'")
    if "required" in spec:
        required = tuple(spec["required"])
        bad = [t for t in required if t not in mapped]
        if bad:
            raise ValueError(f"{where}: required targets {bad} are not mapped by 'columns'")
    else:
        required = tuple(t for t in ("open", "high", "low", "close", "volume") if t in mapped)
        if "time" not in mapped:
            required = ("date", "clock", *required)
    encodings = tuple(spec.get("encodings", DEFAULT_ENCODINGS))
    for encoding in encodings:
        try:
            "".encode(encoding)
        except LookupError:
            raise ValueError(f"{where}: unknown encoding {encoding!r}") from None
    time_formats = spec.get("time_formats", ("auto",))
    if isinstance(time_formats, str):
        time_formats = (time_formats,)
    time_formats = tuple(time_formats)
    if not time_formats or not all(isinstance(f, str) and f for f in time_formats):
        raise ValueError(f"{where}: 'time_formats' must be a list of strptime formats or 'auto'")
    volume_unit = spec.get("volume_unit", "shares")
    if volume_unit not in (*VOLUME_UNITS, "auto"):
        raise ValueError(f"{where}: volume_unit must be shares, lots or auto, got {volume_unit!r}")
    fallback = spec.get("volume_unit_fallback", "shares")
    if fallback not in VOLUME_UNITS:
        raise ValueError(f"{where}: volume_unit_fallback must be shares or lots, got {fallback!r}")
    amount_unit = spec.get("amount_unit", "yuan")
    if amount_unit not in AMOUNT_UNITS:
        raise ValueError(f"{where}: amount_unit must be one of {sorted(AMOUNT_UNITS)}, got {amount_unit!r}")
    code_format = spec.get("code_format", "auto")
    if code_format not in CODE_FORMATS:
        raise ValueError(f"{where}: code_format must be one of {CODE_FORMATS}, got {code_format!r}")
    separator = spec.get("separator")
    if separator is not None and (
        not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"'
    ):
        raise ValueError(f"{where}: separator must be one character, got {separator!r}")
    return CsvProfile(
        name=name,
        columns=normalized,
        required=required,
        encodings=encodings,
        time_formats=time_formats,
        volume_unit=volume_unit,
        volume_unit_fallback=fallback,
        amount_unit=amount_unit,
        code_format=code_format,
        separator=separator,
        description=str(spec.get("description", "")),
    )


_OHLC_EN = {"open": "open", "high": "high", "low": "low", "close": "close"}
_OHLC_CN = {
    "开盘价": "open",
    "开盘": "open",
    "最高价": "high",
    "最高": "high",
    "最低价": "low",
    "最低": "low",
    "收盘价": "close",
    "收盘": "close",
}

BUILTIN_PROFILE_SPECS: tuple[dict, ...] = (
    {
        "name": "symbol_dt",
        "description": "symbol,dt,open,close,high,low,vol (close before high; no amount)",
        "columns": {"symbol": "code", "dt": "time", **_OHLC_EN, "vol": "volume"},
        "volume_unit": "auto",
        "volume_unit_fallback": "shares",
    },
    {
        "name": "day_ohlcva",
        "description": "day,open,high,low,close,volume,amount (sina/akshare style; code from the file name)",
        "columns": {
            "day": "time",
            **_OHLC_EN,
            "volume": "volume",
            "amount": "amount",
            "code": "code",
            "symbol": "code",
        },
        "volume_unit": "auto",
        "volume_unit_fallback": "shares",
    },
    {
        "name": "cn_minute",
        "description": (
            "时间,代码,名称,开盘价,收盘价,最高价,最低价,成交量,成交额,涨幅,振幅 (UTF-8 BOM or GBK)"
        ),
        "columns": {
            "时间": "time",
            "日期时间": "time",
            "交易时间": "time",
            "代码": "code",
            "股票代码": "code",
            "证券代码": "code",
            "名称": "name",
            "股票名称": "name",
            "证券名称": "name",
            **_OHLC_CN,
            "成交量": "volume",
            "成交量(手)": "volume",
            "成交量（手）": "volume",
            "成交量(股)": "volume",
            "成交量（股）": "volume",
            "成交额": "amount",
            "成交金额": "amount",
            "成交额(元)": "amount",
            "成交额（元）": "amount",
        },
        "volume_unit": "auto",
        "volume_unit_fallback": "lots",
    },
    {
        "name": "cn_date_clock",
        "description": (
            "日期,时间,开盘,最高,最低,收盘,成交量,成交额 (date and time-of-day columns, TDX style)"
        ),
        "columns": {
            "日期": "date",
            "时间": "clock",
            "代码": "code",
            "名称": "name",
            **_OHLC_CN,
            "成交量": "volume",
            "成交额": "amount",
            "成交金额": "amount",
        },
        "volume_unit": "auto",
        "volume_unit_fallback": "lots",
    },
    {
        "name": "tushare_stk_mins",
        "description": "ts_code,trade_time,open,close,high,low,vol,amount (Tushare stk_mins: shares, yuan)",
        "columns": {"ts_code": "code", "trade_time": "time", **_OHLC_EN, "vol": "volume", "amount": "amount"},
        "volume_unit": "shares",
        "amount_unit": "yuan",
    },
    {
        "name": "generic",
        "description": (
            "English headers: time/datetime/date, code/symbol, open, high, low, close, volume/vol, "
            "amount/money/turnover (JoinQuant, baostock, pandas exports)"
        ),
        "columns": {
            "time": "time",
            "datetime": "time",
            "date": "time",
            "timestamp": "time",
            "trade_time": "time",
            "bob": "time",
            "eob": "time",
            "code": "code",
            "symbol": "code",
            "ts_code": "code",
            "ticker": "code",
            "sec_code": "code",
            "name": "name",
            **_OHLC_EN,
            "volume": "volume",
            "vol": "volume",
            "money": "amount",
            "amount": "amount",
            "turnover": "amount",
            "value": "amount",
        },
        "volume_unit": "auto",
        "volume_unit_fallback": "shares",
    },
    {
        "name": "generic_date_clock",
        "description": "English date + time-of-day columns: date,time,open,high,low,close,volume[,amount]",
        "columns": {
            "date": "date",
            "trade_date": "date",
            "time": "clock",
            "code": "code",
            "symbol": "code",
            "ts_code": "code",
            "name": "name",
            **_OHLC_EN,
            "volume": "volume",
            "vol": "volume",
            "amount": "amount",
            "money": "amount",
        },
        "volume_unit": "auto",
        "volume_unit_fallback": "shares",
    },
)

BUILTIN_PROFILES: tuple[CsvProfile, ...] = tuple(profile_from_dict(s) for s in BUILTIN_PROFILE_SPECS)


def load_profiles(
    extra: None | Mapping | Sequence[Mapping] | str | Path = None, *, include_builtin: bool = True
) -> list[CsvProfile]:
    """User profiles (a dict, a list of dicts, or the path of a JSON file holding either, or
    ``{"profiles": [...]}``) followed by the built-in ones. User profiles come first, so they win
    ties; a user profile may reuse a built-in name to replace it."""
    specs: list = []
    if isinstance(extra, (str, Path)):
        path = Path(extra)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read CSV profiles from {path}: {error}") from None
        extra = (
            loaded.get("profiles", loaded) if isinstance(loaded, dict) and "columns" not in loaded else loaded
        )
    if extra is None:
        specs = []
    elif isinstance(extra, Mapping):
        specs = [extra]
    else:
        specs = list(extra)
    user = [p if isinstance(p, CsvProfile) else profile_from_dict(p) for p in specs]
    names = [p.name for p in user]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate CSV profile names: {duplicates}")
    builtin = [p for p in BUILTIN_PROFILES if p.name not in names] if include_builtin else []
    return [*user, *builtin]


def profile_definition(profile: CsvProfile) -> dict:
    """The canonical, JSON-ready definition of a profile: everything that changes how a file is read
    (not the description). Column order is kept: the first alias present in a file wins."""
    return {
        "name": profile.name,
        "columns": [[source, target] for source, target in profile.columns.items()],
        "required": list(profile.required),
        "encodings": list(profile.encodings),
        "time_formats": list(profile.time_formats),
        "volume_unit": profile.volume_unit,
        "volume_unit_fallback": profile.volume_unit_fallback,
        "amount_unit": profile.amount_unit,
        "code_format": profile.code_format,
        "separator": profile.separator,
    }


def profiles_fingerprint(profiles: Iterable[CsvProfile] | None = None) -> str:
    """sha256 (hex) of the profile set a file is read with, in order (None: the built-in profiles, as
    the reader uses them), and of PARSER_VERSION. The loader records it with a quarantined file and
    re-admits files quarantined under another fingerprint: fixing or adding a profile retries them."""
    chosen = BUILTIN_PROFILES if profiles is None else profiles
    payload = {"parser_version": PARSER_VERSION, "profiles": [profile_definition(p) for p in chosen]}
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def detect_profile(
    headers: Sequence[str], profiles: Iterable[CsvProfile] | None = None
) -> HeaderMatch | None:
    """The profile explaining most header columns (ties: earlier profile), or None."""
    best: HeaderMatch | None = None
    for profile in BUILTIN_PROFILES if profiles is None else profiles:
        found = profile.match(headers)
        if found is not None and (best is None or found.score > best.score):
            best = found
    return best


def detect_separator(header_line: str, preferred: str | None = None) -> str:
    if preferred:
        return preferred
    counts = {sep: header_line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda s: counts[s])
    return best if counts[best] else ","


# --------------------------------------------------------------------------------------------
# Stock codes
# --------------------------------------------------------------------------------------------

_SUFFIX = r"(?P<d1>\d{6})\.(?P<x1>SH|SZ|BJ|SS)"
_JOINQUANT = r"(?P<d4>\d{6})\.(?P<x4>XSHG|XSHE)"
_PREFIX = r"(?P<x2>SHSE|SZSE|BJSE|SH|SZ|BJ)[.]?(?P<d2>\d{6})"
_BARE = r"(?P<d3>\d{1,6})"
_CODE_PATTERNS = {
    "auto": rf"^(?:{_SUFFIX}|{_JOINQUANT}|{_PREFIX}|{_BARE})$",
    "suffix": rf"^(?:{_SUFFIX})$",
    "joinquant": rf"^(?:{_JOINQUANT})$",
    "prefix": rf"^(?:{_PREFIX})$",
    "bare": rf"^(?:{_BARE})$",
}
_CODE_RE = {k: re.compile(v) for k, v in _CODE_PATTERNS.items()}


def normalize_code(value: object, code_format: str = "auto") -> str:
    """'sh600000' -> '600000.SH'. Raises ValueError with the reason when the code can't be read."""
    text = str(value).strip().strip('"').strip().upper() if value is not None else ""
    if not text:
        raise ValueError("missing code")
    match = _CODE_RE[code_format].match(text)
    if not match:
        expected = "" if code_format == "auto" else f" (expected {code_format} format)"
        raise ValueError(f"bad code {value!r}{expected}")
    groups = match.groupdict()
    digits = groups.get("d1") or groups.get("d2") or groups.get("d4")
    exchange_alias = groups.get("x1") or groups.get("x2") or groups.get("x4")
    if digits is None:
        digits = groups["d3"].zfill(6)
        exchange = exchange_by_prefix(digits)
        if exchange is None:
            raise ValueError(
                f"bad code {value!r}: cannot infer the exchange of {digits} (add .SH, .SZ or .BJ)"
            )
    else:
        exchange = EXCHANGE_ALIASES[exchange_alias]
    return f"{digits}.{exchange}"


def code_expr(expr: pl.Expr, code_format: str = "auto") -> pl.Expr:
    """Vectorized :func:`normalize_code` as one expression (null when a code can't be read).
    Convenient in a select; :func:`normalize_codes` is much faster on big columns."""
    text = expr.str.strip_chars(' \t"').str.to_uppercase()
    groups = text.str.extract_groups(_CODE_PATTERNS[code_format])
    names = {
        "auto": ["d1", "x1", "d4", "x4", "x2", "d2", "d3"],
        "suffix": ["d1", "x1"],
        "joinquant": ["d4", "x4"],
        "prefix": ["x2", "d2"],
        "bare": ["d3"],
    }[code_format]

    def group(name: str) -> pl.Expr:
        return groups.struct.field(name) if name in names else pl.lit(None, dtype=pl.String)

    explicit_digits = pl.coalesce(group("d1"), group("d2"), group("d4"))
    alias = pl.coalesce(group("x1"), group("x2"), group("x4"))
    explicit = alias.replace_strict(EXCHANGE_ALIASES, default=None, return_dtype=pl.String)
    bare = group("d3").str.zfill(6)
    return (
        pl.when(explicit_digits.is_not_null())
        .then(pl.concat_str([explicit_digits, pl.lit("."), explicit]))
        .otherwise(pl.concat_str([bare, pl.lit("."), _exchange_by_prefix_expr(bare)]))
    )


def _exchange_by_prefix_expr(digits: pl.Expr) -> pl.Expr:
    """:func:`exchange_by_prefix` as an expression: the same table, longest prefix first."""
    result = pl.lit(None, dtype=pl.String)
    for prefix, exchange in sorted(EXCHANGE_BY_PREFIX.items(), key=lambda item: len(item[0])):
        result = pl.when(digits.str.starts_with(prefix)).then(pl.lit(exchange)).otherwise(result)
    return result


def normalize_codes(values: pl.Series, code_format: str = "auto") -> pl.Series:
    """:func:`normalize_code` over a column, null where a code can't be read. Files repeat few codes,
    so each distinct value is normalized once and mapped back."""
    uniques = values.drop_nulls().unique()
    if len(uniques) <= 50_000:
        mapped = []
        for value in uniques.to_list():
            try:
                mapped.append(normalize_code(value, code_format))
            except ValueError:
                mapped.append(None)
        new = pl.Series(mapped, dtype=pl.String)
    else:
        new = pl.DataFrame({"v": uniques}).select(code_expr(pl.col("v"), code_format)).to_series()
    return values.replace_strict(uniques, new, default=None, return_dtype=pl.String).rename(values.name)


_FILE_EXPLICIT = [
    re.compile(r"(?<![A-Za-z0-9])(\d{6})[._-](SH|SZ|BJ|SS|XSHG|XSHE)(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"(?<![A-Za-z])(SHSE|SZSE|BJSE|SH|SZ|BJ)[._-]?(\d{6})(?!\d)", re.IGNORECASE),
]
_FILE_BARE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
_YEAR_MONTH = re.compile(r"^(19|20)\d\d(0[1-9]|1[0-2])$")


def code_from_filename(path: str | Path) -> str | None:
    """The stock code in a file name ('sh600000.csv', '600000.SH_2024.csv', 'SZ000001-1min.csv',
    '000001.XSHE.csv', '600000_202401.csv'), or None when there is none or it is ambiguous."""
    name = Path(path).name
    for suffix in (".gz", ".csv", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    for pattern in _FILE_EXPLICIT:
        match = pattern.search(name)
        if match:
            text = match.group(0)
            text = (
                f"{match.group(1)}.{match.group(2)}"
                if text[0].isdigit()
                else text.replace("-", "").replace("_", "")
            )
            try:
                return normalize_code(text)
            except ValueError:
                continue
    runs = _FILE_BARE.findall(name)
    if len(runs) > 1:
        runs = [r for r in runs if not _YEAR_MONTH.match(r)]
    if len(set(runs)) == 1:
        try:
            return normalize_code(runs[0])
        except ValueError:
            return None
    return None
