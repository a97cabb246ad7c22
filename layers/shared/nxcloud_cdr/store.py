"""The store: one handle on the call records table and the quarantine, as the
functions and the CLI use them. Each job lives in a module of its own: the keys and
item format in :mod:`.items`, the lookups in :mod:`.lookups`, the quarantine in
:mod:`.quarantine`, the write rule in :mod:`.write_rule`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lookups import Lookups
from .quarantine import Quarantine

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .config import StoreSettings


class CallStore(Lookups, Quarantine):
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        quarantine_table_name: str,
        *,
        quarantine_retention_days: int = 30,
    ) -> None:
        self._client = client
        self.table_name = table_name
        self.quarantine_table_name = quarantine_table_name
        self._quarantine_retention_days = quarantine_retention_days
        self._indexes: frozenset[str] | None = None

    @property
    def client(self) -> DynamoDBClient:
        return self._client

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: StoreSettings) -> CallStore:
        return cls(
            client,
            settings.table_name,
            settings.quarantine_table_name,
            quarantine_retention_days=settings.quarantine_retention_days,
        )
