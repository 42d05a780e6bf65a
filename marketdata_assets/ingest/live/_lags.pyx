# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled `stats.add_lags` (its docstring says what it does; the same buckets and sum, tested)."""

from cpython.long cimport PyLong_AsDouble

from marketdata_assets.ingest.live.stats import LAG_BUCKETS_S

cdef double BOUNDS[32]
cdef Py_ssize_t COUNT = len(LAG_BUCKETS_S)
for _k, _bound in enumerate(LAG_BUCKETS_S):
    BOUNDS[_k] = _bound


def add_lags(list records, list buckets):
    cdef double total = 0.0, lag_s
    cdef Py_ssize_t lo, hi, mid
    for record in records:
        recv_ns, event_ms = record.recv_ns, record.event_ms
        if type(recv_ns) is int and type(event_ms) is int:  # a trade's: as Python divides them
            lag_s = PyLong_AsDouble(recv_ns) / 1e9 - PyLong_AsDouble(event_ms) / 1e3
        else:
            lag_s = recv_ns / 1e9 - event_ms / 1e3
        lo, hi = 0, COUNT
        while lo < hi:  # bisect_left
            mid = (lo + hi) // 2
            if BOUNDS[mid] < lag_s:
                lo = mid + 1
            else:
                hi = mid
        buckets[lo] += 1
        total += lag_s
    return total
