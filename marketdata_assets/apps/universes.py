"""Each crypto venue's universe today, as the live collector subscribes it: the venue's rule resolved from the
stored instrument master and its 24 h volume snapshots (filled first from a REST base's reference and ticker
endpoints where it holds nothing, as the demo does against its replays), with the sources config's explicit
instruments."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from datetime import UTC, datetime

from marketdata_assets.core.errors import error_text
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.volumes import Volumes
from marketdata_assets.ingest.instruments import (
    ClickHouseMaster,
    cut_warnings,
    instrument_service,
    refresh_venues,
    stored_volumes,
    universe_resolver,
)
from marketdata_assets.read import Reader
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.venues import venue_client

EXPLICIT_ONLY = "the sources config's explicit instruments only"


@contextlib.contextmanager
def _reader_client():
    with Reader() as reader:
        yield reader.clickhouse()


def process_instruments(bases: dict[str, str | None] | None = None) -> InstrumentService:
    """The live process's instrument service: the stored master read (when asked: `load`) and what the
    collectors look up stored back (`keep`) through a `Reader` opened each time, so a store that is away for a
    while costs nothing but that call; each sized venue asked at its REST base (`bases`: venue -> base; else
    the sources config's)."""
    return instrument_service(ClickHouseMaster(_reader_client, lambda: Reader().database), (), bases)


def universe_today(
    venues: list[str],
    refresh_from: str | None = None,
    say: Callable[[str], None] = print,
    strict: bool = False,
    service: InstrumentService | None = None,
) -> dict[str, list[str]]:
    """Each of `venues`' universe resolved today (UTC) from the stored instrument master (`service`'s: the
    process's; None: one of its own) and volume snapshots (`refresh_from`: a REST base whose reference and
    ticker endpoints fill them first where they hold nothing of a venue). The master's store away: the
    explicit instruments only, said (`strict`: raised)."""
    rules = {
        venue: rule for venue, rule in load_sources_config().crypto_rules().items() if venue.lower() in venues
    }
    service = service or process_instruments()
    volumes, today = Volumes(), datetime.now(UTC).date()
    if any(rule.selects for rule in rules.values()):
        try:
            with Reader() as reader:
                client, database = reader.clickhouse(), reader.database
                master = service.reload(set(rules))  # what a refresh stored since, on a resolution again
                volumes = stored_volumes(client, database, rules, [today])
                empty = [
                    venue
                    for venue, rule in rules.items()
                    if not master.current(venue) or (rule.top and not volumes.times.get(venue))
                ]
                if refresh_from and empty:
                    refresh_venues(
                        client,
                        database,
                        {venue: functools.partial(venue_client, venue, refresh_from) for venue in empty},
                    )
                    service.reload(set(rules))
                    volumes = stored_volumes(client, database, rules, [today])
        except Exception as error:  # (the store down: the explicit lists still collect)
            if strict:
                raise
            say(f"{error_text(error, 'the instrument master')}: {EXPLICIT_ONLY}")
    cuts: dict = {}
    universe = universe_resolver(service.master, rules, volumes, cuts)
    out = {venue: names for venue in rules if (names := universe(venue, today))}
    for line in cut_warnings(cuts):  # a top N with no snapshot to rank by: said
        say(line)
    return out


def keep_looked_up(service: InstrumentService, say: Callable[[str], None] = print) -> int:
    """The versions the collectors' lookups learned (instruments the service did not know, answered by the
    venue's reference endpoint) stored in the instrument master, as the hourly loads store theirs; the store
    away: kept for the next call, said. Returns the versions stored."""
    try:
        return service.keep()
    except Exception as error:  # noqa: BLE001  (collecting goes on; the next call stores them)
        say(
            f"{error_text(error, 'the instrument master')}: {len(service.learned)} looked-up "
            "version(s) kept for the next try"
        )
        return 0
