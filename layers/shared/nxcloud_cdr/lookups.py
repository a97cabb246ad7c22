"""The lookups: a record by id, its versions, and the six sparse indexes that find
records by call time, number and binding (docs/data-model.md), plus the scans an
operator runs. Every read returns items as :func:`.items.readable` spells them out."""

from __future__ import annotations

import base64
import heapq
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .dynamodb_types import deserialise, serialise
from .items import SORT_KEY, readable, record_key
from .kinds import RECORD_KINDS
from .store_errors import until_processed
from .times import iso_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

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
# Index entries a query reads (its page), and the keys of a BatchGetItem (its limit).
_INDEX_PAGE = 1000
_BATCH_GET_KEYS = 100


class LookupOffError(ValueError):
    """The lookup's index is turned off in this deployment."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    cursor: str | None


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: "[[[[..." nested past the parser
        raise ValueError("invalid cursor") from exc


def _months(start: datetime, end: datetime) -> Iterator[str]:
    """The ByTime buckets from start's month to end's, both included: months in UTC, as
    :func:`.times.month_bucket` files them (a window given in +08:00 starts in UTC's
    previous month)."""
    first, last = start.astimezone(UTC), end.astimezone(UTC)
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class Lookups:
    """The call records table's reads (a part of :class:`.store.CallStore`)."""

    _client: DynamoDBClient
    table_name: str
    _indexes: frozenset[str] | None

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
        its ``raw`` body, ``rank`` and ``receivedAt`` (docs/guarantees.md, "One item per call")."""
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
        position: dict[str, Any] = decode_cursor(cursor) if cursor else {"month": "", "key": None}
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
                        return Page(items, encode_cursor({"month": month, "key": last}))
                    if number + 1 < len(months):
                        return Page(items, encode_cursor({"month": months[number + 1], "key": None}))
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
        before = decode_cursor(cursor) if cursor else None
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
        return Page(page, encode_cursor(page[-1][SORT_KEY]) if page and has_more else None)

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
        start_key = decode_cursor(cursor) if cursor else None
        items, last = self._query_index(index, str(key), limit=limit, newest_first=True, start_key=start_key)
        return Page(items, encode_cursor(last) if last else None)

    def recording_failures(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Records with a recording that failed to archive, newest call first: those the
        archiver gave up on ("failed"), then those it still retries ("retrying")."""
        self._require(BY_RECORDING_FAILURE)
        position: dict[str, Any] = decode_cursor(cursor) if cursor else {"partition": 0, "key": None}
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
                        return Page(items, encode_cursor({"partition": number, "key": last}))
                    if number + 1 < len(partitions):
                        return Page(items, encode_cursor({"partition": number + 1, "key": None}))
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

    def calls_by_time(self, start: datetime, end: datetime, *, page: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every call's item whose time in the index (its start, else when it was first
        received) is in [start, end), oldest first, in pages of up to ``page``: what
        ``nxcdr lake backfill`` publishes, so that the lake's partitions (call dates)
        come a few at a time. Reads the ByTime index month by month, the kinds of a
        month merged by time, then each item whole (the index holds a summary), with
        BatchGetItem; an item gone in between (TTL) is left out."""
        if start >= end:
            return
        low, high = iso_utc(start), iso_utc(end)
        # The last month is the one of end's previous instant: end itself is left out.
        months = _months(start, end - timedelta(microseconds=1))
        entries = itertools.chain.from_iterable(
            heapq.merge(
                *(self._time_entries(f"{kind}#{month}", low, high) for kind in RECORD_KINDS),
                key=lambda entry: str(entry[SORT_KEY]),
            )
            for month in months
        )
        for group in itertools.batched(entries, page, strict=False):
            yield self._whole_items(group)

    def calls_outside(self, start: datetime, end: datetime, *, limit: int = 500, cursor: str | None = None) -> Page:
        """Every call's item whose time in the index is before ``start`` or from ``end``
        on (a wrong clock: 1975, 2100), or that has none: what :meth:`calls_by_time`
        over [start, end) does not read. A Scan of the whole table."""
        return self._scan(
            "begins_with(pk, :id) AND NOT begins_with(sk, :version)"
            f" AND ({SORT_KEY} < :start OR {SORT_KEY} >= :end OR attribute_not_exists({SORT_KEY}))",
            {},
            {":id": "ID#", ":version": "v#", ":start": iso_utc(start), ":end": iso_utc(end)},
            limit=limit,
            cursor=cursor,
        )

    def _time_entries(self, bucket: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        """The ByTime entries of one bucket (a kind's month) with a time in [low, high),
        oldest first, read a page at a time as they are taken."""
        start_key = None
        while True:
            found, start_key = self._query_index(
                BY_TIME, bucket, limit=_INDEX_PAGE, newest_first=False, start_key=start_key, between=(low, high)
            )
            yield from found
            if start_key is None:
                return

    def _whole_items(self, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of index entries, whole, in the entries' order (BatchGetItem
        answers in any order). Eventually consistent, as the index is: an item changed
        a moment ago has its change published by the table's stream anyway."""
        keys = [(str(entry["pk"]), str(entry["sk"])) for entry in entries]
        found = self._batch_get(keys)
        return [readable(found[key]) for key in keys if key in found]

    def calls_gone(self, calls: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Of these calls (kind, call id), those the table holds no item of: what
        ``nxcdr lake backfill`` finds in the lake and publishes the removal of. Read
        consistently: an item written a moment ago is not gone."""
        keys = [(record_key(call_id, kind)["pk"], kind) for kind, call_id in calls]
        present = self._batch_get(keys, keys_only=True)
        return [call for call, key in zip(calls, keys, strict=True) if key not in present]

    def _batch_get(
        self, keys: Sequence[tuple[str, str]], *, keys_only: bool = False
    ) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for group in itertools.batched(dict.fromkeys(keys), _BATCH_GET_KEYS, strict=False):
            wanted: dict[str, Any] = {"Keys": [serialise({"pk": pk, "sk": sk}) for pk, sk in group]}
            if keys_only:
                wanted |= {"ProjectionExpression": "pk, sk", "ConsistentRead": True}
            request = {self.table_name: wanted}
            for response in until_processed(self._client.batch_get_item, request, "UnprocessedKeys", "keys unread"):
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = deserialise(raw)
                    found[str(item["pk"]), str(item["sk"])] = item
        return found

    def _scan(
        self, condition: str, names: dict[str, str], values: dict[str, Any], *, limit: int, cursor: str | None
    ) -> Page:
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": condition,
            **({"ExpressionAttributeNames": names} if names else {}),
            "ExpressionAttributeValues": serialise(values),
        }
        if cursor:
            arguments["ExclusiveStartKey"] = decode_cursor(cursor)
        items: list[dict[str, Any]] = []
        while True:
            response = self._client.scan(**arguments)
            items.extend(readable(deserialise(item)) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if last is None:
                return Page(items, None)
            if len(items) >= limit:
                return Page(items, encode_cursor(last))
            arguments["ExclusiveStartKey"] = last
