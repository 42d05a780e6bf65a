"""The sources config file (seed 003's `data_providers.yaml`): an entry per declared source.

    config = load_sources_config()               # the file TICKS_PROVIDERS_CONFIG names, else the shipped one
    config.sources["tushare"].requests_per_minute   # 200.0
    config.a_shares                              # ("600000.SH", ...) normalized codes
    config.crypto_instruments                    # (InstrumentKey("BINANCE", "BTCUSDT"), ...)

File layout (marketdata_assets/sources/data_providers.yaml is the reference)::

    sources:                         # `providers:` (the seed's name) is read too; not both
      <an entry per declared source: sources/registry.py, the declarations' `config`>:
        base_url: https://...        # the vendor's public host
        base_url_env: NAME           # this variable, when set and not empty, replaces base_url
        requests_per_minute: 200     # token bucket shared by every request of the run (> 0)
        max_concurrency: 4           # requests in flight at once (>= 1)
        workers: 10                  # instruments / instrument-days processed at once (>= 1)
        timeout_s: 30                # per request (> 0)
        max_retries: 5               # 429/418, 5xx and timeouts (>= 0)
        backoff_base_s: 0.5          # first backoff step, doubled per retry, full jitter (>= 0)
        # and the source's own keys, declared with it (`Source.options`): tushare token_env (the
        # variable holding the token), limit_window_s; yahoo max_days_back (null = no horizon);
        # binance, binance_um weight_per_minute, weight_headroom (0 < h <= 1)
    universes:
      a_shares: {history_start: YYYY-MM-DD, symbols: [...], symbols_file: path}   # codes in any spelling
      yahoo:    {history_start: YYYY-MM-DD, symbols: [...], symbols_file: path}   # Yahoo's names
      crypto:   {history_start: YYYY-MM-DD, book_depth: 20, instruments: {VENUE: [INSTRUMENT, ...]},
                 option_chains: {DERIBIT: [BTC, ...]},      # chains DERIBIT:BTC-OPTIONS, ...
                 funding_caps: {VENUE: 0.003, ...}}         # |funding rate| cap as an 8-hour rate (a check)
    catch_up_days: 7
    binance_archives:                # data.binance.vision archives (sources.binance.archives); absent:
                                     # spot trades of BTCUSDT from 2025-01-01
      base_url: https://data.binance.vision
      base_url_env: BINANCE_ARCHIVE_BASE_URL
      start_date: YYYY-MM-DD         # the first day partition
      markets: [spot, um]            # spot -> venue BINANCE, um (USD-M futures) -> BINANCE_UM
      families: [trades, aggTrades, klines]    # + liquidationSnapshot (USD-M, 2023-06..2024-03)
      intervals: [1m, 1h]            # klines: the daily files' intervals (1s, 1m, 3m ... 12h, 1d)
      instruments: [BTCUSDT, ...]    # each in every market
      workers: 2                     # archives downloaded at once (>= 1)
      timeout_s: 60                  # per read of a download (> 0)
      max_retries: 5                 # 429, 5xx and broken transfers (>= 0)

Every problem is reported with the file and the key (``data_providers.yaml: sources.okx.workers:
expected an integer >= 1, got 'four'``); unknown keys are errors too (a typo would otherwise be a
silently ignored limit). Secrets never live in the file: only the NAME of the token's variable.
A-share codes are normalized (``sh600000`` -> ``600000.SH``), crypto instruments checked against
their venue (core.naming); duplicates are dropped, first occurrence kept. The keys ``symbols`` and
``symbols_file`` are the seed's input names (``--symbols``); what they list are instruments.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from marketdata_assets.core.identifiers import instrument_key
from marketdata_assets.core.naming import InstrumentKey, a_share_code, normalize_instrument
from marketdata_assets.sources.binance.archive_settings import (
    ARCHIVE_FAMILIES,
    ARCHIVE_INTERVALS,
    ARCHIVE_MARKETS,
    ArchiveSettings,
)
from marketdata_assets.sources.interface import Option
from marketdata_assets.sources.registry import SOURCES

CONFIG_ENV = "TICKS_PROVIDERS_CONFIG"  # seed 003's name, kept (as are the file's and the CLI's --providers-config)
DEFAULT_CONFIG = Path(__file__).resolve().parent / "data_providers.yaml"
DECLARED = {s.config: s for s in SOURCES.values() if s.config}  # entry of the sources section -> its declaration
ENTRIES = tuple(DECLARED)
CRYPTO_SOURCES = {s.name: s.config for s in DECLARED.values() if s.venue_api}  # venue -> entry
SECTION, OLD_SECTION = "sources", "providers"  # the file's top-level key of the sources: new name, seed 003's

# Sources a file written before they existed may leave out: the vendor's defaults.
OPTIONAL_SOURCES = {"binance_um": {"base_url": "https://fapi.binance.com",
                                     "base_url_env": "BINANCE_UM_BASE_URL"}}
_COMMON = {"base_url", "base_url_env", "requests_per_minute", "max_concurrency", "workers", "timeout_s",
           "max_retries", "backoff_base_s"}
_DEFAULTS = {"requests_per_minute": 600.0, "max_concurrency": 4, "workers": 4, "timeout_s": 30.0,
             "max_retries": 5, "backoff_base_s": 0.5}


class SourcesConfigError(ValueError):
    """The sources config file is missing, unreadable or invalid; names the file and the key."""


@dataclass(frozen=True)
class SourceSettings:
    name: str
    base_url: str                 # resolved: the variable base_url_env if set, else the file's base_url
    default_base_url: str         # the file's base_url
    base_url_env: str
    requests_per_minute: float
    max_concurrency: int
    workers: int
    timeout_s: float
    max_retries: int
    backoff_base_s: float
    options: Mapping[str, Any] = field(default_factory=dict)  # the source-specific keys

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class SourcesConfig:
    path: Path
    sources: Mapping[str, SourceSettings]
    a_shares: tuple[str, ...]
    a_share_history_start: date
    yahoo_instruments: tuple[str, ...]
    yahoo_history_start: date
    crypto_instruments: tuple[InstrumentKey, ...]
    crypto_history_start: date
    book_depth: int = 20
    option_chains: tuple[InstrumentKey, ...] = ()  # DERIBIT BTC-OPTIONS: every BTC option
    funding_caps: Mapping[str, float] = field(default_factory=dict)  # venue -> |rate| cap, as an 8-hour rate
    catch_up_days: int = 7
    binance_archives: ArchiveSettings | None = None  # parsed: the section, or its defaults when absent

    def crypto_partition_keys(self) -> list[str]:
        return [key.partition_key for key in self.crypto_instruments]


_DEFAULT_ARCHIVES = {"instruments": ["BTCUSDT"]}  # no section: spot trades of BTCUSDT from 2025-01-01
_ARCHIVE_KEYS = {"base_url", "base_url_env", "start_date", "markets", "families", "intervals", "instruments",
                 "workers", "timeout_s", "max_retries"}


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str, detail: str) -> SourcesConfigError:
        return SourcesConfigError(f"{self.path.name}: {where}: {detail} (file {self.path})")

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a mapping, got {type(value).__name__} {str(value)[:60]!r}")
        if allowed is not None:
            unknown = sorted(str(k) for k in value if k not in allowed)
            if unknown:
                raise self.error(where, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        return value

    def number(self, value: Any, where: str, *, minimum: float = 0.0, strict: bool = True,
               maximum: float | None = None) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
        if ok:
            ok = value > minimum if strict else value >= minimum
            ok = ok and (maximum is None or value <= maximum)
        if not ok:
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            bound += f" and <= {maximum:g}" if maximum is not None else ""
            raise self.error(where, f"expected a number {bound}, got {value!r}")
        return float(value)

    def integer(self, value: Any, where: str, *, minimum: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.error(where, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def day(self, value: Any, where: str) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise self.error(where, f"expected a date YYYY-MM-DD, got {value!r}") from None

    def instruments(self, section: dict, where: str) -> list[str]:
        """The instruments a universe lists: its keys `symbols` and `symbols_file` (seed 003's names)."""
        listed = section.get("symbols") or []
        if not isinstance(listed, list):
            raise self.error(f"{where}.symbols", f"expected a list, got {type(listed).__name__}")
        out = [str(s) for s in listed]
        if section.get("symbols_file"):
            file = Path(self.text(section["symbols_file"], f"{where}.symbols_file"))
            file = file if file.is_absolute() else self.path.parent / file
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except OSError as error:
                raise self.error(f"{where}.symbols_file", f"cannot read {file}: {error.strerror}") from None
            out += [line.split("#", 1)[0].strip() for line in lines]
        return [s for s in out if s]


def _names(reader: _Reader, raw: dict, key: str, allowed: tuple[str, ...], default: list, why: str = "") -> tuple:
    values = raw.get(key, default)
    if not isinstance(values, list) or not values:
        raise reader.error(f"binance_archives.{key}", f"expected a non-empty list, got {values!r}")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise reader.error(f"binance_archives.{key}", f"unknown {unknown}; expected some of {list(allowed)}{why}")
    return _unique(values)


def _archives(reader: _Reader, raw: Any, environ: Mapping[str, str]) -> ArchiveSettings:
    raw = reader.mapping(raw, "binance_archives", _ARCHIVE_KEYS)
    base_url = reader.text(raw.get("base_url", "https://data.binance.vision"), "binance_archives.base_url")
    if not base_url.startswith(("http://", "https://")):
        raise reader.error("binance_archives.base_url", f"expected an http(s):// URL, got {base_url!r}")
    env_name = reader.text(raw.get("base_url_env", "BINANCE_ARCHIVE_BASE_URL"), "binance_archives.base_url_env")
    markets = _names(reader, raw, "markets", tuple(ARCHIVE_MARKETS), ["spot"], " (COIN-M archives are not loaded)")
    families = _names(reader, raw, "families", ARCHIVE_FAMILIES, ["trades"])
    intervals = _names(reader, raw, "intervals", ARCHIVE_INTERVALS, ["1m"],
                       " (3d, 1w and 1mo klines are published monthly only)") if "klines" in families else ()
    instruments = raw.get("instruments")
    if not isinstance(instruments, list) or not instruments:
        raise reader.error("binance_archives.instruments",
                           f"expected a non-empty list of instruments, got {instruments!r}")
    for market in markets:
        for instrument in instruments:
            try:
                normalize_instrument(ARCHIVE_MARKETS[market], str(instrument))
            except ValueError as error:
                raise reader.error("binance_archives.instruments", str(error)) from None
    return ArchiveSettings(
        base_url=((environ.get(env_name) or "").strip() or base_url).rstrip("/"), default_base_url=base_url.rstrip("/"),
        base_url_env=env_name, start_date=reader.day(raw.get("start_date", "2025-01-01"), "binance_archives.start_date"),
        markets=markets, families=families, intervals=intervals, instruments=_unique([str(i) for i in instruments]),
        workers=reader.integer(raw.get("workers", 2), "binance_archives.workers", minimum=1),
        timeout_s=reader.number(raw.get("timeout_s", 60), "binance_archives.timeout_s"),
        max_retries=reader.integer(raw.get("max_retries", 5), "binance_archives.max_retries", minimum=0))


def _unique(items: list) -> tuple:
    return tuple(dict.fromkeys(items))


def _source(reader: _Reader, section: str, name: str, raw: Any, environ: Mapping[str, str]) -> SourceSettings:
    where = f"{section}.{name}"
    declared = DECLARED[name].options
    raw = reader.mapping(raw, where, _COMMON | set(declared))
    values = {**_DEFAULTS, **raw}
    base_url = reader.text(values.get("base_url"), f"{where}.base_url")
    if not base_url.startswith(("http://", "https://")):
        raise reader.error(f"{where}.base_url", f"expected an http(s):// URL, got {base_url!r}")
    env_name = reader.text(values.get("base_url_env", f"{name.upper()}_BASE_URL"), f"{where}.base_url_env")
    resolved = (environ.get(env_name) or "").strip() or base_url
    options = {key: _option(reader, raw.get(key, option.default), f"{where}.{key}", option)
               for key, option in declared.items()}
    return SourceSettings(
        name=name, base_url=resolved.rstrip("/"), default_base_url=base_url.rstrip("/"), base_url_env=env_name,
        requests_per_minute=reader.number(values["requests_per_minute"], f"{where}.requests_per_minute"),
        max_concurrency=reader.integer(values["max_concurrency"], f"{where}.max_concurrency", minimum=1),
        workers=reader.integer(values["workers"], f"{where}.workers", minimum=1),
        timeout_s=reader.number(values["timeout_s"], f"{where}.timeout_s"),
        max_retries=reader.integer(values["max_retries"], f"{where}.max_retries", minimum=0),
        backoff_base_s=reader.number(values["backoff_base_s"], f"{where}.backoff_base_s", strict=False),
        options=options,
    )


def _option(reader: _Reader, value: Any, where: str, option: Option) -> Any:
    """A source's own key, validated as its declaration (sources/interface.Option) says."""
    if value is None and option.nullable:
        return None
    if option.kind == "text":
        return reader.text(value, where)
    if option.kind == "integer":
        return reader.integer(value, where, minimum=int(option.minimum))
    return reader.number(value, where, minimum=option.minimum, maximum=option.maximum)


def _option_chains(reader: _Reader, raw: Any) -> tuple[InstrumentKey, ...]:
    """{DERIBIT: [BTC, ETH]} -> the chains DERIBIT:BTC-OPTIONS, DERIBIT:ETH-OPTIONS."""
    where = "universes.crypto.option_chains"
    chains = []
    for venue, currencies in reader.mapping(raw, where, {"DERIBIT"}).items():
        if not isinstance(currencies, list) or not all(isinstance(c, str) and c.isalnum()
                                                       for c in currencies):
            raise reader.error(f"{where}.{venue}",
                               f"expected a list of currencies (BTC, ETH), got {currencies!r}")
        chains += [InstrumentKey(venue, f"{c.upper()}-OPTIONS") for c in currencies]
    return _unique(chains)


def _funding_caps(reader: _Reader, raw: Any) -> dict[str, float]:
    where = "universes.crypto.funding_caps"
    caps = reader.mapping(raw, where, set(CRYPTO_SOURCES))
    return {venue: reader.number(cap, f"{where}.{venue}", maximum=1.0) for venue, cap in caps.items()}


def _sources(reader: _Reader, top: dict, environ: Mapping[str, str]) -> dict[str, SourceSettings]:
    """The `sources` section (or `providers`, its name in seed 003's file), every source's settings."""
    if SECTION in top and OLD_SECTION in top:
        raise reader.error("top level", f"both {SECTION!r} and {OLD_SECTION!r} (its former name): keep one")
    section = OLD_SECTION if OLD_SECTION in top else SECTION
    raw = {**OPTIONAL_SOURCES, **reader.mapping(top.get(section), section, set(ENTRIES))}
    missing = [name for name in ENTRIES if name not in raw]
    if missing:
        raise reader.error(section, f"missing source(s) {missing}")
    return {name: _source(reader, section, name, raw[name], environ) for name in ENTRIES}


def parse_sources_config(data: Any, path: Path, environ: Mapping[str, str] | None = None) -> SourcesConfig:
    """Validate the decoded YAML of `path` (see the module docstring)."""
    environ = os.environ if environ is None else environ
    reader = _Reader(path)
    top = reader.mapping(data, "top level", {SECTION, OLD_SECTION, "universes", "catch_up_days", "binance_archives"})
    sources = _sources(reader, top, environ)

    universes = reader.mapping(top.get("universes"), "universes", {"a_shares", "yahoo", "crypto"})
    a_raw = reader.mapping(universes.get("a_shares") or {}, "universes.a_shares",
                           {"history_start", "symbols", "symbols_file"})
    codes = []
    for instrument in reader.instruments(a_raw, "universes.a_shares"):
        try:
            codes.append(a_share_code(instrument))
        except ValueError as error:
            raise reader.error("universes.a_shares", str(error)) from None
    y_raw = reader.mapping(universes.get("yahoo") or {}, "universes.yahoo", {"history_start", "symbols", "symbols_file"})
    yahoo = []
    for instrument in reader.instruments(y_raw, "universes.yahoo"):
        try:
            yahoo.append(instrument_key(instrument.strip().upper()))
        except ValueError as error:
            raise reader.error("universes.yahoo", str(error)) from None
    c_raw = reader.mapping(universes.get("crypto") or {}, "universes.crypto",
                           {"history_start", "book_depth", "instruments", "option_chains", "funding_caps"})
    by_venue = reader.mapping(c_raw.get("instruments") or {}, "universes.crypto.instruments")
    instruments = []
    for venue, listed in by_venue.items():
        where = f"universes.crypto.instruments.{venue}"
        if str(venue).upper() not in CRYPTO_SOURCES:
            raise reader.error(where, f"unknown venue; expected one of {sorted(CRYPTO_SOURCES)}")
        if not isinstance(listed, list):
            raise reader.error(where, f"expected a list of instruments, got {type(listed).__name__}")
        for instrument in listed:
            try:
                instruments.append(normalize_instrument(str(venue), str(instrument)))
            except ValueError as error:
                raise reader.error(where, str(error)) from None
    return SourcesConfig(
        path=path, sources=sources,
        a_shares=_unique(codes),
        a_share_history_start=reader.day(a_raw.get("history_start", "2024-01-01"), "universes.a_shares.history_start"),
        yahoo_instruments=_unique(yahoo),
        yahoo_history_start=reader.day(y_raw.get("history_start", "2025-01-01"), "universes.yahoo.history_start"),
        crypto_instruments=_unique(instruments),
        crypto_history_start=reader.day(c_raw.get("history_start", "2022-01-01"), "universes.crypto.history_start"),
        book_depth=reader.integer(c_raw.get("book_depth", 20), "universes.crypto.book_depth", minimum=1),
        option_chains=_option_chains(reader, c_raw.get("option_chains") or {}),
        funding_caps=_funding_caps(reader, c_raw.get("funding_caps") or {}),
        catch_up_days=reader.integer(top.get("catch_up_days", 7), "catch_up_days", minimum=1),
        binance_archives=_archives(reader, top.get("binance_archives") or _DEFAULT_ARCHIVES, environ),
    )


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    configured = (environ.get(CONFIG_ENV) or "").strip()
    return Path(configured).resolve() if configured else DEFAULT_CONFIG


def load_sources_config(path: str | os.PathLike | None = None,
                        environ: Mapping[str, str] | None = None) -> SourcesConfig:
    """Read and validate the sources config: `path`, else TICKS_PROVIDERS_CONFIG, else the shipped file."""
    path = Path(path).resolve() if path is not None else config_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SourcesConfigError(f"sources config {path}: cannot read it ({error.strerror}); set "
                                 f"{CONFIG_ENV} to the file's path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SourcesConfigError(f"{path.name}: not valid YAML: {str(error).splitlines()[0]} "
                                 f"(file {path})") from None
    return parse_sources_config(data, path, environ)
