"""The C side of a venue's compiled frame reader (`_reader.pyx`), for the collector's compiled loops."""

from marketdata_assets.datasets._tape cimport TradeReads

cdef enum:
    NOT_READ = 0  # the frame is for the decoder
    TRADE_READ = 1  # its trade is the next of `trades`
    BOOK_READ = 2  # a book diff held until handed on (`hand_book`)


cdef class FrameReader:
    cdef readonly TradeReads trades  # the trades read, each taken by its instrument's tape when handed on
    cdef readonly int kind  # what the last `read` read

    cdef void clear(self) noexcept
    cpdef object read(self, str text, long long recv_ns)
    cpdef object hand_book(self, object typed, dict by_instrument, dict book_times, long long recv_ns)
