"""The write rule: how a copy of a record becomes the stored item. Pushes, the sync and
replays all write through :class:`RecordWriter`, so the product's promise is here.

1. **Storable first.** The item is built by pure functions and made storable
   (:mod:`.storable`) before any call; a copy that still cannot be an item raises
   :class:`UnstorableError` (its body goes to quarantine with a 4xx), and so does a
   ``ValidationException`` from DynamoDB: a property of the input, never a reason to
   ask NXCLOUD to retry. Only a store that is down, slow or throttling is a
   :class:`StoreError` (5xx, retried).
2. **One item per record: the join of its copies.** Copies of one record (NXCLOUD's
   retries and corrections, the call-log callback and the sync's copy of a call, both
   PNS formats) make one item showing their join (:mod:`.merge`): a function of the
   *set* of copies received, whatever order they arrived in, that never yields less
   than any one of them. The item holds the join's state (``merge``), so a new copy is
   joined with the item alone: its cost does not grow with the copies kept.
3. **Every distinct copy kept.** While there is one, the item holds it. From the second
   on, every copy is a *version* item in the same partition (``sk = v#<kind>#<content
   hash>``, no index attributes, so never in a lookup), written before the item.
4. **Single-item conditional writes only.** A new copy is kept as its version first
   (keyed by its content: kept once, whoever writes it), then the item is rewritten if
   it is still the one read (its ``revision``); a writer that loses the race joins its
   copy into the newer item. A copy whose version exists but which the item's join
   does not hold yet (a writer that failed between the two writes) is joined by the
   next writer that brings it. So no writer (push, callback, sync, replay) drops a copy
   or a source, and a copy storable on its own is never refused because of the others:
   the join is bounded (:data:`.merge.LEAF_BUDGET`).

Cost: a new record is one conditional ``PutItem``; a retry of the copy an item holds,
one failed conditional write; a new copy, a ``PutItem`` of its version and the item's
rewrite; a copy already joined, two failed conditional writes. None reads the versions
(but an item written before the join's state, once, and a left-out value brought back).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Literal, cast

from botocore.exceptions import BotoCoreError, ClientError

from . import merge, nxjson
from .deadline import Deadline, check
from .dynamodb_types import deserialise, item_size, serialise
from .items import (
    MERGE,
    RAW_COMPRESSED,
    attributes,
    build_item,
    expires_at,
    holds_one_copy,
    id_problem,
    rank_of,
    raw_compressed_if_cheaper,
    readable,
    record_id,
    record_key,
    sources_of,
    stored_hash,
    unchanged_since,
    version_item,
    version_key,
    with_archive,
)
from .kinds import RECORD_KINDS
from .mapping import SUMMARY
from .recording_links import recording_links
from .records import LOOKUP_FIELDS, CallRecord, completeness, content_hash
from .storable import (
    MAX_ITEM_BYTES,
    UnstorableError,
)
from .store_errors import StoreError, conditional, is_condition_failure, until_processed
from .times import DEFAULT_ZONE, iso_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .config import StoreSettings

__all__ = ["RecordWriter", "UnstorableError", "WriteResult", "build_item", "version_key"]

Outcome = Literal["stored", "updated", "duplicate", "kept"]

# How often a write is tried again when another writer changed the item between the
# read and the write (each round joins into the newer item).
_MAX_ROUNDS = 6


@dataclass(frozen=True)
class WriteResult:
    outcome: Outcome


@dataclass
class BatchOutcome:
    """What :meth:`RecordWriter.write_many` did: counts, and each record it could not
    store with the reason (the caller quarantines them one by one)."""

    stored: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    refused: list[tuple[CallRecord, str, str]] = field(default_factory=list)  # (record, reason, message)


def _payload_of(raw: str) -> dict[str, Any]:
    """A copy's payload, read as leniently as any copy was on arrival (a sync row may
    hold NaN; a push from before duplicate names were refused may name a field twice)."""
    payload = nxjson.loads(raw, duplicates="keep", constants=True)
    if not isinstance(payload, dict):
        raise ValueError("not a JSON object")
    return payload


# A transaction's limits: 100 actions, 4 MB of items (a margin kept for the request).
_TRANSACTION_ITEMS = 100
_TRANSACTION_BYTES = 3_500_000
# Fewer new records than this are written one by one, concurrently.
_TRANSACTION_LEAST = 20


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refused(exc: ClientError) -> UnstorableError | None:
    """A DynamoDB refusal that is about the item, not the store."""
    if _code(exc) == "ValidationException":
        return UnstorableError(f"DynamoDB refused the item: {exc.response.get('Error', {}).get('Message', '')[:300]}")
    return None


def body_only_record(
    kind: str, nxcloud_id: str, raw: str, payload: dict[str, Any], hash_: str, *, problems: tuple[str, ...] = ()
) -> CallRecord:
    """A copy its kind's model cannot read (a join's body, or a kept copy the current
    models no longer read) as a record of its body alone, so that it is still joined
    and shown, by its JSON."""
    return CallRecord(
        kind=kind,
        nxcloud_id=nxcloud_id,
        raw=raw,
        content_hash=hash_,
        completeness=completeness(payload),
        recordings=recording_links(kind, payload),
        problems=problems,
    )


def shown_record(kind: str, nxcloud_id: str, state: merge.State, zone: tzinfo) -> CallRecord:
    """The record an item that holds a join shows (pure): its body mapped by the kind's
    model, with the call by meaning (lookups, outcome, ``callSummary``) and the
    recordings of the join, across every copy and format."""
    body = state.body()
    text = nxjson.dumps(body)
    try:
        shown = RECORD_KINDS[kind].map(body, text, zone)
    except Exception as exc:  # the join's body must not refuse a copy that was storable alone
        problem = f"body: the join of the copies does not read as a {kind} ({str(exc)[:120]})"
        shown = body_only_record(kind, nxcloud_id, text, body, content_hash(body), problems=(problem,))
    call = state.summary_values()
    start = call.get("startUtc")
    problems = list(shown.problems)
    if state.dropped:
        problems.append(
            f"body: {state.dropped} value(s) only lower-ranked copies hold left out of the join, which would "
            "pass DynamoDB's item size; every copy is kept whole as a version"
        )
    if state.forgotten:
        problems.append(
            "body: parts of the structure only lower-ranked copies hold (fields, list entries) left out of the "
            "join, whose copies bring more paths than one item holds; every copy is kept whole as a version"
        )
    return dataclasses.replace(
        shown,
        nxcloud_id=nxcloud_id,
        start=datetime.fromisoformat(str(start)) if start else None,
        **cast("dict[str, Any]", {field: call.get(name) for name, field in LOOKUP_FIELDS.items()}),
        duration_sec=call.get("durationSec"),
        outcome=call.get("outcome", "unknown"),
        fields={**shown.fields, SUMMARY: merge.call_summary(call)},
        recordings=state.named_links(kind, body),
        problems=tuple(problems),
    )


class RecordWriter:
    def __init__(
        self, client: DynamoDBClient, table_name: str, *, retention_days: int = 0, zone: tzinfo = DEFAULT_ZONE
    ) -> None:
        self._client = client
        self.table_name = table_name
        self._retention_days = retention_days
        # How a stored copy is mapped again to be joined (times NXCLOUD sends without a zone).
        self._zone = zone

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: StoreSettings) -> RecordWriter:
        return cls(client, settings.table_name, retention_days=settings.retention_days, zone=settings.zone)

    def item(self, record: CallRecord, received_at: datetime, *, source: str) -> dict[str, Any]:
        return build_item(record, received_at, source=source, retention_days=self._retention_days)

    def write(
        self, record: CallRecord, received_at: datetime, *, source: str, deadline: Deadline | None = None
    ) -> WriteResult:
        """Store one copy by the rule. Raises :class:`UnstorableError` when the record
        can never be stored, :class:`StoreError` when the store did not confirm, and
        :class:`.deadline.OutOfTimeError` (a StoreError) before a step ``deadline``
        leaves no time for: whatever was written before it is joined by the next writer."""
        item = self.item(record, received_at, source=source)
        serialised = serialise(item)
        copy: merge.Copy | None = None
        for _ in range(_MAX_ROUNDS):
            check(deadline, "write the record")
            stored = self._put_new(serialised)
            if stored is None:
                return WriteResult("stored")
            check(deadline, "join the copy")
            if holds_one_copy(stored) and stored_hash(stored) == record.content_hash:
                if self._same_copy(stored, item, source, received_at):
                    return WriteResult("duplicate")
                continue
            copy = copy or self._copy(record, source, received_at)
            result = self._join_in(copy, item, stored, deadline)
            if result is not None:
                return result
        raise StoreError("the record kept changing while it was written; retry")

    # -- the join ---------------------------------------------------------------------

    def _copy(self, record: CallRecord, source: str, received_at: datetime) -> merge.Copy:
        return merge.copy_of(
            record,
            _payload_of(record.raw),
            source=source,
            received_at=iso_utc(received_at),
            zero_is_unset=RECORD_KINDS[record.kind].zero_is_unset,
        )

    def _stored_copy(self, item: dict[str, Any]) -> merge.Copy:
        """A kept copy (an item holding one, or a version) as the join takes it, with
        the rank it was kept with. A copy that the current models no longer read is
        still joined, by its body alone."""
        shown = readable(item)
        nxcloud_id, kind = shown["nxcloudId"], shown["kind"]
        raw = str(shown["raw"])
        try:
            payload = _payload_of(raw)
        except (ValueError, RecursionError) as exc:
            raise UnstorableError(f"a kept copy of this record ({item.get('sk')}) no longer reads: {exc}") from exc
        try:
            record = RECORD_KINDS[kind].map(payload, raw, self._zone)
        except Exception:
            record = body_only_record(kind, nxcloud_id, raw, payload, stored_hash(item))
        received = str(item.get("receivedAt") or "")
        return dataclasses.replace(
            merge.copy_of(
                record,
                payload,
                source=str(item.get("source") or ""),
                received_at=received,
                zero_is_unset=RECORD_KINDS[kind].zero_is_unset,
            ),
            rank=rank_of(item),
        )

    def _state_of(self, stored: dict[str, Any], deadline: Deadline | None) -> merge.State:
        """The join an item stands for: its own state; for an item that holds one copy,
        that copy; for a merge of an earlier release, every version it kept (read once:
        the item holds the state from then on)."""
        if MERGE in stored:
            return merge.decode(stored[MERGE])
        if "copies" in stored:
            state = merge.join(self._stored_copy(version) for version in self._version_items(stored, deadline))
        else:
            state = merge.join([self._stored_copy(stored)])
        # Every source that sent the copies, and when the last one arrived, as the item says.
        state.sources.update(sources_of(stored))
        state.last_seen = max(state.last_seen, str(stored.get("lastSeenAt") or ""))
        return state

    def _join_in(
        self, copy: merge.Copy, item: dict[str, Any], stored: dict[str, Any], deadline: Deadline | None
    ) -> WriteResult | None:
        """Join a copy that the item does not hold as its one copy: keep it as a version
        (and, the first time, the copy the item held), then rewrite the item with the
        join if it is still the one read. None when another writer got there first."""
        base = self._state_of(stored, deadline)
        joined = base.clone()
        joined.add(copy)
        check(deadline, "keep the copy as a version")
        new = self._put_version(self._version_of(item))
        one_copy = holds_one_copy(stored)
        if one_copy:
            check(deadline, "keep the item's copy as a version")
            self._put_version(self._version_of(stored))
        elif not new and joined.same_as(base):
            # Joined already (this copy, or one that holds all it says, with its source).
            return WriteResult("duplicate")
        nxcloud_id, kind = record_id(stored)
        self._restore_left_out(kind, nxcloud_id, joined, deadline)
        shown = shown_record(kind, nxcloud_id, joined, self._zone)
        merged_item = self._joined_item(shown, joined, stored)
        check(deadline, "write the join")
        if not self._put_if_unchanged(merged_item, stored):
            return None
        return WriteResult("updated" if shown.content_hash != stored_hash(stored) else "kept")

    def _version_of(self, item: dict[str, Any]) -> dict[str, Any]:
        """An item holding one copy as its version, which expires when the retention
        has passed since the copy arrived: never before the record's item (a call is
        reported after it starts, and the item expires counting from the start), and
        without rewriting every version when a join moves the call's start."""
        version = version_item(item)
        received = str(item.get("receivedAt") or "")
        if self._retention_days > 0 and received:
            after = expires_at(datetime.fromisoformat(received), self._retention_days)
            current = version.get("expiresAt")
            version["expiresAt"] = max(int(current), after) if current is not None and after else after or current
        return version

    def _restore_left_out(self, kind: str, nxcloud_id: str, state: merge.State, deadline: Deadline | None) -> None:
        """Trim the join to its budget, reading back from their versions the values the
        threshold keeps again (a value that shrank made room)."""
        wanted = state.trim()
        if not wanted:
            return
        hashes = sorted({rank.rsplit(".", 1)[-1] for _, _, rank in wanted})
        payloads: dict[str, dict[str, Any]] = {}
        for hash_ in hashes:  # one GetItem each (the push functions' role has no batch read)
            check(deadline, "read back a left-out value")
            version = self._get(serialise(version_key(nxcloud_id, kind, hash_)))
            if version is not None:
                payloads[hash_] = _payload_of(str(readable(deserialise(version))["raw"]))
        for group, path, rank in wanted:
            payload = payloads.get(rank.rsplit(".", 1)[-1])
            if payload is not None:
                try:
                    state.restore(group, path, merge.leaf_at(payload, path))
                except KeyError:
                    continue

    def _joined_item(self, shown: CallRecord, state: merge.State, stored: dict[str, Any]) -> dict[str, Any]:
        """The item that shows a join: the shown record's attributes, the join's state
        in place of ``raw``, and where the copies came from."""
        received, source = state.first
        item = attributes(shown, datetime.fromisoformat(received), source=source, retention_days=self._retention_days)
        item |= {
            MERGE: merge.encode(state),
            "sources": sorted(state.sources),
            "lastSeenAt": state.last_seen,
            "revision": int(stored.get("revision", 0)) + 1,
            # When the item was first written: the join's receivedAt is its first copy's,
            # which can be earlier; change events order an item's generations by it.
            "createdAt": stored.get("createdAt") or stored.get("receivedAt"),
        }
        item = {name: value for name, value in item.items() if value is not None}
        item = with_archive(item, stored, shown.recordings)
        if item_size(item) > MAX_ITEM_BYTES:  # the budget leaves room for this never to happen
            raise StoreError("the join of this record's copies does not fit one item")
        return item

    def _same_copy(self, stored: dict[str, Any], item: dict[str, Any], source: str, received_at: datetime) -> bool:
        """A copy the item holds, again: note its source if new, and show the text the
        rule prefers (:func:`.merge.text_key`). False when another writer changed the item."""
        text, stored_text = str(readable(item)["raw"]), str(readable(stored)["raw"])
        better_text = merge.text_key(text) < merge.text_key(stored_text)
        if source in sources_of(stored) and not better_text:
            return True
        updated = dict(stored)
        if better_text:
            updated = {name: value for name, value in updated.items() if name not in ("raw", RAW_COMPRESSED)}
            updated |= {name: item[name] for name in ("raw", RAW_COMPRESSED) if name in item}
        updated |= {
            "sources": sorted({*sources_of(stored), source}),
            "lastSeenAt": max(str(stored.get("lastSeenAt") or stored.get("receivedAt") or ""), iso_utc(received_at)),
            "revision": int(stored.get("revision", 0)) + 1,
        }
        if "raw" in updated:
            updated = raw_compressed_if_cheaper(updated)[0]
        return self._put_if_unchanged(updated, stored)

    # -- calls ------------------------------------------------------------------------

    def _put_new(self, serialised: dict[str, Any]) -> dict[str, Any] | None:
        """Write the item if the record is new; else the stored item (deserialised)."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=serialised,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise _refused(exc) or StoreError(str(exc)) from exc
            raw_item = cast("dict[str, Any] | None", exc.response.get("Item")) or self._get(serialised)
            if raw_item is None:  # deleted between the two calls (TTL): NXCLOUD's retry stores it
                raise StoreError("conditional write failed on a record that is gone") from exc
            return deserialise(raw_item)
        except BotoCoreError as exc:
            raise StoreError(str(exc)) from exc
        return None

    def _get(self, serialised: dict[str, Any]) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": serialised["pk"], "sk": serialised["sk"]},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc
        return response.get("Item")

    def _get_many(
        self, keys: list[dict[str, str]], projection: str | None = None, names: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The items of ``keys`` that exist (consistent, batched), deserialised."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table_name: {"Keys": [serialise(key) for key in keys[start : start + 100]], "ConsistentRead": True}
            }
            if projection:
                request[self.table_name]["ProjectionExpression"] = projection
            if names:
                request[self.table_name]["ExpressionAttributeNames"] = names
            try:
                for response in until_processed(self._client.batch_get_item, request, "UnprocessedKeys", "keys unread"):
                    found.extend(deserialise(item) for item in response.get("Responses", {}).get(self.table_name, []))
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(str(exc)) from exc
        return found

    def _conditional(self, call: Any, **arguments: Any) -> bool:
        """A conditional write; False when its condition did not hold. DynamoDB
        refusing the item is :class:`UnstorableError` (the body's, not the store's)."""
        return conditional(call, refused=_refused, **arguments)

    def _version_items(self, stored: dict[str, Any], deadline: Deadline | None) -> list[dict[str, Any]]:
        """The version items of the stored record (one per copy kept beside the item)."""
        nxcloud_id, kind = record_id(stored)
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": serialise({":pk": f"ID#{nxcloud_id}", ":prefix": f"v#{kind}#"}),
            "ConsistentRead": True,
        }
        versions: list[dict[str, Any]] = []
        try:
            while True:
                check(deadline, "read the versions")
                response = self._client.query(**arguments)
                versions.extend(deserialise(item) for item in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc
        return versions

    def _put_version(self, version: dict[str, Any]) -> bool:
        """Keep a copy as its version; False when it is kept already (a version is its
        copy, keyed by its content, whoever wrote it first)."""
        return self._conditional(
            self._client.put_item,
            TableName=self.table_name,
            Item=serialise(version),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def _put_if_unchanged(self, item: dict[str, Any], stored: dict[str, Any]) -> bool:
        """Write the item if the stored one is still ``stored``; False when another
        writer changed it since it was read."""
        return self._conditional(
            self._client.put_item, TableName=self.table_name, Item=serialise(item), **unchanged_since(stored)
        )

    # -- many records (the sync's pages) ------------------------------------------------

    def write_many(
        self,
        records: list[CallRecord],
        received_at: datetime,
        *,
        source: str,
        workers: int = 8,
    ) -> BatchOutcome:
        """Write many records by the same rule, concurrently. Copies already stored
        unchanged are found with one batched (consistent) read and not written again;
        new records are written up to 100 to a conditional transaction. A record that
        cannot be stored is returned in ``refused`` (the others are still written);
        :class:`StoreError` is raised unless every other write was confirmed.
        """
        outcome = BatchOutcome()
        distinct: dict[tuple[str, str, str], CallRecord] = {}
        for record in records:  # a page may list a copy twice
            distinct.setdefault((record.nxcloud_id, record.kind, record.content_hash), record)
        held, present = self._held(list(distinct.values()), source, received_at)
        pending: list[CallRecord] = []
        for key, record in distinct.items():
            if key in held:
                outcome.unchanged += 1
            else:
                pending.append(record)
        pending = self._put_absent(pending, present, received_at, source, outcome)

        def one(record: CallRecord) -> tuple[CallRecord, WriteResult | Exception]:
            try:
                return record, self.write(record, received_at, source=source)
            except StoreError:
                raise
            except Exception as exc:  # the record's own problem: refused, the rest go on
                return record, exc

        if pending:
            # Imported here: only the sync writes many, and a push's cold start should not pay for it.
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            with ThreadPoolExecutor(max_workers=min(workers, len(pending))) as pool:
                results = list(pool.map(one, pending))
            for record, result in results:
                if isinstance(result, WriteResult):
                    counters = {"stored": "stored", "updated": "updated", "kept": "kept"}
                    name = counters.get(result.outcome, "unchanged")
                    setattr(outcome, name, getattr(outcome, name) + 1)
                elif isinstance(result, UnstorableError):
                    outcome.refused.append((record, "unstorable", str(result)))
                else:
                    outcome.refused.append((record, "unprocessable", f"{type(result).__name__}: {str(result)[:200]}"))
        return outcome

    def _put_absent(
        self,
        records: list[CallRecord],
        present: set[tuple[str, str]],
        received_at: datetime,
        source: str,
        outcome: BatchOutcome,
    ) -> list[CallRecord]:
        """Write the records the read found no item for, up to 100 in one
        ``TransactWriteItems`` of conditional puts (``attribute_not_exists``, as a new
        record's PutItem): one request where the rule makes one each, and all or
        nothing, so a callback that stored one of them since the read cancels the
        transaction and nothing is overwritten. What is left (records of items that
        exist, a call listed twice, a cancelled transaction's records) goes through the
        rule one by one, as do new records too few for a transaction to pay: the records
        returned."""
        by_key: dict[tuple[str, str], list[CallRecord]] = {}
        for record in records:
            by_key.setdefault((record.nxcloud_id, record.kind), []).append(record)
        new = [
            same[0]
            for key, same in by_key.items()
            if key not in present and len(same) == 1 and id_problem(key[0]) is None
        ]
        if len(new) < _TRANSACTION_LEAST:
            # A transaction costs twice a write's units, and has a cost of its own: it
            # pays only where it saves many requests.
            return records
        one_by_one = [record for record in records if record not in new]
        chunk: list[tuple[CallRecord, dict[str, Any]]] = []
        chunk_bytes = 0
        for record in new:
            try:
                item = self.item(record, received_at, source=source)
            except Exception:  # the rule says why, record by record
                one_by_one.append(record)
                continue
            size = item_size(item)
            if chunk and (len(chunk) == _TRANSACTION_ITEMS or chunk_bytes + size > _TRANSACTION_BYTES):
                one_by_one.extend(self._transact_new(chunk, outcome))
                chunk, chunk_bytes = [], 0
            chunk.append((record, item))
            chunk_bytes += size
        if chunk:
            one_by_one.extend(self._transact_new(chunk, outcome))
        return one_by_one

    def _transact_new(self, chunk: list[tuple[CallRecord, dict[str, Any]]], outcome: BatchOutcome) -> list[CallRecord]:
        """One transaction of new records; the records to write one by one when it was
        cancelled or refused (none of it was written; the rule says which and why)."""
        actions: list[Any] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": serialise(item),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for _, item in chunk
        ]
        try:
            made = self._conditional(self._client.transact_write_items, TransactItems=actions)
        except UnstorableError:
            made = False
        if not made:
            return [record for record, _ in chunk]
        outcome.stored += len(chunk)
        return []

    def _held(
        self, records: list[CallRecord], source: str, received_at: datetime
    ) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
        """(id, kind, content hash) of each record whose copy the table holds already,
        from this source: the item holds it as its one copy, or its join holds it all and
        its version is kept; and the (id, kind) of every item that exists. Two
        consistent batched reads, no write."""
        # An id no key can hold is not stored either: write() refuses its record.
        keys = sorted({(record.nxcloud_id, record.kind) for record in records if id_problem(record.nxcloud_id) is None})
        items = {
            record_id(item): item
            for item in self._get_many(
                [record_key(*key) for key in keys],
                "pk, sk, contentHash, #rank, copies, #source, sources, #merge",
                {"#rank": "rank", "#source": "source", "#merge": MERGE},
            )
        }
        held: set[tuple[str, str, str]] = set()
        joined: list[CallRecord] = []
        states: dict[tuple[str, str], merge.State] = {}
        for record in records:
            stored = items.get((record.nxcloud_id, record.kind))
            if stored is None or source not in sources_of(stored):
                continue
            if MERGE not in stored:
                copies = stored.get("copies") or [stored_hash(stored)]
                if record.content_hash in copies:
                    held.add((record.nxcloud_id, record.kind, record.content_hash))
                continue
            key = (record.nxcloud_id, record.kind)
            state = states.get(key) or states.setdefault(key, merge.decode(stored[MERGE]))
            grown = state.clone()
            grown.add(self._copy(record, source, received_at))
            if grown.same_as(state):
                joined.append(record)
        versions = self._get_many(
            [version_key(record.nxcloud_id, record.kind, record.content_hash) for record in joined], "pk, sk"
        )
        kept = {(str(item["pk"]), str(item["sk"])) for item in versions}
        for record in joined:
            version = version_key(record.nxcloud_id, record.kind, record.content_hash)
            if (version["pk"], version["sk"]) in kept:
                held.add((record.nxcloud_id, record.kind, record.content_hash))
        return held, set(items)
