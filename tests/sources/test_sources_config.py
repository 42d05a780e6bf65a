"""The sources config file (sources.config): the shipped file, env overrides, clear errors, and seed
003's `providers:` key still read."""

from __future__ import annotations

import copy
import re
from datetime import date
from functools import cache
from pathlib import Path

import pytest
import yaml

from marketdata_assets.core.naming import InstrumentKey
from marketdata_assets.sources.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    SourcesConfigError,
    load_sources_config,
)
from marketdata_assets.sources.config_schema import options

# libyaml's safe loader and dumper, as sources.config reads the file: the same documents, a fifth of the
# time of the pure-Python ones (which took ~10 s of this file's CPU over ~170 reads and writes)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@cache
def _shipped() -> dict:
    return yaml.load(DEFAULT_CONFIG.read_text(encoding="utf-8"), Loader=LOADER)


def shipped() -> dict:
    """The shipped file's data: parsed once, a copy of its own for each caller (the tests edit it)."""
    return copy.deepcopy(_shipped())


def write(tmp_path: Path, data: dict, name: str = "sources.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.dump(data, Dumper=DUMPER, allow_unicode=True), encoding="utf-8")
    return path


def test_the_shipped_file_has_the_seeds_limits_and_the_vendors_hosts():
    config = load_sources_config(environ={})
    assert config.path == DEFAULT_CONFIG
    tushare, yahoo, binance = (config.sources[n] for n in ("tushare", "yahoo", "binance"))
    assert (tushare.requests_per_minute, yahoo.requests_per_minute) == (200.0, 2000.0)  # seed 003
    assert binance.option("weight_per_minute") == 6000 and binance.option("weight_headroom") == 0.9
    assert {name: p.base_url for name, p in config.sources.items()} == {
        "tushare": "http://api.waditu.com",
        "yahoo": "https://query2.finance.yahoo.com",
        "binance": "https://api.binance.com",
        "binance_um": "https://fapi.binance.com",
        "okx": "https://www.okx.com",
        "deribit": "https://www.deribit.com",
    }
    assert config.sources["binance_um"].option("weight_per_minute") == 2400
    assert config.option_chains == (
        InstrumentKey("DERIBIT", "BTC-OPTIONS"),
        InstrumentKey("DERIBIT", "ETH-OPTIONS"),
    )
    assert config.funding_caps == {"BINANCE_UM": 0.003, "OKX": 0.00375, "DERIBIT": 0.005}
    assert InstrumentKey("BINANCE_UM", "BTCUSDT") in config.crypto_instruments
    assert tushare.option("token_env") == "TUSHARE_TOKEN"
    assert "600000.SH" in config.a_shares and "830799.BJ" in config.a_shares
    assert InstrumentKey("OKX", "BTC-USDT-SWAP") in config.crypto_instruments
    assert all(":" in key and "|" not in key and "," not in key for key in config.crypto_partition_keys())
    assert config.crypto_history_start == date(2022, 1, 1) and config.catch_up_days == 7


def test_base_urls_come_from_the_named_variables_and_the_file_from_its_variable(tmp_path):
    data = shipped()
    data["sources"]["okx"]["requests_per_minute"] = 30
    path = write(tmp_path, data)
    config = load_sources_config(
        environ={CONFIG_ENV: str(path), "OKX_BASE_URL": "http://127.0.0.1:8766/", "BINANCE_BASE_URL": ""}
    )
    assert config.path == path.resolve()
    okx, binance = config.sources["okx"], config.sources["binance"]
    assert (okx.base_url, okx.default_base_url, okx.requests_per_minute) == (
        "http://127.0.0.1:8766",
        "https://www.okx.com",
        30.0,
    )
    assert binance.base_url == "https://api.binance.com"  # empty variable = unset


def test_universes_normalize_codes_drop_duplicates_and_read_a_symbols_file(tmp_path):
    (tmp_path / "a_shares.txt").write_text("# the market\nsh600000\n000001.XSHE  # Ping An\n\n830799\n")
    data = shipped()
    data["universes"]["a_shares"] = {"symbols": ["600000.SH", "601398"], "symbols_file": "a_shares.txt"}
    data["universes"]["yahoo"]["symbols"] = ["aapl", "AAPL", "vod.l"]
    config = load_sources_config(write(tmp_path, data), environ={})
    assert config.a_shares == ("600000.SH", "601398.SH", "000001.SZ", "830799.BJ")
    assert config.yahoo_instruments == ("AAPL", "VOD.L")


def test_five_thousand_instruments_load(tmp_path):
    codes = [f"{600000 + i}.SH" for i in range(2500)] + [f"{i:06d}.SZ" for i in range(1, 2501)]
    (tmp_path / "market.txt").write_text("\n".join(codes))
    data = shipped()
    data["universes"]["a_shares"] = {"symbols_file": str(tmp_path / "market.txt")}
    assert len(load_sources_config(write(tmp_path, data), environ={}).a_shares) == 5000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["sources"]["okx"].update(workers="four"),
            "sources.okx.workers: expected an integer >= 1, got 'four'",
        ),
        (
            lambda d: d["sources"]["tushare"].update(requests_per_minute=0),
            "sources.tushare.requests_per_minute: expected a number > 0",
        ),
        (lambda d: d["sources"]["binance"].update(weight_headroom=1.5), "sources.binance.weight_headroom"),
        (
            lambda d: d["sources"]["yahoo"].update(requets_per_minute=10),
            (
                "sources.yahoo.requets_per_minute: unknown key (did you mean 'requests_per_minute'?); "
                "allowed in sources.yahoo: "
            ),
        ),
        (
            lambda d: d["sources"]["binance"].update(weight_per_minute=0),
            "sources.binance.weight_per_minute: expected an integer >= 1, got 0",
        ),
        (
            lambda d: d["sources"]["binance"].update(weight_per_minute="6000"),
            "sources.binance.weight_per_minute: expected an integer >= 1, got '6000'",
        ),
        (
            lambda d: d["sources"]["yahoo"].update(max_days_back=-1),
            "sources.yahoo.max_days_back: expected null or a number > 0",
        ),
        (
            lambda d: d["sources"]["tushare"].update(token_env=""),
            "sources.tushare.token_env: expected a non-empty string",
        ),
        (
            lambda d: d["sources"]["okx"].pop("base_url"),
            "sources.okx.base_url: missing; expected an http(s):// URL",
        ),
        (lambda d: d["sources"].update(okx=None), "sources.okx: missing; expected a mapping"),
        (lambda d: d["sources"].update(okx=[1]), "sources.okx: expected a mapping, got list"),
        (lambda d: d.update(universe={}), "universe: unknown key (did you mean 'universes'?)"),
        (lambda d: d.pop("universes"), "universes: missing; expected a mapping"),
        (lambda d: d.update(catch_up_days=0), "catch_up_days: expected an integer >= 1, got 0"),
        (
            lambda d: d["universes"]["crypto"].update(book_depth=True),
            "universes.crypto.book_depth: expected an integer >= 1, got True",
        ),
        (
            lambda d: d["universes"]["yahoo"].update(symbols="AAPL"),
            "universes.yahoo.symbols: expected null or a list, got 'AAPL'",
        ),
        (
            lambda d: d["binance_archives"].update(timeout_s=float("nan")),
            "binance_archives.timeout_s: expected a number > 0",
        ),
        (
            lambda d: d["sources"]["deribit"].update(base_url="www.deribit.com"),
            "sources.deribit.base_url: expected an http(s):// URL",
        ),
        (lambda d: d["sources"].pop("okx"), "sources.okx: missing; expected a mapping"),
        (
            lambda d: d["universes"]["a_shares"].update(symbols=["600000.XX"]),
            "universes.a_shares: invalid A-share code '600000.XX'",
        ),
        (
            lambda d: d["universes"]["crypto"]["instruments"].update(OKX=["BTCUSDT"]),
            "universes.crypto.instruments.OKX: instrument 'BTCUSDT' does not look like an instrument of OKX",
        ),
        (
            lambda d: d["universes"]["crypto"]["instruments"].update(KRAKEN=["XBTUSD"]),
            "universes.crypto.instruments.KRAKEN: unknown venue",
        ),
        (
            lambda d: d["universes"]["crypto"].update(option_chains={"DERIBIT": "BTC"}),
            "universes.crypto.option_chains.DERIBIT: expected a list of currencies",
        ),
        (
            lambda d: d["universes"]["crypto"].update(option_chains={"OKX": ["BTC"]}),
            (
                "universes.crypto.option_chains.OKX: unknown key; allowed in "
                "universes.crypto.option_chains: DERIBIT"
            ),
        ),
        (
            lambda d: d["universes"]["crypto"]["rules"]["OKX"].update(top=0),
            "universes.crypto.rules.OKX.top: expected a whole number >= 1",
        ),
        (
            lambda d: d["universes"]["crypto"]["rules"]["OKX"].update(top=[20]),
            "universes.crypto.rules.OKX.top: expected a whole number >= 1",
        ),
        (
            lambda d: d["universes"]["a_shares"].update(rules={"SSE": {"types": ["equity"], "top": 20}}),
            (
                "universes.a_shares.rules.SSE: expected a mapping of types, quotes, settles, bases, "
                "statuses, include, exclude; unknown key(s) top"
            ),
        ),  # no A-share volume snapshot to rank by
        (
            lambda d: d["universes"]["a_shares"].update(rules={"HKEX": {"types": ["equity"]}}),
            "universes.a_shares.rules.HKEX: unknown venue; expected one of ['BSE', 'SSE', 'SZSE']",
        ),
        (
            lambda d: d["universes"]["crypto"].update(funding_caps={"OKX": 2}),
            "universes.crypto.funding_caps.OKX: expected a number > 0 and <= 1, got 2",
        ),
        (
            lambda d: d["universes"]["yahoo"].update(history_start="June"),
            "universes.yahoo.history_start: expected a date YYYY-MM-DD, got 'June'",
        ),
        (
            lambda d: d["universes"]["a_shares"].update(symbols_file="nowhere.txt"),
            "universes.a_shares.symbols_file: cannot read",
        ),
    ],
)
def test_invalid_files_name_the_file_and_the_key(tmp_path, change, message):
    data = shipped()
    change(data)
    with pytest.raises(SourcesConfigError) as raised:
        load_sources_config(write(tmp_path, data, "mine.yaml"), environ={})
    assert str(raised.value).startswith("mine.yaml: ") and message in str(raised.value)
    assert str(raised.value).endswith(f"(file {tmp_path.resolve() / 'mine.yaml'})")


def test_an_a_share_rule_joins_the_explicit_codes_of_its_exchange(tmp_path):
    data = shipped()
    data["universes"]["a_shares"]["rules"] = {"SZSE": {"types": ["equity"], "exclude": ["000002.SZ"]}}
    config = load_sources_config(write(tmp_path, data), environ={})
    rules = config.a_share_rules()
    assert rules["SZSE"].types == ("equity",) and rules["SZSE"].exclude == ("000002.SZ",)
    assert set(rules["SZSE"].explicit) == {c for c in config.a_shares if c.endswith(".SZ")}
    assert not rules["SSE"].selects and set(rules["SSE"].explicit) == {
        c for c in config.a_shares if c.endswith(".SH")
    }
    assert set(config.universe_rules()) == set(config.crypto_rules()) | set(rules)


def test_a_rule_takes_a_top_n_by_volume(tmp_path):
    data = shipped()
    data["universes"]["crypto"]["rules"]["BINANCE"]["top"] = 20
    rules = load_sources_config(write(tmp_path, data), environ={}).crypto_rules()
    assert rules["BINANCE"].top == 20 and rules["OKX"].top is None


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(SourcesConfigError, match=f"cannot read it .*set {CONFIG_ENV}"):
        load_sources_config(tmp_path / "absent.yaml", environ={})
    (tmp_path / "bad.yaml").write_text("sources: [unclosed\n")
    with pytest.raises(SourcesConfigError, match="bad.yaml: not valid YAML"):
        load_sources_config(tmp_path / "bad.yaml", environ={})


def test_a_file_written_before_binance_um_existed_still_loads_with_its_defaults(tmp_path):
    data = shipped()
    del data["sources"]["binance_um"]
    config = load_sources_config(
        write(tmp_path, data), environ={"BINANCE_UM_BASE_URL": "http://127.0.0.1:9/"}
    )
    um = config.sources["binance_um"]
    assert (um.base_url, um.default_base_url, um.option("weight_per_minute")) == (
        "http://127.0.0.1:9",
        "https://fapi.binance.com",
        2400,
    )


def test_seed_003s_providers_key_is_still_read_and_names_the_errors(tmp_path):
    data = shipped()
    data["providers"] = data.pop("sources")
    old = load_sources_config(write(tmp_path, data), environ={})
    assert old.sources == load_sources_config(environ={}).sources
    data["providers"]["okx"]["workers"] = 0
    with pytest.raises(
        SourcesConfigError, match=re.escape("providers.okx.workers: expected an integer >= 1")
    ):
        load_sources_config(write(tmp_path, data), environ={})


def test_both_keys_at_once_are_refused(tmp_path):
    data = shipped()
    data["providers"] = data["sources"]
    with pytest.raises(SourcesConfigError, match="both 'sources' and 'providers'"):
        load_sources_config(write(tmp_path, data), environ={})


# ---- every declared key, from the schema the file is validated with ----------------------------

WRONG = {
    "number": "fast",
    "integer": 1.5,
    "text": 5,
    "url": "ftp://host",
    "date": "June",
    "list": "one",
    "mapping": ["one"],
}


def _set(data: dict, path: str, value) -> None:
    *parents, key = path.split(".")
    for parent in parents:
        data = data.setdefault(parent, {})
    data[key] = value


@pytest.mark.parametrize(("path", "option"), list(options()), ids=[path for path, _ in options()])
def test_every_declared_key_refuses_a_value_of_the_wrong_type_naming_key_and_file(tmp_path, path, option):
    data = shipped()
    _set(data, path, WRONG[option.kind])
    with pytest.raises(SourcesConfigError) as raised:
        load_sources_config(write(tmp_path, data, "mine.yaml"), environ={})
    assert str(raised.value).startswith(f"mine.yaml: {path}") and f"file {tmp_path.resolve()}" in str(
        raised.value
    )


BOUNDED = [(path, o) for path, o in options() if o.kind in ("number", "integer")]


@pytest.mark.parametrize(("path", "option"), BOUNDED, ids=[path for path, _ in BOUNDED])
def test_every_bounded_key_refuses_a_value_out_of_bounds_with_its_rule(tmp_path, path, option):
    below = option.minimum - (1 if option.kind == "integer" or option.inclusive else 0)
    for bad in [below] + ([option.maximum * 2] if option.maximum else []):
        data = shipped()
        _set(data, path, bad)
        with pytest.raises(SourcesConfigError) as raised:
            load_sources_config(write(tmp_path, data, "mine.yaml"), environ={})
        assert str(raised.value).startswith(f"mine.yaml: {path}: expected {option.rule()}, got {bad!r}")


def test_every_declared_key_is_accepted_at_its_default(tmp_path):
    """A file spelling out every default the schema declares loads as the file without them."""
    data = shipped()
    for path, option in options():
        if not option.required and option.default not in (None, [], {}):
            _set(
                data,
                path,
                option.default
                if "<ENTRY>" not in str(option.default)
                else option.default.replace("<ENTRY>", path.split(".")[1].upper()),
            )
    config = load_sources_config(write(tmp_path, data), environ={})
    assert config.sources["okx"].base_url_env == "OKX_BASE_URL" and config.catch_up_days == 7


def test_rule_statuses_take_the_venues_own_words_and_refuse_any_other_naming_the_accepted(tmp_path):
    data = shipped()
    data["universes"]["crypto"]["rules"]["BINANCE"]["statuses"] = ["TRADING", "break"]
    data["universes"]["crypto"]["rules"]["OKX"]["statuses"] = ["suspend", "live"]
    data["universes"]["a_shares"]["rules"] = {"SSE": {"statuses": ["L", "D"]}}
    rules = load_sources_config(write(tmp_path, data), environ={}).universe_rules()
    assert rules["BINANCE"].statuses == ("live", "suspended")  # Binance's TRADING and BREAK, mapped
    assert rules["OKX"].statuses == ("suspended", "live") and rules["SSE"].statuses == ("live", "delisted")
    assert "statuses live, suspended" in rules["BINANCE"].text
    data["universes"]["crypto"]["rules"]["BINANCE"]["statuses"] = ["TRADNG"]
    with pytest.raises(SourcesConfigError) as refused:
        load_sources_config(write(tmp_path, data), environ={})
    assert (
        "universes.crypto.rules.BINANCE.statuses: 'TRADNG' is not a status; accepted: live, suspended, "
        "preopen, test, delisted, expired, gone, or BINANCE's own words TRADING, BREAK, HALT, "
    ) in str(refused.value)
    data["universes"]["crypto"]["rules"]["BINANCE"]["statuses"] = ["live"]
    data["universes"]["crypto"]["rules"]["DERIBIT"]["statuses"] = ["active"]
    with pytest.raises(
        SourcesConfigError, match=r"'active' is not a status; accepted: live, .*, gone \(file "
    ):
        load_sources_config(write(tmp_path, data), environ={})


def test_a_symbols_file_that_lists_no_instruments_is_named_never_quoted(tmp_path):
    """A symbols_file can name any file on the machine: a line that is no instrument name is said by its
    number and the file, its content never quoted (`../../etc/passwd` must not end up in a log)."""
    (tmp_path / "secret.txt").write_text("AAPL\nroot:x:0:0:root:/root:/bin/bash\n")
    data = shipped()
    data["universes"]["yahoo"]["symbols_file"] = str(tmp_path / "secret.txt")
    with pytest.raises(SourcesConfigError) as raised:
        load_sources_config(write(tmp_path, data), environ={})
    said = str(raised.value)
    assert "universes.yahoo.symbols_file: line 2 of" in said and "secret.txt" in said
    assert "/bin/bash" not in said and "root:x" not in said


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = write(tmp_path, shipped(), "mine.yaml")
    path.write_bytes(path.read_bytes() + b"\n# caf\xe9\n")
    with pytest.raises(SourcesConfigError, match=r"sources config .*mine\.yaml: not UTF-8 text"):
        load_sources_config(path, environ={})
    (tmp_path / "codes.txt").write_bytes(b"600000.SH\n\xff\xfe\n")
    data = shipped()
    data["universes"]["a_shares"] = {"symbols_file": "codes.txt"}
    with pytest.raises(SourcesConfigError, match=r"a_shares\.symbols_file: .*codes\.txt is not UTF-8 text"):
        load_sources_config(write(tmp_path, data), environ={})
