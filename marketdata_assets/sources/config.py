"""The sources config file (`data_providers.yaml`): an entry per declared source.

    config = load_sources_config()               # the file TICKS_PROVIDERS_CONFIG names, else the shipped one
    config.sources["tushare"].requests_per_minute   # 200.0
    config.a_shares                              # ("600000.SH", ...) normalized codes
    config.crypto_instruments                    # (InstrumentKey("BINANCE", "BTCUSDT"), ...)

Every key the file may hold is declared once, in sources/config_schema.py (a source's own keys with
the source, `Source.options`); docs/configuration.md lists them, generated from the same declarations
(`python -m marketdata_assets.apps.configuration`), and data_providers.yaml is the reference file.

Every problem is reported with the file, the key's path and the declaration's rule
(``data_providers.yaml: sources.okx.workers: expected an integer >= 1, got 'four' (file /path/to/it)``);
unknown keys are errors too, with the nearest declared key (a typo would otherwise be a silently
ignored limit), and so are missing required ones. Secrets never live in the file: only the NAME of
the token's variable. A-share codes are normalized (``sh600000`` -> ``600000.SH``), crypto instruments checked
against their venue (core.naming); duplicates are dropped, first occurrence kept. The keys ``symbols`` and
``symbols_file`` keep the CLI's option name (``--symbols``); what they list are instruments.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from marketdata_assets.core.identifiers import instrument_key
from marketdata_assets.core.naming import (
    A_SHARE_VENUES,
    InstrumentKey,
    a_share_code,
    a_share_venue,
    normalize_instrument,
)
from marketdata_assets.datasets.instruments import STATUSES
from marketdata_assets.datasets.universe import UniverseRule
from marketdata_assets.sources.binance_vision.archive_settings import ARCHIVE_MARKETS, ArchiveSettings
from marketdata_assets.sources.config_schema import (
    DECLARED,
    DEFAULT_ARCHIVES,
    FUNDING_CAP,
    OLD_SECTION,
    OPTIONAL_SOURCES,
    SCHEMA,
    SECTION,
    Section,
)
from marketdata_assets.sources.interface import Option

CONFIG_ENV = (
    "TICKS_PROVIDERS_CONFIG"  # the name deployments set (as are the file's and the CLI's --providers-config)
)
DEFAULT_CONFIG = Path(__file__).resolve().parent / "data_providers.yaml"
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's (a fifth of the time), as safe
ENTRIES = tuple(DECLARED)
CRYPTO_SOURCES = {s.name: s.config for s in DECLARED.values() if s.venue_api}  # venue -> entry


class SourcesConfigError(ValueError):
    """The sources config file is missing, unreadable or invalid; names the file and the key."""


@dataclass(frozen=True)
class SourceSettings:
    name: str
    base_url: str  # resolved: the variable base_url_env if set, else the file's base_url
    default_base_url: str  # the file's base_url
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
    crypto_universe_rules: Mapping[str, UniverseRule] = field(
        default_factory=dict
    )  # venue -> its universe rule
    a_share_universe_rules: Mapping[str, UniverseRule] = field(
        default_factory=dict
    )  # SSE, SZSE, BSE -> its rule

    def crypto_partition_keys(self) -> list[str]:
        return [key.partition_key for key in self.crypto_instruments]

    def crypto_rules(self) -> dict[str, UniverseRule]:
        """venue -> its universe: the rule (if any) with the explicit instruments, for every venue with
        either."""
        return _with_explicit(self.crypto_universe_rules, self.crypto_instruments_by_venue())

    def a_share_rules(self) -> dict[str, UniverseRule]:
        """SSE, SZSE, BSE -> its universe: the rule (if any) with the explicit codes, for every venue with
        either."""
        explicit: dict[str, list[str]] = {}
        for code in self.a_shares:
            explicit.setdefault(a_share_venue(code), []).append(code)
        return _with_explicit(self.a_share_universe_rules, explicit)

    def universe_rules(self) -> dict[str, UniverseRule]:
        """Every venue's universe (crypto and A-share): `crypto_rules` and `a_share_rules`."""
        return {**self.crypto_rules(), **self.a_share_rules()}

    def crypto_instruments_by_venue(self) -> dict[str, list[str]]:
        """venue -> its configured instruments, in the file's order."""
        out: dict[str, list[str]] = {}
        for key in self.crypto_instruments:
            out.setdefault(key.venue, []).append(key.instrument)
        return out


class _Reader:
    """Reads the decoded file against the declarations of sources/config_schema.py; every error names
    the file, the key's path and what a valid value is."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str, detail: str) -> SourcesConfigError:
        return SourcesConfigError(f"{self.path.name}: {where}: {detail} (file {self.path})")

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a mapping, got {type(value).__name__} {str(value)[:60]!r}")
        unknown = [str(k) for k in value if allowed is not None and k not in allowed]
        if unknown:
            close = difflib.get_close_matches(unknown[0], allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(
                ", ".join(f"{where}.{k}" for k in unknown),
                f"unknown key{hint}; allowed in {where}: {', '.join(sorted(allowed))}",
            )
        return value

    def section(self, value: Any, where: str, section: Section) -> dict:
        """The mapping at `where`: no undeclared key, every required key there."""
        value = self.mapping(value, where, set(section.keys))
        for key, declared in section.keys.items():
            if getattr(declared, "required", False) and value.get(key) is None:
                raise self.error(f"{where}.{key}", f"missing; expected {_expected(declared)}")
        return value

    def get(self, raw: dict, where: str, section: Section, key: str) -> Any:
        """The value of `key` (its declared default when absent), validated as declared."""
        option = section.keys[key]
        return self.value(raw.get(key, option.default), f"{where}.{key}" if where else key, option)

    def value(self, value: Any, where: str, option: Option) -> Any:
        """`value` as `option` declares it (number, integer, text, url, date; lists and mappings are
        checked by their readers below)."""
        if value is None and option.nullable:
            return None
        if option.kind == "number":
            return self._number(value, where, option)
        ok = {
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= option.minimum,
            "text": lambda v: isinstance(v, str) and bool(v.strip()),
            "url": lambda v: isinstance(v, str) and v.strip().startswith(("http://", "https://")),
            "list": lambda v: isinstance(v, list),
            "mapping": lambda v: isinstance(v, dict),
            "date": lambda v: isinstance(v, date) or _is_day(v),
        }[option.kind](value)
        if not ok:
            raise self.error(where, f"expected {option.rule()}, got {value!r}")
        if option.kind == "date":
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        return value.strip() if option.kind in ("text", "url") else value

    def _number(self, value: Any, where: str, option: Option) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
        ok = ok and (value >= option.minimum if option.inclusive else value > option.minimum)
        if not ok or (option.maximum is not None and value > option.maximum):
            raise self.error(where, f"expected {option.rule()}, got {value!r}")
        return float(value)

    def instruments(self, raw: dict, where: str, section: Section) -> list[str]:
        """The instruments a universe lists: its keys `symbols` and `symbols_file`."""
        out = [str(s) for s in self.get(raw, where, section, "symbols") or []]
        listed = self.get(raw, where, section, "symbols_file")
        if listed:
            file = Path(listed)
            file = file if file.is_absolute() else self.path.parent / file
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except OSError as error:
                raise self.error(f"{where}.symbols_file", f"cannot read {file}: {error.strerror}") from None
            except UnicodeDecodeError as error:
                raise self.error(
                    f"{where}.symbols_file",
                    f"{file} is not UTF-8 text ({error.reason} at byte {error.start})",
                ) from None
            for number, line in enumerate(lines, 1):
                name = line.split("#", 1)[0].strip()
                try:
                    out.append(instrument_key(name) if name else name)
                except ValueError:  # its content is not quoted: the file may be anything on the machine
                    raise self.error(
                        f"{where}.symbols_file",
                        f"line {number} of {file} is not an instrument name (letters, digits, . _ -)",
                    ) from None
        return [s for s in out if s]


def _is_day(value: Any) -> bool:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _expected(declared: Option | Section) -> str:
    return declared.rule() if isinstance(declared, Option) else "a mapping"


def _unique(items: list) -> tuple:
    return tuple(dict.fromkeys(items))


def _names(reader: _Reader, raw: dict, key: str) -> tuple:
    """A list key of binance_archives whose items are chosen from the declaration's `choices`."""
    option, where = ARCHIVES_SECTION.keys[key], f"binance_archives.{key}"
    values = reader.get(raw, "binance_archives", ARCHIVES_SECTION, key)
    unknown = [v for v in values if v not in option.choices]
    if unknown:
        raise reader.error(where, f"unknown {unknown}; expected {option.rule()}: {option.description}")
    if not values:
        raise reader.error(where, f"expected {option.rule()}, got {values!r}")
    return _unique(values)


ARCHIVES_SECTION: Section = SCHEMA.keys["binance_archives"]


def _archives(reader: _Reader, raw: Any, environ: Mapping[str, str]) -> ArchiveSettings:
    where, section = "binance_archives", ARCHIVES_SECTION
    raw = reader.section(raw, where, section)
    base_url = reader.get(raw, where, section, "base_url")
    env_name = reader.get(raw, where, section, "base_url_env")
    families = _names(reader, raw, "families")
    instruments = reader.get(raw, where, section, "instruments")
    if not instruments:
        raise reader.error(
            f"{where}.instruments", f"expected a non-empty list of instruments, got {instruments!r}"
        )
    markets = _names(reader, raw, "markets")
    for market in markets:
        for instrument in instruments:
            try:
                normalize_instrument(ARCHIVE_MARKETS[market], str(instrument))
            except ValueError as error:
                raise reader.error(f"{where}.instruments", str(error)) from None
    return ArchiveSettings(
        base_url=((environ.get(env_name) or "").strip() or base_url).rstrip("/"),
        default_base_url=base_url.rstrip("/"),
        base_url_env=env_name,
        start_date=reader.get(raw, where, section, "start_date"),
        markets=markets,
        families=families,
        intervals=_names(reader, raw, "intervals") if "klines" in families else (),
        instruments=_unique([str(i) for i in instruments]),
        workers=reader.get(raw, where, section, "workers"),
        timeout_s=reader.get(raw, where, section, "timeout_s"),
        max_retries=reader.get(raw, where, section, "max_retries"),
    )


def _source(
    reader: _Reader, section_name: str, name: str, raw: Any, environ: Mapping[str, str]
) -> SourceSettings:
    where, section = f"{section_name}.{name}", SCHEMA.keys[SECTION].keys[name]
    raw = reader.section(raw, where, section)
    values = {key: reader.get(raw, where, section, key) for key in section.keys if key != "base_url_env"}
    env_name = reader.value(
        raw.get("base_url_env", f"{name.upper()}_BASE_URL"),
        f"{where}.base_url_env",
        section.keys["base_url_env"],
    )
    resolved = (environ.get(env_name) or "").strip() or values["base_url"]
    common = {
        key: values.pop(key)
        for key in (
            "requests_per_minute",
            "max_concurrency",
            "workers",
            "timeout_s",
            "max_retries",
            "backoff_base_s",
        )
    }
    base_url = values.pop("base_url")
    return SourceSettings(
        name=name,
        base_url=resolved.rstrip("/"),
        default_base_url=base_url.rstrip("/"),
        base_url_env=env_name,
        **common,
        options=values,
    )


def _option_chains(reader: _Reader, raw: Any) -> tuple[InstrumentKey, ...]:
    """{DERIBIT: [BTC, ETH]} -> the chains DERIBIT:BTC-OPTIONS, DERIBIT:ETH-OPTIONS."""
    where = "universes.crypto.option_chains"
    chains = []
    for venue, currencies in reader.mapping(raw, where, {"DERIBIT"}).items():
        if not isinstance(currencies, list) or not all(
            isinstance(c, str) and c.isalnum() for c in currencies
        ):
            raise reader.error(
                f"{where}.{venue}", f"expected a list of currencies (BTC, ETH), got {currencies!r}"
            )
        chains += [InstrumentKey(venue, f"{c.upper()}-OPTIONS") for c in currencies]
    return _unique(chains)


def _funding_caps(reader: _Reader, raw: Any) -> dict[str, float]:
    where = "universes.crypto.funding_caps"
    caps = reader.mapping(raw, where, set(CRYPTO_SOURCES))
    return {venue: reader.value(cap, f"{where}.{venue}", FUNDING_CAP) for venue, cap in caps.items()}


def _sources(reader: _Reader, top: dict, environ: Mapping[str, str]) -> dict[str, SourceSettings]:
    """The `sources` section (or `providers`, its former name, still read), every source's settings."""
    if SECTION in top and OLD_SECTION in top:
        raise reader.error("top level", f"both {SECTION!r} and {OLD_SECTION!r} (its former name): keep one")
    name = OLD_SECTION if OLD_SECTION in top else SECTION
    raw = reader.section(
        {**OPTIONAL_SOURCES, **reader.mapping(top.get(name), name)}, name, SCHEMA.keys[SECTION]
    )
    return {entry: _source(reader, name, entry, raw[entry], environ) for entry in ENTRIES}


def _crypto_instruments(reader: _Reader, raw: Any) -> list[InstrumentKey]:
    instruments = []
    for venue, listed in reader.mapping(raw, "universes.crypto.instruments").items():
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
    return instruments


def _with_explicit(
    rules: Mapping[str, UniverseRule], explicit: Mapping[str, list[str]]
) -> dict[str, UniverseRule]:
    """venue -> its rule (if any) with its explicit instruments, for every venue with either."""
    return {
        venue: replace(rules.get(venue) or UniverseRule(venue), explicit=tuple(explicit.get(venue, ())))
        for venue in sorted(set(explicit) | set(rules))
    }


RULE_KEYS = ("types", "quotes", "settles", "bases", "statuses", "include", "exclude", "top")


def _rules(
    reader: _Reader, raw: Any, section: str, venues, keys: tuple[str, ...] = RULE_KEYS
) -> dict[str, UniverseRule]:
    """universes.<section>.rules: VENUE (one of `venues`) -> a mapping of `keys`, each a list of text but
    `top` (a whole number)."""
    rules = {}
    for venue, spec in reader.mapping(raw, f"universes.{section}.rules").items():
        where, name = f"universes.{section}.rules.{venue}", str(venue).upper()
        if name not in venues:
            raise reader.error(where, f"unknown venue; expected one of {sorted(venues)}")
        if not isinstance(spec, dict) or set(spec) - set(keys):
            extra = sorted(set(spec) - set(keys)) if isinstance(spec, dict) else []
            raise reader.error(
                where,
                f"expected a mapping of {', '.join(keys)}"
                + (f"; unknown key(s) {', '.join(extra)}" if extra else ""),
            )
        values = {}
        for key, listed in spec.items():
            if key == "top":
                if isinstance(listed, bool) or not isinstance(listed, int) or listed < 1:
                    raise reader.error(f"{where}.top", "expected a whole number >= 1 (the N by 24 h volume)")
                values[key] = listed
                continue
            if not isinstance(listed, list) or not all(isinstance(v, str) and v.strip() for v in listed):
                raise reader.error(f"{where}.{key}", "expected a list of names")
            values[key] = tuple(v.strip() for v in listed)
            if key == "statuses":
                values[key] = _statuses(reader, f"{where}.statuses", name, values[key])
        try:
            rules[name] = UniverseRule(name, **values)
        except ValueError as error:
            raise reader.error(where, str(error)) from None
    return rules


def _statuses(reader: _Reader, where: str, venue: str, words: tuple[str, ...]) -> tuple[str, ...]:
    """A rule's statuses in the master's words: the master's own, or the venue's (Binance TRADING, OKX
    suspend, Tushare L: mapped); any other word refused, naming the accepted ones."""
    from marketdata_assets.sources.registry import status_words

    theirs, out = status_words(venue), []
    for word in words:
        status = word.lower() if word.lower() in STATUSES else theirs.get(word.upper())
        if status is None:
            raise reader.error(
                where,
                f"{word!r} is not a status; accepted: {', '.join(STATUSES)}"
                + (f", or {venue}'s own words {', '.join(theirs)}" if theirs else ""),
            )
        out.append(status)
    return tuple(dict.fromkeys(out))


def _stock_universe(reader: _Reader, universes: dict, name: str, normalize) -> tuple[tuple[str, ...], date]:
    """(instruments, history_start) of universes.a_shares or universes.yahoo."""
    where, section = f"universes.{name}", SCHEMA.keys["universes"].keys[name]
    raw = reader.section(universes.get(name) or {}, where, section)
    out = []
    for instrument in reader.instruments(raw, where, section):
        try:
            out.append(normalize(instrument))
        except ValueError as error:
            raise reader.error(where, str(error)) from None
    return _unique(out), reader.get(raw, where, section, "history_start")


def parse_sources_config(data: Any, path: Path, environ: Mapping[str, str] | None = None) -> SourcesConfig:
    """Validate the decoded YAML of `path` (see the module docstring)."""
    environ = os.environ if environ is None else environ
    reader = _Reader(path)
    top = reader.mapping(data, "top level", set(SCHEMA.keys) | {OLD_SECTION})
    sources = _sources(reader, top, environ)
    if top.get("universes") is None:
        raise reader.error("universes", "missing; expected a mapping")
    universes = reader.section(top["universes"], "universes", SCHEMA.keys["universes"])
    a_shares, a_start = _stock_universe(reader, universes, "a_shares", a_share_code)
    a_raw = universes.get("a_shares") or {}
    yahoo, y_start = _stock_universe(reader, universes, "yahoo", lambda i: instrument_key(i.strip().upper()))
    crypto = SCHEMA.keys["universes"].keys["crypto"]
    c_raw = reader.section(universes.get("crypto") or {}, "universes.crypto", crypto)
    return SourcesConfig(
        path=path,
        sources=sources,
        a_shares=a_shares,
        a_share_history_start=a_start,
        yahoo_instruments=yahoo,
        yahoo_history_start=y_start,
        crypto_instruments=_unique(_crypto_instruments(reader, c_raw.get("instruments") or {})),
        crypto_history_start=reader.get(c_raw, "universes.crypto", crypto, "history_start"),
        book_depth=reader.get(c_raw, "universes.crypto", crypto, "book_depth"),
        option_chains=_option_chains(reader, c_raw.get("option_chains") or {}),
        crypto_universe_rules=_rules(reader, c_raw.get("rules") or {}, "crypto", CRYPTO_SOURCES),
        # no `top`: no A-share volume snapshot is kept
        a_share_universe_rules=_rules(
            reader, a_raw.get("rules") or {}, "a_shares", A_SHARE_VENUES, RULE_KEYS[:-1]
        ),
        funding_caps=_funding_caps(reader, c_raw.get("funding_caps") or {}),
        catch_up_days=reader.get(top, "", SCHEMA, "catch_up_days"),
        binance_archives=_archives(reader, top.get("binance_archives") or DEFAULT_ARCHIVES, environ),
    )


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    configured = (environ.get(CONFIG_ENV) or "").strip()
    return Path(configured).resolve() if configured else DEFAULT_CONFIG


def load_sources_config(
    path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None
) -> SourcesConfig:
    """Read and validate the sources config: `path`, else TICKS_PROVIDERS_CONFIG, else the shipped file."""
    path = Path(path).resolve() if path is not None else config_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SourcesConfigError(
            f"sources config {path}: cannot read it ({error.strerror}); set {CONFIG_ENV} to the file's path"
        ) from None
    except UnicodeDecodeError as error:
        raise SourcesConfigError(
            f"sources config {path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as error:
        raise SourcesConfigError(
            f"{path.name}: not valid YAML: {str(error).splitlines()[0]} (file {path})"
        ) from None
    return parse_sources_config(data, path, environ)


def rest_base(source: str) -> str:
    """The REST base of `source` (binance, okx, deribit, ...): its `base_url_env` variable when set, else
    the sources file's `base_url` (the vendor's public host)."""
    return load_sources_config().sources[source.lower()].base_url
