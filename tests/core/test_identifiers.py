from datetime import date

import pytest

from marketdata_assets.core.errors import scrub
from marketdata_assets.core.identifiers import (
    day_partition_key,
    instrument_key,
    month_partition_key,
    qualified_name,
    sql_identifier,
)


@pytest.mark.parametrize("name", ["stock_1min_qfq", "_tmp", "A1"])
def test_valid_identifiers(name):
    assert sql_identifier(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "x;DROP TABLE t", 'a"b', "é", "a" * 64, None])
def test_invalid_identifiers_are_rejected_with_the_name(name):
    with pytest.raises(ValueError) as error:
        sql_identifier(name, "table")
    assert "invalid table" in str(error.value)


def test_qualified_name():
    assert qualified_name("public.stock_1min_qfq") == "public.stock_1min_qfq"
    with pytest.raises(ValueError):
        qualified_name("a.b.c")
    with pytest.raises(ValueError):
        qualified_name("public.bad-name")


def test_partition_keys():
    assert month_partition_key("2024-03") == date(2024, 3, 1)
    assert day_partition_key("2024-02-29") == date(2024, 2, 29)
    for bad in ["2024-13", "2024-3", "24-03", "2024-03-01", "2024-03'; --"]:
        with pytest.raises(ValueError, match="month partition key"):
            month_partition_key(bad)
    for bad in ["2023-02-29", "2024-2-1", "2024-02-01|BTC"]:
        with pytest.raises(ValueError, match="day partition key"):
            day_partition_key(bad)


@pytest.mark.parametrize("instrument", ["BTCUSDT", "BTC-USDT-SWAP", "600000.SH", "ETH-PERPETUAL", "VOD.L"])
def test_instruments(instrument):
    assert instrument_key(instrument) == instrument


@pytest.mark.parametrize("instrument", ["BTC|USDT", "a,b", "[x]", "../etc", "", " BTC"])
def test_bad_instruments(instrument):
    with pytest.raises(ValueError, match="invalid instrument"):
        instrument_key(instrument)


def test_scrub_removes_secrets_but_not_empty_strings():
    assert scrub("password=hunter2 at db", "hunter2", "") == "password=*** at db"
