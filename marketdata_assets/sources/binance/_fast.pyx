# cython: language_level=3, boundscheck=False, wraparound=False
"""Binance's compiled readings: `combined.typed_event`, `records.events_to_trades` and `records.defer_sides`
(their docstrings say what they answer; the same results, tested), the same steps run as C."""

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

from marketdata_assets.datasets.frames import EPOCH_MS_OR_US, EPOCH_US_FROM
from marketdata_assets.datasets.order_book import NOTED_LIMIT
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.sources.binance.records import defer_sides_py
from marketdata_assets.sources.stream import Frame

cdef str HEAD = '{"stream":"'
cdef str EVENT = "event", BUY = "buy", SELL = "sell"
cdef object MsgspecError = msgspec.MsgspecError
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


cdef inline Py_ssize_t _text(const unsigned char* buf, Py_ssize_t at, Py_ssize_t n):
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


cdef inline str _ascii(const unsigned char* at, Py_ssize_t length):
    """Text known to be ASCII (digits and points), copied into a new str."""
    cdef str text = PyUnicode_New(length, 127)
    memcpy(PyUnicode_DATA(text), at, length)
    return text


cdef bint _pairs(object raw, list out):
    """`raw` as `[["p","q"],...]` exactly (no space, prices and quantities digits and points only) into
    `out` as price, quantity, ...; False (and `out` as it was) for anything else: the original reads it."""
    cdef const unsigned char[:] view = raw
    cdef Py_ssize_t n = view.shape[0], at = 1, p_end, q_end, start = len(out)
    cdef const unsigned char* buf
    if n < 2:
        return False
    buf = &view[0]
    if buf[0] != 91:
        return False
    if buf[1] == 93:
        return n == 2
    while True:
        if at + 1 >= n or buf[at] != 91:
            break
        p_end = _text(buf, at + 1, n)
        if p_end < 0 or p_end + 1 >= n or buf[p_end + 1] != 44:
            break
        q_end = _text(buf, p_end + 2, n)
        if q_end < 0 or q_end + 1 >= n or buf[q_end + 1] != 93:
            break
        out.append(_ascii(buf + at + 2, p_end - at - 2))
        out.append(_ascii(buf + p_end + 3, q_end - p_end - 3))
        at = q_end + 2
        if at < n and buf[at] == 44:
            at += 1
            continue
        if at + 1 == n and buf[at] == 93:
            return True
        break
    del out[start:]
    return False


def defer_sides(book, update_id, bids, asks):
    cdef list b = [], a = []
    cdef dict side
    cdef Py_ssize_t k
    if bids.__class__ is not msgspec.Raw or asks.__class__ is not msgspec.Raw or not (
        _pairs(bids, b) and _pairs(asks, a)
    ):
        defer_sides_py(book, update_id, bids, asks)
        return
    noted = book._noted  # `OrderBook.defer`'s steps, the pairs read here
    if noted is None:
        noted = book._noted = ({}, {})
    side = (<tuple>noted)[0]
    for k in range(0, len(b), 2):
        side[b[k]] = b[k + 1]
    side = (<tuple>noted)[1]
    for k in range(0, len(a), 2):
        side[a[k]] = a[k + 1]
    if len((<tuple>noted)[0]) + len((<tuple>noted)[1]) > NOTED_LIMIT:
        book.settle()
    book.update_id = update_id
