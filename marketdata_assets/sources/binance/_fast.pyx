# cython: language_level=3, boundscheck=False, wraparound=False
"""Binance's compiled readings: `combined.typed_event`, `records.events_to_trades` and `records.defer_sides`
(their docstrings say what they answer; the same results, tested), the same steps run as C. A trade or
depth diff frame in the documented shape is read here straight from its characters into its record; any
other spelling goes through its msgspec decoder, as in the original."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdlib cimport free
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

from marketdata_assets.core._digits cimport digits_of
from marketdata_assets.core._memory cimport grow
from marketdata_assets.datasets._noted cimport NotedLevels, NotedSide
from marketdata_assets.datasets._tape cimport NO_DIGITS, CTrade, Digits
from marketdata_assets.sources._reader cimport BOOK_READ, NOT_READ, TRADE_READ, FrameReader
from marketdata_assets.datasets.frames import EPOCH_MS_OR_US, EPOCH_US_FROM
from marketdata_assets.datasets.order_book import NOTED_LIMIT
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.sources.binance.records import (
    DepthEvent,
    DepthFrame,
    TradeEvent,
    TradeFrame,
    defer_sides_py,
)
from marketdata_assets.sources.stream import Frame

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object text)
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) except? -1
    double PyOS_string_to_double(const char* s, char** endptr, object overflow_exception) except? -1.0

cdef str HEAD = '{"stream":"'
cdef str EVENT = "event", BUY = "buy", SELL = "sell"
cdef object MsgspecError = msgspec.MsgspecError, Raw = msgspec.Raw
cdef long long LOW = EPOCH_MS_OR_US[0], HIGH = EPOCH_MS_OR_US[1], US_FROM = EPOCH_US_FROM
cdef object INT64_END = 2**63, NEG_INT64_END = -(2**63)
cdef long long INT64_MAX = 2**63 - 1
cdef object TRADE_EVENT = TradeEvent, TRADE_FRAME = TradeFrame, DEPTH_EVENT = DepthEvent, DEPTH_FRAME = DepthFrame
cdef object RAW = msgspec.Raw
cdef str DEPTH_UPDATE = "depthUpdate"
cdef const char* DATA = b'","data":{'
cdef int _BITS[256]  # a one-letter key of the trade event -> its bit in `_trade`'s `seen`
_BITS[116], _BITS[112], _BITS[113], _BITS[84], _BITS[109], _BITS[69] = 1, 2, 4, 8, 16, 32  # t p q T m E
cdef int _DEPTH_BITS[256]  # ... of the depth diff event -> its bit in `_depth`'s `seen`
_DEPTH_BITS[101], _DEPTH_BITS[69], _DEPTH_BITS[115], _DEPTH_BITS[85] = 1, 2, 4, 8  # e E s U
_DEPTH_BITS[117], _DEPTH_BITS[98], _DEPTH_BITS[97] = 16, 32, 64  # u b a


cdef inline bint _named(str text, Py_ssize_t* end) except -1:
    """Whether `text` is a combined frame naming its stream (`{"stream":"<name>",...`), the name's end
    into `end`."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if n < 11 or PyUnicode_Tailmatch(text, HEAD, 0, 11, -1) != 1:
        return False
    end[0] = PyUnicode_FindChar(text, 34, 11, n, 1)
    return end[0] >= 0


cdef object _typed_of(str text, dict typed_frames, Py_ssize_t* end):
    """The `typed_frames` entry of the stream a combined frame names, the name's end into `end`; None
    for another frame or stream."""
    if not _named(text, end):
        return None
    return typed_frames.get(PyUnicode_Substring(text, 11, end[0]))


def typed_event(str text, dict typed_frames):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), end
    typed = _typed_of(text, typed_frames, &end)
    if typed is None:
        return None
    record = (<tuple>typed)[4] if len(<tuple>typed) > 4 else None
    if (record is TRADE_FRAME or record is DEPTH_FRAME) and PyUnicode_IS_ASCII(text):
        if record is TRADE_FRAME:
            event = _trade(<const char*>PyUnicode_DATA(text), end, n)
        else:
            event = _depth(text, <const char*>PyUnicode_DATA(text), end, n)
        if event is not None:
            return Frame(EVENT, (<tuple>typed)[3], (<tuple>typed)[2], (<tuple>typed)[1], event)
    try:
        frame = (<tuple>typed)[0](text)
    except MsgspecError:
        return None
    if frame.stream != (<tuple>typed)[3]:
        return None
    return Frame(EVENT, (<tuple>typed)[3], (<tuple>typed)[2], (<tuple>typed)[1], frame.data)


cdef inline Py_ssize_t _integer(const char* p, Py_ssize_t at, Py_ssize_t n, long long* out):
    """A JSON integer of at most 18 digits at `at` (its sign allowed), its end; -1 for anything else."""
    cdef Py_ssize_t k = at, digits
    cdef long long value = 0
    cdef bint negative = k < n and p[k] == 45
    k += negative
    digits = k
    while k < n and 48 <= p[k] <= 57:
        value = value * 10 + (p[k] - 48)
        k += 1
    digits = k - digits
    if digits == 0 or digits > 18 or (digits > 1 and p[k - digits] == 48):
        return -1
    if k < n and (p[k] == 46 or p[k] == 101 or p[k] == 69):  # a fraction or an exponent: not an integer
        return -1
    out[0] = -value if negative else value
    return k


cdef double POW10[23]  # 1e0 .. 1e22: each exactly a double
for _k in range(23):
    POW10[_k] = 10.0 ** _k


cdef inline Py_ssize_t _decimal(const char* p, Py_ssize_t at, Py_ssize_t n, double* out, Digits* digits):
    """Text of digits with at most one point inside (`"0.001"`) at `at`, its end past the closing quote,
    read as the float msgspec reads it (correctly rounded); -1 for anything else or zero. `digits`: its
    value as significant digits times a power of ten, when they are 15 at most (then the float is one
    exact division or product of two doubles, correctly rounded as any reading rounds it; and those
    digits are the float's shortest form); else its `exp` is NO_DIGITS."""
    cdef Py_ssize_t k = at + 1, points = 0, length, frac = 0, sig = 0
    cdef unsigned long long mantissa = 0
    cdef int exp
    cdef char buf[48]
    cdef char c
    if at >= n or p[at] != 34:
        return -1
    while k < n and p[k] != 34:
        c = p[k]
        if c == 46:
            points += 1
        elif 48 <= c <= 57:
            frac += points != 0
            if c != 48 or sig:
                sig += 1
                if sig <= 19:
                    mantissa = mantissa * 10 + (c - 48)
        else:
            return -1
        k += 1
    length = k - at - 1
    if k >= n or length == 0 or length > 40 or points > 1 or p[at + 1] == 46 or p[k - 1] == 46:
        return -1
    if p[at + 1] == 48 and length > 1 and p[at + 2] != 46:  # a leading zero but before the point
        return -1
    exp = -frac
    while mantissa and mantissa % 10 == 0 and sig <= 19:
        mantissa //= 10
        exp += 1
    if 0 < mantissa < 1_000_000_000_000_000 and sig <= 19 and -22 <= exp <= 22:
        out[0] = mantissa / POW10[-exp] if exp < 0 else mantissa * POW10[exp]
        digits.mantissa, digits.exp = mantissa, exp
        return k + 1
    digits.exp = NO_DIGITS
    memcpy(buf, p + at + 1, length)
    buf[length] = 0
    out[0] = PyOS_string_to_double(buf, NULL, None)  # as Python reads it, whatever the C locale
    if not out[0] > 0:
        return -1
    return k + 1


cdef inline Py_ssize_t _event_start(const char* p, Py_ssize_t end, Py_ssize_t n) noexcept:
    """Past `","data":{` right after the stream's name (ending at `end`): where the event's first key
    starts; -1 if the frame goes on otherwise."""
    cdef Py_ssize_t k
    for k in range(10):
        if end + k >= n or p[end + k] != DATA[k]:
            return -1
    return end + 10


cdef struct TradeFields:
    long long t, ts, e_ms  # the event's t, T and E
    double price, qty  # its p and q
    Digits price_digits, qty_digits  # ... as their digits (`_decimal`)
    bint maker, has_e  # m; whether E came


cdef bint _trade_fields(const char* p, Py_ssize_t end, Py_ssize_t n, TradeFields* out):
    """A trade frame's event read into `out` when it is a flat object of integers, plain text and booleans
    with `t`, `p`, `q`, `T` and `m` each once and no space anywhere (`{"stream":"<name>","data":{...}}`,
    the stream's name ending at `end`); False for any other spelling (the decoder reads it)."""
    cdef Py_ssize_t at
    cdef long long number
    cdef int seen = 0, bit
    cdef char key
    at = _event_start(p, end, n)
    if at < 0:
        return False
    out.maker = False
    while True:
        if at + 3 >= n or p[at] != 34 or p[at + 2] != 34 or p[at + 3] != 58:  # a one-letter key, then :
            return False  # a longer key than the event's one-letter ones: the decoder reads the frame
        key, at = p[at + 1], at + 4
        bit = _BITS[<unsigned char>key]  # which field of the record, 0: one it does not keep
        if seen & bit:
            return False  # a key twice
        seen |= bit
        if bit == 2 or bit == 4:
            if bit == 2:
                at = _decimal(p, at, n, &out.price, &out.price_digits)
            else:
                at = _decimal(p, at, n, &out.qty, &out.qty_digits)
        elif bit == 16:
            if n - at >= 4 and p[at] == 116 and p[at + 1] == 114 and p[at + 2] == 117 and p[at + 3] == 101:
                out.maker, at = True, at + 4
            elif n - at >= 5 and p[at] == 102 and p[at + 1] == 97 and p[at + 2] == 108 and p[at + 3] == 115 and p[at + 4] == 101:
                out.maker, at = False, at + 5
            else:
                return False
        elif bit:
            at = _integer(p, at, n, &number)
            if bit == 1:
                if number < 0:
                    return False
                out.t = number
            elif bit == 8:
                out.ts = number
            else:
                out.e_ms = number
        else:
            at = _skip_simple(p, at, n)
        if at < 0 or at >= n:
            return False
        if p[at] == 44:  # ,
            at += 1
            continue
        out.has_e = seen & 32 != 0
        return p[at] == 125 and at + 2 == n and p[at + 1] == 125 and seen & 31 == 31  # }} and the end


cdef object _trade(const char* p, Py_ssize_t end, Py_ssize_t n):
    """The `TradeEvent` of a trade frame in the documented shape (`_trade_fields`), else None."""
    cdef TradeFields f
    if not _trade_fields(p, end, n, &f):
        return None
    return TRADE_EVENT(f.t, f.price, f.qty, f.ts, f.maker, f.e_ms if f.has_e else None)


cdef inline Py_ssize_t _string_end(const char* p, Py_ssize_t at, Py_ssize_t n):
    """Past a JSON string without escapes at `at`; -1 for anything else."""
    cdef Py_ssize_t k
    if at >= n or p[at] != 34:
        return -1
    for k in range(at + 1, n):
        if p[k] == 34:
            return k + 1
        if p[k] == 92 or <unsigned char>p[k] < 32:
            return -1
    return -1


cdef inline Py_ssize_t _levels_end(const char* p, Py_ssize_t at, Py_ssize_t n):
    """Past a side's levels at `at` written as documented, `[["price","quantity"],...]` (no space, strings
    without escapes); -1 for any other spelling."""
    cdef Py_ssize_t k = at + 1
    if at >= n or p[at] != 91:
        return -1
    if k < n and p[k] == 93:
        return k + 1
    while True:
        if k >= n or p[k] != 91:
            return -1
        k = _string_end(p, k + 1, n)
        if k < 0 or k >= n or p[k] != 44:
            return -1
        k = _string_end(p, k + 1, n)
        if k < 0 or k + 1 >= n or p[k] != 93:
            return -1
        if p[k + 1] == 93:
            return k + 2
        if p[k + 1] != 44:
            return -1
        k += 2


cdef struct DepthFields:
    long long event_ms, first, last  # the event's E, U and u
    Py_ssize_t e0, e1, s0, s1  # its e and s: their text's span (inside the quotes)
    Py_ssize_t b0, b1, a0, a1  # its b and a: their levels' span (brackets included)
    Py_ssize_t b_first, nb, a_first, na  # their levels' spans in `spans` (when asked for)


cdef bint _depth_fields(const char* p, Py_ssize_t end, Py_ssize_t n, DepthFields* out,
                        Spans* spans) except -1:
    """A diff frame's event read into `out` when written as documented (a flat object of the event's
    one-letter keys, each once, no space; its sides `_levels_end`'s, or, `spans` given, `_side_spans`' with
    their levels' spans appended to it); False for any other spelling (nothing appended)."""
    cdef Py_ssize_t count = spans.count if spans is not NULL else 0
    if _event_fields(p, end, n, out, spans):
        return True
    if spans is not NULL:
        spans.count = count
    return False


cdef bint _event_fields(const char* p, Py_ssize_t end, Py_ssize_t n, DepthFields* out,
                        Spans* spans) except -1:
    cdef Py_ssize_t at, start, levels = 0
    cdef long long number
    cdef int seen = 0, bit
    at = _event_start(p, end, n)
    if at < 0:
        return False
    while True:
        if at + 3 >= n or p[at] != 34 or p[at + 2] != 34 or p[at + 3] != 58:
            return False
        bit, at = _DEPTH_BITS[<unsigned char>p[at + 1]], at + 4
        if seen & bit:
            return False
        seen |= bit
        start = at
        if bit == 1 or bit == 4:
            at = _string_end(p, at, n)
            if bit == 1:
                out.e0, out.e1 = start + 1, at - 1
            else:
                out.s0, out.s1 = start + 1, at - 1
        elif bit == 32 or bit == 64:
            if spans is NULL:
                at = _levels_end(p, at, n)
            else:
                levels = spans.count
                at = _side_spans(<const unsigned char*>p, at, n, spans)
            if bit == 32:
                out.b0, out.b1 = start, at
                if spans is not NULL:
                    out.b_first, out.nb = levels, spans.count - levels
            else:
                out.a0, out.a1 = start, at
                if spans is not NULL:
                    out.a_first, out.na = levels, spans.count - levels
        elif bit:
            at = _integer(p, at, n, &number)
            if bit == 2:
                out.event_ms = number
            elif bit == 8:
                out.first = number
            else:
                out.last = number
        else:
            at = _skip_simple(p, at, n)
        if at >= 0 and at < n and p[at] == 44:
            at += 1
            continue
        return at >= 0 and at < n and p[at] == 125 and at + 2 == n and p[at + 1] == 125 and seen == 127


cdef object _depth(str text, const char* p, Py_ssize_t end, Py_ssize_t n):
    """The `DepthEvent` of a diff frame written as documented (`_depth_fields`), its sides kept as their
    text (`msgspec.Raw`, as the decoder keeps them); None for any other spelling (the decoder reads it)."""
    cdef DepthFields f
    if not _depth_fields(p, end, n, &f, NULL):
        return None
    kind = PyUnicode_Substring(text, f.e0, f.e1)
    return DEPTH_EVENT(
        DEPTH_UPDATE if kind == DEPTH_UPDATE else kind,
        f.event_ms,
        PyUnicode_Substring(text, f.s0, f.s1),
        f.first,
        f.last,
        RAW(PyUnicode_Substring(text, f.b0, f.b1)),
        RAW(PyUnicode_Substring(text, f.a0, f.a1)),
    )


cdef inline Py_ssize_t _skip_simple(const char* p, Py_ssize_t at, Py_ssize_t n):
    """Past a value of a field the record does not keep (`e`, `s`, `M`): plain text without escapes, an
    integer, true or false; -1 for any other value."""
    cdef long long ignored
    cdef Py_ssize_t k
    if at >= n:
        return -1
    if p[at] == 34:
        return _string_end(p, at, n)
    if n - at >= 4 and p[at] == 116 and p[at + 1] == 114 and p[at + 2] == 117 and p[at + 3] == 101:
        return at + 4
    if n - at >= 5 and p[at] == 102 and p[at + 1] == 97 and p[at + 2] == 108 and p[at + 3] == 115 and p[at + 4] == 101:
        return at + 5
    return _integer(p, at, n, &ignored)


cdef inline str _id_text(object value):
    """`str(value)`, an int that fits 63 bits written here (`str` of an int costs ten times more)."""
    cdef char digits[24]
    cdef int overflow = 0
    cdef Py_ssize_t n
    cdef long long v
    cdef str text
    if value.__class__ is not int:
        return str(value)
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < 0:
        return str(value)
    n = digits_of(v, digits)
    text = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(text), digits, n)
    return text


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
        if event_ms.__class__ is not int or not NEG_INT64_END <= event_ms < INT64_END:
            event_ms = ts_us // 1000
        price, qty, trade_id = event.p, event.q, event.t
        records.append(
            Trade(
                venue,
                one if one is not None else instruments[k],
                _id_text(trade_id),
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


cdef struct Spans:
    Py_ssize_t* at  # four a level: its price's start and end, its quantity's (from its side's start)
    Py_ssize_t count, room  # levels read, room for


cdef Spans SCRATCH  # `defer_sides`' levels


cdef Py_ssize_t _side_spans(const unsigned char* buf, Py_ssize_t at, Py_ssize_t n, Spans* out) except -2:
    """The side at `at` written `[["p","q"],...]` (no space, prices and quantities digits and points
    only): its levels' spans appended to `out`, and where it ends (past its `]`); -1 for anything else,
    with nothing appended (the original reads it)."""
    cdef Py_ssize_t k = at + 1, p_end, q_end, count = out.count
    cdef Py_ssize_t* level
    if k >= n or buf[at] != 91:
        return -1
    if buf[k] == 93:
        return k + 1
    while k + 1 < n and buf[k] == 91:
        p_end = _text(buf, k + 1, n)
        if p_end < 0 or p_end + 1 >= n or buf[p_end + 1] != 44:
            break
        q_end = _text(buf, p_end + 2, n)
        if q_end < 0 or q_end + 1 >= n or buf[q_end + 1] != 93:
            break
        if out.count == out.room:
            grow(<void**>&out.at, &out.room, out.count + 1, 4 * sizeof(Py_ssize_t))
        level = out.at + 4 * out.count
        level[0], level[1], level[2], level[3] = k + 2 - at, p_end - at, p_end + 3 - at, q_end - at
        out.count += 1
        k = q_end + 2
        if k < n and buf[k] == 44:
            k += 1
            continue
        if k < n and buf[k] == 93:
            return k + 1
        break
    out.count = count
    return -1


cdef inline str _ascii(const unsigned char* at, Py_ssize_t length):
    """Text known to be ASCII (digits and points), copied into a new str."""
    cdef str text = PyUnicode_New(length, 127)
    memcpy(PyUnicode_DATA(text), at, length)
    return text


cdef Py_ssize_t _note(object noted, Spans* spans, const unsigned char* bids, Py_ssize_t b_first,
                      Py_ssize_t nb,
                      const unsigned char* asks, Py_ssize_t a_first, Py_ssize_t na) except -1:
    """The levels read (`nb` bids' spans from `b_first` of `spans`, `na` asks' from `a_first`) noted in
    `noted`: a `NotedLevels` (the book's compiled notes), else the original's dicts (a diff the original
    read since the book last settled); the prices noted then."""
    if noted.__class__ is NotedLevels:
        _note_side((<NotedLevels>noted).bids, bids, spans.at + 4 * b_first, nb)
        _note_side((<NotedLevels>noted).asks, asks, spans.at + 4 * a_first, na)
        return (<NotedLevels>noted).bids.count + (<NotedLevels>noted).asks.count
    _note_dict((<tuple>noted)[0], bids, spans.at + 4 * b_first, nb)
    _note_dict((<tuple>noted)[1], asks, spans.at + 4 * a_first, na)
    return len((<tuple>noted)[0]) + len((<tuple>noted)[1])


cdef int _note_side(NotedSide side, const unsigned char* buf, Py_ssize_t* span, Py_ssize_t count) except -1:
    cdef Py_ssize_t k
    for k in range(count):
        side.note(buf + span[0], span[1] - span[0], buf + span[2], span[3] - span[2])
        span += 4
    return 0


cdef int _note_dict(dict side, const unsigned char* buf, Py_ssize_t* span, Py_ssize_t count) except -1:
    cdef Py_ssize_t k
    for k in range(count):
        side[_ascii(buf + span[0], span[1] - span[0])] = _ascii(buf + span[2], span[3] - span[2])
        span += 4
    return 0


cdef object _noted_from(tuple noted):
    """The original's noted dicts (a diff it read since the book last settled) as `NotedLevels`, the same
    levels in the same order, when every price and quantity is ASCII text; else None (the dicts stay)."""
    cdef NotedLevels levels = NotedLevels()
    cdef NotedSide side
    cdef Py_ssize_t k
    for k in range(2):
        side = levels.bids if k == 0 else levels.asks
        for price, qty in (<dict>noted[k]).items():
            if price.__class__ is not str or qty.__class__ is not str:
                return None
            if not (PyUnicode_IS_ASCII(price) and PyUnicode_IS_ASCII(qty)):
                return None
            side.note(<const unsigned char*>PyUnicode_DATA(price), PyUnicode_GET_LENGTH(price),
                      <const unsigned char*>PyUnicode_DATA(qty), PyUnicode_GET_LENGTH(qty))
    return levels


cdef bint _defer(book, object update_id, const unsigned char* bids, Py_ssize_t nb_len,
                 const unsigned char* asks, Py_ssize_t na_len) except -1:
    """`OrderBook.defer`'s steps for sides written `[["p","q"],...]` (`_side_spans`), the pairs read here;
    False, with nothing done, for any other spelling (the original reads it)."""
    cdef Py_ssize_t nb
    SCRATCH.count = 0
    if _side_spans(bids, 0, nb_len, &SCRATCH) != nb_len:
        return False
    nb = SCRATCH.count
    if _side_spans(asks, 0, na_len, &SCRATCH) != na_len:
        return False
    _defer_read(book, update_id, &SCRATCH, bids, 0, nb, asks, nb, SCRATCH.count - nb)
    return True


cdef int _defer_read(book, object update_id, Spans* spans, const unsigned char* bids, Py_ssize_t b_first,
                     Py_ssize_t nb, const unsigned char* asks, Py_ssize_t a_first, Py_ssize_t na) except -1:
    """`OrderBook.defer`'s steps, the levels read (`_note`'s)."""
    noted = book._noted
    if noted is None:
        noted = book._noted = NotedLevels()
    elif noted.__class__ is tuple:  # the original's dicts: taken over when they hold text only
        taken = _noted_from(<tuple>noted)
        if taken is not None:
            noted = book._noted = taken
    if _note(noted, spans, bids, b_first, nb, asks, a_first, na) > NOTED_LIMIT:
        book.settle()
    book.update_id = update_id
    return 0


def defer_sides(book, update_id, bids, asks):
    cdef Py_buffer b, a
    cdef bint done
    if bids.__class__ is not Raw or asks.__class__ is not Raw:
        defer_sides_py(book, update_id, bids, asks)
        return
    PyObject_GetBuffer(bids, &b, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(asks, &a, PyBUF_SIMPLE)
        try:
            done = _defer(
                book, update_id, <const unsigned char*>b.buf, b.len, <const unsigned char*>a.buf, a.len
            )
        finally:
            PyBuffer_Release(&a)
    finally:
        PyBuffer_Release(&b)
    if not done:
        defer_sides_py(book, update_id, bids, asks)


cdef struct DepthRead:
    long long first, last, event_ms  # the diff's U, u and E
    Py_ssize_t b0, a0  # where its sides start in its frame's text
    Py_ssize_t b_first, nb, a_first, na  # their levels' spans in the reader's `spans`


cdef class BinanceFrames(FrameReader):
    """The trade and depth diff frames of the streams in `typed_frames` (the protocol's) read when sorted:
    a trade into a `CTrade` as `events_to_trades` makes its record, when in the documented shape and within
    its rules; a diff (`_depth_fields`, its levels plain decimals: `_side_spans`) held until handed on,
    then applied to its `DepthSync`'s book when the book is in sync, as `DepthSync.on_frame` and
    `defer_sides` apply it. Any other frame is left to the decoder (`read` answers None), and a diff whose
    book is not in sync goes the usual way decoded."""

    cdef dict typed_frames
    cdef object depth_sync  # the class of the protocol's books
    cdef DepthRead* depths  # the diffs read, in order, each handed on in turn
    cdef Py_ssize_t depth_count, depth_room, depth_taken
    cdef list texts  # their frames' texts
    cdef Spans spans  # their levels

    def __init__(self, dict typed_frames, depth_sync):
        self.typed_frames, self.depth_sync, self.texts = typed_frames, depth_sync, []

    def __dealloc__(self):
        free(self.depths)
        free(self.spans.at)

    cdef void clear(self) noexcept:
        self.trades.clear()
        self.depth_count = self.depth_taken = self.spans.count = 0
        del self.texts[:]

    cpdef object read(self, str text, long long recv_ns):
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), end
        cdef TradeFields f
        cdef DepthFields d
        cdef CTrade trade
        cdef const char* p = <const char*>PyUnicode_DATA(text)
        self.kind = NOT_READ
        if not PyUnicode_IS_ASCII(text):
            return None
        if not _named(text, &end):
            return None
        typed = self.known(self.typed_frames, p + 11, end - 11)  # the stream's entry, from its name's bytes
        if typed is None or len(<tuple>typed) < 5:
            return None
        record = (<tuple>typed)[4]
        if record is TRADE_FRAME:
            if not _trade_fields(p, end, n, &f) or not (LOW <= f.ts < HIGH or f.ts == 0):
                return None  # another spelling, or no epoch (the original reading refuses it)
            trade.id, trade.price, trade.quantity = f.t, f.price, f.qty
            trade.price_digits, trade.quantity_digits = f.price_digits, f.qty_digits
            trade.ts_us = f.ts if f.ts >= US_FROM else f.ts * 1000
            trade.event_ms = f.e_ms if f.has_e else trade.ts_us // 1000
            trade.recv_ns, trade.sell, trade.frame = recv_ns, f.maker, -1
            self.trades.push(&trade)
            self.kind = TRADE_READ
            return typed
        if record is DEPTH_FRAME and _depth_fields(p, end, n, &d, &self.spans):
            if self.depth_count == self.depth_room:
                grow(<void**>&self.depths, &self.depth_room, self.depth_count + 1, sizeof(DepthRead))
            self.depths[self.depth_count] = DepthRead(
                d.first, d.last, d.event_ms, d.b0, d.a0, d.b_first, d.nb, d.a_first, d.na
            )
            self.depth_count += 1
            self.texts.append(text)
            self.kind = BOOK_READ
            return typed
        return None

    cpdef object hand_book(self, object typed, dict by_instrument, dict book_times, long long recv_ns):
        cdef DepthRead* d
        cdef const unsigned char* p
        cdef long long update_id
        cdef int overflow = 0
        cdef bint comparable  # the book's update id a C integer with room above it
        if self.depth_taken >= self.depth_count:
            raise RuntimeError("no book diff read to hand on")
        d, text = &self.depths[self.depth_taken], self.texts[self.depth_taken]
        self.depth_taken += 1
        instrument = (<tuple>typed)[1]
        sync = by_instrument.get(instrument)
        if sync is not None and sync.__class__ is self.depth_sync and not sync.needs_snapshot:
            book = sync.book
            current = book.update_id
            update_id = PyLong_AsLongLongAndOverflow(current, &overflow) if current.__class__ is int else 0
            comparable = current.__class__ is int and not overflow and update_id < INT64_MAX
            if comparable and d.first <= update_id + 1 < d.last + 1:
                p = <const unsigned char*>PyUnicode_DATA(text)
                _defer_read(book, d.last, &self.spans, p + d.b0, d.b_first, d.nb, p + d.a0, d.a_first, d.na)
                book_times[instrument] = (recv_ns, d.event_ms)
                return None
        return typed_event(text, self.typed_frames)  # the frame as decoded: the usual way
