"""One process serving the embedded ClickHouse engine (chDB) to every local process, over ClickHouse's
own HTTP interface: clickhouse-connect's HTTP client talks to it as to a ClickHouse server.

chDB lets one process open a data directory. This process holds it (under the directory lock an
embedded client takes, so nothing else opens it behind its back) and runs each statement on a pooled
chDB connection. Statements are admitted in arrival order, at most `slots` at a time, so none waits
behind one that arrived after it; `GET /queue` reports the admissions. Served: what clickhouse-connect
sends — the statement in the `query` parameter or the body, `INSERT ... FORMAT f` data in the body
(spooled to a file and run as `INSERT ... FROM INFILE`), `param_*` bindings, settings as URL
parameters, a compressed request body; `/ping`. Sessions are not kept: every statement stands alone.
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
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl

import chdb
import pyarrow as pa
import uvicorn

from marketdata_assets.core.identifiers import sql_identifier
from marketdata_assets.stores.clickhouse.connection import acquire_directory, release_directory

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
_FORMAT = re.compile(rb"\sFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
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


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """chDB connections on one data directory, pooled by the settings they were configured with."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._idle: dict[tuple, list] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def _take(self, settings: tuple) -> list:
        with self._lock:
            if self._idle[settings]:
                return self._idle[settings].pop()
        conn = chdb.connect(str(self.data_dir))
        for name, value in settings:
            conn.query(f"SET {name} = {_quoted(value)}", "TabSeparated")
        return [conn, None]  # the connection and the database it is USEing

    def run(self, sql: bytes | str, *, database: str | None, settings: tuple, params: dict):
        """Run one statement; its result (chDB's: .bytes(), .rows_read(), ...)."""
        entry = self._take(settings)
        conn, used = entry
        try:
            if database and database != used:
                conn.query(f"USE `{sql_identifier(database, 'database')}`", "TabSeparated")
                entry[1] = database
            result = conn.query(
                sql.decode() if isinstance(sql, bytes) else sql, "TabSeparated", params=params
            )
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
                stream = conn.send_query(statement.sql.decode(), "TabSeparated", params=statement.params)
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

    def __init__(self, params: dict[str, str], body: bytes, spool: Path):
        self.database = params.get("database") or None
        if self.database:
            sql_identifier(self.database, "database")
        self.params = {k.removeprefix("param_"): v for k, v in params.items() if k.startswith("param_")}
        settings = []
        for name, value in params.items():
            if name in HTTP_ONLY or name.startswith("param_"):
                continue
            if not _SETTING_NAME.match(name):
                raise BadRequest(f"invalid setting name {name!r}")
            settings.append((name, value))
        self.settings = tuple(sorted(settings))
        self.data_file: str | None = None
        self.sql = self._sql(params.get("query", "").encode(), body, spool)

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
    def streamed(self) -> str | None:
        """How a query's result goes out block by block: "blocks" (a format whose blocks concatenate),
        "arrow"/"arrowstream" (Arrow IPC, spliced or framed block by block); None: run whole (a statement, or
        a format with a header or footer of its own: Parquet, *WithNames, ...)."""
        if self.data_file or _READ.match(self.sql[:4096]) is None:
            return None
        name = self._format.group(1).decode().lower() if self._format else "tabseparated"
        return "blocks" if name in CONCATENATED else name if name in ("arrow", "arrowstream") else None

    @functools.cached_property
    def _format(self) -> re.Match | None:
        return _FORMAT.search(self.sql)

    def without_format(self) -> str:
        return (self.sql[: self._format.start()] if self._format else self.sql).decode()

    def discard(self) -> None:
        if self.data_file:
            Path(self.data_file).unlink(missing_ok=True)


def _error(message: str) -> tuple[int, dict, bytes]:
    code = _ERROR_CODE.search(message)
    headers = {"X-ClickHouse-Exception-Code": code.group(1) if code else "1001"}
    return 500, headers, (message.rstrip() + "\n").encode()


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

    def __init__(self, data_dir: Path, slots: int, credentials: Credentials):
        self.credentials = credentials
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
            statement = Statement(params, body, self.spool)
        except (BadRequest, ValueError, OSError) as error:
            return await _respond(
                send,
                400,
                {**own, "X-ClickHouse-Exception-Code": "27"},
                f"Code: 27. bad request: {error}\n".encode(),
            )
        if statement.streamed and await self._stream(send, statement, own):
            return
        status, extra, payload = await self._statement(statement)
        await _respond(send, status, {**own, **extra}, payload)

    async def _stream(self, send, statement: Statement, own: dict) -> bool:
        """A read sent block by block as the engine makes them (uvicorn's send waits while the client is
        behind, so the server holds about a block); an error after the first block ends the body with
        ClickHouse's exception text, as a server streaming its result does."""
        loop = asyncio.get_running_loop()
        await self.admission.enter()
        streamed, whole = None, False
        try:
            try:
                streamed = await loop.run_in_executor(self.executor, self.engine.open_stream, statement)
                block = await loop.run_in_executor(self.executor, streamed.next_block)
            except Exception as error:  # noqa: BLE001 - the engine's error goes back to the client
                await _respond(send, *_error(str(error)))
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
                            "body": (str(error).rstrip() + "\n").encode(),
                            "more_body": True,
                        }
                    )
                    break
            else:
                whole = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        finally:
            if streamed is not None:
                await loop.run_in_executor(self.executor, streamed.close, statement.settings, whole)
            self.admission.leave()

    async def _statement(self, statement: Statement) -> tuple[int, dict, bytes]:
        await self.admission.enter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor,
                lambda: self.engine.run(
                    statement.sql,
                    database=statement.database,
                    settings=statement.settings,
                    params=statement.params,
                ),
            )
        except Exception as error:  # noqa: BLE001 - the engine's error goes back to the client, as a server's would
            return _error(str(error))
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
    data_dir: Path, host: str, port: int, slots: int, credentials: Credentials, lock_timeout_s: float = 10
) -> None:
    """Hold the data directory and serve it until SIGTERM/SIGINT."""
    data_dir.mkdir(parents=True, exist_ok=True)
    acquire_directory(data_dir, lock_timeout_s)
    try:
        app = LocalServer(data_dir, slots, credentials)
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
    args = parser.parse_args(argv)
    try:
        credentials = Credentials(args.user, os.environ.get("CLICKHOUSE_PASSWORD", ""))
    except ValueError as error:
        parser.error(str(error))
    serve(args.data_dir.resolve(), args.host, args.port, args.slots, credentials)


if __name__ == "__main__":
    main()
