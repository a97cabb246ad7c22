"""DynamoDB access: the call records table and the quarantine table.

One item per record, keyed by NXCLOUD's id; six sparse indexes answer the lookups
(README, "Data model"). Writes are single conditional puts, so that a retried push is
stored once without a read first and without an idempotency table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from .records import CallRecord
from .times import epoch_ms, iso_utc, month_bucket

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .config import StoreSettings

# Index names and their partition-key attribute; every index sorts on SORT_KEY.
BY_TIME = "ByTime"
BY_CALLER = "ByCaller"
BY_CALLEE = "ByCallee"
BY_DID = "ByDid"
BY_BIND_ID = "ByBindId"
BY_CUSTOMER_BIND_ID = "ByCustomerBindId"
INDEX_KEYS = {
    BY_TIME: "timeBucket",
    BY_CALLER: "callerNumber",
    BY_CALLEE: "calleeNumber",
    BY_DID: "didNumber",
    BY_BIND_ID: "bindId",
    BY_CUSTOMER_BIND_ID: "customerBindId",
}
NUMBER_INDEXES = (BY_CALLER, BY_CALLEE, BY_DID)
SORT_KEY = "sortKey"
# A quarantined body is kept whole when it fits DynamoDB's 400 KB item, compressed when
# compressing makes it fit, and cut (flagged) only beyond that.
_QUARANTINE_BODY_LIMIT = 350_000

Outcome = Literal["stored", "updated", "duplicate", "superseded"]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StoreError(Exception):
    """The store did not confirm a write: the caller must not acknowledge the push."""


def is_condition_failure(exc: ClientError) -> bool:
    """A conditional write that DynamoDB refused because its condition did not hold."""
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


@dataclass(frozen=True)
class PutResult:
    outcome: Outcome
    # The copy that lost (the stored one for "updated", the incoming for "superseded").
    loser_raw: str | None = None


@dataclass
class BatchResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    cursor: str | None


def record_key(nxcloud_id: str, kind: str) -> dict[str, str]:
    return {"pk": f"ID#{nxcloud_id}", "sk": kind}


def _expires_at(moment: datetime, days: int) -> int | None:
    return int((moment + timedelta(days=days)).timestamp()) if days > 0 else None


def record_item(record: CallRecord, received_at: datetime, *, source: str, retention_days: int) -> dict[str, Any]:
    """The stored item of a record (pure). Index keys are left out when empty, so the
    indexes stay sparse: DynamoDB refuses empty strings as key values."""
    indexed_at = record.start or received_at
    item: dict[str, Any] = {
        **record_key(record.nxcloud_id, record.kind),
        "kind": record.kind,
        "nxcloudId": record.nxcloud_id,
        "source": source,
        SORT_KEY: f"{iso_utc(indexed_at)}#{record.kind}#{record.nxcloud_id}",
        "timeBucket": f"{record.kind}#{month_bucket(indexed_at)}",
        "callStartUtc": iso_utc(record.start) if record.start else None,
        "callerNumber": record.caller,
        "calleeNumber": record.callee,
        "didNumber": record.did,
        "bindId": record.bind_id,
        "customerBindId": record.customer_bind_id,
        "durationSec": record.duration_sec,
        "statusName": record.status_name,
        "fields": record.fields,
        "unknownFields": list(record.unknown_fields),
        "raw": record.raw,
        "contentHash": record.content_hash,
        "completeness": record.completeness,
        "receivedAt": iso_utc(received_at),
        "receivedAtMs": epoch_ms(received_at),
        "expiresAt": _expires_at(indexed_at, retention_days),
    }
    return {name: value for name, value in item.items() if value is not None and value != ""}


def _dynamo_safe(value: Any) -> Any:
    """Floats (from unknown fields) become Decimals: DynamoDB's numbers are decimal."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _dynamo_safe(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_dynamo_safe(inner) for inner in value]
    return value


def serialise(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_dynamo_safe(value)) for name, value in item.items()}


def deserialise(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


def _backoff(attempt: int) -> None:
    # Unprocessed batch entries mean throttling: AWS asks for exponential backoff.
    time.sleep(min(0.05 * 2**attempt, 2.0))


def _months(start: datetime, end: datetime) -> Iterator[str]:
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# The stored copy is replaced only by a different copy that carries at least as much
# information and arrived later; see README "What wins when copies differ".
_PUT_CONDITION = (
    "attribute_not_exists(pk) OR (contentHash <> :hash AND "
    "(completeness < :completeness OR (completeness = :completeness AND receivedAtMs < :received)))"
)


class CallStore:
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        quarantine_table_name: str,
        *,
        retention_days: int = 0,
        quarantine_retention_days: int = 30,
    ) -> None:
        self._client = client
        self.table_name = table_name
        self.quarantine_table_name = quarantine_table_name
        self._retention_days = retention_days
        self._quarantine_retention_days = quarantine_retention_days

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: StoreSettings) -> CallStore:
        return cls(
            client,
            settings.table_name,
            settings.quarantine_table_name,
            retention_days=settings.retention_days,
            quarantine_retention_days=settings.quarantine_retention_days,
        )

    # -- writes ---------------------------------------------------------------------

    def put_record(self, record: CallRecord, received_at: datetime, *, source: str) -> PutResult:
        """Store a record once. Raises :class:`StoreError` when the write is not confirmed."""
        item = record_item(record, received_at, source=source, retention_days=self._retention_days)
        try:
            response = self._client.put_item(
                TableName=self.table_name,
                Item=serialise(item),
                ConditionExpression=_PUT_CONDITION,
                ExpressionAttributeValues=serialise(
                    {
                        ":hash": record.content_hash,
                        ":completeness": record.completeness,
                        ":received": item["receivedAtMs"],
                    }
                ),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise StoreError(str(exc)) from exc
            stored = cast("dict[str, Any] | None", exc.response.get("Item")) or self._get_raw_item(
                record.nxcloud_id, record.kind
            )
            if stored is None:  # deleted between the two calls: the retry will store it
                raise StoreError("conditional write failed on a record that is gone") from exc
            if deserialise(stored).get("contentHash") == record.content_hash:
                return PutResult("duplicate")
            return PutResult("superseded", loser_raw=record.raw)
        except BotoCoreError as exc:
            raise StoreError(str(exc)) from exc
        old = response.get("Attributes")
        if not old:
            return PutResult("stored")
        return PutResult("updated", loser_raw=str(deserialise(old).get("raw", "")))

    def quarantine(
        self,
        kind: str,
        body: bytes,
        *,
        reason: str,
        message: str,
        received_at: datetime,
        nxcloud_id: str | None = None,
    ) -> str:
        """Keep a body that was not stored as a record, for inspection and replay.

        Keyed by the body's hash, so NXCLOUD's retries of one bad push make one item
        (``attempts`` counts them). Returns the quarantine id.
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
            "expiresAt": _expires_at(received_at, self._quarantine_retention_days),
        }
        if nxcloud_id:
            values["nxcloudId"] = nxcloud_id
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

    def put_records_batch(self, records: list[CallRecord], received_at: datetime, *, source: str) -> BatchResult:
        """Store many records with batched calls (the sync's pages), by the same rule as
        :meth:`put_record`: a record is written when it is new, or differs from the
        stored copy and is at least as complete. Raises :class:`StoreError` unless every
        write was confirmed, so that the caller does not move its checkpoint."""
        latest: dict[tuple[str, str], CallRecord] = {}
        for record in records:  # one page may list a record twice: keep the fullest copy
            key = (record.nxcloud_id, record.kind)
            if key not in latest or record.completeness >= latest[key].completeness:
                latest[key] = record
        result = BatchResult()
        writes: list[dict[str, Any]] = []
        stored = self._stored_versions(list(latest))
        for key, record in latest.items():
            previous = stored.get(key)
            if previous is None:
                result.new += 1
            elif previous["contentHash"] == record.content_hash or previous["completeness"] > record.completeness:
                result.unchanged += 1
                continue
            else:
                result.updated += 1
            item = record_item(record, received_at, source=source, retention_days=self._retention_days)
            writes.append({"PutRequest": {"Item": serialise(item)}})
        for start in range(0, len(writes), 25):
            self._batch_write(writes[start : start + 25])
        return result

    def _stored_versions(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table_name: {
                    "Keys": [serialise(record_key(*key)) for key in keys[start : start + 100]],
                    "ProjectionExpression": "nxcloudId, sk, contentHash, completeness",
                    "ConsistentRead": True,
                }
            }
            for attempt in range(8):
                try:
                    response = self._client.batch_get_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError(str(exc)) from exc
                for item in response.get("Responses", {}).get(self.table_name, []):
                    version = deserialise(item)
                    found[(str(version["nxcloudId"]), str(version["sk"]))] = version
                pending = dict(response.get("UnprocessedKeys") or {})
                if not pending:
                    break
                _backoff(attempt)
            else:
                raise StoreError("DynamoDB left keys unread after 8 attempts")
        return found

    def _batch_write(self, writes: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self.table_name: writes}
        for attempt in range(8):
            try:
                response = self._client.batch_write_item(RequestItems=pending)
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(str(exc)) from exc
            pending = dict(response.get("UnprocessedItems") or {})
            if not pending:
                return
            _backoff(attempt)
        raise StoreError("DynamoDB left items unwritten after 8 attempts")

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

    # -- reads ----------------------------------------------------------------------

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
            arguments["ExclusiveStartKey"] = _decode_cursor(cursor)
        response = self._client.scan(**arguments)
        last = response.get("LastEvaluatedKey")
        return Page([deserialise(item) for item in response.get("Items", [])], _encode_cursor(last) if last else None)

    def _get_raw_item(self, nxcloud_id: str, kind: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self.table_name, Key=serialise(record_key(nxcloud_id, kind)), ConsistentRead=True
        )
        return response.get("Item")

    def get(self, nxcloud_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Access pattern 1: the record(s) with this NXCLOUD id (of every kind unless given)."""
        if kind is not None:
            item = self._get_raw_item(nxcloud_id, kind)
            return [deserialise(item)] if item else []
        response = self._client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=serialise({":pk": f"ID#{nxcloud_id}"}),
        )
        return [deserialise(item) for item in response.get("Items", [])]

    def _query_index(
        self, index: str, key: str, *, limit: int, newest_first: bool, start_key: Any = None, **extra: Any
    ) -> tuple[list[dict[str, Any]], Any]:
        condition = f"{INDEX_KEYS[index]} = :key"
        values: dict[str, Any] = {":key": key}
        if "between" in extra:
            condition += f" AND {SORT_KEY} BETWEEN :low AND :high"
            values[":low"], values[":high"] = extra["between"]
        if "before" in extra:
            condition += f" AND {SORT_KEY} < :before"
            values[":before"] = extra["before"]
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": serialise(values),
            "ScanIndexForward": not newest_first,
            "Limit": limit,
        }
        if start_key is not None:
            arguments["ExclusiveStartKey"] = start_key
        response = self._client.query(**arguments)
        return [deserialise(item) for item in response.get("Items", [])], response.get("LastEvaluatedKey")

    def by_time(
        self, kind: str, start: datetime, end: datetime, *, limit: int = 100, cursor: str | None = None
    ) -> Page:
        """Access pattern 2: records of one kind with call start in [start, end), oldest first."""
        position: dict[str, Any] = _decode_cursor(cursor) if cursor else {"month": "", "key": None}
        months = [month for month in _months(start, end) if month >= position["month"]]
        items: list[dict[str, Any]] = []
        for number, month in enumerate(months):
            start_key = position["key"] if month == position["month"] else None
            while True:
                found, last = self._query_index(
                    BY_TIME,
                    f"{kind}#{month}",
                    limit=limit - len(items),
                    newest_first=False,
                    start_key=start_key,
                    between=(iso_utc(start), iso_utc(end)),
                )
                items.extend(found)
                if len(items) >= limit:
                    if last is not None:
                        return Page(items, _encode_cursor({"month": month, "key": last}))
                    if number + 1 < len(months):
                        return Page(items, _encode_cursor({"month": months[number + 1], "key": None}))
                    return Page(items, None)
                if last is None:
                    break
                start_key = last
        return Page(items, None)

    def by_number(self, number: str, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Access pattern 3: records where the number is caller, callee or X, newest first.

        Queries the three number indexes and merges them; the cursor is the sort key of
        the last item returned, which all three indexes share.
        """
        before = _decode_cursor(cursor) if cursor else None
        merged: dict[str, dict[str, Any]] = {}
        more = False
        for index in NUMBER_INDEXES:
            extra = {"before": before} if before else {}
            found, last = self._query_index(index, number, limit=limit, newest_first=True, **extra)
            more = more or last is not None
            for item in found:
                merged[item[SORT_KEY]] = item
        ordered = sorted(merged.values(), key=lambda item: item[SORT_KEY], reverse=True)
        page = ordered[:limit]
        has_more = more or len(ordered) > limit
        return Page(page, _encode_cursor(page[-1][SORT_KEY]) if page and has_more else None)

    def by_binding(
        self,
        *,
        bind_id: str | None = None,
        customer_bind_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Access pattern 4: calls of one binding, by ``bindId`` or ``customerBindId``, newest first."""
        if (bind_id is None) == (customer_bind_id is None):
            raise ValueError("give exactly one of bind_id and customer_bind_id")
        index, key = (BY_BIND_ID, bind_id) if bind_id is not None else (BY_CUSTOMER_BIND_ID, customer_bind_id)
        start_key = _decode_cursor(cursor) if cursor else None
        items, last = self._query_index(index, str(key), limit=limit, newest_first=True, start_key=start_key)
        return Page(items, _encode_cursor(last) if last else None)
