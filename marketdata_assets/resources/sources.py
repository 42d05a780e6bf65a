"""The sources as Dagster resources: one per entry of `sources/data_providers.yaml` (loaded and
validated by sources.config; `TICKS_PROVIDERS_CONFIG` points at another copy), built by one loop
over the entries (each source's resource type from its declaration): keys ``tushare``, ``yahoo``,
``binance``, ``binance_um``, ``okx``, ``deribit``.

A resource only holds settings; ``make_client()`` returns a NEW client whose limiters are its own.
The ingest engine opens one client per source per step (feeds of one source share it), and each
source's work of a run is one step, so the limits hold across every concurrent request of the run;
across runs the assets' concurrency pools keep one step per source group at a time. The Tushare
token is only ever taken from the variable the config names, as ``dg.EnvVar`` (the UI shows the
variable's name, never the value); the client scrubs it from messages.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from marketdata_assets.resources.http import HttpApiResource
from marketdata_assets.sources.config import (
    DECLARED,
    SourcesConfig,
    SourcesConfigError,
    SourceSettings,
    load_sources_config,
)
from marketdata_assets.sources.interface import VenueClient
from marketdata_assets.sources.registry import source, stock_feed
from marketdata_assets.sources.venues import venue_client

__all__ = [
    "CryptoVenueResource",
    "SourceResource",
    "StockFeedResource",
    "TushareResource",
    "YahooResource",
    "source_resources",
]


class SourceResource(HttpApiResource):
    """A market-data source: the shared HTTP policy plus how many fetches run at once."""

    workers: int = Field(
        default=4, description="Instruments (or instrument-days) processed at once (--workers)."
    )

    def client_kwargs(self) -> dict:
        if self.workers < 1 or self.max_concurrency < 1 or self.requests_per_minute <= 0:
            raise ValueError(
                f"{type(self).__name__}: workers and max_concurrency must be >= 1 and requests_per_minute > 0"
            )
        return super().client_kwargs()


class TushareResource(SourceResource):
    """Tushare Pro (A-share 1-minute and daily bars)."""

    token: str = Field(
        default="", description="The API token, from the TUSHARE_TOKEN variable (never logged)."
    )
    token_env: str = Field(default="TUSHARE_TOKEN", description="Name of the token's variable, for messages.")
    limit_window_s: float = Field(
        default=60,
        description="A per-minute limit answer pauses requests until the next window of this many seconds.",
    )

    def make_client(self):
        """A Tushare client (the registry's `TUSHARE` declaration); its token error when none is set."""
        if not (self.token or "").strip():
            raise stock_feed("TUSHARE").credential_error(f"{self.token_env} is not set")
        return source("TUSHARE").client(
            self.base_url, self.token, limit_window_s=self.limit_window_s, **self.client_kwargs()
        )


class YahooResource(SourceResource):
    """Yahoo Finance chart v8 (1-minute bars)."""

    max_days_back: float | None = Field(
        default=30,
        description="Yahoo serves 1-minute bars this many days back (None: no horizon, e.g. a replay).",
    )

    def make_client(self):
        """A Yahoo chart client (the registry's `YAHOO` declaration)."""
        return source("YAHOO").client(self.base_url, max_days_back=self.max_days_back, **self.client_kwargs())


class CryptoVenueResource(SourceResource):
    """One crypto venue's public market data: BINANCE (spot), BINANCE_UM (USD-M futures), OKX (v5) or
    DERIBIT (v2)."""

    venue: str = Field(description="BINANCE | BINANCE_UM | OKX | DERIBIT")
    weight_per_minute: int = Field(default=6000, description="Binance: request weight per IP and minute.")
    weight_headroom: float = Field(
        default=0.9,
        description="Binance: wait for the next minute rather than pass this share of the weight.",
    )

    def make_client(self, instrument_service=None) -> VenueClient:
        """The venue's client; `instrument_service` (the run's) sizes its contracts where the venue's
        reference data does."""
        kwargs = self.client_kwargs()
        if "weight_per_minute" in source(self.venue).options:  # a venue that meters request weight
            kwargs.update(weight_limit=self.weight_per_minute, weight_headroom=self.weight_headroom)
        return venue_client(self.venue, self.base_url, instrument_service, **kwargs)


class StockFeedResource(SourceResource):
    """A stock feed declared without a resource type of its own: its declared client with the shared
    HTTP policy (its own config keys stay in the sources config, where its declaration reads them)."""

    source: str = Field(description="The stock feed's declared name.")

    def make_client(self):
        return source(self.source).client(self.base_url, **self.client_kwargs())


# The resource type of each source that is not a crypto venue (every venue is a CryptoVenueResource;
# a stock feed not listed here a StockFeedResource).
RESOURCE_TYPES: dict[str, type[SourceResource]] = {"TUSHARE": TushareResource, "YAHOO": YahooResource}


def _base_url(settings: SourceSettings):
    # A variable that is set is passed as EnvVar (its name shows in the UI); else the vendor's host.
    return (
        dg.EnvVar(settings.base_url_env)
        if os.environ.get(settings.base_url_env)
        else settings.default_base_url
    )


def _common(settings: SourceSettings) -> dict:
    return {
        "base_url": _base_url(settings),
        "requests_per_minute": settings.requests_per_minute,
        "max_concurrency": settings.max_concurrency,
        "workers": settings.workers,
        "timeout_s": settings.timeout_s,
        "max_retries": settings.max_retries,
        "backoff_base_s": settings.backoff_base_s,
    }


def _resource(entry: str, settings: SourceSettings) -> dg.ConfigurableResource:
    declared = DECLARED[entry]
    if declared.venue_api:
        return CryptoVenueResource(**_common(settings), venue=declared.name, **settings.options)
    kind = RESOURCE_TYPES.get(declared.name)
    if kind is None and declared.feed is not None:
        return StockFeedResource(**_common(settings), source=declared.name)
    if kind is None:
        raise SourcesConfigError(
            f"source {declared.name} (entry {entry!r}) has no resource type: add it to "
            "RESOURCE_TYPES in resources/sources.py"
        )
    secrets = {}
    if "token_env" in settings.options:  # the token only ever as the variable's EnvVar
        name = settings.options["token_env"]
        secrets["token"] = dg.EnvVar(name) if os.environ.get(name) else ""
    return kind(**_common(settings), **secrets, **settings.options)


def source_resources(config: SourcesConfig | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every configured source as a resource, keyed by its entry in the sources config (tushare,
    yahoo, binance, binance_um, okx, deribit, and any source declared since): one loop over the
    config's entries, each the resource type of its declaration."""
    config = config or load_sources_config()
    return {entry: _resource(entry, settings) for entry, settings in config.sources.items()}
