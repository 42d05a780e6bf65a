"""The closed landing files of the live assets' channels, by hour: what the landing sensor requests and
what a run of an hour loads (the instruments with a closed file of the hour for the asset's dataset)."""

from pathlib import Path

from marketdata_assets.core.naming import partition_key
from marketdata_assets.ingest.live.hourly.dataset_rows import CHANNELS
from marketdata_assets.ingest.live.hourly.load import LIVE_VENUES, file_hour
from marketdata_assets.stores.landing import closed_files


def asset_name(dataset: str) -> str:
    return f"live_{dataset}"


def closed_trade_files(root: Path, since: str) -> list[tuple[str, str, str]]:
    """(relative path, landing hour, VENUE:INSTRUMENT key) of the closed trade-channel files of every
    live venue, hours >= `since`."""
    found = []
    for venue, spec in LIVE_VENUES.items():
        venue_dir = Path(root) / venue
        channels = sorted(p.name for p in venue_dir.iterdir() if p.is_dir()) if venue_dir.is_dir() else []
        for channel in channels:
            instrument = spec.instrument_of_channel(channel)
            if instrument is None:
                continue
            key = partition_key(venue, instrument)
            for path in closed_files(root, venue, channel):
                if file_hour(path) >= since:
                    found.append((f"{venue}/{channel}/{path.name}", file_hour(path), key))
    return found


def _channels(root: Path, venue: str) -> list[str]:
    venue_dir = Path(root) / venue
    return sorted(p.name for p in venue_dir.iterdir() if p.is_dir()) if venue_dir.is_dir() else []


def dataset_channels(root: Path) -> list[tuple[str, str, str, object]]:
    """(venue, channel, asset, its instrument's key, or the VenueDataset of a channel shared by every
    instrument) of every live dataset's channel under `root` (directory names only)."""
    out, listed = [], {}
    for dataset, venues in CHANNELS.items():
        for venue, spec in venues.items():
            channels = listed.setdefault(venue, _channels(root, venue))
            for channel in channels:
                instrument = spec.instrument_of(channel)
                if instrument:
                    out.append((venue, channel, asset_name(dataset), partition_key(venue, instrument)))
                elif channel in spec.shared_channels():
                    out.append((venue, channel, asset_name(dataset), spec))
    return out


def closed_dataset_files(root: Path, since: str, known: list[str]) -> list[tuple[str, str, str, str]]:
    """(relative path, landing hour, VENUE:INSTRUMENT key, asset) of the closed files of every live
    dataset's channels, hours >= `since`; a shared channel's file once for each instrument it carries
    of `known` (keys) and of the instrument channels found."""
    channels = dataset_channels(root)
    known = list(dict.fromkeys([*known, *(key for *_, key in channels if isinstance(key, str))]))
    found = []
    for venue, channel, asset, key in channels:
        keys = (
            [key]
            if isinstance(key, str)
            else [k for k in known if k.startswith(f"{venue}:") and key.carries(k.split(":", 1)[1])]
        )
        for path in closed_files(root, venue, channel) if keys else []:
            if file_hour(path) >= since:
                found += [(f"{venue}/{channel}/{path.name}", file_hour(path), k, asset) for k in keys]
    return found


def closed_live_files(root: Path, since: str, existing: list[str]) -> list[tuple[str, str, str, str]]:
    """(relative path, landing hour, VENUE:INSTRUMENT key, asset) of every closed file a live asset
    loads: the trade channels' (`live_trades`) and the other datasets' (a shared channel's for the
    instruments known or found now)."""
    trades = [(*found, "live_trades") for found in closed_trade_files(root, since)]
    return trades + closed_dataset_files(root, since, [*existing, *(f[2] for f in trades)])


def hour_instruments_landed(root: Path, asset: str, hours: list[str]) -> dict[str, list[str]]:
    """Landing hour -> the VENUE:INSTRUMENT keys with a closed file of the hour that `asset` loads."""
    found: dict[str, set[str]] = {hour: set() for hour in hours}
    for _, hour, key, feeds in closed_live_files(root, min(hours), []) if hours else []:
        if feeds == asset and hour in found:
            found[hour].add(key)
    return {hour: sorted(keys) for hour, keys in found.items()}
