# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled `wsframes.cut_texts` (its docstring says what it answers; identical results, tested)."""

from cpython.unicode cimport PyUnicode_DecodeUTF8


def cut_texts(bytes buf, Py_ssize_t pos):
    cdef const unsigned char* p = buf
    cdef Py_ssize_t size = len(buf), start
    cdef unsigned long long length, end
    cdef unsigned char first, second
    cdef int k
    cdef list texts = []
    while size - pos >= 2:
        first, second = p[pos], p[pos + 1]
        length, start = second & 0x7F, pos + 2
        if length == 126:
            if size - start < 2:
                return texts, pos, -1, False
            length, start = (<unsigned long long>p[start] << 8) | p[start + 1], start + 2
        elif length == 127:
            if size - start < 8:
                return texts, pos, -1, False
            length = 0
            for k in range(8):
                length = (length << 8) | p[start + k]
            start += 8
        if length > <unsigned long long>size:  # far past what came (a length of 2**63 and more too)
            return texts, pos, -1, False
        end = start + length + (4 if second & 0x80 else 0)
        if end > <unsigned long long>size:
            return texts, pos, -1, False
        if first != 0x81 or second >= 0x80:
            return texts, pos, <Py_ssize_t>end, False
        try:
            texts.append(PyUnicode_DecodeUTF8(<const char*>p + start, <Py_ssize_t>length, NULL))
        except UnicodeDecodeError:
            return texts, pos, <Py_ssize_t>end, True
        pos = <Py_ssize_t>end
    return texts, pos, -1, False
