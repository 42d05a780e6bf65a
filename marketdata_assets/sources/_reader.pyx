# cython: language_level=3, boundscheck=False, wraparound=False
"""What a venue's compiled reader of its documented frames derives from (Binance's `BinanceFrames`): the
collector's compiled loops (ingest/live/collect/_batches.pyx) give it each frame when a batch is sorted,
before any decoding. A trade frame it reads is a C record at once (`trades`, taken by its instrument's tape
when handed on); a book diff it reads is held and, when handed on in its turn, applied to its book if the
book is in sync (`hand_book`), else answered as the decoded frame, which goes the usual way. Anything it
does not read is decoded as before. This base reads nothing, but knows the names a reader looks up."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp

from marketdata_assets.datasets._tape cimport TradeReads


cdef inline unsigned long long _fnv1a(const char* p, Py_ssize_t n) noexcept:
    cdef unsigned long long h = 14695981039346656037ULL
    cdef Py_ssize_t k
    for k in range(n):
        h = (h ^ <unsigned char>p[k]) * 1099511628211ULL
    return h


cdef class FrameReader:
    def __cinit__(self):
        self.trades = TradeReads()

    def __dealloc__(self):
        cdef Py_ssize_t k
        if self.known_at != NULL:
            for k in range(self.known_slots):
                if self.known_at[k].name != NULL:
                    Py_DECREF(<object>self.known_at[k].name)
                    Py_DECREF(<object>self.known_at[k].value)
            free(self.known_at)

    cdef object known(self, dict names, const char* p, Py_ssize_t n):
        """`names[<the ASCII name p[:n]>]`, or None: a name found once is found again from its bytes, with
        no string made and hashed (a stream's name, every frame). Only what was found is remembered, so
        `names` may gain names, never lose or change one."""
        cdef unsigned long long h = _fnv1a(p, n)
        cdef Py_ssize_t at
        cdef Known* slot
        if self.known_at != NULL:
            at = <Py_ssize_t>(h & <unsigned long long>(self.known_slots - 1))
            while self.known_at[at].name != NULL:
                slot = &self.known_at[at]
                if (
                    slot.hash == h
                    and PyBytes_GET_SIZE(<object>slot.name) == n
                    and memcmp(PyBytes_AS_STRING(<object>slot.name), p, n) == 0
                ):
                    return <object>slot.value
                at = (at + 1) & (self.known_slots - 1)
        name = PyBytes_FromStringAndSize(p, n)
        value = names.get(name.decode("ascii"))
        if value is not None:
            self._remember(h, name, value)
        return value

    cdef int _remember(self, unsigned long long h, bytes name, object value) except -1:
        cdef Py_ssize_t k, at, old_slots = self.known_slots
        cdef Known* old = self.known_at
        if 2 * (self.known_count + 1) > self.known_slots:  # kept at most half full: short probes
            self.known_slots = max(64, 2 * old_slots)
            self.known_at = <Known*>calloc(self.known_slots, sizeof(Known))
            if self.known_at == NULL:
                self.known_at, self.known_slots = old, old_slots
                raise MemoryError()
            for k in range(old_slots):
                if old[k].name != NULL:
                    at = <Py_ssize_t>(old[k].hash & <unsigned long long>(self.known_slots - 1))
                    while self.known_at[at].name != NULL:
                        at = (at + 1) & (self.known_slots - 1)
                    self.known_at[at] = old[k]
            free(old)
        at = <Py_ssize_t>(h & <unsigned long long>(self.known_slots - 1))
        while self.known_at[at].name != NULL:
            at = (at + 1) & (self.known_slots - 1)
        Py_INCREF(name)
        Py_INCREF(value)
        self.known_at[at] = Known(h, <PyObject*>name, <PyObject*>value)
        self.known_count += 1
        return 0

    cdef void clear(self) noexcept:
        self.trades.clear()

    cpdef object read(self, str text, long long recv_ns):
        """The frame's stream entry (its protocol's) if it was read (`kind` says as what), else None."""
        self.kind = NOT_READ
        return None

    cpdef object hand_book(self, object typed, dict by_instrument, dict book_times, long long recv_ns):
        """The next book diff read, handed on: applied to its instrument's book (`by_instrument`) and its
        times noted (`book_times`: (recv ns, event ms)), None; or the frame as decoded, for the usual way."""
        raise NotImplementedError("this reader reads no book diffs")
