"""A local replay of Binance spot, OKX v5 and Deribit v2 public market data, on one port.

The venues' own paths, so one base URL serves all three clients: a request goes to the venue
module its path prefix names (`binance` /api/v3/, `okx` /api/v5/, `deribit` /api/v2/), which
holds that venue's formats, limits and error bodies; `server` holds what crosses venues.

Data (`tape`): deterministic per (seed, venue, instrument, day): `trades_per_day` trades (a busy
hour holds `busy_share` of them, `burst_share` repeat the previous timestamp, `burst_run` > 0 puts
that many trades in one millisecond), a random-walk price on the venue's tick, ids contiguous
across days (Binance `a`, OKX tradeId, Deribit trade_seq). Bars are aggregated from the same
trades (empty minutes carry the previous close with zero volume; only minutes that have ended are
served). Only data before `now` (default: the wall clock) exists. `truth_trades` / `truth_bars` /
`last_book` give what a correct client must produce (the normalized frames of datasets.frames).

Faults (`ReplayConfig.faults`, `server.add_fault(...)`, `POST /_replay/faults`, CLI `--fault JSON`),
each optionally targeted at a venue, an instrument and an endpoint (trades | book | bars), firing on
every `every`-th matching request after the first `after`, at most `times` times:
`latency` (latency_s), `rate_limit` (429 + Retry-After; OKX code 50011 — status=200 gives the
HTTP-200 variant; Deribit 10028 — status=400 for that variant), `ban` (Binance only: 418 + -1003
"IP banned until ..."), `server_error` (status, default 503), `waf` (Binance only: 403 HTML),
`unauthorized` (401 / Deribit 13009), `vendor_error` (a rejected-parameter error in the venue's
format), `malformed_json` (body cut in half), `missing_field` (a required field removed from one
record), `bad_number` (a price that is not a number).

Control (no auth): `GET /_replay/state`, `POST /_replay/faults` (`{"faults": [...], "replace": bool}`),
`DELETE /_replay/faults`, `POST /_replay/reset`, `GET /_replay/truth?venue=&instrument=&day=`.

In-process: `with CryptoReplayServer(ReplayConfig(seed=1)) as server: server.base_url`.
CLI: `python -m marketdata_assets.replay.crypto --port 8766 --seed 7 --trades-per-day 20000`.
"""

from marketdata_assets.replay.crypto.config import BINANCE, DERIBIT, OKX, Fault, ReplayConfig
from marketdata_assets.replay.crypto.server import CryptoReplayServer
from marketdata_assets.replay.crypto.tape import DayTape, generate_tape, instrument_spec

__all__ = ["BINANCE", "DERIBIT", "OKX", "CryptoReplayServer", "DayTape", "Fault", "ReplayConfig", "generate_tape",
           "instrument_spec"]
