"""The code location: every asset, check, schedule and sensor under defs/, plus the resources."""

from pathlib import Path

import dagster as dg

from marketdata_assets.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    domains = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return dg.Definitions.merge(domains, dg.Definitions(resources=build_resources()))
