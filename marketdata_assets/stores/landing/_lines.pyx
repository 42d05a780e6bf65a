# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled `lines.add_frames` (its docstring says what it does; the same records, tested)."""

from cpython.unicode cimport PyUnicode_GET_LENGTH, PyUnicode_READ_CHAR, PyUnicode_FindChar
from libc.stdint cimport int64_t

import orjson

cdef int64_t HOUR_NS = 3_600_000_000_000
cdef str BAD_CHANNEL = "_bad"


cdef inline bint whole_object(str text):
    """A JSON object on one line, as its first and last characters and newlines tell."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if n < 2 or PyUnicode_READ_CHAR(text, 0) != 123 or PyUnicode_READ_CHAR(text, n - 1) != 125:
        return False
    return PyUnicode_FindChar(text, 10, 0, n, 1) == -1


def add_frames(writer, list frames):
    cdef dict conns = {}, files = writer.files
    cdef Py_ssize_t flush_lines = writer.flush_lines
    cdef int64_t recv_ns, last_ns = -1, start
    cdef object last_conn = None, f, file_for = writer._file
    cdef str head = None, channel, conn, text, conn_json
    cdef list buffer
    cdef tuple entry
    writer.landed.update([entry[0] for entry in frames])
    for entry in frames:
        channel, conn, text = entry[0], entry[1], entry[2]
        recv_ns = entry[3]
        if recv_ns != last_ns or conn is not last_conn and conn != last_conn:
            last_ns, last_conn = recv_ns, conn
            conn_json = conns.get(conn)
            if conn_json is None:
                conn_json = conns[conn] = orjson.dumps(conn).decode()
            head = f'{{"t":{recv_ns},"c":{conn_json},'
        f = files.get(channel)
        if f is None:
            f = file_for(channel, recv_ns)
        else:
            start = f.hour_start_ns
            if not 0 <= recv_ns - start < HOUR_NS:
                f = file_for(channel, recv_ns)
        buffer = f.buffer
        if whole_object(text) and channel != BAD_CHANNEL:
            buffer.append(f'{head}"r":{text}}}\n')
        else:
            buffer.append(f'{head}"d":{orjson.dumps(text).decode()}}}\n')
        f.times.append(recv_ns)
        if len(buffer) >= flush_lines:
            f.flush()
