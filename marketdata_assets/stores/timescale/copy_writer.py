"""Write normalized minute bars (minute_csv.MINUTE_SCHEMA) into PostgreSQL/TimescaleDB.

Two insert paths, same rows: binary COPY encoded by numpy, and `INSERT ... SELECT FROM unnest` for
servers without COPY FROM STDIN. Neither commits (the loader's transaction makes a re-load replace);
table names are validated and composed as identifiers, values travel as data. Table, blocks, chunks
and costs: docs/minute-bars.md, "Writing the bars".
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence

import numpy as np
import polars as pl
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from marketdata_assets.core.identifiers import qualified_name

MINUTE_TABLE = "stock_1min_qfq"
MINUTE_COLUMNS = ("time", "code", "name", "open", "high", "low", "close", "volume", "amount")
FLOAT_COLUMNS = MINUTE_COLUMNS[3:]
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
PGCOPY_TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 00:00:00 in microseconds since 1970-01-01
DEFAULT_BLOCK_BYTES = 8 << 20
DEFAULT_UNNEST_ROWS = 20_000
_ZERO_BYTES = np.zeros(0, dtype=np.uint8)


def table_identifier(table: str) -> sql.Composable:
    """``table`` or ``schema.table`` checked by identifiers.qualified_name, as a psycopg Identifier."""
    return sql.Identifier(*qualified_name(table, "table").split("."))


def _columns_sql() -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c) for c in MINUTE_COLUMNS)


def prepare_frame(df: pl.DataFrame) -> pl.DataFrame:
    """The 9 minute-bar columns in table order with the table's types. A tz-aware time is converted
    to Beijing wall-clock; other time units become microseconds."""
    missing = [c for c in MINUTE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"minute-bar frame lacks columns {missing} (has {df.columns})")
    time_dtype = df.schema["time"]
    time_col = pl.col("time")
    if isinstance(time_dtype, pl.Datetime) and time_dtype.time_zone is not None:
        time_col = time_col.dt.convert_time_zone("Asia/Shanghai").dt.replace_time_zone(None)
    elif not isinstance(time_dtype, (pl.Datetime, pl.Date)):
        raise ValueError(f"minute-bar column 'time' must be a Datetime, got {time_dtype}")
    return df.select(
        time_col.cast(pl.Datetime("us")),
        pl.col("code").cast(pl.String),
        pl.col("name").cast(pl.String),
        *[pl.col(c).cast(pl.Float64) for c in FLOAT_COLUMNS],
    )


# --------------------------------------------------------------------------------------------
# PGCOPY binary encoding
# --------------------------------------------------------------------------------------------


def _text_parts(series: pl.Series, encoding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, start offset per row, byte length per row with -1 for NULL) of a string column."""
    if codecs.lookup(encoding).name != "utf-8":
        values = [None if v is None else v.encode(encoding) for v in series.to_list()]
        lengths = np.array([-1 if v is None else len(v) for v in values], dtype=np.int64)
        data = np.frombuffer(b"".join(v for v in values if v is not None), dtype=np.uint8)
    else:
        lengths = series.str.len_bytes().cast(pl.Int64).fill_null(-1).to_numpy()
        joined = series.str.join("", ignore_nulls=True).item() if len(series) else ""
        data = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8) if joined else _ZERO_BYTES
    starts = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(np.maximum(lengths[:-1], 0), out=starts[1:])
    return data, starts, lengths


def _gather(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Rows of `width` bytes starting at `starts`: an (n, width) uint8 array."""
    if width == 1:
        return data[starts][:, None]
    return data[starts[:, None] + np.arange(width, dtype=np.int64)]


class _Columns:
    """numpy views of one frame's columns, ready for encoding."""

    def __init__(self, df: pl.DataFrame, encoding: str):
        self.n = df.height
        time = df["time"]
        self.time_null = time.is_null().to_numpy()
        self.time = (time.dt.epoch("us").fill_null(0) - PG_EPOCH_US).to_numpy()
        self.texts = [_text_parts(df[c], encoding) for c in ("code", "name")]
        self.floats = []
        for column in FLOAT_COLUMNS:
            series = df[column]
            nulls = series.is_null()
            self.floats.append((series.fill_null(0.0).to_numpy(), nulls.to_numpy() if nulls.any() else None))

    def layout_keys(self, lo: int, hi: int) -> np.ndarray:
        """One int64 per row: text lengths and the NULL mask; rows with equal keys share a layout."""
        key = self.time_null[lo:hi].astype(np.int64)
        for bit, (_, nulls) in enumerate(self.floats, start=1):
            if nulls is not None:
                key |= nulls[lo:hi].astype(np.int64) << bit
        code_len = self.texts[0][2][lo:hi]
        name_len = self.texts[1][2][lo:hi]
        key |= (name_len + 1) << 8
        key |= (code_len + 1) << 36
        return key


def _encode_group(cols: _Columns, rows: np.ndarray, key: int) -> bytes:
    """PGCOPY tuples for rows sharing one layout, as one packed structured array."""
    time_null = bool(key & 1)
    float_nulls = [bool(key >> bit & 1) for bit in range(1, 7)]
    text_lens = [((key >> 36) & 0xFFFFFFF) - 1, ((key >> 8) & 0xFFFFFFF) - 1]
    fields: list[tuple] = [("n", ">i2"), ("tl", ">i4")]
    if not time_null:
        fields.append(("t", ">i8"))
    for i, length in enumerate(text_lens):
        fields.append((f"sl{i}", ">i4"))
        if length > 0:
            fields.append((f"s{i}", "u1", (length,)))
    for i, null in enumerate(float_nulls):
        fields.append((f"fl{i}", ">i4"))
        if not null:
            fields.append((f"f{i}", ">f8"))
    out = np.empty(len(rows), dtype=np.dtype(fields))
    out["n"] = len(MINUTE_COLUMNS)
    out["tl"] = -1 if time_null else 8
    if not time_null:
        out["t"] = cols.time[rows]
    for i, length in enumerate(text_lens):
        out[f"sl{i}"] = length
        if length > 0:
            data, starts, _ = cols.texts[i]
            out[f"s{i}"] = _gather(data, starts[rows], length)
    for i, null in enumerate(float_nulls):
        out[f"fl{i}"] = -1 if null else 8
        if not null:
            out[f"f{i}"] = cols.floats[i][0][rows]
    return out.tobytes()


def _encode_range(cols: _Columns, lo: int, hi: int) -> bytes:
    keys = cols.layout_keys(lo, hi)
    first = keys[0]
    if (keys == first).all():
        return _encode_group(cols, np.arange(lo, hi), int(first))
    unique, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(unique)))])
    return b"".join(
        _encode_group(cols, order[bounds[g] : bounds[g + 1]] + lo, int(unique[g])) for g in range(len(unique))
    )


def encode_pgcopy(
    df: pl.DataFrame,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    encoding: str = "utf-8",
    header: bool = True,
    trailer: bool = True,
) -> Iterator[bytes]:
    """PGCOPY binary blocks of about `block_bytes` for a minute-bar frame (columns in MINUTE_COLUMNS
    order). The first block starts with the signature, the last ends with the trailer. Row order
    inside a block follows layout groups (COPY does not care). Text is encoded in `encoding`, which
    must be the connection's client encoding."""
    df = prepare_frame(df)
    if header:
        yield PGCOPY_HEADER
    if df.height:
        cols = _Columns(df, encoding)
        text_bytes = sum(int(np.maximum(t[2], 0).sum()) for t in cols.texts)
        row_bytes = 2 + 12 + 8 + 6 * 12 + text_bytes / df.height
        step = max(1, int(block_bytes // row_bytes))
        for lo in range(0, df.height, step):
            yield _encode_range(cols, lo, min(lo + step, df.height))
    if trailer:
        yield PGCOPY_TRAILER


def _client_encoding(conn: psycopg.Connection) -> str:
    return conn.info.encoding or "utf-8"


def copy_binary(
    conn: psycopg.Connection,
    df: pl.DataFrame,
    table: str = MINUTE_TABLE,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    queued: bool = True,
) -> int:
    """COPY the frame into `table` in binary format; returns the number of rows. No commit."""
    ident = table_identifier(table)
    if df.height == 0:
        return 0
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(ident, _columns_sql())
    with conn.cursor() as cur:
        writer = QueuedLibpqWriter(cur) if queued else None
        with cur.copy(statement, writer=writer) as copy:
            for block in encode_pgcopy(df, block_bytes=block_bytes, encoding=_client_encoding(conn)):
                copy.write(block)
    return df.height


# --------------------------------------------------------------------------------------------
# INSERT ... SELECT FROM unnest (no COPY)
# --------------------------------------------------------------------------------------------


class BinaryArray:
    """A PostgreSQL array already encoded in the binary wire format (array_send), passed as one
    query parameter: psycopg sends the bytes as they are, with the array type's oid."""

    __slots__ = ("data",)
    element = ""

    def __init__(self, data: bytes):
        self.data = data


# element -> (element oid, array oid)
_ARRAY_OIDS = {"timestamp": (1114, 1115), "text": (25, 1009), "float8": (701, 1022)}
_ARRAY_TYPES: dict[str, type] = {}
_ARRAY_DUMPERS: list[tuple[type, type]] = []
for _element, (_, _array_oid) in _ARRAY_OIDS.items():
    _cls = type(f"{_element.capitalize()}BinaryArray", (BinaryArray,), {"__slots__": (), "element": _element})
    _dumper = type(
        f"{_element.capitalize()}BinaryArrayDumper",
        (psycopg.adapt.Dumper,),
        {"format": psycopg.pq.Format.BINARY, "oid": _array_oid, "dump": lambda self, obj: obj.data},
    )
    _ARRAY_TYPES[_element] = _cls
    _ARRAY_DUMPERS.append((_cls, _dumper))


def register_binary_arrays(context) -> None:
    """Let `context` (a connection or cursor) send BinaryArray parameters."""
    for cls, dumper in _ARRAY_DUMPERS:
        context.adapters.register_dumper(cls, dumper)


def _binary_array(element: str, lengths: np.ndarray, payload: np.ndarray) -> BinaryArray:
    """Encode a 1-D array: `lengths` per element (-1 NULL), `payload` the elements' bytes in order."""
    elem_oid = _ARRAY_OIDS[element][0]
    n = len(lengths)
    if n == 0:
        return _ARRAY_TYPES[element](np.array([0, 0, elem_oid], dtype=">i4").tobytes())
    sizes = 4 + np.maximum(lengths, 0)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    body = np.empty(int(sizes.sum()), dtype=np.uint8)
    body[starts[:, None] + np.arange(4)] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
    present = lengths > 0
    if present.any():
        counts = lengths[present]
        source_starts = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(counts[:-1], out=source_starts[1:])
        shift = np.repeat(starts[present] + 4 - source_starts, counts)
        body[shift + np.arange(int(counts.sum()))] = payload
    header = np.array([1, int((lengths < 0).any()), elem_oid, n, 1], dtype=">i4").tobytes()
    return _ARRAY_TYPES[element](header + body.tobytes())


def binary_array_params(df: pl.DataFrame, encoding: str = "utf-8") -> list[BinaryArray]:
    """One binary array per minute-bar column (timestamp[], text[], text[], float8[] x 6)."""
    df = prepare_frame(df)
    params = []
    time = df["time"]
    nulls = time.is_null().to_numpy()
    values = (time.dt.epoch("us").fill_null(0) - PG_EPOCH_US).to_numpy()
    params.append(
        _binary_array("timestamp", np.where(nulls, -1, 8), values[~nulls].astype(">i8").view(np.uint8))
    )
    for column in ("code", "name"):
        data, starts, lengths = _text_parts(df[column], encoding)
        present = lengths > 0
        payload = (
            _ZERO_BYTES
            if not present.any()
            else data[np.repeat(starts[present], lengths[present]) + _ranges(lengths[present])]
        )
        params.append(_binary_array("text", lengths, payload))
    for column in FLOAT_COLUMNS:
        series = df[column]
        nulls = series.is_null().to_numpy()
        values = series.fill_null(0.0).to_numpy()
        params.append(
            _binary_array("float8", np.where(nulls, -1, 8), values[~nulls].astype(">f8").view(np.uint8))
        )
    return params


def _ranges(counts: np.ndarray) -> np.ndarray:
    """concatenate(arange(c) for c in counts), vectorized."""
    total = int(counts.sum())
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def insert_unnest(
    conn: psycopg.Connection,
    df: pl.DataFrame,
    table: str = MINUTE_TABLE,
    *,
    chunk_rows: int = DEFAULT_UNNEST_ROWS,
) -> int:
    """Multi-row ``INSERT ... SELECT * FROM unnest(arrays)`` in chunks; returns the number of rows.
    Each column travels as one binary array parameter encoded with numpy (no Python object per value)."""
    ident = table_identifier(table)
    df = prepare_frame(df)
    casts = ["timestamp", "text", "text"] + ["float8"] * len(FLOAT_COLUMNS)
    statement = sql.SQL("INSERT INTO {} ({}) SELECT * FROM unnest({})").format(
        ident, _columns_sql(), sql.SQL(", ").join(sql.SQL(f"%b::{cast}[]") for cast in casts)
    )
    encoding = _client_encoding(conn)
    with conn.cursor() as cur:
        register_binary_arrays(cur)
        for lo in range(0, df.height, max(1, chunk_rows)):
            cur.execute(statement, binary_array_params(df.slice(lo, chunk_rows), encoding), prepare=False)
    return df.height


def index_order(df: pl.DataFrame) -> pl.DataFrame:
    """The rows in the order of the table's unique index (code, time DESC): each index entry lands right
    after the previous one. With files in code order (landing.load_order) that keeps the index's pages
    full and saves the server a fifth of a load's CPU (docs/minute-bars.md, "Measured again")."""
    if df.height < 2:
        return df
    return df.sort("code", "time", descending=[False, True], maintain_order=True)


def insert_rows(
    conn: psycopg.Connection, df: pl.DataFrame, table: str = MINUTE_TABLE, *, use_copy: bool = True
) -> int:
    """Binary COPY when the server allows it (TimescaleCapabilities.copy_from_stdin), else unnest; the
    rows in index order."""
    df = index_order(df)
    return copy_binary(conn, df, table) if use_copy else insert_unnest(conn, df, table)


def fetch_frame(
    conn: psycopg.Connection, table: str = MINUTE_TABLE, codes: Sequence[str] | None = None
) -> pl.DataFrame:
    """Rows of `table` (optionally only `codes`) as a MINUTE_SCHEMA frame ordered by code, time."""
    query = sql.SQL("SELECT {} FROM {}").format(_columns_sql(), table_identifier(table))
    params: tuple = ()
    if codes is not None:
        query = query + sql.SQL(" WHERE code = ANY(%s)")
        params = (list(codes),)
    query = query + sql.SQL(" ORDER BY code, time")
    with conn.cursor() as cur:
        rows = cur.execute(query, params).fetchall()
    schema = {
        "time": pl.Datetime("us"),
        "code": pl.String,
        "name": pl.String,
        **{c: pl.Float64 for c in FLOAT_COLUMNS},
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
