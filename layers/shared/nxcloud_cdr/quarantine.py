"""The quarantine: bodies that did not become records (bad input, or a row the sync
could not map or store), kept whole for inspection and a replay after a fix."""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .dynamodb_types import deserialise, serialise
from .items import expires_at
from .lookups import Page, decode_cursor, encode_cursor
from .storable import storable
from .store_errors import StoreError
from .times import iso_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# A quarantined body is kept whole when it fits DynamoDB's 400 KB item, compressed when
# compressing makes it fit, and cut (flagged) only beyond that.
_QUARANTINE_BODY_LIMIT = 350_000


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Quarantine:
    """The quarantine table's reads and writes (a part of :class:`.store.CallStore`)."""

    _client: DynamoDBClient
    quarantine_table_name: str
    _quarantine_retention_days: int

    def quarantine(
        self,
        kind: str,
        body: bytes,
        *,
        reason: str,
        message: str,
        received_at: datetime,
        nxcloud_id: str | None = None,
        origin: dict[str, Any] | None = None,
    ) -> str:
        """Keep a body that was not stored as a record, for inspection and replay.

        Keyed by the body's hash, so NXCLOUD's retries of one bad push make one item
        (``attempts`` counts them). ``origin`` adds where it came from (the sync's
        window and page). Returns the quarantine id.
        """
        digest = hashlib.sha256(body).hexdigest()
        quarantine_id = f"{kind}#{digest}"
        stored_body, encoding, truncated = body, "identity", False
        if len(body) > _QUARANTINE_BODY_LIMIT:
            stored_body, encoding = zlib.compress(body, 9), "zlib"
            if len(stored_body) > _QUARANTINE_BODY_LIMIT:
                stored_body, encoding, truncated = body[:_QUARANTINE_BODY_LIMIT], "identity", True
        values: dict[str, Any] = {
            "kind": kind,
            "reason": reason,
            "message": message,
            "body": stored_body,
            "bodyEncoding": encoding,
            "bodyTruncated": truncated,
            "bodySize": len(body),
            "bodySha256": digest,
            "lastSeenAt": iso_utc(received_at),
            "expiresAt": expires_at(received_at, self._quarantine_retention_days),
        }
        if nxcloud_id:
            # An id too long for a record (the reason it is here) must not make this item too large.
            values["nxcloudId"] = (
                nxcloud_id if len(nxcloud_id) <= 512 else f"{nxcloud_id[:200]}...sha256:{_sha256_text(nxcloud_id)}"
            )
        values.update(origin or {})
        # Whatever the body held, the item must be storable (an id or a message may
        # carry text DynamoDB refuses); the body itself is bytes, always storable.
        values = {name: storable(value, name, []) for name, value in values.items()}
        names = {f"#{name}": name for name in values}
        assignments = ", ".join(f"#{name} = :{name}" for name in values)
        try:
            self._client.update_item(
                TableName=self.quarantine_table_name,
                Key=serialise({"pk": quarantine_id}),
                UpdateExpression=(
                    f"SET {assignments}, #firstSeenAt = if_not_exists(#firstSeenAt, :lastSeenAt) ADD #attempts :one"
                ),
                ExpressionAttributeNames={**names, "#firstSeenAt": "firstSeenAt", "#attempts": "attempts"},
                ExpressionAttributeValues=serialise(
                    {f":{name}": value for name, value in values.items()} | {":one": 1}
                ),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc
        return quarantine_id

    def mark_replayed(self, quarantine_id: str, *, status: int, at: datetime) -> None:
        try:
            self._client.update_item(
                TableName=self.quarantine_table_name,
                Key=serialise({"pk": quarantine_id}),
                UpdateExpression="SET replayedAt = :at, replayStatus = :status",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=serialise({":at": iso_utc(at), ":status": status}),
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc

    def quarantined(self, quarantine_id: str) -> dict[str, Any] | None:
        """A quarantined body, decompressed (``body`` is the exact bytes received)."""
        response = self._client.get_item(
            TableName=self.quarantine_table_name, Key=serialise({"pk": quarantine_id}), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        item = deserialise(response["Item"])
        body = bytes(item["body"])
        item["body"] = zlib.decompress(body) if item.get("bodyEncoding") == "zlib" else body
        return item

    def list_quarantine(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Quarantined bodies (a scan: the table holds only what went wrong)."""
        arguments: dict[str, Any] = {
            "TableName": self.quarantine_table_name,
            "Limit": limit,
            "ProjectionExpression": "pk, kind, reason, message, nxcloudId, attempts, firstSeenAt, lastSeenAt, "
            "bodySize, replayedAt, replayStatus",
        }
        if cursor:
            arguments["ExclusiveStartKey"] = decode_cursor(cursor)
        response = self._client.scan(**arguments)
        last = response.get("LastEvaluatedKey")
        return Page([deserialise(item) for item in response.get("Items", [])], encode_cursor(last) if last else None)
