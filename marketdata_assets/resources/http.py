"""Base resource for vendor HTTP APIs. Vendor resources subclass it and return their own client.

Tests and `make run` point `base_url` at the local replay server, which answers in the vendor's
real formats (errors and rate limits included), so the same client code runs everywhere.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from marketdata_assets.core.http import ApiClient, RetryPolicy


class HttpApiResource(dg.ConfigurableResource):
    base_url: str = Field(description="The API's base URL (a replay server's in tests and `make run`).")
    requests_per_minute: float = Field(default=600, description="Rate limit across all concurrent requests.")
    max_concurrency: int = Field(default=8, description="Requests in flight at once.")
    timeout_s: float = Field(default=30, description="Per-request timeout.")
    max_retries: int = Field(default=5, description="Retries on 429/418, 5xx and timeouts.")
    backoff_base_s: float = Field(
        default=0.5, description="First backoff step; doubles per retry, full jitter."
    )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, backoff_base_s=self.backoff_base_s)

    def client_kwargs(self) -> dict:
        return {
            "requests_per_minute": self.requests_per_minute,
            "max_concurrency": self.max_concurrency,
            "timeout_s": self.timeout_s,
            "retry": self.retry_policy(),
        }

    def make_client(self) -> ApiClient:
        """A new async client; use it as `async with resource.make_client() as api:`."""
        return ApiClient(self.base_url, **self.client_kwargs())
