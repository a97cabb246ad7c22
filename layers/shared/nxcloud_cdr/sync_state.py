"""The sync's state in the records table: its checkpoint and its lease.

Both live in one partition (``pk = SYNC#<name>``) with no index attribute, so they
never appear in a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .store import StoreError, deserialise, is_condition_failure, serialise

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Cursor:
    """Where a run stopped inside a window: the next page of that window to read.
    A busy window that cannot be paged in one run goes on where it stopped."""

    window_from: int
    window_to: int
    page: int


class SyncState:
    def __init__(self, client: DynamoDBClient, table_name: str, name: str) -> None:
        self._client = client
        self._table = table_name
        self._pk = f"SYNC#{name}"

    def _key(self, sk: str) -> dict[str, Any]:
        return serialise({"pk": self._pk, "sk": sk})

    def _checkpoint_item(self) -> dict[str, Any]:
        try:
            item = self._client.get_item(TableName=self._table, Key=self._key("checkpoint"), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc
        return deserialise(item["Item"]) if "Item" in item else {}

    def checkpoint(self) -> int | None:
        """Epoch seconds up to which every record is stored, or None before the first run."""
        until = self._checkpoint_item().get("until")
        return None if until is None else int(until)

    def cursor(self) -> Cursor | None:
        """Where the last run stopped inside the window after the checkpoint, if it did."""
        item = self._checkpoint_item()
        if "cursorPage" not in item:
            return None
        return Cursor(int(item["cursorFrom"]), int(item["cursorTo"]), int(item["cursorPage"]))

    def save_cursor(self, cursor: Cursor, *, now_iso: str) -> None:
        """Every page of the cursor's window before ``cursor.page`` is stored."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("checkpoint"),
                UpdateExpression="SET cursorFrom = :from, cursorTo = :to, cursorPage = :page, updatedAt = :now",
                ExpressionAttributeValues=serialise(
                    {":from": cursor.window_from, ":to": cursor.window_to, ":page": cursor.page, ":now": now_iso}
                ),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc

    def advance(self, until_s: int, *, now_iso: str) -> None:
        """Move the checkpoint forward (never back: a slow run cannot undo a later one)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("checkpoint"),
                UpdateExpression="SET #until = :until, updatedAt = :now REMOVE cursorFrom, cursorTo, cursorPage",
                ConditionExpression="attribute_not_exists(#until) OR #until <= :until",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues=serialise({":until": until_s, ":now": now_iso}),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return
            raise StoreError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StoreError(str(exc)) from exc

    def acquire(self, owner: str, *, now_ms: int, ttl_ms: int) -> bool:
        """Take the lease unless another live run holds it. A crashed run's lease
        expires after ``ttl_ms`` (longer than the function's timeout)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialise({"pk": self._pk, "sk": "lease", "owner": owner, "expiresAtMs": now_ms + ttl_ms}),
                ConditionExpression="attribute_not_exists(pk) OR expiresAtMs < :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=serialise({":now": now_ms, ":owner": owner}),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise StoreError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StoreError(str(exc)) from exc
        return True

    def release(self, owner: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key("lease"),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=serialise({":owner": owner}),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise StoreError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StoreError(str(exc)) from exc
