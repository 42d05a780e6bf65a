"""The venues' reference data (instrument masters) the crypto replay serves, and the one place an
instrument's sizes come from: tick, lot, contract value (`terms`), for the tapes as for the listings.

`universe(seed, now_us)` holds ~1,500 Binance spot symbols, ~500 USD-M contracts, OKX spot, swaps,
futures and options and Deribit futures and options, deterministic from the seed and built on first
use (cached per seed and day). It always holds the replay's configured instruments with the sizes its
tapes trade, and the lifecycle events of `LIFECYCLE` (`lifecycle(now_us)` dates them): a listing per
venue, a Binance spot delisting, expiries and an OKX contract-value change, a few days before the
replay's day so its history holds them. Tests put them in a config with `Lifecycle.enable(config)`.
"""

from __future__ import annotations

import functools
import math
import random
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from marketdata_assets.replay.crypto.config import BINANCE, BINANCE_UM, DERIBIT, OKX, ReplayConfig

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
EPOCH_US = 1_483_228_800_000_000  # 2017-01-01, the first day the tapes hold (tape.EPOCH_DAY)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
KNOWN_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "BNB": 550.0}
# The sizes the replay has always traded its configured contracts with (and the clients declare)
OKX_CONTRACT_VALUES: dict[str, float] = {
    "BTC-USDT-SWAP": 0.01,
    "ETH-USDT-SWAP": 0.1,
    "SOL-USDT-SWAP": 1.0,
    "BTC-USD-SWAP": 100.0,
    "ETH-USD-SWAP": 10.0,
}
OKX_FINE_LOTS = frozenset({"BTC-USDT-SWAP", "ETH-USDT-SWAP"})  # lotSz 0.01 (others: 1 contract)
SPOT_QUOTES = ("FDUSD", "USDT", "USDC", "BTC", "ETH", "BNB")
RECENTLY_EXPIRED_US = 7 * DAY_US  # Deribit's expired=true: instruments expired this recently


def unit(*key) -> float:
    """A deterministic number in [0, 1) for a key."""
    return zlib.crc32(repr(key).encode()) / 2**32


def clock_us(config: ReplayConfig) -> int:
    """The replay's now: `config.now` (ISO 8601) or the wall clock, epoch µs."""
    if config.now:
        when = datetime.fromisoformat(config.now.replace("Z", "+00:00"))  # noqa: FURB162  also takes "2024-01-01Z"
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return int(when.timestamp() * 1_000_000)
    return int(time.time() * 1_000_000)


def day_start_us(us: int) -> int:
    return us - us % DAY_US


def to_date(us: int) -> date:
    return date(1970, 1, 1) + timedelta(microseconds=us)


def yymmdd(us: int) -> str:
    return to_date(us).strftime("%y%m%d")


def ddmmmyy(us: int) -> str:
    day = to_date(us)
    return f"{day.day}{MONTHS[day.month - 1]}{day.year % 100:02d}"


# --------------------------------------------------------------------------------------------
# Terms: what one instrument's prices and sizes are
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    base_price: float  # where the tape's random walk starts
    tick: float
    step: float  # size step in the venue's size unit (lotSz / stepSize / min amount step)
    size_unit: (
        str  # base | inverse (USD amounts) | contracts (x ct_val base) | inverse_contracts (x ct_val USD)
    )
    ct_val: float = 1.0  # OKX ctVal, Deribit contract_size; 1 for spot
    ct_mult: float = 1.0  # OKX ctMult

    @property
    def contract_value(self) -> float:
        """What one contract is worth: ctVal x ctMult (OKX), contract_size (Deribit)."""
        return self.ct_val * self.ct_mult


def base_price(root: str) -> float:
    """The replay's price of a coin: the majors' fixed ones, else one from the name (1e-5 .. 500)."""
    if root in KNOWN_PRICES:
        return KNOWN_PRICES[root]
    return float(f"{10 ** (-5 + 7.7 * unit('price', root)):.3g}")


def price_tick(price: float, ceiling: float) -> float:
    """`ceiling` for prices of 100 and more (the replay's ticks), else 5 significant digits (>= 1e-8)."""
    return ceiling if price >= 100 else max(1e-8, min(ceiling, 10.0 ** (math.floor(math.log10(price)) - 4)))


def size_step(price: float, floor: float, fine: float) -> float:
    """`fine` for prices of 100 and more, else a step worth about a thousandth of a dollar or more."""
    if price >= 100:
        return fine
    return 10.0 ** max(math.log10(fine), min(math.log10(floor), round(math.log10(1 / price)) - 3))


def split_binance(name: str) -> tuple[str, str]:
    """BTCUSDT -> (BTC, USDT); BTCUSDT_250328 -> (BTC, USDT)."""
    pair = name.split("_")[0]
    for quote in SPOT_QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    return pair[:-4] or pair, pair[-4:]


def deribit_root(name: str) -> str:
    return name.split("-")[0].split("_")[0]


def terms(venue: str, name: str) -> Terms:
    """An instrument's terms from its name: the rules the tapes and listings share."""
    if venue in (BINANCE, BINANCE_UM):
        price = base_price(split_binance(name)[0])
        if venue == BINANCE:
            return Terms(price, price_tick(price, 0.01), size_step(price, 1.0, 0.00001), "base")
        return Terms(
            price, price_tick(price, 0.1 if price >= 10_000 else 0.01), size_step(price, 100.0, 0.001), "base"
        )
    if venue == OKX:
        return okx_terms(name)
    return deribit_terms(name)


def okx_terms(name: str) -> Terms:
    parts = name.split("-")
    price = base_price(parts[0])
    tick = price_tick(price, 0.1 if price >= 10_000 else 0.01)
    if len(parts) == 2:
        return Terms(price, tick, size_step(price, 1.0, 0.00000001), "base")
    if len(parts) == 5:  # options: premiums in coin, ctVal 0.01 BTC / 0.1 ETH
        return Terms(0.02, 0.0005, 1.0, "contracts", 0.01 if parts[0] == "BTC" else 0.1)
    swap = f"{parts[0]}-{parts[1]}-SWAP"  # a dated future has its perpetual's contract
    if name == LIFECYCLE.ct_change_instrument or swap == LIFECYCLE.ct_change_instrument:
        return Terms(price, tick, 1.0, "contracts", LIFECYCLE.ct_change_values[1])
    if parts[1] == "USD":
        value = OKX_CONTRACT_VALUES.get(swap, 100.0 if parts[0] == "BTC" else 10.0)
        return Terms(price, tick, 1.0, "inverse_contracts", value)
    if swap in OKX_CONTRACT_VALUES:
        return Terms(
            price, tick, 0.01 if swap in OKX_FINE_LOTS else 1.0, "contracts", OKX_CONTRACT_VALUES[swap]
        )
    value = 10.0 ** min(3, max(-2, round(math.log10(100 / price))))
    if unit("ctMult", swap) < 0.1 and value >= 10:  # a few quote their value as ctVal x ctMult 10
        return Terms(price, tick, 1.0, "contracts", value / 10, 10.0)
    return Terms(price, tick, 1.0, "contracts", value)


def deribit_terms(name: str) -> Terms:
    parts, root = name.split("-"), deribit_root(name)
    price = base_price(root)
    tick = 0.5 if price >= 10_000 else 0.05
    if len(parts) == 4:  # options: premiums in coin, contract 1 coin
        return Terms(0.02, 0.0001, 0.1 if root == "BTC" else 1.0, "base")
    if "_" not in parts[0] and len(parts) == 2:  # inverse future or perpetual: USD amounts
        size = 10.0 if root == "BTC" else 1.0
        return Terms(price, tick, size, "inverse", size)
    return Terms(price, tick, 0.0001, "base", 0.001 if root == "BTC" else 0.01)


# --------------------------------------------------------------------------------------------
# Lifecycle: listings, a delisting, expiries, a contract-value change
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleRules:
    """What happens, to which instruments, how many days before the replay's day (UTC) at which hour."""

    listed: dict[str, str]  # venue -> the instrument listed mid-history
    listed_at: tuple[int, int]  # (days before today, hour UTC)
    delisted: tuple[str, str]  # (venue, instrument) delisted
    delisted_at: tuple[int, int]
    expired_at: tuple[int, int]  # an OKX future, a Deribit future and option expire then
    ct_change_instrument: str  # the OKX swap whose ctVal changes
    ct_change_values: tuple[float, float]  # (before, after)
    ct_change_at: tuple[int, int]


LIFECYCLE = LifecycleRules(
    listed={
        BINANCE: "NEWCOINUSDT",
        BINANCE_UM: "NEWCOINUSDT",
        OKX: "NEWCOIN-USDT",
        DERIBIT: "NEWCOIN_USDC-PERPETUAL",
    },
    listed_at=(3, 8),
    delisted=(BINANCE, "OLDCOINUSDT"),
    delisted_at=(2, 3),
    expired_at=(1, 8),
    ct_change_instrument="XRP-USDT-SWAP",
    ct_change_values=(100.0, 10.0),
    ct_change_at=(2, 0),
)


@dataclass(frozen=True)
class Event:
    venue: str
    instrument: str
    kind: str  # listed | delisted | expired | ct_val_changed
    at_us: int
    before: float | None = None  # ct_val_changed: ctVal before and after
    after: float | None = None


@dataclass(frozen=True)
class Lifecycle:
    """LIFECYCLE dated for one replay day: the events and each instrument's life."""

    now_us: int
    events: tuple[Event, ...]

    def of(self, kind: str, venue: str | None = None) -> list[Event]:
        return [e for e in self.events if e.kind == kind and venue in (None, e.venue)]

    def event(self, kind: str, venue: str | None = None) -> Event:
        return self.of(kind, venue)[0]

    def window(self, venue: str, instrument: str) -> tuple[int, int | None] | None:
        """(listed, ended) of a lifecycle instrument (ended: delisted or expired), None for another."""
        mine = [e for e in self.events if (e.venue, e.instrument) == (venue, instrument)]
        if not mine or all(e.kind == "ct_val_changed" for e in mine):
            return None
        listed = next((e.at_us for e in mine if e.kind == "listed"), None)
        ended = next((e.at_us for e in mine if e.kind in ("delisted", "expired")), None)
        if listed is None:  # an instrument that only ends was listed weeks before
            listed = day_start_us(ended) - 40 * DAY_US
        return listed, ended

    def instruments(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in self.events:
            if e.instrument not in out.setdefault(e.venue, []):
                out[e.venue].append(e.instrument)
        return out

    def enable(self, config: ReplayConfig) -> ReplayConfig:
        """Add every lifecycle instrument to `config.instruments` (so their trades are served)."""
        for venue, names in self.instruments().items():
            configured = config.instruments.setdefault(venue, [])
            configured.extend(n for n in names if n not in configured)
        return config


def lifecycle(now_us: int) -> Lifecycle:
    """LIFECYCLE dated relative to the UTC day of `now_us`."""
    today = day_start_us(now_us)

    def at(days_hour: tuple[int, int]) -> int:
        return today - days_hour[0] * DAY_US + days_hour[1] * HOUR_US

    rules, expiry = LIFECYCLE, at(LIFECYCLE.expired_at)
    events = [Event(venue, name, "listed", at(rules.listed_at)) for venue, name in rules.listed.items()]
    events.append(Event(*rules.delisted, "delisted", at(rules.delisted_at)))
    events += [
        Event(OKX, f"BTC-USDT-{yymmdd(expiry)}", "expired", expiry),
        Event(DERIBIT, f"BTC-{ddmmmyy(expiry)}", "expired", expiry),
        Event(DERIBIT, f"BTC-{ddmmmyy(expiry)}-60000-C", "expired", expiry),
    ]
    before, after = rules.ct_change_values
    events.append(
        Event(OKX, rules.ct_change_instrument, "ct_val_changed", at(rules.ct_change_at), before, after)
    )
    return Lifecycle(now_us, tuple(events))


def terms_at(venue: str, name: str, at_us: int, now_us: int) -> Terms:
    """`terms` valid at `at_us`: the contract value before the lifecycle's change where it applies."""
    found = terms(venue, name)
    if venue == OKX and name == LIFECYCLE.ct_change_instrument:
        change = lifecycle(now_us).event("ct_val_changed")
        if at_us < change.at_us:
            return Terms(
                found.base_price, found.tick, found.step, found.size_unit, change.before, found.ct_mult
            )
    return found


# --------------------------------------------------------------------------------------------
# The universe: every venue's instruments
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    venue: str
    name: str
    kind: str  # spot | perpetual | future | option
    base: str
    quote: str
    settle: str  # margin / settlement currency ("" for spot)
    terms: Terms
    listed_us: int
    expires_us: int | None = None  # futures and options
    delisted_us: int | None = None
    status: str = "TRADING"  # Binance spot: TRADING | BREAK
    strike: float | None = None
    option_type: str | None = None  # C | P
    family: str = ""  # OKX instFamily (= uly), Binance USD-M pair
    alias: str = ""  # OKX alias, Binance USD-M contractType, Deribit settlement_period
    number: int = 0  # OKX instIdCode, Deribit instrument_id

    @property
    def ends_us(self) -> int | None:
        return self.delisted_us if self.delisted_us is not None else self.expires_us

    def live(self, at_us: int) -> bool:
        return self.listed_us <= at_us and (self.ends_us is None or at_us < self.ends_us)


@dataclass
class Universe:
    now_us: int  # the start of its day: what it was built for (its queries take the time asked about)
    lifecycle: Lifecycle
    venues: dict[str, dict[str, Instrument]] = field(default_factory=dict)  # venue -> name -> instrument

    def add(self, instrument: Instrument) -> None:
        self.venues.setdefault(instrument.venue, {}).setdefault(instrument.name, instrument)

    def get(self, venue: str, name: str) -> Instrument | None:
        return self.venues.get(venue, {}).get(name)

    def live(self, venue: str, at_us: int) -> list[Instrument]:
        return [i for i in self.venues.get(venue, {}).values() if i.live(at_us)]

    def recently_expired(self, venue: str, at_us: int) -> list[Instrument]:
        return [
            i
            for i in self.venues.get(venue, {}).values()
            if i.expires_us is not None and at_us - RECENTLY_EXPIRED_US <= i.expires_us <= at_us
        ]

    def ever(self, venue: str, until_us: int) -> list[Instrument]:
        """Every instrument listed by `until_us` (delisted and expired ones too)."""
        return [i for i in self.venues.get(venue, {}).values() if i.listed_us <= until_us]


def coin_names(rng: random.Random, n: int) -> list[str]:
    """The majors, then made-up tickers (3 to 5 letters), none of the lifecycle's."""
    names = [
        "BTC",
        "ETH",
        "SOL",
        "BNB",
        "XRP",
        "ADA",
        "DOGE",
        "TRX",
        "LINK",
        "DOT",
        "LTC",
        "AVAX",
        "UNI",
        "ATOM",
    ]
    taken = set(names) | {"NEWCOIN", "OLDCOIN", "USDT", "USDC", "FDUSD", "USD"}
    while len(names) < n:
        name = "".join(rng.choice("ABCDEFGHIJKLMNOPRSTUVWXYZ") for _ in range(rng.choice((3, 3, 4, 4, 5))))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def listed_at(rng: random.Random, now_us: int, pinned: bool) -> int:
    """A listing time: the tapes' first day for the majors, else a day between 2018 and a month ago."""
    if pinned:
        return EPOCH_US
    first = EPOCH_US + 365 * DAY_US
    return day_start_us(first + int(rng.random() * (now_us - 30 * DAY_US - first))) + 8 * HOUR_US


@functools.lru_cache(maxsize=8)
def _universe(seed: int, today_us: int) -> Universe:
    rng = random.Random(f"reference:{seed}")
    universe = Universe(today_us, lifecycle(today_us))
    coins = coin_names(rng, 760)
    pinned = {"BTC", "ETH", "SOL", "BNB"}
    binance_spot(universe, rng, coins, pinned)
    binance_um(universe, rng, coins, pinned)
    okx(universe, rng, coins, pinned)
    deribit(universe, rng)
    add_lifecycle(universe)
    return universe


def universe(seed: int, now_us: int) -> Universe:
    """The reference universe of the replay's day (built once per seed and day)."""
    return _universe(seed, day_start_us(now_us))


def binance_spot(universe: Universe, rng: random.Random, coins: list[str], pinned: set[str]) -> None:
    for k, coin in enumerate(coins):
        for quote, share in (("USDT", 1.0), ("FDUSD", 0.26), ("BTC", 0.74)):
            if coin == "BTC" and quote == "BTC" or (k >= 4 and rng.random() >= share):
                continue
            name = f"{coin}{quote}"
            status = "BREAK" if unit("status", name) < 0.03 and coin not in pinned else "TRADING"
            universe.add(
                Instrument(
                    BINANCE,
                    name,
                    "spot",
                    coin,
                    quote,
                    "",
                    terms(BINANCE, name),
                    listed_at(rng, universe.now_us, coin in pinned),
                    status=status,
                )
            )


def quarter_expiries(now_us: int, n: int) -> list[int]:
    """The next `n` quarterly expiries (last Friday of Mar/Jun/Sep/Dec, 08:00 UTC) after now."""
    out, day = [], to_date(now_us)
    year, month = day.year, day.month
    while len(out) < n:
        if month % 3 == 0:
            last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
            friday = last - timedelta(days=(last.weekday() - 4) % 7)
            at = int(datetime(friday.year, friday.month, friday.day, 8, tzinfo=UTC).timestamp() * 1e6)
            if at > now_us:
                out.append(at)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def binance_um(universe: Universe, rng: random.Random, coins: list[str], pinned: set[str]) -> None:
    for coin in coins[:470]:
        for quote in ("USDT", "USDC") if coin in pinned or rng.random() < 0.05 else ("USDT",):
            name = f"{coin}{quote}"
            universe.add(
                Instrument(
                    BINANCE_UM,
                    name,
                    "perpetual",
                    coin,
                    quote,
                    quote,
                    terms(BINANCE_UM, name),
                    listed_at(rng, universe.now_us, coin in pinned),
                    family=name,
                    alias="PERPETUAL",
                )
            )
    for coin in ("BTC", "ETH"):
        for alias, expiry in zip(("CURRENT_QUARTER", "NEXT_QUARTER"), quarter_expiries(universe.now_us, 2)):
            name = f"{coin}USDT_{yymmdd(expiry)}"
            universe.add(
                Instrument(
                    BINANCE_UM,
                    name,
                    "future",
                    coin,
                    "USDT",
                    "USDT",
                    terms(BINANCE_UM, name),
                    expiry - 180 * DAY_US,
                    expires_us=expiry,
                    family=f"{coin}USDT",
                    alias=alias,
                )
            )


def okx(universe: Universe, rng: random.Random, coins: list[str], pinned: set[str]) -> None:
    number = iter(range(10_000, 1_000_000))
    for coin in coins[:560]:
        for quote in ("USDT", "USDC", "BTC"):
            if quote != "USDT" and coin not in pinned and rng.random() >= (0.18 if quote == "USDC" else 0.09):
                continue
            if coin == "BTC" and quote == "BTC":
                continue
            name = f"{coin}-{quote}"
            universe.add(
                Instrument(
                    OKX,
                    name,
                    "spot",
                    coin,
                    quote,
                    "",
                    terms(OKX, name),
                    listed_at(rng, universe.now_us, coin in pinned),
                    number=next(number),
                )
            )
    swaps = [(c, "USDT") for c in coins[:225]] + [(c, "USD") for c in coins[:25]] + [("XRP", "USDT")]
    for coin, quote in swaps:
        name, family = f"{coin}-{quote}-SWAP", f"{coin}-{quote}"
        universe.add(
            Instrument(
                OKX,
                name,
                "perpetual",
                coin,
                quote,
                coin if quote == "USD" else quote,
                terms(OKX, name),
                listed_at(rng, universe.now_us, coin in pinned),
                family=family,
                number=next(number),
            )
        )
    for family in ("BTC-USD", "ETH-USD", "BTC-USDT", "ETH-USDT"):
        coin, quote = family.split("-")
        fridays = option_expiries(universe.now_us)
        dated = [(fridays[0], "this_week"), (fridays[1], "next_week")]
        dated += list(zip(quarter_expiries(universe.now_us, 2), ("quarter", "next_quarter")))
        for expiry, alias in dated:
            name = f"{family}-{yymmdd(expiry)}"
            universe.add(
                Instrument(
                    OKX,
                    name,
                    "future",
                    coin,
                    quote,
                    coin if quote == "USD" else quote,
                    terms(OKX, name),
                    expiry - 90 * DAY_US,
                    expires_us=expiry,
                    family=family,
                    alias=alias,
                    number=next(number),
                )
            )
    for coin, step in (("BTC", 1000), ("ETH", 50)):
        okx_options(universe, coin, step, number)


def okx_options(universe: Universe, coin: str, step: int, number) -> None:
    atm = KNOWN_PRICES[coin]
    for expiry in option_expiries(universe.now_us):
        for k in range(-10, 11):
            for option_type in "CP":
                name = f"{coin}-USD-{yymmdd(expiry)}-{int(atm + k * step)}-{option_type}"
                universe.add(
                    Instrument(
                        OKX,
                        name,
                        "option",
                        coin,
                        "USD",
                        coin,
                        terms(OKX, name),
                        expiry - 30 * DAY_US,
                        expires_us=expiry,
                        strike=atm + k * step,
                        option_type=option_type,
                        family=f"{coin}-USD",
                        number=next(number),
                    )
                )


def option_expiries(now_us: int) -> list[int]:
    """The next 4 Fridays at 08:00 UTC after now and the last Fridays of this month (if ahead) and the
    next: the expiries of the options and weekly futures (deribit.option_expiries, as µs)."""
    out: set[int] = set()
    day = to_date(now_us)

    def eight(d: date) -> int:
        return int(datetime(d.year, d.month, d.day, 8, tzinfo=UTC).timestamp() * 1_000_000)

    while len(out) < 4:
        if day.weekday() == 4 and eight(day) > now_us:
            out.add(eight(day))
        day += timedelta(days=1)
    now = to_date(now_us)
    for year, month in ((now.year, now.month), (now.year + now.month // 12, now.month % 12 + 1)):
        last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        friday = last - timedelta(days=(last.weekday() - 4) % 7)
        if eight(friday) > now_us:
            out.add(eight(friday))
    return sorted(out)


def deribit(universe: Universe, rng: random.Random) -> None:
    number = iter(range(100_000, 1_000_000))
    for coin in ("BTC", "ETH"):
        add = universe.add
        add(
            Instrument(
                DERIBIT,
                f"{coin}-PERPETUAL",
                "perpetual",
                coin,
                "USD",
                coin,
                terms(DERIBIT, f"{coin}-PERPETUAL"),
                EPOCH_US,
                family=f"{coin.lower()}_usd",
                alias="perpetual",
                number=next(number),
            )
        )
        for expiry in option_expiries(universe.now_us)[:2] + quarter_expiries(universe.now_us, 2):
            name = f"{coin}-{ddmmmyy(expiry)}"
            add(
                Instrument(
                    DERIBIT,
                    name,
                    "future",
                    coin,
                    "USD",
                    coin,
                    terms(DERIBIT, name),
                    expiry - 90 * DAY_US,
                    expires_us=expiry,
                    family=f"{coin.lower()}_usd",
                    alias=settlement(expiry),
                    number=next(number),
                )
            )
        deribit_options(universe, coin, number)
    for coin in ("BTC", "ETH", "SOL", "XRP", "AVAX", "DOGE"):
        name = f"{coin}_USDC-PERPETUAL"
        universe.add(
            Instrument(
                DERIBIT,
                name,
                "perpetual",
                coin,
                "USDC",
                "USDC",
                terms(DERIBIT, name),
                listed_at(rng, universe.now_us, coin in ("BTC", "ETH")),
                family=f"{coin.lower()}_usdc",
                alias="perpetual",
                number=next(number),
            )
        )
    for pair in ("BTC_USDC", "ETH_USDC", "BTC_USDT", "ETH_USDT"):
        coin, quote = pair.split("_")
        universe.add(
            Instrument(
                DERIBIT,
                pair,
                "spot",
                coin,
                quote,
                quote,
                terms(DERIBIT, pair),
                EPOCH_US,
                family=pair.lower(),
                alias="perpetual",
                number=next(number),
            )
        )


def settlement(expiry_us: int) -> str:
    """Deribit's settlement_period of an expiry: week (a Friday), month (the month's last Friday) or day."""
    day = to_date(expiry_us)
    if day.weekday() != 4:
        return "day"
    return "month" if (day + timedelta(days=7)).month != day.month else "week"


def deribit_options(universe: Universe, coin: str, number) -> None:
    """Strikes from half to one and a half times the coin's price: the chain get_book_summary_by_currency
    serves (deribit.option_chain: at the money +- 5 steps) is among them."""
    step = 1000 if coin == "BTC" else 50
    atm = KNOWN_PRICES[coin]
    for expiry in option_expiries(universe.now_us):
        for strike in range(int(atm * 0.5), int(atm * 1.5) + 1, step):
            for option_type in "CP":
                name = f"{coin}-{ddmmmyy(expiry)}-{strike}-{option_type}"
                universe.add(
                    Instrument(
                        DERIBIT,
                        name,
                        "option",
                        coin,
                        "USD",
                        coin,
                        terms(DERIBIT, name),
                        expiry - 30 * DAY_US,
                        expires_us=expiry,
                        strike=float(strike),
                        option_type=option_type,
                        family=f"{coin.lower()}_usd",
                        alias=settlement(expiry),
                        number=next(number),
                    )
                )


def add_lifecycle(universe: Universe) -> None:
    """The lifecycle's instruments, with the lives `lifecycle` gives them (they replace none)."""
    life = universe.lifecycle
    for venue, names in life.instruments().items():
        for name in names:
            window = life.window(venue, name)
            known = universe.get(venue, name)
            if window is None:  # the contract-value change: an ordinary swap
                continue
            listed, ended = window
            expired = any(e.kind == "expired" for e in life.events if e.instrument == name)
            universe.venues.setdefault(venue, {}).pop(name, None)
            universe.add(lifecycle_instrument(venue, name, listed, ended, expired, known))


def lifecycle_instrument(
    venue: str, name: str, listed: int, ended: int | None, expired: bool, known: Instrument | None
) -> Instrument:
    t = terms(venue, name)
    delisted = None if expired else ended
    expires = ended if expired else None
    if venue in (BINANCE, BINANCE_UM):
        base, quote = split_binance(name)
        kind = "spot" if venue == BINANCE else "perpetual"
        return Instrument(
            venue,
            name,
            kind,
            base,
            quote,
            "" if kind == "spot" else quote,
            t,
            listed,
            delisted_us=delisted,
            family=name if kind != "spot" else "",
            alias="" if kind == "spot" else "PERPETUAL",
        )
    if venue == OKX:
        parts = name.split("-")
        kind = "spot" if len(parts) == 2 else "future"
        return Instrument(
            OKX,
            name,
            kind,
            parts[0],
            parts[1],
            "" if kind == "spot" else parts[1],
            t,
            listed,
            expires_us=expires,
            family="" if kind == "spot" else f"{parts[0]}-{parts[1]}",
            alias="" if kind == "spot" else "this_week",
            number=999_000 + len(name),
        )
    parts = name.split("-")
    root, _, quote = parts[0].partition("_")
    kind = "perpetual" if parts[1] == "PERPETUAL" else "option" if len(parts) == 4 else "future"
    settle = quote or root
    return Instrument(
        DERIBIT,
        name,
        kind,
        root,
        quote or "USD",
        settle,
        t,
        listed,
        expires_us=expires,
        strike=float(parts[2]) if kind == "option" else None,
        option_type=parts[3] if kind == "option" else None,
        family=f"{root.lower()}_{(quote or 'usd').lower()}",
        alias="perpetual" if kind == "perpetual" else "day",
        number=990_000 + len(name),
    )


def window(config: ReplayConfig, venue: str, name: str) -> tuple[int, int | None]:
    """(listed, ended or None) of an instrument the replay trades: the lifecycle's, else the universe's
    if it holds the name (built on first need), else the whole history."""
    now = clock_us(config)
    life = lifecycle(now).window(venue, name)
    if life is not None:
        return life
    if is_pinned(venue, name):
        return EPOCH_US, None
    found = universe(config.seed, now).get(venue, name)
    return (found.listed_us, found.ends_us) if found is not None else (EPOCH_US, None)


def is_pinned(venue: str, name: str) -> bool:
    """Instruments traded from the tapes' first day on: the majors' (no universe needed to know)."""
    if venue in (BINANCE, BINANCE_UM):
        return split_binance(name)[0] in KNOWN_PRICES and "_" not in name
    if venue == OKX:
        return name.split("-")[0] in KNOWN_PRICES and (len(name.split("-")) == 2 or name.endswith("-SWAP"))
    return name.endswith("PERPETUAL") and deribit_root(name) in KNOWN_PRICES
