# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled `batches.frame_items`, `batches.sort_frames` and `batches.hand_on` (their docstrings say
what they do; the same results, tested): the same steps, run as C over the batch's tuples. Here a frame
the venue's compiled reader reads (sources/_reader.pyx) is not decoded: a trade is a `CTrade` at once,
taken by its instrument's tape when handed on; a book diff is held and applied to its book when handed on
(or, the book not in sync, handed on decoded)."""

from marketdata_assets.datasets._tape cimport TradeTape
from marketdata_assets.sources._reader cimport TRADE_READ, FrameReader
from marketdata_assets.sources.stream import BOOKS, MALFORMED, TRADES
from marketdata_assets.stores.landing import BAD_CHANNEL, CONTROL_CHANNEL

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)

cdef str FRAME = "frame"
cdef str DATA = "data"
cdef str MARKER = "marker"
cdef str TAPED = "taped"  # a trade frame its venue's reader read into a `CTrade` (sources/_reader.pyx)
cdef str HELD = "held"  # a book diff its venue's reader holds until handed on
cdef str EVENT = "event"
cdef str _TRADES = TRADES
cdef str _BAD = BAD_CHANNEL
cdef str _CONTROL = CONTROL_CHANNEL


def frame_items(list texts, str conn, object recv_ns):
    cdef Py_ssize_t i, n = len(texts)
    cdef list items = PyList_New(n)
    cdef tuple item
    cdef object text
    for i in range(n):
        text = texts[i]
        item = PyTuple_New(4)
        Py_INCREF(FRAME)
        PyTuple_SET_ITEM(item, 0, FRAME)
        Py_INCREF(conn)
        PyTuple_SET_ITEM(item, 1, conn)
        Py_INCREF(recv_ns)
        PyTuple_SET_ITEM(item, 2, recv_ns)
        Py_INCREF(text)
        PyTuple_SET_ITEM(item, 3, text)
        PyObject_GC_UnTrack(<void*>item)  # strings and an int: no cycle can pass through it
        Py_INCREF(item)
        PyList_SET_ITEM(items, i, item)
    return items


def sort_frames(list batch, decode, marker_channels, bad, list landed, list parsed, FrameReader reader=None):
    cdef bint marked = False
    cdef tuple item
    cdef object kind, conn, recv_ns, payload, frame, channel, typed
    if reader is not None:
        reader.clear()
    for item in batch:
        kind, conn, recv_ns, payload = item[0], item[1], item[2], item[3]
        if kind == MARKER:
            marked = True
            landed.append((None, conn, recv_ns, payload, marker_channels(conn, recv_ns, payload[0])))
            parsed.append(item)
            continue
        if reader is not None:
            typed = reader.read(payload, recv_ns)
            if typed is not None:  # read: (decoder, instrument, dataset, stream, record)
                landed.append(((<tuple>typed)[3], conn, payload, recv_ns))
                parsed.append((TAPED if reader.kind == TRADE_READ else HELD, conn, recv_ns, typed))
                continue
        try:
            frame = decode(payload)
        except ValueError:
            bad("not_json")
            landed.append((_BAD, conn, payload, recv_ns))
            continue
        channel = frame.channel
        landed.append((channel if channel else _CONTROL, conn, payload, recv_ns))
        if frame.kind == EVENT and frame.reply is None:
            parsed.append((DATA, conn, recv_ns, frame))
        else:
            parsed.append((kind, conn, recv_ns, frame))
    return marked


cdef inline int _saw(dict connections, object conn_id, object channel) except -1:
    """A data frame of `channel` came on `conn_id` (`Connection.saw`, when it still waits for some)."""
    conn = connections.get(conn_id)
    if conn is not None and conn.unseen:
        conn.saw(channel)
    return 0


def hand_on(list parsed, processor, FrameReader reader=None):
    publisher = processor.publisher
    cdef dict connections = processor.connections
    cdef dict pending = publisher.trade_frames
    cdef dict by_instrument = processor.books.by_instrument, book_times = processor.books.book_times
    on_event, on_marker, on_frame = processor._on_event, processor._on_marker, processor._on_frame
    cdef tuple entry
    cdef object kind, conn_id, recv_ns, item, tape, frame
    for entry in parsed:
        kind, conn_id, recv_ns, item = entry[0], entry[1], entry[2], entry[3]
        if kind is TAPED:
            _saw(connections, conn_id, (<tuple>item)[3])
            tape = pending.get((<tuple>item)[1])
            if tape is None:
                tape = publisher.open_tape((<tuple>item)[1], conn_id)
            (<TradeTape?>tape).take(reader.trades, (<tuple>item)[3])
        elif kind is HELD:
            _saw(connections, conn_id, (<tuple>item)[3])
            try:
                frame = reader.hand_book(item, by_instrument, book_times, recv_ns)
            except MALFORMED as error:  # as `_on_event` counts it
                processor.stats.refuse(BOOKS, (<tuple>item)[1], error, processor.protocol.venue)
                continue
            if frame is not None:  # the book not in sync: the decoded frame the usual way
                on_event(conn_id, recv_ns, frame)
        elif kind is DATA:
            if item.dataset == _TRADES:
                tape = pending.get(item.instrument)
                if tape is not None:
                    _saw(connections, conn_id, item.channel)
                    tape.add(item, recv_ns)
                    continue
            on_event(conn_id, recv_ns, item)
        elif kind == MARKER:
            on_marker(conn_id, item)
            pending = publisher.trade_frames
        else:
            on_frame(conn_id, recv_ns, item)
