# cython: language_level=3, boundscheck=False, wraparound=False
"""What a venue's compiled reader of its documented frames derives from (Binance's `BinanceFrames`): the
collector's compiled loops (ingest/live/collect/_batches.pyx) give it each frame when a batch is sorted,
before any decoding. A trade frame it reads is a C record at once (`trades`, taken by its instrument's tape
when handed on); a book diff it reads is held and, when handed on in its turn, applied to its book if the
book is in sync (`hand_book`), else answered as the decoded frame, which goes the usual way. Anything it
does not read is decoded as before. This base reads nothing."""

from marketdata_assets.datasets._tape cimport TradeReads


cdef class FrameReader:
    def __cinit__(self):
        self.trades = TradeReads()

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
