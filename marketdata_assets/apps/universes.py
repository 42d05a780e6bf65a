"""Each crypto venue's universe today, as the live collector subscribes it: the venue's rule resolved from the
stored instrument master (filled first from a REST base's reference endpoints where it holds nothing, as the
demo does against its replays), with the sources config's explicit instruments."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

from marketdata_assets.core.errors import error_text
from marketdata_assets.datasets.instruments import Master
from marketdata_assets.ingest.instruments import refresh_venues, stored_master, universe_resolver
from marketdata_assets.read import Reader
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.venues import venue_client


def universe_today(venues: list[str], refresh_from: str | None = None,
                   say: Callable[[str], None] = print, strict: bool = False) -> dict[str, list[str]]:
    """Each of `venues`' universe resolved today (UTC) from the stored instrument master (`refresh_from`: a
    REST base whose reference endpoints fill the master first where it holds nothing of a venue). The
    master's store away: the explicit instruments only, said (`strict`: raised)."""
    rules = {venue: rule for venue, rule in load_sources_config().crypto_rules().items() if venue.lower() in venues}
    master = Master()
    if any(rule.selects for rule in rules.values()):
        try:
            with Reader() as reader:
                master = stored_master(reader.clickhouse(), reader.database, set(rules))
                empty = [venue for venue in rules if not master.current(venue)]
                if refresh_from and empty:
                    refresh_venues(reader.clickhouse(), reader.database, {venue: functools.partial(
                        venue_client, venue, refresh_from) for venue in empty})
                    master = stored_master(reader.clickhouse(), reader.database, set(rules))
        except Exception as error:  # noqa: BLE001  (the store down: the explicit lists still collect)
            if strict:
                raise
            say(f"{error_text(error, 'the instrument master')}: the sources config's explicit instruments only")
    today, unreadable = datetime.now(UTC).date(), set()
    universe = universe_resolver(master, rules, unreadable)
    out = {venue: names for venue in rules if (names := universe(venue, today))}
    if unreadable:  # listed by the venue, but named in no shape its naming reads: not subscribed, said
        say(f"{len(unreadable)} instrument(s) of the universe skipped, their names unreadable: "
            f"{', '.join(sorted(unreadable)[:20])}")
    return out
