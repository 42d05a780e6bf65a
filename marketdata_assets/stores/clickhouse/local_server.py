"""One process serving the embedded ClickHouse engine (chDB) to every local process, over ClickHouse's
own HTTP interface: clickhouse-connect's HTTP client talks to it as to a ClickHouse server.

chDB lets one process open a data directory. This process holds it (under the directory lock an
embedded client takes, so nothing else opens it behind its back) and runs each statement on a pooled
chDB connection. Statements are admitted in arrival order, at most `slots` at a time, so none waits
behind one that arrived after it; `GET /queue` reports the admissions. Served: what clickhouse-connect
sends — the statement in the `query` parameter or the body, `INSERT ... FORMAT f` data in the body
(spooled to a file and run as `INSERT ... FROM INFILE`), `param_*` bindings, settings as URL
parameters, a compressed request body; `/ping`. Sessions are not kept: every statement stands alone.
A read whose client goes away is killed (unless the client sent
`cancel_http_readonly_queries_on_client_close=0`), one waiting for its slot is not run; every statement
is bounded in time and memory (`--max-statement-s`, `--max-statement-memory-mb`, unless its client sets
`max_execution_time` / `max_memory_usage`), and a result in a format that is not streamed (JSON, Parquet,
*WithNames, ...) in size (`--max-whole-result-mb`), each with the engine's error and what to do.
Every request but `/ping` carries the server's one user and password, as ClickHouse takes them (HTTP
basic, `X-ClickHouse-User`/`X-ClickHouse-Key`, or the `user`/`password` parameters); anything else gets
ClickHouse's 401 and code 516. The password comes from the environment (CLICKHOUSE_PASSWORD), never argv.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import contextlib
import functools
import gzip
import hmac
import io
import json
import os
import re
import signal
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import chdb
import pyarrow as pa
import uvicorn

from marketdata_assets.core.identifiers import sql_identifier
from marketdata_assets.stores.clickhouse.connection import acquire_directory, release_directory
from marketdata_assets.stores.clickhouse.format_clause import Unreadable, format_clause

# URL parameters of ClickHouse's HTTP interface that are not engine settings (or only steer HTTP).
HTTP_ONLY = frozenset(
    {
        "query",
        "database",
        "default_format",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "user",
        "password",
        "quota_key",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "client_protocol_version",
        "role",
        "cancel_http_readonly_queries_on_client_close",
        "http_response_buffer_size",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# `INSERT INTO t [(cols)] FORMAT f` followed by its data (from the first whitespace after the name).
_INSERT_FORMAT = re.compile(
    rb"^\s*INSERT\s+INTO\s.*?\sFORMAT\s+([A-Za-z0-9_]+)[ \t]*(?:\r?\n)?", re.IGNORECASE | re.DOTALL
)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_FORMAT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
TAG = "marketdata-local "  # a statement's first words: `/* marketdata-local <hex> */`, found by `Engine.kill`
# Formats whose blocks, as the engine makes them, concatenate into the whole result.
CONCATENATED = frozenset(
    {
        "native",
        "tabseparated",
        "tsv",
        "tabseparatedraw",
        "tsvraw",
        "csv",
        "jsoneachrow",
        "jsonlines",
        "ndjson",
        "jsoncompacteachrow",
        "rowbinary",
        "values",
        "lineasstring",
    }
)
_READ = re.compile(rb"^(?:\s|--[^\n]*\n|/\*.*?\*/)*(?:SELECT|WITH)\b", re.IGNORECASE | re.DOTALL)


class BadRequest(ValueError):
    """The HTTP request itself is malformed (answered 400, nothing run)."""


@dataclass(frozen=True)
class Bounds:
    """What one statement may take, unless its client sets the engine's setting itself."""

    seconds: int = 3600  # max_execution_time
    memory_mb: int = 0  # max_memory_usage (0: the server's share, `default_memory_mb`)
    whole_result_mb: int = 32  # max_result_bytes of a result held whole (a format that is not streamed)

    def settings(self) -> dict[str, str]:
        memory = self.memory_mb or default_memory_mb()
        return {"max_execution_time": str(self.seconds), "max_memory_usage": str(memory << 20)}


def default_memory_mb(slots: int = 4) -> int:
    """A statement's memory bound when none is given: this machine's memory shared by the slots."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 4096
    return max(512, total // slots >> 20)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """chDB connections on one data directory, pooled by the settings they were configured with."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._idle: dict[tuple, list] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._killer = None  # the connection `kill` runs on (a slot's may all be busy)
        self._kill_lock = threading.Lock()

    def kill(self, tag: str) -> None:
        """Stop the statement tagged `tag` (it fails with QUERY_WAS_CANCELLED), wherever it is: running,
        or between two blocks of a streamed result."""
        if not re.fullmatch(r"[0-9a-f]{32}", tag):
            raise ValueError(f"not a statement tag: {tag!r}")
        with self._kill_lock:
            if self._killer is None:
                self._killer = chdb.connect(str(self.data_dir))
            self._killer.query(  # the tag in two parts: this statement is not its own match
                f"KILL QUERY WHERE position(query, concat('{TAG}', '{tag}')) > 0 ASYNC", "TabSeparated"
            )

    def _take(self, settings: tuple) -> list:
        with self._lock:
            if self._idle[settings]:
                return self._idle[settings].pop()
        conn = chdb.connect(str(self.data_dir))
        for name, value in settings:
            conn.query(f"SET {name} = {_quoted(value)}", "TabSeparated")
        return [conn, None]  # the connection and the database it is USEing

    def run(
        self,
        sql: bytes | str,
        *,
        database: str | None,
        settings: tuple,
        params: dict,
        output: str = "TabSeparated",
    ):
        """Run one statement (its result in `output` if it names no format); its result (chDB's:
        .bytes(), .rows_read(), ...)."""
        entry = self._take(settings)
        conn, used = entry
        try:
            if database and database != used:
                conn.query(f"USE `{sql_identifier(database, 'database')}`", "TabSeparated")
                entry[1] = database
            result = conn.query(sql.decode() if isinstance(sql, bytes) else sql, output, params=params)
        except BaseException:
            conn.close()  # a connection in an unknown state is not pooled again
            raise
        with self._lock:
            self._idle[settings].append(entry)
        return result

    def open_stream(self, statement: Statement) -> Streamed:
        """A read on a connection of its own until the stream is closed (its blocks as the engine makes
        them)."""
        entry = self._take(statement.settings)
        conn, used = entry
        try:
            if statement.database and statement.database != used:
                conn.query(f"USE `{sql_identifier(statement.database, 'database')}`", "TabSeparated")
                entry[1] = statement.database
            if statement.streamed == "blocks":
                stream = conn.send_query(statement.sql.decode(), statement.output, params=statement.params)
                return Streamed(self, entry, stream, _blocks(stream))
            stream = conn.send_query(
                statement.without_format() + " FORMAT ArrowStream", "TabSeparated", params=statement.params
            )
            blocks = _arrow_file(stream) if statement.streamed == "arrow" else _arrow_stream(stream)
            return Streamed(self, entry, stream, blocks)
        except BaseException:
            conn.close()
            raise

    def give_back(self, settings: tuple, entry: list) -> None:
        with self._lock:
            self._idle[settings].append(entry)

    def close(self) -> None:
        with self._lock:
            for entries in self._idle.values():
                for conn, _ in entries:
                    conn.close()
            self._idle.clear()
        with self._kill_lock:
            if self._killer is not None:
                self._killer.close()


def _blocks(stream) -> Iterator[bytes]:
    while (block := stream.fetch()) is not None:
        if block.has_error():
            raise RuntimeError(block.error_message())
        yield block.bytes()


class _Drain(io.RawIOBase):
    """What an Arrow IPC writer wrote since it was last taken."""

    def __init__(self):
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _schema_length(stream: bytes) -> int:
    """Bytes of the schema message an Arrow IPC stream opens with (continuation, length, metadata)."""
    if stream[:4] != b"\xff\xff\xff\xff":
        raise RuntimeError("the engine's ArrowStream block does not open with a schema message")
    return 8 + int.from_bytes(stream[4:8], "little")


def _arrow_stream(stream) -> Iterator[bytes]:
    """One Arrow IPC stream from the engine's ArrowStream blocks, each a whole stream of its own (schema,
    batches, end marker): spliced as bytes, the first block's schema and the last end marker kept."""
    first = True
    for block in _blocks(stream):
        if not block.endswith(_END_OF_STREAM):
            raise RuntimeError("the engine's ArrowStream block has no end marker")
        yield block[:-8] if first else block[_schema_length(block) : -8]
        first = False
    if not first:
        yield _END_OF_STREAM


def _arrow_file(stream) -> Iterator[bytes]:
    """The Arrow IPC file format (its footer lists every batch): the engine's batches framed again by
    pyarrow as they come, lz4-compressed as ClickHouse's Arrow output is."""
    drain, writer = _Drain(), None
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    for block in _arrow_stream(stream):
        if block == _END_OF_STREAM:
            break
        if writer is None:  # later blocks are batches alone: read each behind the first block's schema
            schema = block[: _schema_length(block)]
            reader = pa.ipc.open_stream(pa.py_buffer(block))
            writer = pa.ipc.new_file(pa.PythonFile(drain, mode="w"), reader.schema, options=options)
        else:
            reader = pa.ipc.open_stream(pa.py_buffer(schema + block))
        for batch in reader:
            writer.write_batch(batch)
        yield drain.take()
    if writer is not None:
        writer.close()
        yield drain.take()


class Streamed:
    """A read's result, one engine block at a time: memory is a block's, whatever the result's size."""

    def __init__(self, engine: Engine, entry: list, stream, blocks: Iterator[bytes]):
        self.engine, self.entry, self.stream, self.blocks = engine, entry, stream, blocks

    def next_block(self) -> bytes | None:
        return next(self.blocks, None)

    def close(self, settings: tuple, whole: bool) -> None:
        """Back to the pool after the whole result; else cancelled and its connection closed."""
        if whole:
            self.engine.give_back(settings, self.entry)
            return
        with contextlib.suppress(Exception):
            self.stream.cancel()
        self.entry[0].close()


class Admission:
    """At most `slots` statements run at once; the others wait in arrival order (first come, first run)."""

    def __init__(self, slots: int):
        self.slots, self.running = slots, 0
        self._waiting: collections.deque = collections.deque()
        self.arrived = self.admitted = self.out_of_order = 0
        self._last_admitted = -1
        self.max_wait_s = 0.0

    async def enter(self) -> None:
        seq, started = self.arrived, time.monotonic()
        self.arrived += 1
        if self.running < self.slots and not self._waiting:
            self.running += 1
            self._admit(seq, started)
            return
        turn = asyncio.get_running_loop().create_future()
        entry = (seq, started, turn)
        self._waiting.append(entry)
        try:
            await turn  # the slot is handed over (and the admission counted) by the statement that leaves
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()
            else:
                self._waiting.remove(entry)
            raise

    def _admit(self, seq: int, started: float) -> None:
        """Count an admission when the slot is granted (a waiter resumes later: counted on resuming, a
        statement that arrived meanwhile and found a slot free would look admitted before it)."""
        self.out_of_order += seq < self._last_admitted
        self._last_admitted = max(seq, self._last_admitted)
        self.admitted += 1
        self.max_wait_s = max(self.max_wait_s, time.monotonic() - started)

    def leave(self) -> None:
        while self._waiting:
            seq, started, turn = self._waiting.popleft()
            if not turn.done():
                self._admit(seq, started)
                turn.set_result(None)
                return
        self.running -= 1

    def report(self) -> dict:
        return {
            "slots": self.slots,
            "running": self.running,
            "waiting": len(self._waiting),
            "arrived": self.arrived,
            "admitted": self.admitted,
            "out_of_order": self.out_of_order,
            "max_wait_s": round(self.max_wait_s, 4),
        }


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    raise BadRequest(f"unsupported Content-Encoding {encoding!r} (gzip, deflate, lz4, zstd)")


def _form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a multipart/form-data body (clickhouse-connect's long queries with bindings)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_content()
        for part in message.iter_parts()
        if part.get_param("name", header="content-disposition")
    }


class Statement:
    """One request read into what the engine runs: SQL, its database, settings, bindings, data file."""

    def __init__(self, params: dict[str, str], body: bytes, spool: Path, bounds: Bounds | None = None):
        self.database = params.get("database") or None
        if self.database:
            sql_identifier(self.database, "database")
        self.output = params.get("default_format") or "TabSeparated"  # the format when it names none
        if not _FORMAT_NAME.match(self.output):
            raise BadRequest(f"invalid default_format {self.output!r}")
        self.params = {k.removeprefix("param_"): v for k, v in params.items() if k.startswith("param_")}
        settings = {}
        for name, value in params.items():
            if name in HTTP_ONLY or name.startswith("param_"):
                continue
            if not _SETTING_NAME.match(name):
                raise BadRequest(f"invalid setting name {name!r}")
            settings[name] = value
        self.data_file: str | None = None
        self.tag = uuid.uuid4().hex
        self.sql = f"/* {TAG}{self.tag} */ ".encode() + self._sql(
            params.get("query", "").encode(), body, spool
        )
        self.bounded: dict[str, str] = {}  # the bounds the server set (the client set none of these)
        if bounds is not None:
            wanted = bounds.settings()
            if self.whole_read:
                wanted |= {
                    "max_result_bytes": str(bounds.whole_result_mb << 20),
                    "result_overflow_mode": "throw",
                }
            self.bounded = {k: v for k, v in wanted.items() if k not in settings}
            settings |= self.bounded
        self.settings = tuple(sorted(settings.items()))
        # a read is killed when its client goes away, as ClickHouse does when the client asks it to
        self.cancel_on_close = self.read and params.get("cancel_http_readonly_queries_on_client_close") != "0"
        self.abandoned = self.done = False  # its client went away; its answer was sent

    def _sql(self, query: bytes, body: bytes, spool: Path) -> bytes:
        head = query if query else body
        match = _INSERT_FORMAT.match(head[: 1 << 16])
        if not match:  # a statement in the query parameter continues in the body (ClickHouse's rule)
            return query + (b"\n" + body if query and body else b"") if query else body
        data = body if query else body[match.end() :]
        statement, fmt = head[: match.start(1)].rstrip()[: -len("FORMAT")].rstrip(), match.group(1)
        if query and match.end() < len(query):
            data = query[match.end() :] + (b"\n" + body if body else b"")
        handle, self.data_file = tempfile.mkstemp(prefix="insert-", suffix=".data", dir=spool)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        return statement + b" FROM INFILE " + _quoted(self.data_file).encode() + b" FORMAT " + fmt

    @functools.cached_property
    def read(self) -> bool:
        """A SELECT (or WITH ... SELECT): nothing is written."""
        return not self.data_file and _READ.match(self.sql[:4096]) is not None

    @functools.cached_property
    def format(self) -> str | None:
        """The format a read's result is written in (its FORMAT clause, else `default_format`); None for a
        statement, or a read whose FORMAT clause the scanner cannot tell (the engine judges it; run whole)."""
        if not self.read:
            return None
        try:
            clause = self._clause
        except Unreadable:
            return None
        return clause.name if clause else self.output

    @functools.cached_property
    def _clause(self):
        return format_clause(self.sql)

    @functools.cached_property
    def streamed(self) -> str | None:
        """How a query's result goes out block by block: "blocks" (a format whose blocks concatenate),
        "arrow"/"arrowstream" (Arrow IPC, spliced or framed block by block); None: run whole (a statement, or
        a format with a header or footer of its own: Parquet, *WithNames, ...)."""
        name = (self.format or "").lower()
        return "blocks" if name in CONCATENATED else name if name in ("arrow", "arrowstream") else None

    @property
    def whole_read(self) -> bool:
        """A read whose result is held whole before it is sent (a format that is not streamed)."""
        return self.read and self.streamed is None

    def without_format(self) -> str:
        clause = self._clause
        if clause is None:
            return self.sql.decode()
        return (self.sql[: clause.start] + b" " + clause.tail).decode()

    def discard(self) -> None:
        if self.data_file:
            Path(self.data_file).unlink(missing_ok=True)


STREAMED = "JSONEachRow, JSONCompactEachRow, CSV, TabSeparated, Native, ArrowStream, Arrow"
# What to do when a bound the server set (the client set none) stopped a statement, by the engine's code.
_BOUND_ADVICE = {
    "159": (
        "max_execution_time",
        "a statement's time (--max-statement-s): narrow it, or set max_execution_time",
    ),
    "241": (
        "max_memory_usage",
        "a statement's memory (--max-statement-memory-mb): narrow it, or set max_memory_usage",
    ),
    "396": (
        "max_result_bytes",
        f"a result held whole, in this format (--max-whole-result-mb): ask for a streamed one ({STREAMED})",
    ),
}


def _error(message: str, bounded: dict | None = None) -> tuple[int, dict, bytes]:
    code = _ERROR_CODE.search(message)
    number = code.group(1) if code else "1001"
    advice = _BOUND_ADVICE.get(number)
    if advice and advice[0] in (bounded or {}):
        message = f"{message.rstrip()} (the local server bounds {advice[1]})"
    return 500, {"X-ClickHouse-Exception-Code": number}, (message.rstrip() + "\n").encode()


def _presented(params: dict, headers: dict) -> tuple[str, str]:
    """The user and password a request presents, as ClickHouse's HTTP interface reads them."""
    basic = headers.get("authorization", "")
    if basic[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(basic[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return user or "default", password
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        return headers.get("x-clickhouse-user") or "default", headers.get("x-clickhouse-key", "")
    return params.get("user") or "default", params.get("password", "")


class Credentials:
    """The one user the server lets in; compared in constant time."""

    def __init__(self, user: str, password: str):
        if not password:
            raise ValueError(
                "no password for the local ClickHouse server (CLICKHOUSE_PASSWORD is empty): it lets "
                "no one in without credentials"
            )
        self.user, self.password = user.encode(), password.encode()

    def refusal(self, params: dict, headers: dict) -> tuple[int, dict, bytes] | None:
        """None when the request's credentials are the server's; else ClickHouse's answer to wrong ones."""
        user, password = _presented(params, headers)
        right_user = hmac.compare_digest(user.encode(), self.user)
        if hmac.compare_digest(password.encode(), self.password) and right_user:
            return None
        message = (
            f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, or there "
            "is no user with such name. (AUTHENTICATION_FAILED)\n"
        )
        return (
            401,
            {
                "X-ClickHouse-Exception-Code": "516",
                "WWW-Authenticate": 'Basic realm="ClickHouse server HTTP API"',
            },
            message.encode(),
        )


class LocalServer:
    """The ASGI application: ClickHouse's HTTP interface in front of :class:`Engine`."""

    def __init__(self, data_dir: Path, slots: int, credentials: Credentials, bounds: Bounds | None = None):
        self.credentials = credentials
        self.bounds = bounds or Bounds(memory_mb=default_memory_mb(slots))  # machine's memory read once
        self.engine = Engine(data_dir)
        self.spool = data_dir.parent / f".{data_dir.name}.inserts"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.admission = Admission(slots)
        self.executor = ThreadPoolExecutor(slots, thread_name_prefix="statement")
        self.timezone = (
            self.engine.run("SELECT timezone()", database=None, settings=(), params={})
            .bytes()
            .decode()
            .strip()
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/ping":
            return await _respond(send, 200, {}, b"Ok.\n")
        params = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        refused = self.credentials.refusal(params, headers)
        if refused:
            return await _respond(send, *refused)
        if path == "/queue":
            return await _respond(
                send, 200, {"Content-Type": "application/json"}, json.dumps(self.admission.report()).encode()
            )
        if path != "/":
            return await _respond(send, 404, {}, f"no handler for {path}: / runs statements\n".encode())
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        own = {"X-ClickHouse-Timezone": self.timezone, "X-ClickHouse-Server-Display-Name": "marketdata-local"}
        try:
            body = _decompress(bytes(body), headers.get("content-encoding", ""))
            if headers.get("content-type", "").startswith("multipart/form-data"):
                params, body = {**params, **_form_fields(body, headers["content-type"])}, b""
            statement = Statement(params, body, self.spool, self.bounds)
        except (BadRequest, ValueError, OSError) as error:
            return await _respond(
                send,
                400,
                {**own, "X-ClickHouse-Exception-Code": "27"},
                f"Code: 27. bad request: {error}\n".encode(),
            )
        watching = asyncio.create_task(self._watch(receive, statement))
        try:
            if statement.streamed and await self._stream(send, statement, own):
                return
            status, extra, payload = await self._statement(statement)
            statement.done = True
            await _respond(send, status, {**own, **extra}, payload)
        finally:
            watching.cancel()

    async def _watch(self, receive, statement: Statement) -> None:
        """The client gone before its answer: a statement waiting for its slot is not run, a read is killed
        (`cancel_on_close`); a write runs to its end, as ClickHouse lets it."""
        while (await receive())["type"] != "http.disconnect":
            continue
        if statement.done:
            return
        statement.abandoned = True
        if statement.cancel_on_close:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.kill, statement.tag)

    async def _stream(self, send, statement: Statement, own: dict) -> bool:
        """A read sent block by block as the engine makes them (uvicorn's send waits while the client is
        behind, so the server holds about a block); an error after the first block ends the body with
        ClickHouse's exception text, as a server streaming its result does."""
        loop = asyncio.get_running_loop()
        await self.admission.enter()
        streamed, whole = None, False
        try:
            if statement.abandoned:  # its client went away while it waited for its slot
                return True
            try:
                streamed = await loop.run_in_executor(self.executor, self.engine.open_stream, statement)
                block = await loop.run_in_executor(self.executor, streamed.next_block)
            except Exception as error:  # noqa: BLE001 - the engine's error goes back to the client
                await _respond(send, *_error(str(error), statement.bounded))
                return True
            if block is None:  # no rows: the whole run gives the format's empty result (a header, a schema)
                whole = True
                return False
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(k.encode(), str(v).encode()) for k, v in own.items()],
                }
            )
            while block is not None:
                await send({"type": "http.response.body", "body": block, "more_body": True})
                try:
                    block = await loop.run_in_executor(self.executor, streamed.next_block)
                except Exception as error:  # noqa: BLE001 - mid-result: the text ends the body
                    block = None
                    await send(
                        {
                            "type": "http.response.body",
                            "body": _error(str(error), statement.bounded)[2],
                            "more_body": True,
                        }
                    )
                    break
                if statement.abandoned:  # its client went away: nothing more is read
                    break
            else:
                whole = True
            statement.done = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        finally:
            if streamed is not None:
                await loop.run_in_executor(self.executor, streamed.close, statement.settings, whole)
            self.admission.leave()

    async def _statement(self, statement: Statement) -> tuple[int, dict, bytes]:
        await self.admission.enter()
        try:
            if statement.abandoned:  # its client went away while it waited for its slot
                return _error(
                    "Code: 394. the client went away before its statement ran (QUERY_WAS_CANCELLED)"
                )
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor,
                lambda: self.engine.run(
                    statement.sql,
                    database=statement.database,
                    settings=statement.settings,
                    params=statement.params,
                    output=statement.output,
                ),
            )
        except Exception as error:  # noqa: BLE001 - the engine's error goes back to the client, as a server's would
            return _error(str(error), statement.bounded)
        finally:
            self.admission.leave()
            statement.discard()
        rows_key = "written_rows" if statement.data_file else "read_rows"
        summary = {
            rows_key: str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        return 200, {"X-ClickHouse-Summary": json.dumps(summary)}, result.bytes() or b""


async def _respond(send, status: int, headers: dict, payload: bytes) -> None:
    raw = [(k.encode(), str(v).encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGTERM/SIGINT without re-raising the signal after its shutdown
    (so the engine's connections are closed and the process exits 0)."""

    @contextlib.contextmanager
    def capture_signals(self):
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: setattr(self, "should_exit", True))
        yield


def serve(
    data_dir: Path,
    host: str,
    port: int,
    slots: int,
    credentials: Credentials,
    lock_timeout_s: float = 10,
    bounds: Bounds | None = None,
) -> None:
    """Hold the data directory and serve it until SIGTERM/SIGINT."""
    data_dir.mkdir(parents=True, exist_ok=True)
    acquire_directory(data_dir, lock_timeout_s)
    try:
        app = LocalServer(data_dir, slots, credentials, bounds)
        print(
            f"serving the ClickHouse engine at {data_dir} on http://{host}:{port} ({slots} statements at "
            f"once, time zone {app.timezone})",
            flush=True,
        )
        server = _Server(
            uvicorn.Config(
                app, host=host, port=port, log_level="warning", lifespan="off", timeout_keep_alive=60
            )
        )
        server.run()
        app.executor.shutdown(wait=True)
        app.engine.close()
    finally:
        release_directory(data_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--slots", type=int, default=4, help="statements run at once; the rest queue in order"
    )
    parser.add_argument("--user", default=os.environ.get("CLICKHOUSE_USER") or "default")
    parser.add_argument(
        "--max-statement-s",
        type=int,
        default=Bounds.seconds,
        help="a statement's time, unless it sets its own",
    )
    parser.add_argument(
        "--max-statement-memory-mb",
        type=int,
        default=0,
        help="a statement's memory, unless it sets its own (default: this machine's memory / --slots)",
    )
    parser.add_argument(
        "--max-whole-result-mb",
        type=int,
        default=Bounds.whole_result_mb,
        help="a result held whole (a format that is not streamed: JSON, Parquet, *WithNames, ...)",
    )
    args = parser.parse_args(argv)
    try:
        credentials = Credentials(args.user, os.environ.get("CLICKHOUSE_PASSWORD", ""))
    except ValueError as error:
        parser.error(str(error))
    memory_mb = args.max_statement_memory_mb or default_memory_mb(args.slots)
    bounds = Bounds(args.max_statement_s, memory_mb, args.max_whole_result_mb)
    serve(args.data_dir.resolve(), args.host, args.port, args.slots, credentials, bounds=bounds)


if __name__ == "__main__":
    main()
