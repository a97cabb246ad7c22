"""The sync's state in the records table: its checkpoint and its lease.

Both live in one partition (``pk = SYNC#<name>``) with no index attribute, so they
never appear in a lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .store import StoreError, deserialise, is_condition_failure, serialise

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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

    def window_seconds(self) -> int | None:
        """The window size the last runs could read whole (None: the configured maximum)."""
        seconds = self._checkpoint_item().get("windowSeconds")
        return None if seconds is None else int(seconds)

    def set_window_seconds(self, seconds: int, *, now_iso: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("checkpoint"),
                UpdateExpression="SET windowSeconds = :seconds, updatedAt = :now",
                ExpressionAttributeValues=serialise({":seconds": seconds, ":now": now_iso}),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc

    def resume_page(self, start_s: int, end_s: int) -> int:
        """The page to start this window at (1 unless a run stopped inside it, see
        ``CdrSync._shrink``)."""
        item = self._checkpoint_item()
        if (item.get("resumeFrom"), item.get("resumeTo")) == (start_s, end_s):
            return int(item.get("resumePage") or 1)
        return 1

    def save_resume_page(self, start_s: int, end_s: int, page: int, *, now_iso: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("checkpoint"),
                UpdateExpression="SET resumeFrom = :from, resumeTo = :to, resumePage = :page, updatedAt = :now",
                ExpressionAttributeValues=serialise({":from": start_s, ":to": end_s, ":page": page, ":now": now_iso}),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc

    def advance(self, until_s: int, *, now_iso: str) -> None:
        """Move the checkpoint forward (never back: a slow run cannot undo a later one)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("checkpoint"),
                UpdateExpression="SET #until = :until, updatedAt = :now REMOVE resumeFrom, resumeTo, resumePage",
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
