"""The local server's reading of a statement (no server needed): its FORMAT clause found as ClickHouse's
lexer finds it, what is streamed and what is held whole, and the bounds it sets unless the client did."""

from __future__ import annotations

import pytest

from marketdata_assets.stores.clickhouse.format_clause import Unreadable, format_clause, tokens
from marketdata_assets.stores.clickhouse.local_server import Bounds, Statement, _error

FOUND = {
    b"SELECT 1 FORMAT JSON": ("JSON", b""),
    b"SELECT 1 FORMAT JSON -- rows\n": ("JSON", b""),
    b"SELECT 1 FORMAT JSON # rows": ("JSON", b""),
    b"SELECT 1 FORMAT JSON /* a /* nested */ comment */ ;": ("JSON", b""),
    b"SELECT 1 FORMAT JSON SETTINGS max_threads = 1, log_comment = 'x;y'": (
        "JSON",
        b"SELECT 1 SETTINGS max_threads = 1, log_comment = 'x;y'",
    ),
    b"SELECT 'FORMAT CSV', \"FORMAT\" FORMAT `JSONEachRow`": ("JSONEachRow", b""),
    b"SELECT $$ FORMAT CSV $$ FORMAT TSV": ("TSV", b""),
    b"SELECT format FROM t FORMAT Native": ("Native", b""),
    b"SELECT 1 -- FORMAT CSV\n/* FORMAT JSON */": None,
    b"SELECT (SELECT 1 FORMAT CSV) AS x": None,
}


@pytest.mark.parametrize("sql", list(FOUND))
def test_the_format_clause_is_found_past_comments_strings_and_settings(sql):
    clause, expected = format_clause(sql), FOUND[sql]
    if expected is None:
        assert clause is None
        return
    assert clause.name == expected[0]
    if expected[1]:
        assert sql[: clause.start] + b" " + clause.tail == b"SELECT 1  " + expected[1][len(b"SELECT 1 ") :]


UNREADABLE = [b"SELECT 1 AS format", b"SELECT 'unclosed FORMAT", b"SELECT 1 /* FORMAT", b"SELECT 1 FORMAT"]


@pytest.mark.parametrize("sql", [*UNREADABLE, b"SELECT $a$ format"])
def test_what_the_scanner_cannot_tell_is_said(sql):
    with pytest.raises(Unreadable):
        format_clause(sql)


def test_a_statement_with_no_format_word_is_not_scanned_and_a_long_one_fast():
    assert format_clause(b"SELECT 'unclosed") is None  # no FORMAT can be in it, readable or not
    ids = b",".join(str(i).encode() for i in range(200_000))
    clause = format_clause(b"SELECT * FROM t WHERE id IN (" + ids + b") AND s = 'a,b' FORMAT JSONEachRow")
    assert clause.name == "JSONEachRow" and clause.tail == b""
    assert len(tokens(b"SELECT (" + ids + b") FORMAT CSV")) < 10  # the list is one run, not 400,000 tokens


def _statement(sql: str, tmp_path, **params) -> Statement:
    return Statement({"query": sql, **params}, b"", tmp_path, Bounds(60, 1024, 8))


def test_a_read_is_streamed_only_in_a_format_whose_blocks_concatenate(tmp_path):
    said = {
        "SELECT 1": "blocks",
        "SELECT 1 FORMAT JSONEachRow -- x": "blocks",
        "SELECT 1 FORMAT JSON -- x": None,
        "SELECT 1 FORMAT CSVWithNames SETTINGS max_threads = 1": None,
        "SELECT 1 FORMAT ArrowStream": "arrowstream",
        "SELECT 1 AS format": None,  # the engine judges it, whole
        "CREATE TABLE t (x UInt8) ENGINE = Memory": None,
    }
    for sql, streamed in said.items():
        assert _statement(sql, tmp_path).streamed == streamed, sql
    assert _statement("SELECT 1", tmp_path, default_format="JSON").streamed is None
    arrow = _statement("SELECT 1 FORMAT Arrow SETTINGS max_threads = 2 -- c", tmp_path)
    assert arrow.without_format().endswith("SELECT 1  SETTINGS max_threads = 2")


def test_the_server_bounds_what_the_client_left_unbounded(tmp_path):
    whole = _statement("SELECT 1 FORMAT JSON", tmp_path)
    assert dict(whole.settings) == {
        "max_execution_time": "60",
        "max_memory_usage": str(1024 << 20),
        "max_result_bytes": str(8 << 20),
        "result_overflow_mode": "throw",
    }
    own = _statement("SELECT 1", tmp_path, max_execution_time="5")
    assert dict(own.settings)["max_execution_time"] == "5" and "max_execution_time" not in own.bounded
    assert "max_result_bytes" not in dict(own.settings)  # streamed: no result held
    timeout = "Code: 159. DB::Exception: Timeout exceeded: elapsed 60.1 s, maximum: 60 s. (TIMEOUT_EXCEEDED)"
    assert b"--max-statement-s" in _error(timeout, whole.bounded)[2]
    assert b"--max-statement-s" not in _error(timeout, own.bounded)[2]  # its own bound: the engine's words
    assert _error(timeout)[1] == {"X-ClickHouse-Exception-Code": "159"}


def test_a_read_is_killed_when_its_client_goes_unless_it_asks_otherwise(tmp_path):
    assert _statement("SELECT 1", tmp_path).cancel_on_close
    assert not _statement(
        "SELECT 1", tmp_path, cancel_http_readonly_queries_on_client_close="0"
    ).cancel_on_close
    assert not _statement("INSERT INTO t SELECT 1", tmp_path).cancel_on_close  # a write runs to its end
