"""MongoDB resource: one MongoClient per step process, checked at setup."""

from __future__ import annotations

from urllib.parse import urlsplit

import dagster as dg
import pymongo
from pydantic import Field
from pymongo.errors import PyMongoError

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable, scrub
from marketdata_assets.resources.held import HeldClientResource


def mongo_address(uri: str) -> str:
    """host:port list of a URI, without credentials."""
    netloc = urlsplit(uri).netloc
    return netloc.rsplit("@", 1)[-1] or "localhost:27017"


class MongoResource(HeldClientResource):
    """MongoDB (or the MongoDB-wire server of the local stack). Credentials stay out of the URI."""

    uri: str = Field(description="mongodb:// URI without credentials (MONGODB_URI).")
    username: str = Field(
        default="",
        description="MONGODB_USERNAME; empty: the variable, else the local stack's "
        "user on its own server, else no authentication.",
    )
    password: str = Field(default="", description="MONGODB_PASSWORD (empty: the variable, else the stack's).")
    server_selection_timeout_ms: int = Field(default=4000, description="How long to wait for the server.")
    socket_timeout_ms: int = Field(
        default=300_000,
        description=(
            "How long one operation may wait for its answer: a server that stops answering fails the step "
            "instead of holding it forever (generous: a large bulk write on a slow server takes seconds)."
        ),
    )
    app_name: str = "marketdata-assets"

    def _error(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(
            "MongoDB",
            mongo_address(self.uri),
            scrub(reason, self.password, settings.get("MONGODB_PASSWORD")),
            (
                "Start the local stack with `make stack-up` (or `scripts/stack up`), or set MONGODB_URI to "
                "a running server."
            ),
        )

    def connect(self) -> pymongo.MongoClient:
        """A new client, pinged so that a stopped server fails here, within the selection timeout."""
        credentials: dict[str, str] = {}
        username = self.username or settings.get("MONGODB_USERNAME")
        if username:
            credentials = {
                "username": username,
                "password": self.password or settings.get("MONGODB_PASSWORD"),
            }
            if "authSource" not in self.uri:
                credentials["authSource"] = "admin"  # where mongo:8 creates its root user
        client = pymongo.MongoClient(
            self.uri,
            serverSelectionTimeoutMS=self.server_selection_timeout_ms,
            connectTimeoutMS=self.server_selection_timeout_ms,
            socketTimeoutMS=self.socket_timeout_ms,
            appname=self.app_name,
            tz_aware=True,
            **credentials,
        )
        try:
            client.admin.command("ping")
        except PyMongoError as error:
            client.close()
            raise self._error(f"{type(error).__name__}: {str(error).split(', Timeout')[0][:300]}") from None
        return client

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = self.connect()

    @property
    def client(self) -> pymongo.MongoClient:
        if self._client is None:
            self._client = self.connect()
        return self._client

    def database(self, name: str):
        return self.client[name]

    def server_version(self) -> str:
        return self.client.server_info()["version"]

    def ensure_indexes(self, collection, indexes: list[pymongo.IndexModel]) -> list[str]:
        """Create indexes idempotently (same spec + name is a no-op). Returns the index names."""
        return collection.create_indexes(indexes) if indexes else []
