"""The write rule: how a copy of a record becomes the stored item. Pushes, the sync and
replays all write through :class:`RecordWriter`, so the product's promise is here.

1. **Storable first.** The item is built by pure functions and made storable
   (:mod:`.storable`) before any call; a record that still cannot be an item raises
   :class:`UnstorableError` (its body goes to quarantine with a 4xx), and so does a
   ``ValidationException`` from DynamoDB: a property of the input, never a reason to
   ask NXCLOUD to retry. Only a store that is down, slow or throttling is a
   :class:`StoreError` (5xx, retried).
2. **One item per record: the merge of its copies.** Copies of one record (NXCLOUD's
   retries and corrections, the call-log callback and the sync's copy of a call) make
   one item showing their field-by-field merge (:mod:`.merge`), a function of the *set*
   of copies received, whatever order they arrived in.
3. **Every distinct copy kept.** While there is one, the item holds it. From the second
   on, every copy is a *version* item in the same partition (``sk = v#<kind>#<content
   hash>``, no index attributes, so never in a lookup), and the item lists them
   (``copies``) and every source that sent one (``sources``).
4. **Single-item conditional writes only.** A new copy is kept as its version first
   (keyed by its content: kept once, whoever writes it), then the item is rewritten if
   it is still the one read (its ``revision``); a writer that loses the race reads the
   versions again, its own among them. No writer (push, callback, sync, replay) drops a
   copy or a source, and a write that fails half-way leaves a version the next merge
   reads back.

Cost: a new record is one conditional ``PutItem``, a duplicate one failed conditional
write, a known copy from a new source one more ``PutItem``; a differing copy costs a
``Query`` of the versions, a ``PutItem`` per new version and the item's rewrite.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

from botocore.exceptions import BotoCoreError, ClientError

from . import merge, nxjson
from .dynamodb_types import deserialise, item_size, serialise, write_units
from .kinds import RECORD_KINDS
from .recording_links import ARCHIVE, FAILED, FORCE, PENDING, STATE, archive_state
from .records import CallRecord, copy_rank
from .storable import (
    MAX_ID_BYTES,
    MAX_INDEX_KEY_BYTES,
    MAX_ITEM_BYTES,
    UnstorableError,
    storable,
    utf8_bytes,
)
from .store import (
    RAW_COMPRESSED,
    SORT_KEY,
    StoreError,
    conditional,
    expires_at,
    is_condition_failure,
    readable,
    record_id,
    record_key,
    stored_hash,
)
from .times import DEFAULT_ZONE, iso_utc, month_bucket

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .config import StoreSettings

__all__ = ["RecordWriter", "UnstorableError", "WriteResult", "build_item", "version_key"]

Outcome = Literal["stored", "updated", "duplicate", "kept"]

# Attributes that are index keys: left out when DynamoDB could not take them as keys.
_INDEX_ATTRIBUTES = ("callerNumber", "calleeNumber", "didNumber", "didYNumber", "bindId", "customerBindId")
# How often a replacement is tried again when another writer changed the item between
# the read and the transaction (each round reads the newer copy first).
_MAX_ROUNDS = 6
# What a version item keeps of its copy: enough to show it and to tell it apart.
_VERSION_ATTRIBUTES = ("source", "raw", RAW_COMPRESSED, "receivedAt", "expiresAt")


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


def version_key(nxcloud_id: str, kind: str, content_hash: str) -> dict[str, str]:
    return {"pk": f"ID#{nxcloud_id}", "sk": f"v#{kind}#{content_hash}"}


def _id_problem(nxcloud_id: str) -> str | None:
    """Why no key can hold this id, or None when one can."""
    size = utf8_bytes(nxcloud_id)
    if size is not None and size <= MAX_ID_BYTES:
        return None
    shown = "not valid UTF-8" if size is None else f"{size} bytes"
    return f"the record's id is {shown}; DynamoDB keys allow at most {MAX_ID_BYTES} bytes here"


def build_item(record: CallRecord, received_at: datetime, *, source: str, retention_days: int) -> dict[str, Any]:
    """The stored item of a record (pure), storable as it is. Index keys are left out
    when empty (DynamoDB refuses empty key values), so the indexes stay sparse.
    Raises :class:`UnstorableError` when no item can hold the record.

    Nothing is stored twice (the item is the unit of write cost): the kind and id are
    the key, the content hash ends the rank, and the normalised fields are rebuilt from
    ``raw`` on read (:func:`.kinds.normalised`); what is stored beside ``raw`` is what a
    lookup needs without reading it."""
    problem = _id_problem(record.nxcloud_id)
    if problem:
        raise UnstorableError(problem)
    problems = list(record.problems)
    indexed_at = record.start or received_at
    item: dict[str, Any] = {
        **record_key(record.nxcloud_id, record.kind),
        "source": source,
        SORT_KEY: f"{iso_utc(indexed_at)}#{record.kind}#{record.nxcloud_id}",
        "timeBucket": f"{record.kind}#{month_bucket(indexed_at)}",
        "callStartUtc": iso_utc(record.start) if record.start else None,
        "callerNumber": record.caller,
        "calleeNumber": record.callee,
        "didNumber": record.did,
        "didYNumber": record.did_y,
        "bindId": record.bind_id,
        "customerBindId": record.customer_bind_id,
        "durationSec": record.duration_sec,
        # The outcome (:mod:`.outcomes`), under the name every index already projects.
        "statusName": record.outcome,
        "raw": record.raw,
        "rank": record.rank,
        "receivedAt": iso_utc(received_at),
        "expiresAt": expires_at(indexed_at, retention_days),
        # What the table's stream passes to the recording archiver.
        STATE: PENDING if record.recordings else None,
    }
    for name in _INDEX_ATTRIBUTES:
        value = item[name]
        if value is None:
            continue
        size = utf8_bytes(value)
        if size is None or size > MAX_INDEX_KEY_BYTES:
            problems.append(f"{name}: too long or not valid UTF-8 for a lookup key; left out of the lookups")
            item[name] = None
    item = {name: value for name, value in item.items() if value is not None and value != ""}
    item = {name: storable(value, name, problems) for name, value in item.items()}
    if problems:
        item["problems"] = _summary(problems)
    item, size = _raw_compressed_if_cheaper(item)
    if size > MAX_ITEM_BYTES:
        raise UnstorableError("the record is too large for one DynamoDB item")
    return item


def _raw_compressed_if_cheaper(item: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The item with ``raw`` stored compressed (``rawZlib``) when that makes it cost
    fewer write units; as text (readable in the console) otherwise. Readers see
    ``raw`` either way (:func:`.store.readable`). And the item's size."""
    size = item_size(item)
    if size <= 1024:
        return item, size
    compressed = zlib.compress(str(item["raw"]).encode("utf-8", "surrogatepass"), 9)
    smaller = {name: value for name, value in item.items() if name != "raw"} | {RAW_COMPRESSED: compressed}
    smaller_size = item_size(smaller)
    return (smaller, smaller_size) if write_units(smaller_size) < write_units(size) else (item, size)


# A body of many bad values must not make an item too large with its own notes.
_MAX_PROBLEMS = 20
_MAX_PROBLEM_CHARS = 200


def _summary(problems: list[str]) -> list[str]:
    """The problems as stored: the first few, each cut short, and how many more (the
    last problem, about the item's size, is always kept)."""
    shown = problems if len(problems) <= _MAX_PROBLEMS else [*problems[: _MAX_PROBLEMS - 1], problems[-1]]
    lines = [storable(problem[:_MAX_PROBLEM_CHARS], "problems", []) for problem in shown]
    if len(problems) > len(shown):
        lines.insert(-1, f"... and {len(problems) - len(shown)} more")
    return lines


def _version_item(item: dict[str, Any]) -> dict[str, Any]:
    """A shown item (of either shape, see :func:`.store.readable`) as a version."""
    version = {name: item[name] for name in _VERSION_ATTRIBUTES if name in item}
    version["rank"] = _rank_of(item)
    nxcloud_id, kind = record_id(item)
    version.update(version_key(nxcloud_id, kind, stored_hash(item)))
    return version


def _rank_of(item: dict[str, Any]) -> str:
    rank = item.get("rank")
    if rank:
        return str(rank)
    # An item written before ranks existed (it has its fields, completeness and hash):
    # its rank from what it stored (the latest of its normalised times is the latest
    # NXCLOUD time the mapping saw).
    return copy_rank(
        int(item.get("completeness", 0)), _latest_time_ms(item.get("fields") or {}), str(item.get("contentHash", ""))
    )


def _latest_time_ms(fields: dict[str, Any]) -> int:
    latest = 0
    pending = [fields]
    while pending:
        current = pending.pop()
        for name, value in current.items():
            if isinstance(value, dict):
                pending.append(value)
            elif name.endswith("Ms") and f"{name[:-2]}Utc" in current and isinstance(value, int | Decimal):
                latest = max(latest, int(value))
    return latest


def unchanged_since(stored: dict[str, Any]) -> dict[str, Any]:
    """The condition that the item is still ``stored``: its revision (every change of an
    item after its first write counts one), or for an item never changed, its rank
    (which ends in its content hash; the hash itself for an item from before ranks)."""
    # Placeholders of their own: an update that sets the same attributes uses theirs.
    if "revision" in stored:
        return {
            "ConditionExpression": "#revision = :seenRevision",
            "ExpressionAttributeNames": {"#revision": "revision"},
            "ExpressionAttributeValues": serialise({":seenRevision": stored["revision"]}),
        }
    name = "rank" if "rank" in stored else "contentHash"
    value = stored["rank"] if name == "rank" else stored_hash(stored)
    return {
        "ConditionExpression": "attribute_not_exists(#revision) AND #seen = :seenRank",
        "ExpressionAttributeNames": {"#seen": name, "#revision": "revision"},
        "ExpressionAttributeValues": serialise({":seenRank": value}),
    }


def _copies_of(stored: dict[str, Any]) -> list[str]:
    """Content hashes of the copies an item stands for: its ``copies`` when it shows a
    merge, else the one copy it holds."""
    return [str(value) for value in stored.get("copies") or [stored_hash(stored)]]


def _sources_of(stored: dict[str, Any]) -> list[str]:
    """Where the copies of an item came from (``push``, ``sync``)."""
    sources = stored.get("sources") or [stored.get("source")]
    return [str(source) for source in sources if source]


def _provenance(
    stored: dict[str, Any], copies: list[dict[str, Any]], sources: set[str], received_at: datetime | None
) -> dict[str, Any]:
    """What an item says of its copies once it has more than one source or copy: every
    source, when one was last received, a revision that every change counts, and (for a
    merge) the content hash of each copy. A function of the copies and sources received."""
    seen = [str(stored.get("lastSeenAt") or stored.get("receivedAt") or "")]
    seen += [str(version.get("receivedAt", "")) for version in copies]
    if received_at is not None:
        seen.append(iso_utc(received_at))
    every = set(_sources_of(stored)) | sources | {str(version["source"]) for version in copies if version.get("source")}
    values: dict[str, Any] = {
        "sources": sorted(every),
        "lastSeenAt": max(seen),
        "revision": int(stored.get("revision", 0)) + 1,
    }
    if copies:
        values["copies"] = sorted(stored_hash(version) for version in copies)
    return values


def _payload_of(version: dict[str, Any]) -> dict[str, Any]:
    """A kept copy's payload, read as leniently as any copy was on arrival (a sync row
    may hold NaN; a push from before duplicate names were refused may name a field
    twice). A copy that no longer reads refuses the merge (the new copy goes to
    quarantine): merging without it would show less than the item did."""
    try:
        payload = nxjson.loads(str(readable(version)["raw"]), duplicates="keep", constants=True)
    except (ValueError, RecursionError, KeyError) as exc:
        raise UnstorableError(f"a kept copy of this record ({version.get('sk')}) no longer reads: {exc}") from exc
    if not isinstance(payload, dict):
        raise UnstorableError(f"a kept copy of this record ({version.get('sk')}) is not a JSON object")
    return payload


def _with_provenance(item: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """``item`` with ``provenance``, ``raw`` compressed if that now saves a write unit."""
    updated = {**item, **provenance}
    if "raw" not in updated:
        return updated
    return _raw_compressed_if_cheaper(updated)[0]


def _with_archive(item: dict[str, Any], stored: dict[str, Any], shown: CallRecord) -> dict[str, Any]:
    """A merged item keeps what the archiver recorded of the links it still has (its
    recordings are not fetched again); a link that is new, changed or failed makes it
    pending, so that the archiver (which the stream wakes) tries it."""
    values = archive_state(shown.recordings, dict(stored.get(ARCHIVE) or {}))
    kept = {name: value for name, value in item.items() if name not in (STATE, ARCHIVE, FAILED, FORCE)}
    if values and FORCE in stored:  # an operator's retry request outlives the merge
        values[FORCE] = stored[FORCE]
    return {**kept, **values}


_BATCH_ATTEMPTS = 8


def _until_processed(call: Any, request: dict[str, Any], unprocessed: str, what: str) -> Iterator[dict[str, Any]]:
    """Each response of a batch call, sent again with what DynamoDB left unprocessed
    (backing off exponentially, as AWS asks) until nothing is left."""
    for attempt in range(_BATCH_ATTEMPTS):
        response: dict[str, Any] = call(RequestItems=request)
        yield response
        request = dict(response.get(unprocessed) or {})
        if not request:
            return
        time.sleep(min(0.05 * 2**attempt, 2.0))
    raise StoreError(f"DynamoDB left {what} after {_BATCH_ATTEMPTS} attempts")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refused(exc: ClientError) -> UnstorableError | None:
    """A DynamoDB refusal that is about the item, not the store."""
    if _code(exc) == "ValidationException":
        return UnstorableError(f"DynamoDB refused the item: {exc.response.get('Error', {}).get('Message', '')[:300]}")
    return None


class RecordWriter:
    def __init__(
        self, client: DynamoDBClient, table_name: str, *, retention_days: int = 0, zone: tzinfo = DEFAULT_ZONE
    ) -> None:
        self._client = client
        self.table_name = table_name
        self._retention_days = retention_days
        # How a merge of copies is mapped again (times NXCLOUD sends without a zone).
        self._zone = zone

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: StoreSettings) -> RecordWriter:
        return cls(client, settings.table_name, retention_days=settings.retention_days, zone=settings.zone)

    def item(self, record: CallRecord, received_at: datetime, *, source: str) -> dict[str, Any]:
        return build_item(record, received_at, source=source, retention_days=self._retention_days)

    def write(self, record: CallRecord, received_at: datetime, *, source: str) -> WriteResult:
        """Store one copy by the rule. Raises :class:`UnstorableError` when the record
        can never be stored, :class:`StoreError` when the store did not confirm."""
        item = self.item(record, received_at, source=source)
        serialised = serialise(item)
        for _ in range(_MAX_ROUNDS):
            stored = self._put_new(serialised)
            if stored is None:
                return WriteResult("stored")
            if record.content_hash in _copies_of(stored):
                if source in _sources_of(stored) or self._add_source(stored, source, received_at):
                    return WriteResult("duplicate")
                continue
            result = self._merge_in(record, item, stored)
            if result is not None:
                return result
        raise StoreError("the record kept changing while it was written; retry")

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

    def _add_source(self, stored: dict[str, Any], source: str, received_at: datetime) -> bool:
        """Record that ``source`` sent a copy already kept. False when another writer
        changed the item since it was read. The item is written whole (not updated): the
        attributes it gains may make storing ``raw`` compressed the cheaper form."""
        item = _with_provenance(stored, _provenance(stored, [], {source}, received_at))
        return self._put_if_unchanged(item, stored)

    def _conditional(self, call: Any, **arguments: Any) -> bool:
        """A conditional write; False when its condition did not hold. DynamoDB
        refusing the item is :class:`UnstorableError` (the body's, not the store's)."""
        return conditional(call, refused=_refused, **arguments)

    def _version_items(self, stored: dict[str, Any]) -> list[dict[str, Any]]:
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
                response = self._client.query(**arguments)
                versions.extend(deserialise(item) for item in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc
        return versions

    def _merge_in(self, record: CallRecord, item: dict[str, Any], stored: dict[str, Any]) -> WriteResult | None:
        """Add a copy that differs from every kept one: keep it (and, the first time, the
        copy the item held) as a version, then show the merge of every version
        (:mod:`.merge`) if the item is still the one read. None when another writer got
        there first: the next round reads the versions again, its own among them."""
        versions = self._version_items(stored)
        exists = {str(version["sk"]) for version in versions}
        # An item that shows one copy (not a merge) holds that copy: it becomes a version too.
        shown_copy = [] if "copies" in stored else [_version_item(stored)]
        new = _version_item(item)
        # A copy already stored as a version is that version (whoever wrote it first).
        copies = {str(version["sk"]): version for version in [new, *shown_copy, *versions]}
        ordered = sorted(copies.values(), key=_rank_of, reverse=True)
        kind = RECORD_KINDS[record.kind]
        combined = merge.merged([_payload_of(version) for version in ordered], kind.zero_is_unset)
        text = nxjson.dumps(combined)
        try:
            shown = kind.map(combined, text, self._zone)
        except Exception as exc:  # a mapping that refuses the merge refuses the copy
            raise UnstorableError(f"the merge of this record's copies cannot be read: {str(exc)[:200]}") from exc
        first = min(ordered, key=lambda version: str(version.get("receivedAt", "")))
        merged_item = build_item(
            shown,
            datetime.fromisoformat(str(first["receivedAt"])),
            source=str(first.get("source", "")),
            retention_days=self._retention_days,
        )
        merged_item = _with_provenance(
            merged_item, _provenance(stored, list(copies.values()), {str(new["source"])}, None)
        )
        merged_item = _with_archive(merged_item, stored, shown)
        for sk, version in copies.items():  # new versions: kept as long as the record they make up
            if sk not in exists:
                version.pop("expiresAt", None)
                if "expiresAt" in merged_item:
                    version["expiresAt"] = merged_item["expiresAt"]
        # The copies first, each kept once whatever happens next (a version is its copy,
        # keyed by its content): a merge that then loses the race to another writer, or
        # a write that fails, leaves copies that the next merge reads back.
        for sk, version in copies.items():
            if sk not in exists:
                self._put_version(version)
            elif version.get("expiresAt") != merged_item.get("expiresAt"):
                self._expire_with(version, merged_item.get("expiresAt"))
        if not self._put_if_unchanged(merged_item, stored):
            return None
        return WriteResult("updated" if shown.content_hash != stored_hash(stored) else "kept")

    def _expire_with(self, version: dict[str, Any], expires: Any) -> None:
        """A kept version's expiry set to its record's (which a merge may move): no copy
        may expire while the item still lists it. A version already gone stays gone."""
        key = serialise({"pk": version["pk"], "sk": version["sk"]})
        if expires is None:
            change: dict[str, Any] = {"UpdateExpression": "REMOVE expiresAt"}
        else:
            change = {
                "UpdateExpression": "SET expiresAt = :expires",
                "ExpressionAttributeValues": serialise({":expires": expires}),
            }
        self._conditional(
            self._client.update_item,
            TableName=self.table_name,
            Key=key,
            ConditionExpression="attribute_exists(pk)",
            **change,
        )

    def _put_version(self, version: dict[str, Any]) -> None:
        # A condition that fails: this copy is kept already.
        self._conditional(
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
        unchanged are found with one batched (consistent) read and not written again. A
        record that cannot be stored is returned in ``refused`` (the others are still
        written); :class:`StoreError` is raised unless every other write was confirmed.
        """
        outcome = BatchOutcome()
        distinct: dict[tuple[str, str, str], CallRecord] = {}
        for record in records:  # a page may list a copy twice
            distinct.setdefault((record.nxcloud_id, record.kind, record.content_hash), record)
        keys = list({(record.nxcloud_id, record.kind) for record in distinct.values()})
        stored = self._stored_copies(keys)
        pending = []
        for record in distinct.values():
            copies, sources = stored.get((record.nxcloud_id, record.kind), ((), ()))
            if record.content_hash in copies and source in sources:
                outcome.unchanged += 1
            else:
                pending.append(record)

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

    def _stored_copies(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
        """For each stored record of ``keys``: the content hashes of its copies and the
        sources they came from (one consistent batched read)."""
        found: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        # An id no key can hold is not stored either: write() refuses its record.
        readable_keys = [key for key in keys if _id_problem(key[0]) is None]
        for start in range(0, len(readable_keys), 100):
            request = {
                self.table_name: {
                    "Keys": [serialise(record_key(*key)) for key in readable_keys[start : start + 100]],
                    "ProjectionExpression": "pk, sk, contentHash, #rank, copies, #source, sources",
                    "ExpressionAttributeNames": {"#rank": "rank", "#source": "source"},
                    "ConsistentRead": True,
                }
            }
            try:
                for response in _until_processed(
                    self._client.batch_get_item, request, "UnprocessedKeys", "keys unread"
                ):
                    for raw_item in response.get("Responses", {}).get(self.table_name, []):
                        shown = deserialise(raw_item)
                        found[record_id(shown)] = (_copies_of(shown), _sources_of(shown))
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(str(exc)) from exc
        return found
