"""A local replay of Binance spot, OKX v5 and Deribit v2 public market data, on one port.

The venues' own paths, so one base URL serves all three clients: each venue module holds its formats,
limits and error bodies, `server` what crosses venues; the data are deterministic (`tape`), with the
truth a correct client must produce. Data, faults, control endpoints, in-process use and CLI:
docs/tests.md, "The crypto REST replay".
"""

from marketdata_assets.replay.crypto.config import BINANCE, DERIBIT, OKX, Fault, ReplayConfig
from marketdata_assets.replay.crypto.server import CryptoReplayServer
from marketdata_assets.replay.crypto.tape import DayTape, generate_tape, instrument_spec

__all__ = [
    "BINANCE",
    "DERIBIT",
    "OKX",
    "CryptoReplayServer",
    "DayTape",
    "Fault",
    "ReplayConfig",
    "generate_tape",
    "instrument_spec",
]
