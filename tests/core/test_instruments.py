import pytest

from marketdata_assets.core.naming import (
    InstrumentKey,
    a_share_code,
    a_share_venue,
    infer_exchange,
    normalize_instrument,
    normalize_venue,
    parse_instrument,
    parse_partition_key,
    partition_key,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("600000.SH", "600000.SH"),
        ("600000.sh", "600000.SH"),
        ("sh600000", "600000.SH"),
        ("SH600000", "600000.SH"),
        ("sh.600000", "600000.SH"),
        ("600000", "600000.SH"),
        ("600000.XSHG", "600000.SH"),
        ("600000.SS", "600000.SH"),
        ("000001.XSHE", "000001.SZ"),
        ("sz000001", "000001.SZ"),
        ("000001", "000001.SZ"),
        (" 000001.sz ", "000001.SZ"),
        ("300750", "300750.SZ"),
        ("200002", "200002.SZ"),
        ("688981", "688981.SH"),
        ("900901", "900901.SH"),
        ("430047", "430047.BJ"),
        ("830799", "830799.BJ"),
        ("bj830799", "830799.BJ"),
        ("920002", "920002.BJ"),
        ("510300", "510300.SH"),
        ("159919", "159919.SZ"),
        # an explicit exchange wins over inference: 000001.SH is the SSE Composite index
        ("000001.SH", "000001.SH"),
        ("SH000001", "000001.SH"),
    ],
)
def test_a_share_code_spellings(text, expected):
    assert a_share_code(text) == expected


@pytest.mark.parametrize("bad", ["60000", "6000000", "600000.XX", "hk00700", "AAPL", "", "700001", None])
def test_a_share_code_rejects(bad):
    with pytest.raises(ValueError):
        a_share_code(bad)


def test_exchange_inference_and_venues():
    assert [
        infer_exchange(c)
        for c in (
            "600000",
            "900901",
            "000001",
            "200002",
            "300750",
            "430047",
            "830799",
            "688981",
            "920002",
            "921001",
            "929999",
            "159915",
            "161005",
        )
    ] == ["SH", "SH", "SZ", "SZ", "SZ", "BJ", "BJ", "SH", "BJ", "BJ", "BJ", "SZ", "SZ"]
    assert [a_share_venue(c) for c in ("sh600000", "000001.XSHE", "830799")] == ["SSE", "SZSE", "BSE"]
    assert [normalize_venue(v) for v in ("binance", "SH", "XSHE", "bj", "okx ")] == [
        "BINANCE",
        "SSE",
        "SZSE",
        "BSE",
        "OKX",
    ]
    with pytest.raises(ValueError):
        normalize_venue("BIN ANCE")


@pytest.mark.parametrize(
    "text, venue, instrument",
    [
        ("BINANCE:BTCUSDT", "BINANCE", "BTCUSDT"),
        ("binance:btcusdt", "BINANCE", "BTCUSDT"),
        ("BINANCE_UM:BTCUSDT_240628", "BINANCE_UM", "BTCUSDT_240628"),
        ("OKX:BTC-USDT", "OKX", "BTC-USDT"),
        ("OKX:BTC-USDT-SWAP", "OKX", "BTC-USDT-SWAP"),
        ("DERIBIT:BTC-PERPETUAL", "DERIBIT", "BTC-PERPETUAL"),
        ("DERIBIT:BTC-28JUN24-60000-C", "DERIBIT", "BTC-28JUN24-60000-C"),
        ("BYBIT:BTCUSDT", "BYBIT", "BTCUSDT"),
        ("600000.SH", "SSE", "600000.SH"),
        ("sz000001", "SZSE", "000001.SZ"),
        ("000001.XSHE", "SZSE", "000001.SZ"),
        ("SSE:600000.SH", "SSE", "600000.SH"),
        ("SSE:000001", "SSE", "000001.SH"),  # the venue is the exchange: the SSE Composite index
        ("SH:600000", "SSE", "600000.SH"),
        ("BSE:830799", "BSE", "830799.BJ"),
    ],
)
def test_parse_instrument(text, venue, instrument):
    key = parse_instrument(text)
    assert key == InstrumentKey(venue, instrument)
    assert str(key) == f"{venue}:{instrument}"
    v, i = key  # a (venue, instrument) tuple
    assert (v, i) == (venue, instrument)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("OKX:BTCUSDT", "OKX"),  # Binance-style symbol under OKX
        ("BINANCE:BTC-USDT", "BINANCE"),  # OKX-style symbol under Binance
        ("DERIBIT:BTCUSD", "DERIBIT"),
        ("SZSE:600000.SH", "listed on SSE"),
        ("SSE:000001.SZ", "listed on SZSE"),
        ("BTCUSDT", "VENUE:INSTRUMENT"),
        ("BINANCE:", "BINANCE"),
        ("BINANCE:BTC|USDT", "BINANCE"),
        ("BINANCE:BTC,USDT", "BINANCE"),
        ("BINANCE:BTC[1]", "BINANCE"),
        ("BYBIT:A...B", "..."),
        ("", "VENUE:INSTRUMENT"),
    ],
)
def test_parse_instrument_rejects(bad, fragment):
    with pytest.raises(ValueError, match=None) as info:
        parse_instrument(bad)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "venue, instrument",
    [
        ("BINANCE", "BTCUSDT"),
        ("OKX", "BTC-USDT-SWAP"),
        ("DERIBIT", "BTC-28JUN24-60000-C"),
        ("SSE", "600000.SH"),
        ("SZSE", "000001.SZ"),
        ("BSE", "830799.BJ"),
        ("BINANCE_CM", "BTCUSD_PERP"),
        ("COINBASE", "BTC-USD"),
    ],
)
def test_partition_key_round_trip(venue, instrument):
    key = partition_key(venue, instrument)
    assert not any(c in key for c in "|,[]") and "..." not in key
    assert parse_partition_key(key) == (venue, instrument)
    assert parse_instrument(key) == (venue, instrument)
    assert normalize_instrument(venue, instrument).partition_key == key


def test_partition_key_normalizes_and_rejects():
    assert partition_key("binance", "btcusdt") == "BINANCE:BTCUSDT"
    assert partition_key("SH", "sh600000") == "SSE:600000.SH"
    for bad in ("BINANCE:btcusdt", "BINANCE", "A:B:C", "SSE:600000"):
        with pytest.raises(ValueError):
            parse_partition_key(bad)


# The one A-share rule: every domain's normalizer gives the same answer (they disagreed on 1xxxxx and
# 921-929).
A_SHARE_CASES = {
    "920118": "920118.BJ",
    "921001": "921001.BJ",
    "929999": "929999.BJ",  # BSE's 92 range
    "430047": "430047.BJ",
    "830799": "830799.BJ",
    "870001": "870001.BJ",  # BSE/NEEQ 4xxxxx, 8xxxxx
    "900901": "900901.SH",
    "600000": "600000.SH",
    "510300": "510300.SH",
    "000001": "000001.SZ",
    "300750": "300750.SZ",
    "200002": "200002.SZ",
    "159915": "159915.SZ",
    "161005": "161005.SZ",  # SZ ETFs and LOFs
    "113009": None,
    "127045": None,
    "100001": None,
    "131810": None,  # bonds/repos: both exchanges use 1xxxxx
    "700001": None,
    "730001": None,  # subscription codes
    # each exchange suffix wins over the digits
    "113009.SH": "113009.SH",
    "127045.SZ": "127045.SZ",
    "000001.SH": "000001.SH",
    "600000.SS": "600000.SH",
    "600000.XSHG": "600000.SH",
    "000001.XSHE": "000001.SZ",
    "830799.BJ": "830799.BJ",
    "sh600000": "600000.SH",
    "sz000001": "000001.SZ",
    "bj830799": "830799.BJ",
    "SHSE.600000": "600000.SH",
}


@pytest.mark.parametrize("raw, expected", A_SHARE_CASES.items())
def test_one_a_share_rule_in_every_normalizer(raw, expected):
    import polars as pl

    from marketdata_assets.sources.minute_csv.profiles import code_expr, normalize_code

    vectorized = pl.DataFrame({"c": [raw]}).select(code_expr(pl.col("c"))).item()
    if expected is None:
        with pytest.raises(ValueError, match="add .SH, .SZ or .BJ"):
            a_share_code(raw)
        with pytest.raises(ValueError, match="cannot infer the exchange"):
            normalize_code(raw)
        assert vectorized is None
    else:
        assert (a_share_code(raw), normalize_code(raw), vectorized) == (expected, expected, expected)
