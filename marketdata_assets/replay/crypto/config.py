"""What a crypto replay serves and how it misbehaves: `ReplayConfig` and its `Fault`s.

The venue names are the keys everything else is indexed by (instruments, tapes, faults, the log).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketdata_assets.replay import Limited

BINANCE, BINANCE_UM, OKX, DERIBIT = "BINANCE", "BINANCE_UM", "OKX", "DERIBIT"

DEFAULT_INSTRUMENTS = {
    BINANCE: ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
    BINANCE_UM: ["BTCUSDT", "ETHUSDT"],
    OKX: ["BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP"],
    DERIBIT: ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL"],
}
FAULT_KINDS = frozenset(
    {
        "latency",
        "rate_limit",
        "ban",
        "server_error",
        "waf",
        "unauthorized",
        "vendor_error",
        "malformed_json",
        "missing_field",
        "bad_number",
    }
)
BODY_FAULTS = frozenset({"malformed_json", "missing_field", "bad_number"})  # damage a normal answer
BINANCE_ONLY_FAULTS = frozenset({"ban", "waf"})
BINANCE_VENUES = frozenset({BINANCE, BINANCE_UM})


@dataclass
class Fault(Limited):
    kind: str
    venue: str | None = None  # BINANCE | BINANCE_UM | OKX | DERIBIT; None = all
    instrument: str | None = None  # None = all
    endpoint: str | None = None  # trades | book | bars | funding | ... (Venue.endpoints); None = all
    every: int = 1
    after: int = 0  # let the first N matching requests through
    times: int | None = None  # fire at most N times; None = always
    status: int | None = None
    retry_after: str | None = "1"  # Retry-After as sent; None = no header
    latency_s: float = 0.0
    seen: int = 0
    fired: int = 0

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r}: one of {', '.join(sorted(FAULT_KINDS))}")
        if self.venue:
            self.venue = self.venue.upper()
        if self.every < 1:
            raise ValueError("every must be >= 1")

    def matches(self, venue: str, instrument: str | None, endpoint: str | None) -> bool:
        if self.venue and self.venue != venue:
            return False
        if self.kind in BINANCE_ONLY_FAULTS and venue not in BINANCE_VENUES:
            return False
        if self.instrument and self.instrument != instrument:
            return False
        return not self.endpoint or self.endpoint == endpoint

    def fire(self) -> bool:
        """Count a matching request; True if the fault applies to it."""
        self.seen += 1
        if self.seen <= self.after or (self.seen - self.after - 1) % self.every:
            return False
        return self.take()


@dataclass
class ReplayConfig:
    seed: int = 0
    trades_per_day: int = 3000
    trades_per_day_by_instrument: dict[str, int] = field(default_factory=dict)
    busy_share: float = 0.4
    burst_share: float = 0.1
    burst_run: int = 0
    instruments: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_INSTRUMENTS.items()}
    )
    binance_weight_limit: int = 6000
    binance_um_weight_limit: int = 2400  # USD-M: 2400 request weight a minute
    # OKX: requests per endpoint and IP in each 2-second window (20 on most public endpoints, 10 on
    # funding-rate-history / rubik); Deribit: public requests a second (credits refill ~20/s). 0: not
    # enforced. Beyond it: the venue's own rate-limit answer, counted in `limit_refusals`.
    okx_requests_per_2s: int = 0
    deribit_requests_per_s: float = 0
    # Deribit's public/get_instruments has its own sustained rate (1 a second); 0: not enforced
    deribit_instruments_per_s: float = 0
    # Binance's individual trades (`historicalTrades`) are the dump files' trades of
    # replay.binance_dumps.generate_trades(instrument, day, dump_trades_per_day, seed): the files
    # `make run` writes (main.DUMP_INSTRUMENTS, 20,000 trades a day, seed = the index) by default.
    dump_trades_per_day: int = 20_000
    dump_seed_by_instrument: dict[str, int] = field(default_factory=lambda: {"BTCUSDT": 0, "ETHUSDT": 1})
    weight_window_s: float = 60.0
    now: str | None = None  # ISO 8601; None = the wall clock
    faults: list[Fault] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> ReplayConfig:
        data = dict(data)
        faults = [f if isinstance(f, Fault) else Fault(**f) for f in data.pop("faults", [])]
        config = cls(**data)
        config.faults = faults
        return config
