"""DynamoDB access: the call records table's keys and lookups, and the quarantine.

One item per record, keyed by NXCLOUD's id; six sparse indexes answer the lookups
(README, "Data model"). How a record is written (which copy is shown, how the others
are kept, what is storable) is the write rule, in :mod:`.write_rule`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .dynamodb_types import deserialise, serialise
from .storable import storable
from .times import iso_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .config import StoreSettings

# Index names and their partition-key attribute; every index sorts on SORT_KEY.
BY_TIME = "ByTime"
BY_CALLER = "ByCaller"
BY_CALLEE = "ByCallee"
BY_DID = "ByDid"
BY_DID_Y = "ByDidY"
BY_BIND_ID = "ByBindId"
BY_CUSTOMER_BIND_ID = "ByCustomerBindId"
# Sparse: the records whose recording failed to archive (:mod:`.recording_links`).
BY_RECORDING_FAILURE = "ByRecordingFailure"
INDEX_KEYS = {
    BY_TIME: "timeBucket",
    BY_CALLER: "callerNumber",
    BY_CALLEE: "calleeNumber",
    BY_DID: "didNumber",
    BY_DID_Y: "didYNumber",
    BY_BIND_ID: "bindId",
    BY_CUSTOMER_BIND_ID: "customerBindId",
    BY_RECORDING_FAILURE: "recordingFailed",
}
NUMBER_INDEXES = (BY_CALLER, BY_CALLEE, BY_DID, BY_DID_Y)
# Indexes a deployment may leave out (template parameters), to save a write unit per record.
OPTIONAL_INDEXES = {BY_DID: "DidLookup", BY_DID_Y: "DidYLookup", BY_CUSTOMER_BIND_ID: "CustomerBindIdLookup"}
SORT_KEY = "sortKey"
# ``raw`` compressed with zlib, in items where that saves a write unit.
RAW_COMPRESSED = "rawZlib"
# The state of the join of a record's copies (:mod:`.merge`), in an item that shows one:
# its ``raw`` is the join's body, written from it on read.
MERGE = "merge"
# A quarantined body is kept whole when it fits DynamoDB's 400 KB item, compressed when
# compressing makes it fit, and cut (flagged) only beyond that.
_QUARANTINE_BODY_LIMIT = 350_000


class StoreError(Exception):
    """The store did not confirm a write: the caller must not acknowledge the push."""


class LookupOffError(ValueError):
    """The lookup's index is turned off in this deployment."""


def is_condition_failure(exc: ClientError) -> bool:
    """A conditional write that DynamoDB refused because its condition did not hold."""
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def conditional(
    call: Callable[..., Any], *, refused: Callable[[ClientError], Exception | None] = lambda exc: None, **arguments: Any
) -> bool:
    """A conditional write: True when it was made, False when its condition did not
    hold. :class:`StoreError` when the store did not answer, or ``refused``'s exception
    for an error that is about the request, not the store."""
    try:
        call(**arguments)
    except ClientError as exc:
        if is_condition_failure(exc):
            return False
        raise refused(exc) or StoreError(str(exc)) from exc
    except BotoCoreError as exc:
        raise StoreError(str(exc)) from exc
    return True


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    cursor: str | None


def record_key(nxcloud_id: str, kind: str) -> dict[str, str]:
    return {"pk": f"ID#{nxcloud_id}", "sk": kind}


def record_id(item: dict[str, Any]) -> tuple[str, str]:
    """(NXCLOUD id, kind) of a shown item, from its key."""
    return str(item["pk"]).removeprefix("ID#"), str(item["sk"])


def stored_hash(item: dict[str, Any]) -> str:
    """The content hash of a stored copy: the end of its rank (items from before the
    slim item kept it as ``contentHash`` too)."""
    if item.get("contentHash"):
        return str(item["contentHash"])
    return str(item.get("rank", "")).rsplit(".", 1)[-1]


def readable(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item (a record, a version or an index copy) with what its key and rank
    hold spelled out: ``kind``, ``nxcloudId``, ``contentHash``, and ``raw`` as text
    however it is stored. Items written before the slim item stored these themselves;
    both shapes read the same."""
    shown = dict(item)
    sk = str(item.get("sk", ""))
    if "nxcloudId" not in shown and str(item.get("pk", "")).startswith("ID#"):
        shown["nxcloudId"] = str(item["pk"]).removeprefix("ID#")
    elif "nxcloudId" not in shown and SORT_KEY in item:  # an index copy of a slim item
        shown["nxcloudId"] = str(item[SORT_KEY]).split("#", 2)[2]
    if "kind" not in shown:
        if sk.startswith("v#"):
            shown["kind"] = sk.split("#", 2)[1]
        elif sk:
            shown["kind"] = sk
        elif SORT_KEY in item:
            shown["kind"] = str(item[SORT_KEY]).split("#", 2)[1]
    if "contentHash" not in shown and "rank" in shown:
        shown["contentHash"] = stored_hash(shown)
    if RAW_COMPRESSED in shown:
        shown["raw"] = zlib.decompress(bytes(shown.pop(RAW_COMPRESSED))).decode("utf-8", "surrogatepass")
    if MERGE in shown:
        from . import merge, nxjson  # noqa: PLC0415 - a push that stores a new record never needs it

        state = merge.decode(shown.pop(MERGE))
        shown["raw"] = nxjson.dumps(state.body())
        shown["callSummary"] = merge.call_summary(state.summary_values())
        shown["recordingLinks"] = [list(pair) for pair in state.named_links(shown.get("kind", ""), state.body())]
    return shown


def expires_at(moment: datetime, days: int) -> int | None:
    """The TTL value ``days`` after ``moment``; None to keep forever."""
    if days <= 0:
        return None
    try:
        return int((moment + timedelta(days=days)).timestamp())
    except OverflowError:  # a call start near year 9999 outlives any retention
        return None


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


def _months(start: datetime, end: datetime) -> Iterator[str]:
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class CallStore:
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

    # -- writes ---------------------------------------------------------------------

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

    def _partition(self, nxcloud_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": serialise({":pk": f"ID#{nxcloud_id}"}),
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**arguments)
            items.extend(readable(deserialise(item)) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get(self, nxcloud_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Access pattern 1: the record(s) with this NXCLOUD id (of every kind unless given)."""
        if kind is not None:
            item = self._get_raw_item(nxcloud_id, kind)
            return [readable(deserialise(item))] if item else []
        return [item for item in self._partition(nxcloud_id) if not str(item["sk"]).startswith("v#")]

    def versions(self, nxcloud_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The other copies of a record that NXCLOUD sent (not the one shown), each with
        its ``raw`` body, ``rank`` and ``receivedAt`` (README, "What wins when copies differ")."""
        prefix = f"v#{kind}#" if kind else "v#"
        return [item for item in self._partition(nxcloud_id) if str(item["sk"]).startswith(prefix)]

    def indexes(self) -> frozenset[str]:
        """The lookup indexes this table has and can answer from (read once)."""
        if self._indexes is None:
            table = self._client.describe_table(TableName=self.table_name)["Table"]
            self._indexes = frozenset(
                index["IndexName"]
                for index in table.get("GlobalSecondaryIndexes", [])
                if index.get("IndexStatus", "ACTIVE") == "ACTIVE"
            )
        return self._indexes

    def _require(self, index: str) -> None:
        if index not in self.indexes():
            parameter = OPTIONAL_INDEXES.get(index)
            hint = f' (deploy with {parameter}="true" to turn it on)' if parameter else ""
            raise LookupOffError(f"this stack has no index {index}{hint}")

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
        return [readable(deserialise(item)) for item in response.get("Items", [])], response.get("LastEvaluatedKey")

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
        """Access pattern 3: records where the number is caller, callee, X or Y, newest
        first (X and Y only where the ByDid and ByDidY indexes are on).

        Queries the number indexes and merges them; the cursor is the sort key of the
        last item returned, which all of them share.
        """
        before = _decode_cursor(cursor) if cursor else None
        merged: dict[str, dict[str, Any]] = {}
        more = False
        for index in (index for index in NUMBER_INDEXES if index in self.indexes()):
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
        self._require(index)
        start_key = _decode_cursor(cursor) if cursor else None
        items, last = self._query_index(index, str(key), limit=limit, newest_first=True, start_key=start_key)
        return Page(items, _encode_cursor(last) if last else None)

    def recording_failures(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Records with a recording that failed to archive, newest call first: those the
        archiver gave up on ("failed"), then those it still retries ("retrying")."""
        self._require(BY_RECORDING_FAILURE)
        position: dict[str, Any] = _decode_cursor(cursor) if cursor else {"partition": 0, "key": None}
        partitions = ("failed", "retrying")
        first = int(position["partition"])
        items: list[dict[str, Any]] = []
        for number in range(first, len(partitions)):
            start_key = position["key"] if number == first else None
            while True:
                found, last = self._query_index(
                    BY_RECORDING_FAILURE,
                    partitions[number],
                    limit=limit - len(items),
                    newest_first=True,
                    start_key=start_key,
                )
                items.extend(found)
                if len(items) >= limit:
                    if last is not None:
                        return Page(items, _encode_cursor({"partition": number, "key": last}))
                    if number + 1 < len(partitions):
                        return Page(items, _encode_cursor({"partition": number + 1, "key": None}))
                    return Page(items, None)
                if last is None:
                    break
                start_key = last
        return Page(items, None)

    def pending_recordings(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Records whose recordings are still pending: the archiver is off, behind, or
        missed them. A Scan of the whole table (its read cost is the table's size):
        for an operator's occasional look, not for a schedule."""
        return self._scan(
            "#state = :pending", {"#state": "recordingState"}, {":pending": "pending"}, limit=limit, cursor=cursor
        )

    def unmarked_records(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Records stored before recordings were archived (no ``recordingState``),
        versions left out: what ``nxcdr recordings backfill`` looks at. A Scan."""
        return self._scan(
            "attribute_not_exists(#state) AND begins_with(pk, :id) AND NOT begins_with(sk, :version)",
            {"#state": "recordingState"},
            {":id": "ID#", ":version": "v#"},
            limit=limit,
            cursor=cursor,
        )

    def _scan(
        self, condition: str, names: dict[str, str], values: dict[str, Any], *, limit: int, cursor: str | None
    ) -> Page:
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialise(values),
        }
        if cursor:
            arguments["ExclusiveStartKey"] = _decode_cursor(cursor)
        items: list[dict[str, Any]] = []
        while True:
            response = self._client.scan(**arguments)
            items.extend(readable(deserialise(item)) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if last is None:
                return Page(items, None)
            if len(items) >= limit:
                return Page(items, _encode_cursor(last))
            arguments["ExclusiveStartKey"] = last
