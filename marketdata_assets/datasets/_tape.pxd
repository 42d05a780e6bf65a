"""The C side of the compiled trade tape (`_tape.pyx`), for the venues' compiled readers that fill it
(sources/_reader.pxd)."""


cdef enum:
    NO_DIGITS = 1000  # a `Digits.exp` saying the number has no such form here


cdef struct Digits:
    unsigned long long mantissa  # a positive number's significant digits, no trailing zero (at most 15)
    int exp  # times 10 ** exp; NO_DIGITS: not known so (written from its float)


cdef struct CTrade:
    long long id  # the trade's id, an integer that is also its sequence (the record's trade_id and seq)
    double price  # quote per base unit
    double quantity  # base units
    Digits price_digits, quantity_digits  # the price and quantity as their shortest decimal form, if known
    long long ts_us  # the trade's time, epoch µs
    long long event_ms  # the venue's event time of its frame, epoch ms
    long long recv_ns  # our receive time, epoch ns
    int sell  # 1: the taker sold
    Py_ssize_t frame  # -1: read here; else its frame's place in the tape's `frames` (read at the seal)


cdef class TradeReads:
    cdef CTrade* reads  # a batch's trades read so far, in order, taken by their tapes in turn
    cdef Py_ssize_t count, room, taken

    cdef void clear(self) noexcept
    cdef int push(self, CTrade* trade) except -1


cdef class TradeTape:
    cdef readonly str venue, instrument
    cdef public str conn_id
    cdef public long long tick
    cdef object read_trades
    cdef CTrade* trades  # in the order they came; a frame read at the seal holds its place
    cdef Py_ssize_t count, room
    cdef list frames  # the frames read at the seal (`add`)
    cdef readonly object first_channel, first_recv
    cdef list slow  # the records of those frames (`read`)
    cdef Py_ssize_t* order  # each record: >= 0 a trade of `trades`, < 0 the record -1 - k of `slow`
    cdef Py_ssize_t records, order_room
    cdef bytes venue_json, instrument_json

    cpdef int take(self, TradeReads reads, object channel) except -1
    cdef int _append(self, CTrade* trade) except -1
    cdef int _order(self, Py_ssize_t value) except -1
    cdef object _seq(self, Py_ssize_t at)
    cdef object _id(self, Py_ssize_t at)
    cdef bytes _write(self, Py_ssize_t start, Py_ssize_t stop, bytes floats, list slow)
