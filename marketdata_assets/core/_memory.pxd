"""Growing a C array, for the compiled modules that keep records in C (the trade tapes, the readers)."""

from libc.stdlib cimport realloc


cdef inline int grow(void** at, Py_ssize_t* room, Py_ssize_t wanted, size_t size) except -1:
    """The array at `at[0]` (room for `room[0]` items of `size` bytes) made room for at least `wanted`,
    doubling (at least 16)."""
    cdef Py_ssize_t new_room = max(16, room[0] * 2, wanted)
    cdef void* grown = realloc(at[0], new_room * size)
    if grown == NULL:
        raise MemoryError()
    at[0], room[0] = grown, new_room
    return 0
