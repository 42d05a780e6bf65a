"""The C side of a venue's compiled frame reader (`_reader.pyx`), for the collector's compiled loops."""

from cpython.ref cimport PyObject

from marketdata_assets.datasets._tape cimport TradeReads

cdef struct Known:
    unsigned long long hash  # of the name's bytes (FNV-1a)
    PyObject* name  # the name as bytes (owned; NULL: a free slot)
    PyObject* value  # what the names dict holds for it (owned)

cdef enum:
    NOT_READ = 0  # the frame is for the decoder
    TRADE_READ = 1  # its trade is the next of `trades`
    BOOK_READ = 2  # a book diff held until handed on (`hand_book`)


cdef class FrameReader:
    cdef readonly TradeReads trades  # the trades read, each taken by its instrument's tape when handed on
    cdef readonly int kind  # what the last `read` read
    cdef Known* known_at  # `known`'s table: open addressing, a power of two of slots, at most half full
    cdef Py_ssize_t known_count, known_slots

    cdef object known(self, dict names, const char* p, Py_ssize_t n)
    cdef int _remember(self, unsigned long long h, bytes name, object value) except -1

    cdef void clear(self) noexcept
    cpdef object read(self, str text, long long recv_ns)
    cpdef object hand_book(self, object typed, dict by_instrument, dict book_times, long long recv_ns)
