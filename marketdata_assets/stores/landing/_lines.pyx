# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled `lines.add_frames` (its docstring says what it does; the same records, tested): each record
made as bytes at once, the frame's text copied from the `str` as it is (no formatting, no encoding)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_FindChar, PyUnicode_GET_LENGTH, PyUnicode_READ_CHAR
from libc.stdint cimport int64_t
from libc.string cimport memcpy

import orjson

from marketdata_assets.core._digits cimport digits_of

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

cdef int64_t HOUR_NS = 3_600_000_000_000
cdef str BAD_CHANNEL = "_bad"


cdef inline bint whole_object(str text):
    """A JSON object on one line, as its first and last characters and newlines tell."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if n < 2 or PyUnicode_READ_CHAR(text, 0) != 123 or PyUnicode_READ_CHAR(text, n - 1) != 125:
        return False
    return PyUnicode_FindChar(text, 10, 0, n, 1) == -1


cdef inline bytes record(const char* t, Py_ssize_t t_n, bytes conn, const char* body, Py_ssize_t n, bint raw):
    """One record: `{"t":<t>,"c":<conn>,"r":<the object>}` or `..."d":<the string>}`, and a newline."""
    cdef Py_ssize_t c_n = PyBytes_GET_SIZE(conn)
    cdef bytes line = PyBytes_FromStringAndSize(NULL, 5 + t_n + 5 + c_n + 5 + n + 2)
    cdef char* at = PyBytes_AS_STRING(line)
    memcpy(at, b'{"t":', 5)
    at += 5
    memcpy(at, t, t_n)
    at += t_n
    memcpy(at, b',"c":', 5)
    at += 5
    memcpy(at, PyBytes_AS_STRING(conn), c_n)
    at += c_n
    memcpy(at, b',"r":' if raw else b',"d":', 5)
    at += 5
    memcpy(at, body, n)
    at[n] = 125  # }
    at[n + 1] = 10  # \n
    return line


def add_frames(writer, list frames):
    cdef dict conns = {}, files = writer.files
    cdef dict open_ = {}  # channel -> (its file, the file's buffer, its times, its hour's start): no attribute read a frame
    cdef Py_ssize_t flush_lines = writer.flush_lines, n, t_n = 0
    cdef int64_t recv_ns, last_ns = -1
    cdef object last_conn = None, f, file_for = writer._file
    cdef str channel, conn, text
    cdef bytes conn_json = None, quoted, line
    cdef const char* body
    cdef char t[24]
    cdef tuple entry, held
    cdef list buffer
    writer.landed.update([entry[0] for entry in frames])
    for entry in frames:
        channel, conn, text = entry[0], entry[1], entry[2]
        recv_ns = entry[3]
        if recv_ns != last_ns:
            last_ns, t_n = recv_ns, digits_of(recv_ns, t)
        if conn is not last_conn:
            last_conn, conn_json = conn, conns.get(conn)
            if conn_json is None:
                conn_json = conns[conn] = orjson.dumps(conn)
        held = open_.get(channel)
        if held is None or not 0 <= recv_ns - <int64_t>held[3] < HOUR_NS:
            f = files.get(channel)
            if f is None or not 0 <= recv_ns - <int64_t>f.hour_start_ns < HOUR_NS:
                f = file_for(channel, recv_ns)
            held = open_[channel] = (f, f.buffer, f.times, f.hour_start_ns)
        if whole_object(text) and channel != BAD_CHANNEL:
            body = PyUnicode_AsUTF8AndSize(text, &n)
            line = record(t, t_n, conn_json, body, n, True)
        else:
            quoted = orjson.dumps(text)
            line = record(t, t_n, conn_json, PyBytes_AS_STRING(quoted), PyBytes_GET_SIZE(quoted), False)
        buffer = held[1]
        buffer.append(line)
        (<list>held[2]).append(entry[3])
        if len(buffer) >= flush_lines:
            f = held[0]
            f.flush()
            open_[channel] = (f, f.buffer, f.times, held[3])
