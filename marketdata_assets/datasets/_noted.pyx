# cython: language_level=3, boundscheck=False, wraparound=False
"""A book's deferred levels as the compiled readers note them (`OrderBook.defer`'s notes, kept in C): each
side's levels keyed by the price's bytes with the latest quantity's bytes, in the order their prices first
came, as the original's dicts keep them (the book's key order and its `moved` lists follow it). Why: a fast
stream moves the same prices many times between two reads of its book; here a level noted costs a hash of
its bytes and a copy, and Python strs are made only when the book takes the levels in (`take_in`: one pair
a distinct price), not two for every level of every diff."""

cimport cython
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_New
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

from marketdata_assets.datasets.order_book import _take_in

cdef enum:
    FIRST_ROOM = 64  # levels a side has room for at first (slots: twice as many)
    FIRST_TEXT = 512  # bytes of prices and quantities a side has room for at first


cdef inline unsigned long long _hash(const unsigned char* at, Py_ssize_t length) noexcept:
    """FNV-1a of the bytes (a price of a few digits: a few instructions a byte)."""
    cdef unsigned long long h = 0xcbf29ce484222325ULL
    cdef Py_ssize_t k
    for k in range(length):
        h = (h ^ at[k]) * 0x100000001b3ULL
    return h ^ (h >> 32)


cdef inline int _weigh(const unsigned char* at, Py_ssize_t length) noexcept:
    """A quantity's text weighed as `order_book._set_levels` weighs a plain decimal (digits and at most one
    point): 1 zero, 0 not; -1 for any other text (the original weighs it, and names it if it is no number)."""
    cdef Py_ssize_t k, points = 0
    cdef bint digits = False, zero = True
    cdef unsigned char c
    for k in range(length):
        c = at[k]
        if c == 46:
            points += 1
        elif 48 <= c <= 57:
            digits = True
            zero = zero and c == 48
        else:
            return -1
    return -1 if points > 1 or not digits else zero


@cython.final
cdef class NotedSide:
    """One side's noted levels: an insertion-ordered table from a price's bytes to its latest quantity's
    (a dict's `update`, last one winning, over ASCII text)."""

    def __cinit__(self):
        self.levels = <Level*>malloc(FIRST_ROOM * sizeof(Level))
        self.slots = <Py_ssize_t*>malloc(2 * FIRST_ROOM * sizeof(Py_ssize_t))
        self.text = <unsigned char*>malloc(FIRST_TEXT)
        if self.levels is NULL or self.slots is NULL or self.text is NULL:
            raise MemoryError()
        for k in range(2 * FIRST_ROOM):
            self.slots[k] = 0
        self.count, self.room, self.mask = 0, FIRST_ROOM, 2 * FIRST_ROOM - 1
        self.text_len, self.text_room = 0, FIRST_TEXT

    def __dealloc__(self):
        free(self.levels)
        free(self.slots)
        free(self.text)

    def __len__(self):
        return self.count

    cdef int note(self, const unsigned char* price, Py_ssize_t price_len,
                  const unsigned char* qty, Py_ssize_t qty_len) except -1:
        """`side[price] = qty` of ASCII texts (a reader's digits and points): a new price at the end, a
        known one keeps its place and takes the quantity."""
        cdef unsigned long long h = _hash(price, price_len)
        cdef Py_ssize_t at = <Py_ssize_t>(h & <unsigned long long>self.mask), k
        cdef Level* level
        while self.slots[at]:
            level = &self.levels[self.slots[at] - 1]
            if (level.hash == h and level.price_len == price_len
                    and memcmp(self.text + level.price, price, price_len) == 0):
                if qty_len > level.qty_room:
                    k = self._keep(qty, qty_len, NULL, 0)
                    level.qty, level.qty_room = k, qty_len
                else:
                    memcpy(self.text + level.qty, qty, qty_len)
                level.qty_len = qty_len
                return 0
            at = (at + 1) & self.mask
        if self.count == self.room or 2 * (self.count + 1) > self.mask + 1:
            self._grow()
            at = <Py_ssize_t>(h & <unsigned long long>self.mask)
            while self.slots[at]:
                at = (at + 1) & self.mask
        level = &self.levels[self.count]
        level.hash, level.price_len, level.qty_len, level.qty_room = h, price_len, qty_len, qty_len
        level.price = self._keep(price, price_len, qty, qty_len)
        level.qty = level.price + price_len
        self.count += 1
        self.slots[at] = self.count
        return 0

    cdef Py_ssize_t _keep(self, const unsigned char* at, Py_ssize_t length,
                          const unsigned char* then, Py_ssize_t then_length) except -1:
        """`length` bytes, then `then_length` more, copied to the end of the side's text: where they start."""
        cdef Py_ssize_t start = self.text_len, room = self.text_room
        cdef unsigned char* grown
        while start + length + then_length > room:
            room *= 2
        if room != self.text_room:
            grown = <unsigned char*>realloc(self.text, room)
            if grown is NULL:
                raise MemoryError()
            self.text, self.text_room = grown, room
        memcpy(self.text + start, at, length)
        if then_length:
            memcpy(self.text + start + length, then, then_length)
        self.text_len = start + length + then_length
        return start

    cdef int _grow(self) except -1:
        """Twice the room for levels and slots, the slots filled afresh."""
        cdef Py_ssize_t room = 2 * self.room, mask = 2 * room - 1, k, at
        cdef Level* levels = <Level*>realloc(self.levels, room * sizeof(Level))
        if levels is NULL:
            raise MemoryError()
        self.levels, self.room = levels, room
        cdef Py_ssize_t* slots = <Py_ssize_t*>malloc((mask + 1) * sizeof(Py_ssize_t))
        if slots is NULL:
            raise MemoryError()
        for k in range(mask + 1):
            slots[k] = 0
        for k in range(self.count):
            at = <Py_ssize_t>(levels[k].hash & <unsigned long long>mask)
            while slots[at]:
                at = (at + 1) & mask
            slots[at] = k + 1
        free(self.slots)
        self.slots, self.mask = slots, mask
        return 0

    cdef str _str(self, Py_ssize_t at, Py_ssize_t length):
        cdef str text = PyUnicode_New(length, 127)
        memcpy(PyUnicode_DATA(text), self.text + at, length)
        return text

    def as_dict(self):
        """The levels as the original's notes: {price: latest quantity}, prices in the order they came."""
        cdef dict levels = {}
        cdef Level* level
        for k in range(self.count):
            level = &self.levels[k]
            levels[self._str(level.price, level.price_len)] = self._str(level.qty, level.qty_len)
        return levels


@cython.final
@cython.no_gc
cdef class NotedLevels:
    """A book's noted levels of both sides (`OrderBook._noted`, when a compiled reader noted them)."""

    def __cinit__(self):
        self.bids, self.asks = NotedSide(), NotedSide()

    def sides(self):
        """Both sides as the original's notes (two dicts), for the original to go on noting into."""
        return self.bids.as_dict(), self.asks.as_dict()

    def take_in(self, dict side, NotedSide notes, list moved=None):
        """`order_book._take_in` of `notes` (one of these sides) into the book's `side`: zeros removed
        first, then the others set in the order they came, each joining price in `moved`; the quantities
        weighed by their digits. Any quantity that is no plain decimal: the original's `_take_in` of the
        side's dict (it names the sizes that are no number)."""
        cdef Py_ssize_t k, zeros = 0, before
        cdef Level* level
        cdef int weight
        cdef str price
        for k in range(notes.count):
            level = &notes.levels[k]
            weight = _weigh(notes.text + level.qty, level.qty_len)
            if weight < 0:
                _take_in(side, notes.as_dict(), moved)
                return
            level.zero = weight
            zeros += weight
        for k in range(notes.count if zeros else 0):
            level = &notes.levels[k]
            if level.zero:
                price = notes._str(level.price, level.price_len)
                if side.pop(price, None) is not None and moved is not None:
                    moved.append((price, False))
        for k in range(notes.count):
            level = &notes.levels[k]
            if level.zero:
                continue
            price = notes._str(level.price, level.price_len)
            before = len(side)
            side[price] = notes._str(level.qty, level.qty_len)
            if moved is not None and len(side) != before:
                moved.append((price, True))
