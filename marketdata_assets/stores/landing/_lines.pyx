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


cdef class _Held:
    """A channel's open file while a batch lands: what each frame needs of it, read once."""
    cdef object f  # the file
    cdef list buffer, times  # its records and their receive times, not yet flushed
    cdef int64_t hour_start_ns  # the hour it takes
    cdef bint raw  # frames that are JSON objects on one line land as sent (any channel but BAD_CHANNEL)
    cdef Py_ssize_t count  # frames of the batch landed in this channel

    cdef void take(self, f):
        self.f, self.buffer, self.times, self.hour_start_ns = f, f.buffer, f.times, f.hour_start_ns


def add_frames(writer, list frames):
    cdef dict conns = {}, files = writer.files
    cdef dict open_ = {}  # channel -> its `_Held`: no attribute read a frame
    cdef Py_ssize_t flush_lines = writer.flush_lines, n, t_n = 0, done = 0
    cdef int64_t recv_ns, last_ns = -1
    cdef object last_conn = None, f, file_for = writer._file, time
    cdef str channel, conn, text
    cdef bytes conn_json = None, quoted, line
    cdef const char* body
    cdef char t[24]
    cdef tuple entry
    cdef _Held held
    try:
        for entry in frames:
            channel, conn, text, time = entry[0], entry[1], entry[2], entry[3]
            recv_ns = time
            if recv_ns != last_ns:
                last_ns, t_n = recv_ns, digits_of(recv_ns, t)
            if conn is not last_conn:
                last_conn, conn_json = conn, conns.get(conn)
                if conn_json is None:
                    conn_json = conns[conn] = orjson.dumps(conn)
            held = <_Held>open_.get(channel)
            if held is None:
                held = open_[channel] = _Held()
                held.raw, held.hour_start_ns = channel != BAD_CHANNEL, recv_ns + HOUR_NS  # no file yet
            if not 0 <= recv_ns - held.hour_start_ns < HOUR_NS:
                f = files.get(channel)
                if f is None or not 0 <= recv_ns - <int64_t>f.hour_start_ns < HOUR_NS:
                    f = file_for(channel, recv_ns)
                held.take(f)
            held.count += 1
            done += 1
            if held.raw and whole_object(text):
                body = PyUnicode_AsUTF8AndSize(text, &n)
                line = record(t, t_n, conn_json, body, n, True)
            else:
                quoted = orjson.dumps(text)
                line = record(t, t_n, conn_json, PyBytes_AS_STRING(quoted), PyBytes_GET_SIZE(quoted), False)
            held.buffer.append(line)
            held.times.append(time)
            if len(held.buffer) >= flush_lines:
                held.f.flush()
                held.take(held.f)
    finally:  # every frame counted, as the original counts them before it lands any
        writer.landed.update({channel: (<_Held>held).count for channel, held in open_.items()})
        if done < len(frames):
            writer.landed.update([entry[0] for entry in frames[done:]])
