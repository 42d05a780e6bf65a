"""The base of the store resources that hold one client per step process: closed when the step ends."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import PrivateAttr


class HeldClientResource(dg.ConfigurableResource):
    """A resource whose client (`_client`, opened by the subclass on first use) is closed at step teardown
    or by `close()`."""

    _client: Any = PrivateAttr(default=None)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
