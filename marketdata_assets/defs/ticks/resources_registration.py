"""The provider resources of the ticks domain until resources/__init__.py's build_resources() merges
resources.providers.provider_resources() (then this module goes away)."""

import dagster as dg

from marketdata_assets.resources.providers import provider_resources

defs = dg.Definitions(resources=provider_resources())
