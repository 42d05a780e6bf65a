# cython: language_level=3, boundscheck=False, wraparound=False
"""Binance's compiled readings: `combined.typed_event`, `records.events_to_trades` and `records.defer_sides`
(their docstrings say what they answer; the same results, tested), the same steps run as C."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdlib cimport realloc
from libc.string cimport memcpy
from cpython.unicode cimport (
    PyUnicode_DATA,
    PyUnicode_FindChar,
    PyUnicode_GET_LENGTH,
    PyUnicode_New,
    PyUnicode_Substring,
    PyUnicode_Tailmatch,
)

import msgspec

from marketdata_assets.datasets._noted cimport NotedLevels, NotedSide
from marketdata_assets.datasets.frames import EPOCH_MS_OR_US, EPOCH_US_FROM
from marketdata_assets.datasets.order_book import NOTED_LIMIT
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.sources.binance.records import defer_sides_py
from marketdata_assets.sources.stream import Frame

cdef str HEAD = '{"stream":"'
cdef str EVENT = "event", BUY = "buy", SELL = "sell"
cdef object MsgspecError = msgspec.MsgspecError, Raw = msgspec.Raw
cdef long long LOW = EPOCH_MS_OR_US[0], HIGH = EPOCH_MS_OR_US[1], US_FROM = EPOCH_US_FROM
cdef object INT64_END = 2**63


def typed_event(str text, dict typed_frames):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), end
    if n < 11 or PyUnicode_Tailmatch(text, HEAD, 0, 11, -1) != 1:
        return None
    end = PyUnicode_FindChar(text, 34, 11, n, 1)
    if end < 0:
        return None
    typed = typed_frames.get(PyUnicode_Substring(text, 11, end))
    if typed is None:
        return None
    try:
        frame = (<tuple>typed)[0](text)
    except MsgspecError:
        return None
    if frame.stream != (<tuple>typed)[3]:
        return None
    return Frame(EVENT, (<tuple>typed)[3], (<tuple>typed)[2], (<tuple>typed)[1], frame.data)


def events_to_trades(str venue, instruments, list events, list recvs):
    cdef Py_ssize_t k, count = len(events)
    cdef long long ts, ts_us
    cdef list records = []
    cdef object one = instruments[0] if len(instruments) == 1 else None
    cdef object event, maker, event_ms, price, qty, trade_id
    if len(recvs) != count:
        raise ValueError("events and receive times differ in number")
    for k in range(count):
        event = events[k]
        ts, maker, event_ms = event.T, event.m, event.E
        if maker.__class__ is not bool or not (LOW <= ts < HIGH or ts == 0):
            records.append(None)
            continue
        ts_us = ts if ts >= US_FROM else ts * 1000
        if event_ms.__class__ is not int or not -INT64_END <= event_ms < INT64_END:
            event_ms = ts_us // 1000
        price, qty, trade_id = event.p, event.q, event.t
        records.append(
            Trade(
                venue,
                one if one is not None else instruments[k],
                str(trade_id),
                price,
                qty,
                price * qty,
                SELL if maker else BUY,
                trade_id,
                ts_us,
                event_ms,
                recvs[k],
            )
        )
    return records


cdef inline Py_ssize_t _text(const unsigned char* buf, Py_ssize_t at, Py_ssize_t n) noexcept:
    """The end of a quoted run of digits and points starting at `at` (its opening quote), or -1."""
    cdef Py_ssize_t k
    cdef unsigned char c
    if at >= n or buf[at] != 34:
        return -1
    for k in range(at + 1, n):
        c = buf[k]
        if c == 34:
            return k if k > at + 1 else -1
        if not (48 <= c <= 57 or c == 46):
            return -1
    return -1


cdef Py_ssize_t* SPANS = NULL  # the levels `_spans` read, four a level: price start, end, quantity start, end
cdef Py_ssize_t SPANS_ROOM = 0  # levels SPANS has room for


cdef Py_ssize_t _spans(const unsigned char* buf, Py_ssize_t n, Py_ssize_t first) except -2:
    """`buf` as `[["p","q"],...]` exactly (no space, prices and quantities digits and points only): its
    levels' spans into SPANS from level `first` on, and their number; -1 for anything else (the original
    reads it)."""
    global SPANS, SPANS_ROOM
    cdef Py_ssize_t at = 1, p_end, q_end, k = first
    cdef Py_ssize_t* grown
    if n < 2 or buf[0] != 91:
        return -1
    if buf[1] == 93:
        return 0 if n == 2 else -1
    while at + 1 < n and buf[at] == 91:
        p_end = _text(buf, at + 1, n)
        if p_end < 0 or p_end + 1 >= n or buf[p_end + 1] != 44:
            return -1
        q_end = _text(buf, p_end + 2, n)
        if q_end < 0 or q_end + 1 >= n or buf[q_end + 1] != 93:
            return -1
        if k == SPANS_ROOM:
            grown = <Py_ssize_t*>realloc(SPANS, 4 * (2 * k + 64) * sizeof(Py_ssize_t))
            if grown is NULL:
                raise MemoryError()
            SPANS, SPANS_ROOM = grown, 2 * k + 64
        SPANS[4 * k], SPANS[4 * k + 1], SPANS[4 * k + 2], SPANS[4 * k + 3] = at + 2, p_end, p_end + 3, q_end
        k += 1
        at = q_end + 2
        if at < n and buf[at] == 44:
            at += 1
            continue
        return k - first if at + 1 == n and buf[at] == 93 else -1
    return -1


cdef inline str _ascii(const unsigned char* at, Py_ssize_t length):
    """Text known to be ASCII (digits and points), copied into a new str."""
    cdef str text = PyUnicode_New(length, 127)
    memcpy(PyUnicode_DATA(text), at, length)
    return text


cdef Py_ssize_t _note(object noted, const unsigned char* bids, Py_ssize_t nb, const unsigned char* asks,
                      Py_ssize_t na) except -1:
    """The levels `_spans` read (bids', then asks') noted in `noted`: a `NotedLevels` (the book's compiled
    notes), else the original's dicts (a diff the original read since the book last settled); the prices
    noted then."""
    if noted.__class__ is NotedLevels:
        _note_side((<NotedLevels>noted).bids, bids, 0, nb)
        _note_side((<NotedLevels>noted).asks, asks, nb, nb + na)
        return (<NotedLevels>noted).bids.count + (<NotedLevels>noted).asks.count
    _note_dict((<tuple>noted)[0], bids, 0, nb)
    _note_dict((<tuple>noted)[1], asks, nb, nb + na)
    return len((<tuple>noted)[0]) + len((<tuple>noted)[1])


cdef int _note_side(NotedSide side, const unsigned char* buf, Py_ssize_t first, Py_ssize_t end) except -1:
    cdef Py_ssize_t k
    cdef Py_ssize_t* span
    for k in range(first, end):
        span = SPANS + 4 * k
        side.note(buf + span[0], span[1] - span[0], buf + span[2], span[3] - span[2])
    return 0


cdef int _note_dict(dict side, const unsigned char* buf, Py_ssize_t first, Py_ssize_t end) except -1:
    cdef Py_ssize_t k
    cdef Py_ssize_t* span
    for k in range(first, end):
        span = SPANS + 4 * k
        side[_ascii(buf + span[0], span[1] - span[0])] = _ascii(buf + span[2], span[3] - span[2])
    return 0


def defer_sides(book, update_id, bids, asks):
    cdef Py_buffer b, a
    cdef Py_ssize_t nb, na, noted_count
    if bids.__class__ is not Raw or asks.__class__ is not Raw:
        defer_sides_py(book, update_id, bids, asks)
        return
    PyObject_GetBuffer(bids, &b, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(asks, &a, PyBUF_SIMPLE)
        try:
            nb = _spans(<const unsigned char*>b.buf, b.len, 0)
            na = _spans(<const unsigned char*>a.buf, a.len, nb) if nb >= 0 else -1
            if na >= 0:  # `OrderBook.defer`'s steps, the pairs read here
                noted = book._noted
                if noted is None:
                    noted = book._noted = NotedLevels()
                noted_count = _note(noted, <const unsigned char*>b.buf, nb, <const unsigned char*>a.buf, na)
        finally:
            PyBuffer_Release(&a)
    finally:
        PyBuffer_Release(&b)
    if na < 0:
        defer_sides_py(book, update_id, bids, asks)
        return
    if noted_count > NOTED_LIMIT:
        book.settle()
    book.update_id = update_id
