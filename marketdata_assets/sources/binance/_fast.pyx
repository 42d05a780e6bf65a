# cython: language_level=3, boundscheck=False, wraparound=False
"""Binance's compiled readings: `combined.typed_event` and `records.events_to_trades` (their docstrings say
what they answer; the same results, tested), the same steps run as C."""

from cpython.unicode cimport PyUnicode_FindChar, PyUnicode_GET_LENGTH, PyUnicode_Substring, PyUnicode_Tailmatch

import msgspec

from marketdata_assets.datasets.frames import EPOCH_MS_OR_US, EPOCH_US_FROM
from marketdata_assets.datasets.normalized import Trade
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
