"""The alpha API (many accounts) and the two MongoDB databases alphas are imported into."""

from __future__ import annotations

from pydantic import Field
from pymongo.collection import Collection
from pymongo.database import Database

from marketdata_assets.resources.http import HttpApiResource
from marketdata_assets.resources.mongo import MongoResource
from marketdata_assets.sources.registry import account_api
from marketdata_assets.stores.mongo.documents import COLLECTIONS


class AlphaApiResource(HttpApiResource):
    """The BRAIN-style alpha API. `accounts` names the accounts (ALPHA_API_ACCOUNTS); each account's
    credentials are read from ALPHA_API_USER_<NAME> / ALPHA_API_PASSWORD_<NAME> when a run starts,
    so they never appear in configuration, the UI or logs. Limits apply per account."""

    accounts: str = Field(default="main", description="Comma-separated account names (ALPHA_API_ACCOUNTS).")
    requests_per_minute: float = Field(default=240, description="Rate limit per account.")
    max_concurrency: int = Field(default=4, description="Requests in flight per account.")
    timeout_s: float = Field(default=60, description="Per-request timeout.")

    def account_names(self) -> list[str]:
        return account_api().account_names(self.accounts)

    def api(self):
        """A client for every configured account; use it as `async with resource.api() as api:`."""
        declared = account_api()
        return declared.api(self.base_url, declared.accounts(self.account_names()), **self.client_kwargs())


class AlphaStoreResource(MongoResource):
    """Where alphas live in MongoDB: a database per type (REGULAR, SUPER), one collection name in both. It
    is a MongoDB connection itself (the `mongo` resource's settings, MONGODB_*), not a resource nested in
    another: Dagster initializes a nested resource through a deprecated call of its own."""

    db_name_regular: str = Field(default="regular_alphas", description="Database of REGULAR alphas.")
    db_name_super: str = Field(default="super_alphas", description="Database of SUPER alphas.")
    collection: str = Field(default="alphas", description="Collection name in both databases.")

    @property
    def mongo(self) -> MongoResource:
        """The connection (this resource)."""
        return self

    def databases(self) -> tuple[Database, Database]:
        """(regular database, super database)."""
        return self.mongo.database(self.db_name_regular), self.mongo.database(self.db_name_super)

    def database_for(self, alpha_type: str) -> Database:
        """The database of 'regular' or 'super' alphas (documents.collection_for)."""
        regular, super_ = self.databases()
        return {"regular": regular, "super": super_}[alpha_type]

    def collection_of(self, alpha_type: str) -> Collection:
        """The alpha collection of a type ('REGULAR' or 'SUPER')."""
        return self.database_for(COLLECTIONS[alpha_type])[self.collection]
