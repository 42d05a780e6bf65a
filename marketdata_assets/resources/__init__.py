"""The store and alpha-API resources, configured from environment variables (marketdata_assets.core.settings).

The vendor sources' resources are the ticks domain's own (resources/sources.py); the code location
(definitions.py) puts the two together.

A variable that is set is passed as `dg.EnvVar`, so the UI shows its name, never its value;
an unset one falls back to the local stack's default (an unset secret too, through the environment).
"""

from __future__ import annotations

import os

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.resources.alphas import AlphaApiResource, AlphaStoreResource
from marketdata_assets.resources.clickhouse import ClickHouseResource
from marketdata_assets.resources.http import HttpApiResource
from marketdata_assets.resources.mongo import MongoResource
from marketdata_assets.resources.timescale import TimescaleResource

__all__ = [
    "AlphaApiResource",
    "AlphaStoreResource",
    "ClickHouseResource",
    "HttpApiResource",
    "MongoResource",
    "TimescaleResource",
    "build_resources",
]


def _env(name: str):
    if not os.environ.get(name) and settings.is_secret(name) and settings.get(name):
        os.environ[name] = settings.get(name)  # the stack's generated credential: by name, never by value
    return dg.EnvVar(name) if os.environ.get(name) else settings.get(name)


def _env_int(name: str):
    return dg.EnvVar.int(name) if os.environ.get(name) else int(settings.get(name))


def build_resources() -> dict[str, dg.ConfigurableResource]:
    clickhouse_dsn = (
        dg.EnvVar("CLICKHOUSE_DSN") if os.environ.get("CLICKHOUSE_DSN") else settings.clickhouse_dsn()
    )
    mongo = {
        "uri": _env("MONGODB_URI"),
        "username": _env("MONGODB_USERNAME"),
        "password": _env("MONGODB_PASSWORD"),
    }
    return {
        "mongo": MongoResource(**mongo),
        "alpha_store": AlphaStoreResource(
            **mongo,
            db_name_regular=_env("ALPHA_DB_REGULAR"),
            db_name_super=_env("ALPHA_DB_SUPER"),
            collection=_env("ALPHA_COLLECTION"),
        ),
        "alpha_api": AlphaApiResource(
            base_url=_env("ALPHA_API_BASE_URL"),
            accounts=_env("ALPHA_API_ACCOUNTS"),
            requests_per_minute=float(settings.get("ALPHA_API_REQUESTS_PER_MINUTE")),
            max_concurrency=_env_int("ALPHA_API_MAX_CONCURRENCY"),
        ),
        "clickhouse": ClickHouseResource(
            dsn=clickhouse_dsn,
            user=_env("CLICKHOUSE_USER"),
            password=_env("CLICKHOUSE_PASSWORD"),
            database=_env("CLICKHOUSE_DATABASE"),
        ),
        "timescale": TimescaleResource(
            host=_env("TIMESCALE_HOST"),
            port=_env_int("TIMESCALE_PORT"),
            user=_env("TIMESCALE_USER"),
            password=_env("TIMESCALE_PASSWORD"),
            dbname=_env("TIMESCALE_DB"),
            sslmode=_env("TIMESCALE_SSLMODE"),
            pool_size=_env_int("TIMESCALE_POOL_SIZE"),
        ),
    }
