# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled `trade_tape.TradeTape` (its docstrings say what it does; the same records and messages,
tested), and `TradeReads`, where a venue's compiled reader of its documented frames (sources/_reader.pyx)
puts their trades: a trade is read into a `CTrade` when its frame is sorted, taken by its instrument's tape
when handed on, and written into its message at the seal, with no Python object a trade. A frame read
otherwise (another spelling, another venue) keeps its place and is read by the venue's `read_trades` at
the seal."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsDouble
from libc.stdlib cimport free
from libc.string cimport memcpy

import msgspec
from zlib_ng.zlib_ng import crc32

from marketdata_assets.core._digits cimport digits_of
from marketdata_assets.core._memory cimport grow

cdef object ENCODE = msgspec.json.Encoder().encode
cdef object CRC32 = crc32
cdef Py_ssize_t ROOM = 320  # a record's bytes but its venue, instrument and msgspec's floats: 285 at most


cdef class TradeReads:
    """The trades a venue's compiled reader read from a batch's frames (sources/_reader.pyx), in order,
    each taken by its instrument's tape when its frame is handed on."""

    def __dealloc__(self):
        free(self.reads)

    cdef void clear(self) noexcept:
        self.count = self.taken = 0

    cdef int push(self, CTrade* trade) except -1:
        if self.count == self.room:
            grow(<void**>&self.reads, &self.room, self.count + 1, sizeof(CTrade))
        self.reads[self.count] = trade[0]
        self.count += 1
        return 0


cdef inline char* _put(char* at, const char* text, Py_ssize_t n) noexcept:
    memcpy(at, text, n)
    return at + n


cdef inline char* _put_int(char* at, long long value) noexcept:
    return at + digits_of(value, at)


cdef class TradeTape:
    def __init__(self, str venue, str instrument, str conn_id, long long tick, read_trades):
        self.venue, self.instrument, self.conn_id, self.tick = venue, instrument, conn_id, tick
        self.read_trades = read_trades
        self.frames, self.slow = [], []
        self.first_channel, self.first_recv = None, 0
        self.venue_json, self.instrument_json = ENCODE(venue), ENCODE(instrument)

    def __dealloc__(self):
        free(self.trades)
        free(self.order)

    def __len__(self):
        return self.count

    cdef int _append(self, CTrade* trade) except -1:
        if self.count == self.room:
            grow(<void**>&self.trades, &self.room, self.count + 1, sizeof(CTrade))
        self.trades[self.count] = trade[0]
        self.count += 1
        return 0

    cpdef int take(self, TradeReads reads, object channel) except -1:
        """The next trade of `reads`, its frame's `channel`."""
        if reads.taken >= reads.count:
            raise RuntimeError(f"{self.instrument}: no trade read to take")
        if self.count == 0:
            self.first_channel, self.first_recv = channel, reads.reads[reads.taken].recv_ns
        self._append(&reads.reads[reads.taken])
        reads.taken += 1
        return 0

    def add(self, frame, long long recv_ns):
        cdef CTrade trade
        if self.count == 0:
            self.first_channel, self.first_recv = frame.channel, recv_ns
        trade.frame, trade.recv_ns = len(self.frames), recv_ns
        self.frames.append(frame)
        self._append(&trade)

    cdef int _order(self, Py_ssize_t value) except -1:
        if self.records == self.order_room:
            grow(<void**>&self.order, &self.order_room, self.records + 1, sizeof(Py_ssize_t))
        self.order[self.records] = value
        self.records += 1
        return 0

    def read(self, list bad):
        cdef Py_ssize_t k = 0, j
        cdef list frames, recvs
        self.slow, self.records = [], 0
        while k < self.count:
            if self.trades[k].frame < 0:
                self._order(k)
                k += 1
                continue
            j, frames, recvs = k, [], []
            while j < self.count and self.trades[j].frame >= 0:
                frames.append(self.frames[self.trades[j].frame])
                recvs.append(self.trades[j].recv_ns)
                j += 1
            for record in self.read_trades(frames, recvs, bad):
                self.slow.append(record)
                self._order(-len(self.slow))
            k = j
        return self.records

    cdef object _seq(self, Py_ssize_t at):
        cdef Py_ssize_t o = self.order[at]
        return self.trades[o].id if o >= 0 else self.slow[-1 - o].seq

    cdef object _id(self, Py_ssize_t at):
        cdef Py_ssize_t o = self.order[at]
        return str(self.trades[o].id) if o >= 0 else self.slow[-1 - o].trade_id

    @property
    def first_seq(self):
        return self._seq(0) if self.records else None

    @property
    def last_seq(self):
        return self._seq(self.records - 1) if self.records else None

    def lags(self, list buckets, bounds):
        cdef double edges[64]
        cdef Py_ssize_t count = len(bounds), k, o, lo, hi, mid
        cdef double total = 0.0, lag_s
        if count > 64:
            raise ValueError("at most 64 lag buckets")
        for k in range(count):
            edges[k] = bounds[k]
        for k in range(self.records):
            o = self.order[k]
            if o >= 0:
                lag_s = <double>self.trades[o].recv_ns / 1e9 - <double>self.trades[o].event_ms / 1e3
            else:
                record = self.slow[-1 - o]
                recv_ns, event_ms = record.recv_ns, record.event_ms
                if type(recv_ns) is int and type(event_ms) is int:  # as Python divides them
                    lag_s = PyLong_AsDouble(recv_ns) / 1e9 - PyLong_AsDouble(event_ms) / 1e3
                else:
                    lag_s = recv_ns / 1e9 - event_ms / 1e3
            lo, hi = 0, count
            while lo < hi:  # bisect_left
                mid = (lo + hi) // 2
                if edges[mid] < lag_s:
                    lo = mid + 1
                else:
                    hi = mid
            buckets[lo] += 1
            total += lag_s
        return total

    def batch(self, Py_ssize_t start, Py_ssize_t stop):
        cdef Py_ssize_t k, o, n = stop - start
        cdef list floats = [], slow = []
        cdef CTrade* t
        if not 0 <= start < stop <= self.records:
            raise IndexError(f"records {start} to {stop} of {self.records}")
        for k in range(start, stop):
            o = self.order[k]
            if o >= 0:  # the floats written as msgspec writes them: amounts, numbers not known as digits
                t = &self.trades[o]
                if t.price_digits.exp == NO_DIGITS:
                    floats.append(t.price)
                if t.quantity_digits.exp == NO_DIGITS:
                    floats.append(t.quantity)
                floats.append(t.price * t.quantity)
            else:
                slow.append(self.slow[-1 - o])
        if not floats:
            payload = ENCODE(slow)
        else:
            payload = self._write(start, stop, ENCODE(floats), [ENCODE(r) for r in slow])
        return (
            f"{self.venue}.{self.instrument}.{self._id(start)}~{self._id(stop - 1)}.{n}.{CRC32(payload):08x}",
            payload,
        )

    cdef bytes _write(self, Py_ssize_t start, Py_ssize_t stop, bytes floats, list slow):
        """The JSON array of the records `start` to `stop`, as msgspec writes `Trade`s: `floats` the floats
        msgspec wrote for them (`[...]`: `batch`'s), `slow` the other records' JSON."""
        cdef Py_ssize_t k, o, size, s = 0, vn = PyBytes_GET_SIZE(self.venue_json), id_n, recv_n = 0
        cdef Py_ssize_t inn = PyBytes_GET_SIZE(self.instrument_json)
        cdef const char* f = PyBytes_AS_STRING(floats)
        cdef Py_ssize_t fp = 1, fn = PyBytes_GET_SIZE(floats)
        cdef long long recv_ns = 0
        cdef char id_text[24]
        cdef char recv_text[24]
        cdef CTrade* t
        cdef char* at
        size = 2 + (stop - start) * (ROOM + vn + inn) + fn + sum([PyBytes_GET_SIZE(b) + 1 for b in slow])
        out = PyBytes_FromStringAndSize(NULL, size)
        at = PyBytes_AS_STRING(out)
        at[0] = 91  # [
        at += 1
        for k in range(start, stop):
            if k > start:
                at[0] = 44  # ,
                at += 1
            o = self.order[k]
            if o < 0:
                at = _put(at, PyBytes_AS_STRING(slow[s]), PyBytes_GET_SIZE(slow[s]))
                s += 1
                continue
            t = &self.trades[o]
            id_n = digits_of(t.id, id_text)
            if recv_n == 0 or t.recv_ns != recv_ns:  # one receive time for a read's trades
                recv_ns, recv_n = t.recv_ns, digits_of(t.recv_ns, recv_text)
            at = _put(at, b'{"venue":', 9)
            at = _put(at, PyBytes_AS_STRING(self.venue_json), vn)
            at = _put(at, b',"instrument":', 14)
            at = _put(at, PyBytes_AS_STRING(self.instrument_json), inn)
            at = _put(at, b',"trade_id":"', 13)
            at = _put(at, id_text, id_n)
            at = _put(at, b'","price":', 10)
            at = _put_number(at, &t.price_digits, f, &fp, fn)
            at = _put(at, b',"quantity":', 12)
            at = _put_number(at, &t.quantity_digits, f, &fp, fn)
            at = _put(at, b',"amount":', 10)
            at = _put_number(at, NULL, f, &fp, fn)
            if t.sell:
                at = _put(at, b',"side":"sell","seq":', 21)
            else:
                at = _put(at, b',"side":"buy","seq":', 20)
            at = _put(at, id_text, id_n)
            at = _put(at, b',"ts_us":', 9)
            at = _put_int(at, t.ts_us)
            at = _put(at, b',"event_ms":', 12)
            at = _put_int(at, t.event_ms)
            at = _put(at, b',"recv_ns":', 11)
            at = _put(at, recv_text, recv_n)
            at[0] = 125  # }
            at += 1
        at[0] = 93  # ]
        at += 1
        return out[: at - PyBytes_AS_STRING(out)]


cdef inline char* _put_number(char* at, Digits* digits, const char* floats, Py_ssize_t* fp,
                              Py_ssize_t fn) noexcept:
    """A number as msgspec writes its float: from its digits when known, else the next of `floats` (at
    `fp`)."""
    cdef Py_ssize_t begin = fp[0]
    if digits is not NULL and digits.exp != NO_DIGITS:
        return _put_digits(at, digits.mantissa, digits.exp)
    while fp[0] < fn and floats[fp[0]] != 44 and floats[fp[0]] != 93:
        fp[0] += 1
    at = _put(at, floats + begin, fp[0] - begin)
    fp[0] += 1
    return at


cdef inline char* _put_digits(char* at, unsigned long long mantissa, int exp) noexcept:
    """`mantissa` x 10 ** `exp` as msgspec writes the float whose shortest form it is (its layout:
    123.0, 1.25, 0.0001, 1e-7, 1.5e16)."""
    cdef char d[24]
    cdef Py_ssize_t length = digits_of(<long long>mantissa, d), point = length + exp, k
    if 0 <= exp and point <= 16:  # an integer: its digits, zeros, ".0"
        at = _put(at, d, length)
        for k in range(exp):
            at[k] = 48
        at += exp
        return _put(at, b".0", 2)
    if 0 < point <= 16:  # the point among its digits
        at = _put(at, d, point)
        at[0] = 46
        return _put(at + 1, d + point, length - point)
    if -5 < point <= 0:  # 0.000ddd
        at = _put(at, b"0.", 2)
        for k in range(-point):
            at[k] = 48
        return _put(at - point, d, length)
    at[0] = d[0]  # d.ddde<exp>
    at += 1
    if length > 1:
        at[0] = 46
        at = _put(at + 1, d + 1, length - 1)
    at[0] = 101  # e
    return _put_int(at + 1, point - 1)
