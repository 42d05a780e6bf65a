"""Minute-bar CSV parsing: every built-in stored layout, rejects, file errors, batching."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.lib.bars import minute_csv
from marketdata_assets.lib.bars.csv_profiles import (
    BUILTIN_PROFILES,
    code_expr,
    code_from_filename,
    detect_profile,
    load_profiles,
    normalize_code,
    normalize_codes,
    profile_from_dict,
)
from marketdata_assets.lib.bars.minute_csv import (
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
from marketdata_assets.replay.minute_csv import (
    big_file,
    expected,
    make_bars,
    render,
    trading_days,
    write_text,
)

DAYS = trading_days(date(2026, 1, 5), 2)


def parse(path, **options):
    df, rejects = read_minute_csv(path, **options)
    return df, rejects


# ---- every layout, code style and time style ----------------------------------------------------

@pytest.mark.parametrize("layout", ["symbol_dt", "day_ohlcva", "cn_minute", "tushare", "generic"])
@pytest.mark.parametrize("time_style", ["iso_seconds", "slash_minute", "iso_minute", "excel", "compact", "iso_t"])
def test_layouts_and_time_styles(tmp_path, layout, time_style):
    truth = make_bars("600000.SH", DAYS, seed=1)
    name = "sh600000.csv" if layout == "day_ohlcva" else "bars.csv"
    path = write_text(tmp_path / name, render(truth, layout, code_style="prefix_lower", time_style=time_style))
    df, rejects = parse(path)
    assert rejects == []
    assert_frame_equal(df, expected(truth, layout))


@pytest.mark.parametrize("code_style", ["suffix", "suffix_lower", "prefix_lower", "prefix_upper", "baostock",
                                        "bare", "joinquant", "yahoo"])
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
    path = write_text(tmp_path / "cn.csv", render(truth, "cn_minute", time_style="slash_minute", line_end="\r\n"),
                      bom=True)
    reader = open_minute_csv(path)
    df = reader.read()
    assert (reader.profile.name, reader.encoding, reader.rejects) == ("cn_minute", "utf-8-sig", [])
    assert_frame_equal(df, expected(truth, "cn_minute"))
    assert df["name"].unique().to_list() == ["浦发银行"]


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_chinese_gbk(tmp_path, encoding):
    truth = make_bars("000001.SZ", DAYS, seed=5)
    path = write_text(tmp_path / "cn.csv", render(truth, "cn_minute", code_style="bare", line_end="\r\n"),
                      encoding=encoding)
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
    path = write_text(tmp_path / "s.csv", "symbol,dt,open,close,high,low,vol\n"
                                          "sh600000,2026-01-05 09:31:00,10.0,10.1,10.3,9.9,1200\n")
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

@pytest.mark.parametrize("file_name,code", [("sh600000.csv", "600000.SH"), ("600000.SH_2024.csv", "600000.SH"),
                                            ("SZ000001-1min.csv", "000001.SZ"), ("000001.XSHE.csv", "000001.SZ"),
                                            ("300750_202601.csv", "300750.SZ"), ("sz.000001.csv", "000001.SZ")])
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

CODES = {"600000.SH": "600000.SH", "sh600000": "600000.SH", "SH600000": "600000.SH", "600000": "600000.SH",
         "688981": "688981.SH", "000001.XSHE": "000001.SZ", "600000.XSHG": "600000.SH", "000001.XSHG": "000001.SH",
         "sz000001": "000001.SZ", "sh.600000": "600000.SH", "SHSE.600000": "600000.SH", "600000.SS": "600000.SH",
         "430047": "430047.BJ", "830799.BJ": "830799.BJ", "920118": "920118.BJ", "300750": "300750.SZ",
         "1": "000001.SZ", "510300": "510300.SH", "159915": "159915.SZ", " 600000.sh ": "600000.SH",
         "900901": "900901.SH", "200002": "200002.SZ"}
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


def test_truncated_last_line_rejects_just_that_line(tmp_path):
    truth = make_bars("600000.SH", DAYS, seed=12)
    text = render(truth, "cn_minute")
    cut = text.rstrip("\n")
    cut = cut[: cut.rfind("\n") + 1 + 25]  # the last line cut after 25 characters
    path = write_text(tmp_path / "cut.csv", cut)
    df, rejects = parse(path)
    assert [(r.line, r.reason) for r in rejects] == [(truth.height + 1, "wrong field count: expected 11, got 2")]
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
    assert [(r.line, r.reason) for r in reader.rejects] == [(truth.height + 1, "line can't be decoded as utf-8-sig")]
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
    path = write_text(tmp_path / "q.csv", 'ts_code,trade_time,open,close,high,low,vol,amount\n'
                                          '"600000.SH","2026-01-05 09:31:00","10.0","10.1","10.2","9.9","1200","1,212.5"\n'
                                          '"600000.SH","2026-01-05 09:32:00",10.0,10.1,10.2,9.9,1300,1313.0\n')
    df, rejects = parse(path)
    assert rejects == []
    assert df["amount"].to_list() == [1212.5, 1313.0]


def test_date_and_clock_columns_tdx_style_gbk_tab(tmp_path):
    text = ("600000 浦发银行 1分钟线 前复权\r\n"  # TDX title line before the header
            "      日期\t    时间\t    开盘\t    最高\t    最低\t    收盘\t    成交量\t    成交额\r\n"
            "2026/01/05\t0931\t10.00\t10.20\t9.90\t10.10\t1200\t1212000.00\r\n"
            "2026/01/05\t1500\t10.10\t10.20\t10.00\t10.00\t1300\t1313000.00\r\n"
            "数据来源:通达信\r\n")
    path = write_text(tmp_path / "SH#600000.txt", text, encoding="gbk")
    reader = open_minute_csv(path)
    df = reader.read()
    assert (reader.profile.name, reader.separator, reader.file_code, reader.header_line) == (
        "cn_date_clock", "\t", "600000.SH", 2)
    assert df["time"].to_list() == [datetime(2026, 1, 5, 9, 31), datetime(2026, 1, 5, 15, 0)]
    assert [(r.line, r.reason) for r in reader.rejects] == [(5, "wrong field count: expected 8, got 1")]


def test_time_with_utc_offset_becomes_beijing_wall_clock(tmp_path):
    path = write_text(tmp_path / "t.csv", "ts_code,trade_time,open,close,high,low,vol,amount\n"
                                          "600000.SH,2026-01-05T01:31:00Z,1,1,1,1,100,100\n"
                                          "600000.SH,2026-01-05 09:32:00+08:00,1,1,1,1,100,100\n"
                                          "600000.SH,2026-01-05T02:33:00+0100,1,1,1,1,100,100\n")
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
    path = write_text(tmp_path / "novol.csv", "时间,代码,名称,开盘价,收盘价,最高价,最低价,成交额\n"
                                              "2026-01-05 09:31:00,600000.SH,浦发银行,1,1,1,1,100\n")
    with pytest.raises(UnknownHeaderError) as error:
        open_minute_csv(path)
    message = str(error.value)
    assert str(path) in message and "line 1" in message
    assert "'成交额'" in message and "cn_minute" in message and "tushare_stk_mins" in message
    assert "closest profile 'cn_minute' is missing volume" in message
    assert error.value.headers[0] == "时间"


def test_unknown_header(tmp_path):
    path = write_text(tmp_path / "x.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(UnknownHeaderError, match=r"x.csv, line 1: header not recognized; columns seen: \['a', 'b', 'c'\]"):
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
    truth = pl.concat([make_bars("600000.SH", DAYS, seed=15, dirty=True, float32_noise=True),
                       make_bars("000001.SZ", DAYS, seed=16, negative=True, dirty=True)])
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
    assert many.rejects == one.rejects and [r.line for r in one.rejects] == [truth.height + 2, truth.height + 3]
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
    profile = {"name": "with_name", "columns": {"symbol": "code", "dt": "time", "open": "open", "close": "close",
                                                "high": "high", "low": "low", "vol": "volume", "name": "name"}}
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
    assert (low, high, months) == (datetime(2026, 1, 29, 9, 31), datetime(2026, 2, 3, 15, 0), ["2026-01", "2026-02"])
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
    config.write_text(json.dumps({"profiles": [{
        "name": "vendor_x", "columns": {"Ticker": "code", "BarTime": "time", "O": "open", "H": "high", "L": "low",
                                        "C": "close", "V": "volume", "Turnover": "amount"},
        "time_formats": ["%d.%m.%Y %H:%M"], "volume_unit": "lots", "amount_unit": "thousands", "separator": ";"}]}))
    profiles = load_profiles(config)
    assert profiles[0].name == "vendor_x" and len(profiles) == len(BUILTIN_PROFILES) + 1
    path = write_text(tmp_path / "x.csv", "ticker;bartime;o;h;l;c;v;turnover\nsz000001;05.01.2026 09:31;10;11;9;10.5;12;12.6\n")
    df, rejects = parse(path, profiles=profiles)
    assert rejects == []
    assert df.row(0) == (datetime(2026, 1, 5, 9, 31), "000001.SZ", None, 10.0, 11.0, 9.0, 10.5, 1200.0, 12600.0)


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
    headers = {"symbol,dt,open,close,high,low,vol": "symbol_dt",
               "day,open,high,low,close,volume,amount": "day_ohlcva",
               "时间,代码,名称,开盘价,收盘价,最高价,最低价,成交量,成交额,涨幅,振幅": "cn_minute",
               "ts_code,trade_time,open,close,high,low,vol,amount": "tushare_stk_mins",
               "\ufeffTS_CODE , Trade_Time,OPEN,close,high,low,vol,amount": "tushare_stk_mins",
               "date,time,open,high,low,close,volume,amount": "generic_date_clock",
               "datetime,open,close,high,low,volume,money": "generic"}
    for header, name in headers.items():
        assert detect_profile(header.split(",")).profile.name == name, header


# ---- time parsing -------------------------------------------------------------------------------

TIMES = {
    "2026-01-05 09:31:00": datetime(2026, 1, 5, 9, 31), "2026/01/05 09:31": datetime(2026, 1, 5, 9, 31),
    "2026/1/5 9:31": datetime(2026, 1, 5, 9, 31), "2026-01-05 09:31": datetime(2026, 1, 5, 9, 31),
    "20260105 093100": datetime(2026, 1, 5, 9, 31), "202601050931": datetime(2026, 1, 5, 9, 31),
    "2026-01-05T09:31:00": datetime(2026, 1, 5, 9, 31), "2026-01-05 09:31:00.000": datetime(2026, 1, 5, 9, 31),
    "2026-01-05T01:31:00Z": datetime(2026, 1, 5, 9, 31), "2026.01.05 09:31": datetime(2026, 1, 5, 9, 31),
    "2026-01-05 9:31:00": datetime(2026, 1, 5, 9, 31),
    "2026-01-05 09:3": None, "2026-01-05 09:31:0": None, "2026/01/05 09:3": None, "2026-02-30 09:31:00": None,
    "2026-01-05 24:00:00": None, "2026-01-05": None, "1767576660": None, "abc": None, "": None,
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
