"""The C side of a book's compiled noted levels (`_noted.pyx`), for the compiled readers that note into them."""


cdef struct Level:
    unsigned long long hash  # the price's bytes hashed (`_hash`)
    Py_ssize_t price, price_len  # the price: `price_len` bytes at `price` in the side's text
    Py_ssize_t qty, qty_len, qty_room  # the latest quantity: `qty_len` bytes at `qty` (room for `qty_room`)
    bint zero  # the quantity weighed zero (set by `take_in`)


cdef class NotedSide:
    cdef Level* levels  # in the order their prices first came
    cdef Py_ssize_t count, room  # levels noted, room for
    cdef Py_ssize_t* slots  # open addressing over `levels`: a level's index + 1, 0 for none
    cdef Py_ssize_t mask  # slots - 1 (a power of two, at least twice `count`)
    cdef unsigned char* text  # the prices' and quantities' bytes
    cdef Py_ssize_t text_len, text_room

    cdef int note(self, const unsigned char* price, Py_ssize_t price_len,
                  const unsigned char* qty, Py_ssize_t qty_len) except -1
    cdef Py_ssize_t _keep(self, const unsigned char* at, Py_ssize_t length,
                          const unsigned char* then, Py_ssize_t then_length) except -1
    cdef int _grow(self) except -1
    cdef str _str(self, Py_ssize_t at, Py_ssize_t length)


cdef class NotedLevels:
    cdef readonly NotedSide bids, asks
