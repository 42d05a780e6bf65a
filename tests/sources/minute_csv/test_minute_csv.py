"""Minute-bar CSV parsing: every built-in stored layout, rejects, file errors, batching."""

from __future__ import annotations

import calendar
import csv
import gzip
import json
from collections import Counter
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from typing import NamedTuple

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.replay.minute_csv import (
    big_file,
    expected,
    make_bars,
    render,
    trading_days,
    write_text,
)
from marketdata_assets.sources.minute_csv import reader as minute_csv
from marketdata_assets.sources.minute_csv.profiles import (
    BUILTIN_PROFILES,
    code_expr,
    code_from_filename,
    detect_profile,
    load_profiles,
    normalize_code,
    normalize_codes,
    profile_from_dict,
    profiles_fingerprint,
)
from marketdata_assets.sources.minute_csv.reader import (
    CsvFileError,
    Reject,
    UnknownHeaderError,
    file_time_range,
    iter_minute_batches,
    open_minute_csv,
    parse_times,
    read_minute_csv,
    write_rejects,
)

DAYS = trading_days(date(2026, 1, 5), 2)


def parse(path, **options):
    df, rejects = read_minute_csv(path, **options)
    return df, rejects


# ---- every layout, code style and time style ----------------------------------------------------


@pytest.mark.parametrize("layout", ["symbol_dt", "day_ohlcva", "cn_minute", "tushare", "generic"])
@pytest.mark.parametrize(
    "time_style", ["iso_seconds", "slash_minute", "iso_minute", "excel", "compact", "iso_t"]
)
def test_layouts_and_time_styles(tmp_path, layout, time_style):
    truth = make_bars("600000.SH", DAYS, seed=1)
    name = "sh600000.csv" if layout == "day_ohlcva" else "bars.csv"
    path = write_text(
        tmp_path / name, render(truth, layout, code_style="prefix_lower", time_style=time_style)
    )
    df, rejects = parse(path)
    assert rejects == []
    assert_frame_equal(df, expected(truth, layout))


@pytest.mark.parametrize(
    "code_style",
    ["suffix", "suffix_lower", "prefix_lower", "prefix_upper", "baostock", "bare", "joinquant", "yahoo"],
)
@pytest.mark.parametrize("code", ["600000.SH", "000001.SZ", "300750.SZ", "688981.SH"])
def test_code_styles(tmp_path, code_style, code):
    truth = make_bars(code, DAYS[:1], seed=2)
    path = write_text(tmp_path / "bars.csv", render(truth, "cn_minute", code_style=code_style))
    reader = open_minute_csv(path)
    df = reader.read()
    assert reader.rejects == []
    assert df["code"].unique().to_list() == [code]


def test_joinquant_explicit_exchange_wins_over_digits(tmp_path):
    truth = make_bars("000001.SH", DAYS[:1], seed=3, base_price=3200.0)  # the SSE Composite index
    path = write_text(tmp_path / "idx.csv", render(truth, "symbol_dt", code_style="joinquant"))
    df, _ = parse(path)
    assert df["code"].unique().to_list() == ["000001.SH"]


def test_chinese_utf8_bom_crlf(tmp_path):
    truth = make_bars("600000.SH", DAYS, seed=4)
    path = write_text(
        tmp_path / "cn.csv", render(truth, "cn_minute", time_style="slash_minute", line_end="\r\n"), bom=True
    )
    reader = open_minute_csv(path)
    df = reader.read()
    assert (reader.profile.name, reader.encoding, reader.rejects) == ("cn_minute", "utf-8-sig", [])
    assert_frame_equal(df, expected(truth, "cn_minute"))
    assert df["name"].unique().to_list() == ["浦发银行"]


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_chinese_gbk(tmp_path, encoding):
    truth = make_bars("000001.SZ", DAYS, seed=5)
    path = write_text(
        tmp_path / "cn.csv", render(truth, "cn_minute", code_style="bare", line_end="\r\n"), encoding=encoding
    )
    reader = open_minute_csv(path)
    df = reader.read()
    assert reader.encoding in ("gbk", "gb18030") and reader.rejects == []
    assert_frame_equal(df, expected(truth, "cn_minute"))
    assert df["name"][0] == "平安银行"


def test_header_is_order_and_case_insensitive(tmp_path):
    truth = make_bars("600000.SH", DAYS[:1], seed=6)
    order = [6, 2, 0, 5, 3, 1, 4, 7]  # tushare layout shuffled
    path = write_text(tmp_path / "t.csv", render(truth, "tushare", header_case=str.upper, column_order=order))
    reader = open_minute_csv(path)
    assert reader.profile.name == "tushare_stk_mins"
    assert_frame_equal(reader.read(), expected(truth, "tushare"))


def test_close_before_high_is_mapped_by_name(tmp_path):
    path = write_text(
        tmp_path / "s.csv",
        "symbol,dt,open,close,high,low,vol\nsh600000,2026-01-05 09:31:00,10.0,10.1,10.3,9.9,1200\n",
    )
    df, _ = parse(path)
    assert df.select("open", "high", "low", "close").row(0) == (10.0, 10.3, 9.9, 10.1)


# ---- units --------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["cn_minute", "symbol_dt", "day_ohlcva", "generic"])
@pytest.mark.parametrize("unit", ["shares", "lots"])
def test_volume_unit_auto_detected_and_normalized_to_shares(tmp_path, layout, unit):
    truth = make_bars("600000.SH", DAYS, seed=8)
    path = write_text(tmp_path / "sh600000.csv", render(truth, layout, volume_unit=unit))
    reader = open_minute_csv(path)
    df = reader.read()
    assert reader.volume_unit == unit, reader.volume_unit_reason
    assert_frame_equal(df, expected(truth, layout))


def test_volume_unit_from_amount_ratio_for_star_market(tmp_path):
    truth = make_bars("688981.SH", DAYS, seed=9, base_price=50.0)  # odd share counts: no board-lot signal
    for unit in ("shares", "lots"):
        path = write_text(tmp_path / f"{unit}.csv", render(truth, "cn_minute", volume_unit=unit))
        reader = open_minute_csv(path)
        df = reader.read()
        assert reader.volume_unit == unit and "amount" in reader.volume_unit_reason
        assert (df["volume"] - truth["volume"]).abs().max() < 1e-6


def test_tushare_profile_is_shares_and_yuan(tmp_path):
    truth = make_bars("600000.SH", DAYS[:1], seed=10)
    path = write_text(tmp_path / "t.csv", render(truth, "tushare"))
    reader = open_minute_csv(path)
    assert (reader.volume_unit, reader.volume_unit_reason) == ("shares", "profile")
    assert_frame_equal(reader.read(), expected(truth, "tushare"))


# ---- code from the file name --------------------------------------------------------------------


@pytest.mark.parametrize(
    "file_name,code",
    [
        ("sh600000.csv", "600000.SH"),
        ("600000.SH_2024.csv", "600000.SH"),
        ("SZ000001-1min.csv", "000001.SZ"),
        ("000001.XSHE.csv", "000001.SZ"),
        ("300750_202601.csv", "300750.SZ"),
        ("sz.000001.csv", "000001.SZ"),
    ],
)
def test_code_from_file_name(tmp_path, file_name, code):
    truth = make_bars(code, DAYS[:1], seed=11)
    path = write_text(tmp_path / file_name, render(truth, "day_ohlcva"))
    reader = open_minute_csv(path)
    assert reader.file_code == code
    assert_frame_equal(reader.read(), expected(truth, "day_ohlcva"))


def test_no_code_anywhere_is_a_file_error(tmp_path):
    path = write_text(tmp_path / "minute_bars.csv", render(make_bars(days=DAYS[:1]), "day_ohlcva"))
    with pytest.raises(CsvFileError, match="minute_bars.csv: no code column"):
        open_minute_csv(path)


def test_code_from_file_name_edge_cases():
    assert code_from_filename("202401_202402.csv") is None
    assert code_from_filename("bars.csv") is None
    assert code_from_filename("/data/2024/600000.SH.csv.gz") == "600000.SH"
    assert code_from_filename("000001_SH.csv") == "000001.SH"
    assert code_from_filename("000001-XSHE_1min.csv") == "000001.SZ"
    assert code_from_filename("2024_sz000001_1m.csv") == "000001.SZ"


# ---- code normalization -------------------------------------------------------------------------

CODES = {
    "600000.SH": "600000.SH",
    "sh600000": "600000.SH",
    "SH600000": "600000.SH",
    "600000": "600000.SH",
    "688981": "688981.SH",
    "000001.XSHE": "000001.SZ",
    "600000.XSHG": "600000.SH",
    "000001.XSHG": "000001.SH",
    "sz000001": "000001.SZ",
    "sh.600000": "600000.SH",
    "SHSE.600000": "600000.SH",
    "600000.SS": "600000.SH",
    "430047": "430047.BJ",
    "830799.BJ": "830799.BJ",
    "920118": "920118.BJ",
    "300750": "300750.SZ",
    "1": "000001.SZ",
    "510300": "510300.SH",
    "159915": "159915.SZ",
    " 600000.sh ": "600000.SH",
    "900901": "900901.SH",
    "200002": "200002.SZ",
}
BAD_CODES = ["", "abc", "60000X", "6000000", "600000.HK", "113009", "xx600000", "600000.SH.SH"]


def test_normalize_code_scalar_and_vectorized_agree():
    for raw, code in CODES.items():
        assert normalize_code(raw) == code, raw
    for raw in BAD_CODES:
        with pytest.raises(ValueError):
            normalize_code(raw)
    values = list(CODES) + BAD_CODES
    got = pl.DataFrame({"c": values}).select(code_expr(pl.col("c"))).to_series().to_list()
    assert got == list(CODES.values()) + [None] * len(BAD_CODES)


def test_normalize_codes_column_matches_scalar():
    values = pl.Series("c", [*CODES, *BAD_CODES, None] * 3)
    expected_codes = [*CODES.values(), *[None] * len(BAD_CODES), None] * 3
    assert normalize_codes(values).to_list() == expected_codes
    assert normalize_codes(values).name == "c"


def test_code_format_restricts_forms():
    assert normalize_code("600000.SH", "suffix") == "600000.SH"
    with pytest.raises(ValueError, match="expected suffix format"):
        normalize_code("sh600000", "suffix")
    got = pl.DataFrame({"c": ["600000.SH", "sh600000"]}).select(code_expr(pl.col("c"), "prefix")).to_series()
    assert got.to_list() == [None, "600000.SH"]


# ---- rejects ------------------------------------------------------------------------------------

BAD_FILE = """时间,代码,名称,开盘价,收盘价,最高价,最低价,成交量,成交额,涨幅,振幅
2026-01-05 09:31:00,600000.SH,浦发银行,10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%

2026-01-05 09:32:00,600000.SH,浦发银行,x10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%
2026-13-05 09:33:00,600000.SH,浦发银行,10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%
,600000.SH,浦发银行,10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%
2026-01-05 09:35:00,,浦发银行,10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%
2026-01-05 09:36:00,HK0700,腾讯,10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%
2026-01-05 09:37:00,600000.SH,浦发银行,10.0,inf,10.2,9.9,1,2,0.1%,0.2%
2026-01-05 09:38:00,600000.SH,浦发银行,,10.1,,9.9,nan,NULL,0.1%,0.2%
2026-01-05 09:39:00,600000.SH,浦发银行,10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%,extra
2026-01-05 09:40:00,600000.SH,浦发银行,10.0,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%,,
2026-01-05 09:41:00,bad,浦发银行,abc,10.1,10.2,9.9,1200,12000.0,0.1%,0.2%
2026-01-05 09:42:00,600000.SH,浦发银行,10.0,10.1,10.2,9.9,12"""


def test_rejects_have_exact_lines_and_reasons(tmp_path):
    path = write_text(tmp_path / "bad.csv", BAD_FILE)
    reader = open_minute_csv(path, profile="cn_minute")
    df = reader.read()
    got = [(r.line, r.reason) for r in reader.rejects]
    assert got == [
        (4, "bad number in open: 'x10.0'"),
        (5, "bad time: '2026-13-05 09:33:00'"),
        (6, "missing time"),
        (7, "missing code"),
        (8, "bad code: 'HK0700'"),
        (9, "bad number in close: 'inf'"),
        (11, "wrong field count: expected 11, got 12"),
        (13, "bad code: 'bad'; bad number in open: 'abc'"),
        (14, "wrong field count: expected 11, got 8"),
    ]
    assert all(r.file == str(path) for r in reader.rejects)
    assert reader.rejects[0].raw == BAD_FILE.splitlines()[3]
    assert reader.rejects[-1].raw == "2026-01-05 09:42:00,600000.SH,浦发银行,10.0,10.1,10.2,9.9,12"
    # kept: line 2, the null row (line 10) and the row with trailing empty separators (line 12)
    assert df["time"].dt.minute().to_list() == [31, 38, 40]
    assert df.row(1)[3:] == (None, None, 9.9, 10.1, None, None)
    assert reader.reject_count == 9 and reader.rows == 3
    # per code and day: only the rejects whose code and time parsed (not a wrong field count's shifted fields)
    assert reader.rejected_days.rows() == [
        ("600000.SH", date(2026, 1, 5), "bad number in close", 1),
        ("600000.SH", date(2026, 1, 5), "bad number in open", 1),
    ]


def test_truncated_last_line_rejects_just_that_line(tmp_path):
    truth = make_bars("600000.SH", DAYS, seed=12)
    text = render(truth, "cn_minute")
    cut = text.rstrip("\n")
    cut = cut[: cut.rfind("\n") + 1 + 25]  # the last line cut after 25 characters
    path = write_text(tmp_path / "cut.csv", cut)
    df, rejects = parse(path)
    assert [(r.line, r.reason) for r in rejects] == [
        (truth.height + 1, "wrong field count: expected 11, got 2")
    ]
    assert_frame_equal(df, expected(truth, "cn_minute").head(truth.height - 1))


def test_truncated_inside_a_multibyte_character(tmp_path):
    truth = make_bars("600000.SH", DAYS[:1], seed=13)
    data = render(truth, "cn_minute").encode("utf-8")
    data = data[: data.rstrip(b"\n").rfind(b"\n") + 1 + len("2026-01-05 15:00:00,600000.SH,浦".encode()) - 1]
    path = tmp_path / "cut.csv"
    path.write_bytes(data)
    reader = open_minute_csv(path)
    df = reader.read()
    assert reader.encoding == "utf-8-sig"
    assert [(r.line, r.reason) for r in reader.rejects] == [
        (truth.height + 1, "line can't be decoded as utf-8-sig")
    ]
    assert df.height == truth.height - 1


def test_utf8_file_with_one_corrupt_line(tmp_path):
    truth = make_bars("600000.SH", DAYS[:1], seed=14)
    lines = render(truth, "cn_minute").encode("utf-8").split(b"\n")
    lines[5] = lines[5].replace("浦发".encode(), b"\xff\xfe")
    path = tmp_path / "corrupt.csv"
    path.write_bytes(b"\n".join(lines))
    reader = open_minute_csv(path)
    df = reader.read()
    assert reader.encoding == "utf-8-sig"
    assert [r.line for r in reader.rejects] == [6]
    assert df.height == truth.height - 1 and df["name"].unique().to_list() == ["浦发银行"]


def test_quoted_fields(tmp_path):
    path = write_text(
        tmp_path / "q.csv",
        "ts_code,trade_time,open,close,high,low,vol,amount\n"
        '"600000.SH","2026-01-05 09:31:00","10.0","10.1","10.2","9.9","1200","1,212.5"\n'
        '"600000.SH","2026-01-05 09:32:00",10.0,10.1,10.2,9.9,1300,1313.0\n',
    )
    df, rejects = parse(path)
    assert rejects == []
    assert df["amount"].to_list() == [1212.5, 1313.0]


def test_date_and_clock_columns_tdx_style_gbk_tab(tmp_path):
    text = (
        "600000 浦发银行 1分钟线 前复权\r\n"  # TDX title line before the header
        "      日期\t    时间\t    开盘\t    最高\t    最低\t    收盘\t    成交量\t    成交额\r\n"
        "2026/01/05\t0931\t10.00\t10.20\t9.90\t10.10\t1200\t1212000.00\r\n"
        "2026/01/05\t1500\t10.10\t10.20\t10.00\t10.00\t1300\t1313000.00\r\n"
        "数据来源:通达信\r\n"
    )
    path = write_text(tmp_path / "SH#600000.txt", text, encoding="gbk")
    reader = open_minute_csv(path)
    df = reader.read()
    assert (reader.profile.name, reader.separator, reader.file_code, reader.header_line) == (
        "cn_date_clock",
        "\t",
        "600000.SH",
        2,
    )
    assert df["time"].to_list() == [datetime(2026, 1, 5, 9, 31), datetime(2026, 1, 5, 15, 0)]
    assert [(r.line, r.reason) for r in reader.rejects] == [(5, "wrong field count: expected 8, got 1")]


def test_time_with_utc_offset_becomes_beijing_wall_clock(tmp_path):
    path = write_text(
        tmp_path / "t.csv",
        "ts_code,trade_time,open,close,high,low,vol,amount\n"
        "600000.SH,2026-01-05T01:31:00Z,1,1,1,1,100,100\n"
        "600000.SH,2026-01-05 09:32:00+08:00,1,1,1,1,100,100\n"
        "600000.SH,2026-01-05T02:33:00+0100,1,1,1,1,100,100\n",
    )
    df, _ = parse(path)
    assert df["time"].dt.strftime("%H:%M").to_list() == ["09:31", "09:32", "09:33"]


# ---- whole-file errors --------------------------------------------------------------------------


def test_wrong_encoding_names_the_file(tmp_path):
    lines = ["symbol,dt,open,close,high,low,vol,name"]
    lines += [f"sh600000,2026-01-05 09:{m:02d}:00,1,1,1,1,100,Caf\x80" for m in range(31, 60)]
    path = tmp_path / "latin.csv"
    path.write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(CsvFileError) as error:
        open_minute_csv(path)
    assert str(path) in str(error.value) and "cannot decode" in str(error.value)
    assert error.value.line == 2


def test_utf16_file_is_a_file_error(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes("ts_code,trade_time,open,close,high,low,vol,amount\n".encode("utf-16"))
    with pytest.raises(CsvFileError, match="u16.csv, line 1: UTF-16"):
        open_minute_csv(path)


def test_utf16_without_bom_is_a_file_error(tmp_path):
    path = tmp_path / "u16le.csv"
    path.write_bytes("ts_code,trade_time,open,close,high,low,vol,amount\n".encode("utf-16-le"))
    with pytest.raises(CsvFileError, match="u16le.csv, line 1: NUL bytes in the header"):
        open_minute_csv(path)


def test_missing_required_column_names_file_headers_and_profiles(tmp_path):
    path = write_text(
        tmp_path / "novol.csv",
        "时间,代码,名称,开盘价,收盘价,最高价,最低价,成交额\n"
        "2026-01-05 09:31:00,600000.SH,浦发银行,1,1,1,1,100\n",
    )
    with pytest.raises(UnknownHeaderError) as error:
        open_minute_csv(path)
    message = str(error.value)
    assert str(path) in message and "line 1" in message
    assert "'成交额'" in message and "cn_minute" in message and "tushare_stk_mins" in message
    assert "closest profile 'cn_minute' is missing volume" in message
    assert error.value.headers[0] == "时间"


def test_unknown_header(tmp_path):
    path = write_text(tmp_path / "x.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(
        UnknownHeaderError, match=r"x.csv, line 1: header not recognized; columns seen: \['a', 'b', 'c'\]"
    ):
        open_minute_csv(path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(CsvFileError, match="empty.csv: empty file"):
        open_minute_csv(path)


def test_header_only_file_has_no_rows(tmp_path):
    path = write_text(tmp_path / "h.csv", "ts_code,trade_time,open,close,high,low,vol,amount\n")
    df, rejects = parse(path)
    assert df.height == 0 and df.schema == minute_csv.MINUTE_SCHEMA and rejects == []


def test_missing_file(tmp_path):
    with pytest.raises(CsvFileError, match="nope.csv: file not found"):
        open_minute_csv(tmp_path / "nope.csv")


# ---- dirty but valid ----------------------------------------------------------------------------


def test_dirty_but_valid_rows_are_kept_unchanged(tmp_path):
    truth = pl.concat(
        [
            make_bars("600000.SH", DAYS, seed=15, dirty=True, float32_noise=True),
            make_bars("000001.SZ", DAYS, seed=16, negative=True, dirty=True),
        ]
    )
    path = write_text(tmp_path / "dirty.csv", render(truth, "cn_minute"))
    df, rejects = parse(path)
    assert rejects == []
    assert_frame_equal(df, truth)
    assert df.filter(pl.col("open") == 0).height == 2 * len(DAYS)
    assert df.filter(pl.col("close") < 0).height > 0
    assert df.filter(pl.col("volume") == 0).height == 4
    assert df["close"].null_count() == 4 and df["amount"].null_count() == 4
    assert df["open"].to_list()[:3] == truth["open"].to_list()[:3]  # float32 noise preserved bit for bit


# ---- batching -----------------------------------------------------------------------------------


def test_batches_give_the_same_result_as_one_batch(tmp_path):
    path, truth = big_file(tmp_path / "big.csv", layout="cn_minute", volume_unit="lots", line_end="\r\n")
    with open(path, "a", encoding="utf-8") as fh:  # some rejects spread through the file
        fh.write("2026-02-30 09:31:00,600000.SH,浦发银行,1,1,1,1,1,1,0,0\r\ngarbage\r\n")
    one = open_minute_csv(path)
    whole = list(one.batches())
    many = open_minute_csv(path, block_bytes=4096)
    batches = list(many.batches())
    assert len(whole) == 1 and len(batches) > 20
    assert_frame_equal(pl.concat(batches), whole[0])
    assert_frame_equal(whole[0], truth)
    assert many.rejects == one.rejects and [r.line for r in one.rejects] == [
        truth.height + 2,
        truth.height + 3,
    ]
    assert max(b.height for b in batches) < 100


def test_iter_minute_batches_collects_rejects(tmp_path):
    path = write_text(tmp_path / "bad.csv", BAD_FILE)
    rejects: list[Reject] = []
    frames = list(iter_minute_batches(path, rejects=rejects, block_bytes=1024))
    assert sum(f.height for f in frames) == 3 and len(rejects) == 9


def test_ascii_sample_then_gbk_switches_encoding(tmp_path, monkeypatch):
    monkeypatch.setattr(minute_csv, "SAMPLE_BYTES", 2048)
    lines = ["symbol,dt,open,close,high,low,vol,name"]
    lines += [f"sh600000,2026-01-05 09:{m % 60:02d}:00,1,1,1,1,100,PF" for m in range(100)]
    lines += [f"sh600000,2026-01-06 09:{m % 60:02d}:00,1,1,1,1,100,浦发银行" for m in range(100)]
    profile = {
        "name": "with_name",
        "columns": {
            "symbol": "code",
            "dt": "time",
            "open": "open",
            "close": "close",
            "high": "high",
            "low": "low",
            "vol": "volume",
            "name": "name",
        },
    }
    path = write_text(tmp_path / "mixed.csv", "\n".join(lines) + "\n", encoding="gbk")
    reader = open_minute_csv(path, profile=profile, block_bytes=4096)
    df = reader.read()
    assert reader.rejects == [] and reader.encoding == "gbk"
    assert df["name"].unique(maintain_order=True).to_list() == ["PF", "浦发银行"]


def test_gzip_file(tmp_path):
    truth = make_bars("600000.SH", DAYS[:1], seed=17)
    path = tmp_path / "600000.SH.csv.gz"
    path.write_bytes(gzip.compress(render(truth, "day_ohlcva").encode()))
    df, _ = parse(path)
    assert_frame_equal(df, expected(truth, "day_ohlcva"))


# ---- file_time_range ----------------------------------------------------------------------------


def test_file_time_range_newest_first_across_months(tmp_path):
    truth = make_bars("600000.SH", trading_days(date(2026, 1, 29), 4), seed=18)
    path = write_text(tmp_path / "t.csv", render(truth.reverse(), "tushare"))
    with open(path, "a") as fh:
        fh.write("600000.SH,not a time,1,1,1,1,1,1\n")
    low, high, months = file_time_range(path)
    assert (low, high, months) == (
        datetime(2026, 1, 29, 9, 31),
        datetime(2026, 2, 3, 15, 0),
        ["2026-01", "2026-02"],
    )
    assert file_time_range(path, "tushare_stk_mins", block_bytes=2048) == (low, high, months)


def test_file_time_range_of_header_only_file(tmp_path):
    path = write_text(tmp_path / "h.csv", "ts_code,trade_time,open,close,high,low,vol,amount\n")
    assert file_time_range(path) == (None, None, [])


# ---- rejects file, profiles ---------------------------------------------------------------------


def test_write_rejects(tmp_path):
    path = write_text(tmp_path / "bad.csv", BAD_FILE)
    _, rejects = parse(path)
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    out = write_rejects(rejects, quarantine)
    assert out == quarantine / "bad.csv.rejects.csv"
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["line", "reason", "raw", "file"]
    assert [(int(r[0]), r[1], r[2]) for r in rows[1:]] == [(r.line, r.reason, r.raw) for r in rejects]
    assert write_rejects([], tmp_path / "none.csv").read_bytes() == b"line,reason,raw,file\r\n"


def test_custom_profile_from_json(tmp_path):
    config = tmp_path / "profiles.json"
    config.write_text(
        json.dumps(
            {
                "profiles": [
                    {
                        "name": "vendor_x",
                        "columns": {
                            "Ticker": "code",
                            "BarTime": "time",
                            "O": "open",
                            "H": "high",
                            "L": "low",
                            "C": "close",
                            "V": "volume",
                            "Turnover": "amount",
                        },
                        "time_formats": ["%d.%m.%Y %H:%M"],
                        "volume_unit": "lots",
                        "amount_unit": "thousands",
                        "separator": ";",
                    }
                ]
            }
        )
    )
    profiles = load_profiles(config)
    assert profiles[0].name == "vendor_x" and len(profiles) == len(BUILTIN_PROFILES) + 1
    path = write_text(
        tmp_path / "x.csv",
        "ticker;bartime;o;h;l;c;v;turnover\nsz000001;05.01.2026 09:31;10;11;9;10.5;12;12.6\n",
    )
    df, rejects = parse(path, profiles=profiles)
    assert rejects == []
    assert df.row(0) == (
        datetime(2026, 1, 5, 9, 31),
        "000001.SZ",
        None,
        10.0,
        11.0,
        9.0,
        10.5,
        1200.0,
        12600.0,
    )


def test_profile_validation_errors():
    with pytest.raises(ValueError, match="unknown target 'price'"):
        profile_from_dict({"name": "p", "columns": {"px": "price"}})
    with pytest.raises(ValueError, match="no 'time' column"):
        profile_from_dict({"name": "p", "columns": {"o": "open"}})
    with pytest.raises(ValueError, match="unknown keys"):
        profile_from_dict({"name": "p", "columns": {"t": "time"}, "volumeunit": "lots"})
    with pytest.raises(ValueError, match="volume_unit"):
        profile_from_dict({"name": "p", "columns": {"t": "time"}, "volume_unit": "hands"})
    with pytest.raises(ValueError, match="duplicate"):
        load_profiles([{"name": "p", "columns": {"t": "time"}}, {"name": "p", "columns": {"t": "time"}}])


def test_every_documented_header_is_detected():
    headers = {
        "symbol,dt,open,close,high,low,vol": "symbol_dt",
        "day,open,high,low,close,volume,amount": "day_ohlcva",
        "时间,代码,名称,开盘价,收盘价,最高价,最低价,成交量,成交额,涨幅,振幅": "cn_minute",
        "ts_code,trade_time,open,close,high,low,vol,amount": "tushare_stk_mins",
        "\ufeffTS_CODE , Trade_Time,OPEN,close,high,low,vol,amount": "tushare_stk_mins",
        "date,time,open,high,low,close,volume,amount": "generic_date_clock",
        "datetime,open,close,high,low,volume,money": "generic",
    }
    for header, name in headers.items():
        assert detect_profile(header.split(",")).profile.name == name, header


# ---- time parsing -------------------------------------------------------------------------------

TIMES = {
    "2026-01-05 09:31:00": datetime(2026, 1, 5, 9, 31),
    "2026/01/05 09:31": datetime(2026, 1, 5, 9, 31),
    "2026/1/5 9:31": datetime(2026, 1, 5, 9, 31),
    "2026-01-05 09:31": datetime(2026, 1, 5, 9, 31),
    "20260105 093100": datetime(2026, 1, 5, 9, 31),
    "202601050931": datetime(2026, 1, 5, 9, 31),
    "2026-01-05T09:31:00": datetime(2026, 1, 5, 9, 31),
    "2026-01-05 09:31:00.000": datetime(2026, 1, 5, 9, 31),
    "2026-01-05T01:31:00Z": datetime(2026, 1, 5, 9, 31),
    "2026.01.05 09:31": datetime(2026, 1, 5, 9, 31),
    "2026-01-05 9:31:00": datetime(2026, 1, 5, 9, 31),
    "2026-01-05 09:3": None,
    "2026-01-05 09:31:0": None,
    "2026/01/05 09:3": None,
    "2026-02-30 09:31:00": None,
    "2026-01-05 24:00:00": None,
    "2026-01-05": None,
    "1767576660": None,
    "abc": None,
    "": None,
}


@pytest.mark.parametrize("first", ["2026-01-05 09:31:00", "2026/01/05 09:31", "20260105 093100"])
def test_parse_times_fast_path_agrees_with_the_general_parser(first):
    values = pl.Series([first, *TIMES])  # the first value picks the fast path
    got = parse_times(values).to_list()[1:]
    assert got == list(TIMES.values())
    assert parse_times(values.tail(len(TIMES))).to_list() == list(TIMES.values())


def test_explicit_time_formats_in_order():
    values = pl.Series(["05.01.2026 09:31", "2026-01-05 09:32:00", "x"])
    got = parse_times(values, ("%d.%m.%Y %H:%M", "auto")).to_list()
    assert got == [datetime(2026, 1, 5, 9, 31), datetime(2026, 1, 5, 9, 32), None]


# ---- bad-input corpus ---------------------------------------------------------------------------
# One table: each case is a whole-file error (CsvFileError naming the file, raised by every reading
# path: open/read and file_time_range), per-line rejects with a specific counted reason and the good
# rows of the file kept, or a documented, counted acceptance. A good file lies beside every case and
# must load whatever the case does (one bad file never stops the others).
# Cases elsewhere in this file, not repeated here: empty / blank / BOM-only files, header only,
# missing file, UTF-16 with and without BOM, latin-1 bytes, unknown header, missing volume column,
# BAD_FILE's rejects (bad number, bad month, missing time, missing/bad code, inf, extra field,
# trailing empty fields, null tokens), truncated last line and multi-byte character, one corrupt
# UTF-8 line, a quoted "1,212.5", TDX title and trailer lines, UTC offsets, dirty-but-valid rows.

GOOD = make_bars("600000.SH", DAYS[:1], seed=30)  # 240 bars: 09:31-11:30, 13:01-15:00
GOOD_TIMES = GOOD["time"].to_list()


class Err(NamedTuple):
    fragment: str
    span: bool = True  # file_time_range (the big-file path) raises too; False: only the full read can tell


class Rej(NamedTuple):
    count: int
    fragment: str  # in every reject's reason
    rows: int


class Ok(NamedTuple):
    rows: int
    why: str
    check: Callable[[pl.DataFrame], bool] | None = None


class Case(NamedTuple):
    id: str
    data: bytes
    expect: Err | Rej | Ok
    name: str = "600000.SH.csv"
    profiles: list | None = None


def _table(layout: str = "tushare", truth: pl.DataFrame = GOOD) -> list[list[str]]:
    return [line.split(",") for line in render(truth, layout).splitlines()]


def _bytes(rows: list, sep: str = ",", end: str = "\n", encoding: str = "utf-8", bom: bool = False) -> bytes:
    text = end.join(row if isinstance(row, str) else sep.join(row) for row in rows) + end
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


def _retimed(
    fmt: Callable[[datetime], str], layout: str = "tushare", only: Collection[int] | None = None
) -> bytes:
    rows = _table(layout)
    column = rows[0].index({"tushare": "trade_time", "cn_minute": "时间"}[layout])
    for i, (row, t) in enumerate(zip(rows[1:], GOOD_TIMES)):
        if only is None or i in only:
            row[column] = fmt(t)
    return _bytes(rows)


def _edited(edits: dict[int, Callable[[list[str]], list[str] | str]], **options) -> bytes:
    """Tushare rows (fields: ts_code, trade_time, open, close, high, low, vol, amount), data row i -> edit."""
    rows = _table()
    for i, edit in edits.items():
        rows[i + 1] = edit(list(rows[i + 1]))
    return _bytes(rows, **options)


def _set(**fields) -> Callable[[list[str]], list[str]]:
    index = {"ts_code": 0, "trade_time": 1, "open": 2, "close": 3, "high": 4, "low": 5, "vol": 6, "amount": 7}

    def edit(row: list[str]) -> list[str]:
        for key, value in fields.items():
            row[index[key]] = value
        return row

    return edit


def _inserted(at: int, *lines: str) -> bytes:
    rows = _table()
    rows[at + 1 : at + 1] = list(lines)
    return _bytes(rows)


def _date_clock(date_fmt: str) -> bytes:
    rows = ["date,time,open,high,low,close,volume,amount"]
    rows += [
        f"{r['time']:{date_fmt}},{r['time']:%H:%M},{r['open']},{r['high']},{r['low']},{r['close']},"
        f"{r['volume']:.0f},{r['amount']}"
        for r in GOOD.iter_rows(named=True)
    ]
    return _bytes(rows)


def _excel_serial(t: datetime) -> str:
    return f"{(t - datetime(1899, 12, 30)) / timedelta(days=1):.6f}"


def _epoch(t: datetime) -> int:
    return calendar.timegm((t - timedelta(hours=8)).timetuple())  # Beijing wall clock -> UTC seconds


def _gzip_cut() -> bytes:
    data = gzip.compress(render(GOOD, "tushare").encode())
    return data[: len(data) // 2]


AMPM = {
    "name": "ampm",
    "columns": {
        "ts_code": "code",
        "trade_time": "time",
        "open": "open",
        "close": "close",
        "high": "high",
        "low": "low",
        "vol": "volume",
        "amount": "amount",
    },
    "time_formats": ["%Y-%m-%d %I:%M:%S %p", "auto"],
    "volume_unit": "shares",
}  # AM/PM, else 24-hour
NEVER = "time column 'trade_time' of profile 'tushare_stk_mins' never parses: "

CORPUS = [
    # -- time columns that never parse: the file's error (issue 15 item 3) --
    Case(
        "dates_mm_dd_yyyy",
        _retimed(lambda t: f"{t:%m/%d/%Y %H:%M}"),
        Err(NEVER + "'01/05/2026 09:31', '01/05/2026 09:32', '01/05/2026 09:33' ... (0 of 240 rows)"),
    ),
    Case(
        "dates_dd_mm_yyyy", _retimed(lambda t: f"{t:%d-%m-%Y %H:%M:%S}"), Err(NEVER + "'05-01-2026 09:31:00'")
    ),
    Case("excel_serials", _retimed(_excel_serial), Err(NEVER + "'46027.396528'")),
    Case("unix_epoch_ms", _retimed(lambda t: str(_epoch(t) * 1000)), Err(NEVER + "'1767576660000'")),
    Case("unix_epoch_seconds", _retimed(lambda t: str(_epoch(t))), Err(NEVER + "'1767576660'")),
    Case(
        "dates_without_time_daily_file",
        _retimed(lambda t: f"{t:%Y-%m-%d}"),
        Err(NEVER + "'2026-01-05' ... (0 of 240 rows)"),
    ),
    Case(
        "date_and_clock_mm_dd_yyyy",
        _date_clock("%m/%d/%Y"),
        Err("time column 'date'+'time' of profile 'generic_date_clock' never parses: '01/05/2026 09:31'"),
    ),
    Case(
        "am_pm_no_profile_reads_it",
        _retimed(lambda t: f"{t:%Y-%m-%d %I:%M:%S %p}"),
        Err(NEVER + "'2026-01-05 09:31:00 AM'"),
    ),
    Case(
        "time_column_empty",
        _retimed(lambda t: ""),
        Err("time column 'trade_time' of profile 'tushare_stk_mins' is empty in every row (0 of 240 rows)"),
    ),
    # -- implausible clocks: the file's error (issue 15 item 9) --
    Case(
        "twelve_hour_clock_without_am_pm",
        _retimed(lambda t: f"{t:%Y-%m-%d %I:%M:%S}"),
        Err(
            "120 bars at 01:00-03:00 and none from 12:00 on 1 day, first '2026-01-05 01:01:00': "
            "looks like a 12-hour clock without AM/PM (A-share"
        ),
    ),
    Case(
        "twelve_hour_clock_excel_style_cn",
        _retimed(lambda t: f"{t.year}/{t.month}/{t.day} {t.hour % 12}:{t:%M}", layout="cn_minute"),
        Err("time column '时间' of profile 'cn_minute': 120 bars at 01:00-03:00"),
    ),
    Case(
        "utc_times_without_offset",
        _retimed(lambda t: f"{t - timedelta(hours=8):%Y-%m-%d %H:%M:%S}"),
        Err("looks like a 12-hour clock without AM/PM, or UTC times without an offset"),
    ),
    # -- no row readable for another reason: the file's error, never "done" with 0 rows --
    Case(
        "rows_use_another_delimiter",
        _bytes([_table()[0]] + [";".join(r) for r in _table()[1:]]),
        Err(
            "no row can be read: all 240 data rows were rejected (240 wrong field count); "
            "first on line 2: wrong field count: expected 8, got 1"
        ),
    ),
    Case(
        "every_code_unreadable",
        _edited({i: _set(ts_code="HK.00700") for i in range(240)}),
        Err("no row can be read: all 240 data rows were rejected (240 bad code)", span=False),
    ),
    # -- bytes that are not a readable CSV --
    Case("gzip_truncated", _gzip_cut(), Err("cannot read the file"), name="600000.SH.csv.gz"),
    Case(
        "plain_text_named_gz",
        render(GOOD, "tushare").encode(),
        Err("cannot read the file: Not a gzipped file"),
        name="600000.SH.csv.gz",
    ),
    Case(
        "xlsx_saved_as_csv",
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml" + bytes(200),
        Err("line 1: NUL bytes in the header"),
    ),
    Case(
        "html_error_page",
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n",
        Err("header not recognized; columns seen: ['<!DOCTYPE html>']"),
    ),
    # -- per-line rejects, counted, the good rows kept --
    Case(
        "prices_as_text",
        _edited({i: _set(open="ten") for i in (3, 50, 200)}),
        Rej(3, "bad number in open: 'ten'", 237),
    ),
    Case(
        "mixed_date_formats",
        _retimed(lambda t: f"{t:%m/%d/%Y %H:%M}", only=range(100, 105)),
        Rej(5, "bad time: '01/05/2026 ", 235),
    ),
    Case(
        "thousands_separator_unquoted",
        _edited({7: _set(amount="1,234,567.5")}),
        Rej(1, "wrong field count: expected 8, got 10", 239),
    ),
    Case(
        "header_repeated_mid_file",
        _inserted(120, "ts_code,trade_time,open,close,high,low,vol,amount"),
        Rej(1, "bad time: 'trade_time'; bad code: 'ts_code'", 240),
    ),
    Case("summary_line_at_the_end", _inserted(240, "Total: 240 rows"), Rej(1, "expected 8, got 1", 240)),
    Case("row_missing_a_field_mid_file", _edited({60: lambda r: r[:-1]}), Rej(1, "expected 8, got 7", 239)),
    Case(
        "undecodable_bytes_in_one_row",
        _bytes(_table()).replace(b"600000.SH,2026-01-05 09:41", b"600000\xff\xfe,2026-01-05 09:41"),
        Rej(1, "line can't be decoded as utf-8-sig", 239),
    ),
    Case(
        "nul_byte_in_a_code",
        _edited({20: _set(ts_code="600000.SH\x00")}),
        Rej(1, "bad code: '600000.SH\x00'", 239),
    ),
    Case(
        "volume_overflows_to_inf",
        _edited({30: _set(vol="1e400")}),
        Rej(1, "bad number in volume: '1e400'", 239),
    ),
    Case(
        "very_long_line", _inserted(100, "x" * 300_000), Rej(1, "wrong field count: expected 8, got 1", 240)
    ),
    # -- documented, counted acceptances: kept unchanged, cleaning belongs to the aggregates --
    Case(
        "negative_volume",
        _edited({5: _set(vol="-100")}),
        Ok(240, "kept; the K-line's WHERE volume >= 0 drops it"),
    ),
    Case(
        "high_below_low",
        _edited({6: _set(high="9.0", low="11.0")}),
        Ok(240, "kept; the K-line's WHERE drops it"),
    ),
    Case(
        "nan_prices",
        _edited({7: _set(close="NaN"), 8: _set(open="nan")}),
        Ok(240, "null tokens become NULL", lambda df: df["close"].null_count() == 1),
    ),
    Case(
        "zero_prices",
        _edited({9: _set(open="0", close="0", high="0", low="0")}),
        Ok(240, "kept like open = 0"),
    ),
    Case(
        "times_out_of_session",
        _inserted(0, "600000.SH,2026-01-05 08:00:00,10,10,10,10,100,1000").replace(
            b"\n600000.SH,2026-01-05 15:00:00", b"\n600000.SH,2026-01-05 20:00:00"
        ),
        Ok(
            241,
            "kept; only a 01:00-03:00 day without afternoon is an error",
            lambda df: df["time"].dt.hour().max() == 20,
        ),
    ),
    Case("morning_only_half_day", _bytes(_table()[:121]), Ok(120, "no 01:00-03:00 bars: no 12-hour clock")),
    Case(
        "duplicate_minutes",
        _inserted(50, *[",".join(r) for r in _table()[1:4]]),
        Ok(243, "kept; the loader keeps the last of a repeated bar"),
    ),
    Case(
        "code_column_disagrees_with_file_name",
        _bytes(_table()),
        Ok(
            240,
            "the code column wins over the name",
            lambda df: df["code"].unique().to_list() == ["600000.SH"],
        ),
        name="000002.SZ.csv",
    ),
    Case("crlf_line_ends", _bytes(_table(), end="\r\n"), Ok(240, "CRLF stripped")),
    Case("cr_only_line_ends", _bytes(_table(), end="\r"), Ok(240, "old Mac line ends")),
    Case("utf8_bom_english_header", _bytes(_table(), bom=True), Ok(240, "BOM dropped")),
    Case(
        "quoted_and_padded_fields",
        _bytes([' "' + '" , "'.join(r) + '" ' for r in _table()]),
        Ok(240, "quotes and spaces trimmed", lambda df: df["code"][0] == "600000.SH"),
    ),
    Case(
        "extra_unknown_columns",
        _bytes([r + [("pct_chg" if i == 0 else "0.1")] for i, r in enumerate(_table())]),
        Ok(240, "columns no profile maps are ignored"),
    ),
    Case("tab_separated", _bytes(_table(), sep="\t"), Ok(240, "separator detected from the header")),
    Case("semicolon_separated", _bytes(_table(), sep=";"), Ok(240, "separator detected from the header")),
    Case(
        "scientific_notation_volume",
        _edited({11: _set(vol="1.2e+05")}),
        Ok(240, "a number", lambda df: df["volume"][11] == 120000.0),
    ),
    Case("no_final_line_end", _bytes(_table())[:-1], Ok(240, "last line complete")),
    Case(
        "am_pm_with_a_profile_that_reads_it",
        _retimed(lambda t: f"{t:%Y-%m-%d %I:%M:%S %p}"),
        Ok(
            240,
            "%p read by the profile: afternoon at 13:01-15:00",
            lambda df: df["time"].to_list() == GOOD_TIMES,
        ),
        profiles=[AMPM],
    ),
]


def _load_dir(directory, profiles) -> dict:
    """Read every file of a landing directory as the loader does: a CsvFileError sets one file aside."""
    out = {}
    for path in sorted(directory.iterdir()):
        try:
            reader = open_minute_csv(path, profiles)
            out[path.name] = (reader.read(), reader)
        except CsvFileError as error:
            out[path.name] = error
    return out


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_bad_input_corpus(tmp_path, case):
    beside = make_bars("000001.SZ", DAYS, seed=31)
    write_text(tmp_path / "good_000001.SZ.csv", render(beside, "tushare"))
    path = tmp_path / case.name
    path.write_bytes(case.data)
    profiles = load_profiles(case.profiles) if case.profiles else None
    outcome = _load_dir(tmp_path, profiles)

    good_frame, _ = outcome["good_000001.SZ.csv"]
    assert_frame_equal(good_frame, expected(beside, "tushare"))
    result = outcome[case.name]
    expect = case.expect
    if isinstance(expect, Err):
        assert isinstance(result, CsvFileError), f"expected a file error, got {result}"
        assert str(result).startswith(str(path)) and expect.fragment in str(result), str(result)
        if expect.span:
            with pytest.raises(CsvFileError) as span_error:
                file_time_range(path, profiles=profiles)
            assert str(span_error.value) == str(result)
        return
    assert not isinstance(result, CsvFileError), str(result)
    frame, reader = result
    if isinstance(expect, Rej):
        assert reader.reject_count == expect.count and len(reader.rejects) == expect.count
        assert all(expect.fragment in r.reason and r.file == str(path) for r in reader.rejects), (
            reader.rejects
        )
        assert frame.height == expect.rows == reader.rows
    else:
        assert (frame.height, reader.reject_count) == (expect.rows, 0), reader.rejects
        assert expect.check is None or expect.check(frame)


def test_corpus_size():
    kinds = Counter(type(case.expect).__name__ for case in CORPUS)
    assert len({case.id for case in CORPUS}) == len(CORPUS) >= 25, kinds


# ---- whole-file time checks, file reading errors, profile fingerprints ----------------------------


def _mdy_file(path, days: int = 20, garbage_first: int = 0):
    truth = make_bars("600000.SH", trading_days(date(2026, 1, 5), days), seed=32)
    rows = [line.split(",") for line in render(truth, "tushare").splitlines()]
    for row in rows[1:]:
        row[1] = datetime.fromisoformat(row[1]).strftime("%m/%d/%Y %H:%M")
    lines = [",".join(rows[0]), *["garbage"] * garbage_first, *(",".join(r) for r in rows[1:])]
    path.write_text("\n".join(lines) + "\n")
    return truth


def test_time_column_that_never_parses_is_found_at_open(tmp_path, monkeypatch):
    monkeypatch.setattr(minute_csv, "SAMPLE_BYTES", 8192)
    path = tmp_path / "600000.SH.csv"
    _mdy_file(path)
    with pytest.raises(minute_csv.TimeColumnError) as error:
        open_minute_csv(path)  # before a single batch: nothing of the file is read as rows
    message = str(error.value)
    assert message.startswith(
        f"{path}: time column 'trade_time' of profile 'tushare_stk_mins' never parses: "
        "'01/05/2026 09:31', '01/05/2026 09:32', '01/05/2026 09:33' ... (0 of the first "
    )
    assert "add a profile with time_formats" in message
    assert (error.value.column, error.value.profile, error.value.samples[0]) == (
        "'trade_time'",
        "tushare_stk_mins",
        "01/05/2026 09:31",
    )


def test_time_column_that_never_parses_after_the_sample_fails_the_read(tmp_path, monkeypatch):
    monkeypatch.setattr(minute_csv, "SAMPLE_BYTES", 2048)
    path = tmp_path / "600000.SH.csv"
    truth = _mdy_file(path, days=2, garbage_first=1000)  # the sample holds only garbage lines
    reader = open_minute_csv(path, block_bytes=4096)
    with pytest.raises(
        minute_csv.TimeColumnError,
        match=rf"never parses: '01/05/2026 09:31', .* \(0 of {truth.height} rows\)",
    ):
        reader.read()
    with pytest.raises(minute_csv.TimeColumnError, match=rf"\(0 of {truth.height} rows\)"):
        file_time_range(path, block_bytes=4096)


def test_a_few_bad_times_among_good_ones_stay_rejects(tmp_path):
    truth = make_bars("600000.SH", DAYS, seed=33)
    lines = render(truth, "tushare").splitlines()
    lines[3] = lines[3].replace("2026-01-05 09:33:00", "01/05/2026 09:33")
    path = write_text(tmp_path / "t.csv", "\n".join(lines) + "\n")
    reader = open_minute_csv(path)
    df = reader.read()
    assert [(r.line, r.reason) for r in reader.rejects] == [(4, "bad time: '01/05/2026 09:33'")]
    assert df.height == truth.height - 1


def test_twelve_hour_clock_beyond_the_sample_fails_the_read_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(minute_csv, "SAMPLE_BYTES", 4096)
    truth = make_bars("600000.SH", trading_days(date(2026, 1, 5), 5), seed=34)
    lines = render(truth, "tushare").splitlines()
    day5 = f"{DAYS[0] + timedelta(days=4):%Y-%m-%d}"  # 2026-01-09, the fifth trading day
    first = None
    for i, line in enumerate(lines):
        if f",{day5} 1" in line and line.split(",")[1] >= f"{day5} 13:00":
            hour = int(line.split(",")[1][11:13])
            lines[i] = line.replace(f"{day5} {hour}:", f"{day5} {hour - 12:02d}:")
            first = first or i + 1
    path = write_text(tmp_path / "t.csv", "\n".join(lines) + "\n")
    reader = open_minute_csv(path)  # the sample holds only good days
    with pytest.raises(minute_csv.TimeColumnError) as error:
        reader.read()
    assert error.value.line == first
    assert f"120 bars at 01:00-03:00 and none from 12:00 on 1 day, first '{day5} 01:01:00'" in str(
        error.value
    )
    with pytest.raises(minute_csv.TimeColumnError, match="12-hour clock"):
        file_time_range(path, block_bytes=8192)  # found in small blocks too


def test_truncated_gzip_beyond_the_sample_is_a_file_error(tmp_path, monkeypatch):
    monkeypatch.setattr(minute_csv, "SAMPLE_BYTES", 4096)
    truth = make_bars("600000.SH", trading_days(date(2026, 1, 5), 10), seed=35)
    data = gzip.compress(render(truth, "tushare").encode())
    path = tmp_path / "600000.SH.csv.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    reader = open_minute_csv(path, block_bytes=4096)
    with pytest.raises(
        CsvFileError,
        match=r"600000.SH.csv.gz: cannot read the file to its end \(after line \d+\): "
        "Compressed file ended",
    ):
        reader.read()


def test_profiles_fingerprint_changes_with_what_reads_a_file(tmp_path):
    base = profiles_fingerprint()
    assert base == profiles_fingerprint(BUILTIN_PROFILES) == profiles_fingerprint(load_profiles())
    assert len(base) == 64 and int(base, 16) >= 0
    mdy = {
        "name": "mdy",
        "columns": {
            "ts_code": "code",
            "trade_time": "time",
            "open": "open",
            "close": "close",
            "high": "high",
            "low": "low",
            "vol": "volume",
            "amount": "amount",
        },
        "time_formats": ["%m/%d/%Y %H:%M", "auto"],
        "volume_unit": "shares",
    }
    fixed = load_profiles([mdy])
    assert profiles_fingerprint(fixed) == profiles_fingerprint(load_profiles([dict(mdy)]))  # stable
    assert profiles_fingerprint(fixed) != base
    assert profiles_fingerprint(
        load_profiles([{**mdy, "description": "notes only"}])
    ) == profiles_fingerprint(fixed)
    assert profiles_fingerprint(
        load_profiles([{**mdy, "time_formats": ["%m/%d/%Y %H:%M"]}])
    ) != profiles_fingerprint(fixed)
    assert profiles_fingerprint(list(reversed(BUILTIN_PROFILES))) != base  # order decides ties

    # The loader's retry: quarantined under `base`, read again once the profile set changed.
    path = tmp_path / "600000.SH.csv"
    truth = _mdy_file(path, days=1)
    with pytest.raises(minute_csv.TimeColumnError):
        open_minute_csv(path)
    reader = open_minute_csv(path, fixed)
    assert reader.profile.name == "mdy" and reader.read()["time"].to_list() == truth["time"].to_list()


# --- Implausible times (issue #28: core/plausibility.py) -----------------------------------------


def _year_typo_lines(truth: pl.DataFrame, rows: range) -> list[str]:
    """The file's lines with the year of the given data rows typed as 2062 instead of 2026."""
    lines = render(truth, "tushare").splitlines()
    for i in rows:
        lines[1 + i] = lines[1 + i].replace(",2026-", ",2062-")
    return lines


def test_year_typo_rows_are_rejected_with_the_reason_and_leave_their_month_out(tmp_path):
    truth = make_bars("600000.SH", [date(2026, 1, 5)], seed=41)
    path = write_text(tmp_path / "t.csv", "\n".join(_year_typo_lines(truth, range(100, 112))) + "\n")
    reader = open_minute_csv(path)
    df = reader.read()
    assert df.height == truth.height - 12 and df["time"].dt.year().unique().to_list() == [2026]
    assert reader.reject_count == 12 and reader.reject_reasons == {"implausible time": 12}
    assert reader.summary()["rejects_by_reason"] == {"implausible time": 12}
    line, reason = reader.rejects[0].line, reader.rejects[0].reason
    assert line == 102 and reason.startswith(
        "implausible time: '2062-01-05 11:11:00' is after now + 10 min ("
    )
    assert file_time_range(path).months == ["2026-01"]  # the sensor and the landing index never see 2062


def test_a_file_of_only_implausible_times_is_refused_naming_the_column_and_samples(tmp_path):
    truth = make_bars("600000.SH", [date(2026, 1, 5)], seed=42)
    path = write_text(tmp_path / "t.csv", "\n".join(_year_typo_lines(truth, range(truth.height))) + "\n")
    with pytest.raises(minute_csv.TimeColumnError) as error:
        open_minute_csv(path)  # the sample is the whole file: refused at open
    assert (error.value.column, error.value.samples[:2]) == (
        "'trade_time'",
        ["2062-01-05 09:31:00", "2062-01-05 09:32:00"],
    )
    assert "is implausible in every row: '2062-01-05 09:31:00'" in str(error.value)
    assert f"(0 of {truth.height} rows inside the plausible window 1990-12-01 .. " in str(error.value)


def test_implausible_times_in_the_sample_alone_do_not_refuse_a_file_with_good_rows_further_on(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(minute_csv, "SAMPLE_BYTES", 4096)
    truth = make_bars("600000.SH", trading_days(date(2026, 1, 5), 3), seed=43)
    path = write_text(
        tmp_path / "t.csv", "\n".join(_year_typo_lines(truth, range(240))) + "\n"
    )  # day 1 typed
    reader = open_minute_csv(path, block_bytes=4096)
    assert reader.read().height == truth.height - 240 and reader.reject_count == 240
    epoch = truth.head(3).with_columns(time=pl.Series([datetime(1970, 1, 1, 8, 0)] * 3))
    early = write_text(tmp_path / "epoch.csv", render(epoch, "tushare"))
    with pytest.raises(
        minute_csv.TimeColumnError, match="is before SSE/SZSE/BSE's earliest plausible day 1990-12-01"
    ):
        read_minute_csv(early)
