"""The sync's state in the records table: its checkpoint (with the window size and
where to resume) and its lease.

Both live in one partition (``pk = SYNC#<name>``) with no index attribute, so they
never appear in a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .dynamodb_types import deserialise, serialise
from .store_errors import StoreError, conditional, is_condition_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Position:
    """Where the sync stands, as one read of its checkpoint item."""

    until: int | None = None  # epoch seconds up to which every record is stored
    window_seconds: int | None = None  # the window size the last runs could read whole
    resume: tuple[int, int, int] | None = None  # (window from, window to, page), see CdrSync._shrink

    def first_page(self, start_s: int, end_s: int) -> int:
        """The page to start this window at: 1 unless a run stopped inside it."""
        if self.resume is not None and self.resume[:2] == (start_s, end_s):
            return self.resume[2]
        return 1


class SyncState:
    def __init__(self, client: DynamoDBClient, table_name: str, name: str) -> None:
        self._client = client
        self._table = table_name
        self._pk = f"SYNC#{name}"

    def _key(self, sk: str) -> dict[str, Any]:
        return serialise({"pk": self._pk, "sk": sk})

    def position(self) -> Position:
        try:
            answer = self._client.get_item(TableName=self._table, Key=self._key("checkpoint"), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc
        item = deserialise(answer["Item"]) if "Item" in answer else {}
        resume = None
        if "resumePage" in item:
            resume = (int(item["resumeFrom"]), int(item["resumeTo"]), int(item["resumePage"]))
        return Position(
            until=None if item.get("until") is None else int(item["until"]),
            window_seconds=None if item.get("windowSeconds") is None else int(item["windowSeconds"]),
            resume=resume,
        )

    def checkpoint(self) -> int | None:
        """Epoch seconds up to which every record is stored, or None before the first run."""
        return self.position().until

    def window_seconds(self) -> int | None:
        """The window size the last runs could read whole (None: the configured maximum)."""
        return self.position().window_seconds

    def _set(self, values: dict[str, Any], *, now_iso: str) -> None:
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("checkpoint"),
                UpdateExpression=f"SET {assignments}, updatedAt = :updatedAt",
                ExpressionAttributeValues=serialise(
                    {f":{name}": value for name, value in values.items()} | {":updatedAt": now_iso}
                ),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc

    def set_window_seconds(self, seconds: int, *, now_iso: str) -> None:
        self._set({"windowSeconds": seconds}, now_iso=now_iso)

    def save_resume_page(self, start_s: int, end_s: int, page: int, *, now_iso: str) -> None:
        self._set({"resumeFrom": start_s, "resumeTo": end_s, "resumePage": page}, now_iso=now_iso)

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
        return conditional(
            self._client.put_item,
            TableName=self._table,
            Item=serialise({"pk": self._pk, "sk": "lease", "owner": owner, "expiresAtMs": now_ms + ttl_ms}),
            ConditionExpression="attribute_not_exists(pk) OR expiresAtMs < :now OR #owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=serialise({":now": now_ms, ":owner": owner}),
        )

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
