"""The call records table's keys and item format (pure): how a record's copy becomes
an item, a version and its key, and how any stored item reads back.

One item per record, keyed by NXCLOUD's id (``pk = ID#<id>``, ``sk = <kind>``); every
further copy is a version in the same partition (``sk = v#<kind>#<content hash>``).
What is written when is the write rule (:mod:`.write_rule`); the lookups that read
the items, :mod:`.lookups`.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .dynamodb_types import item_size, serialise, write_units
from .recording_links import ARCHIVE, FAILED, FORCE, PENDING, STATE, archive_state
from .records import LOOKUP_FIELDS, CallRecord, copy_rank, lookups
from .storable import MAX_ID_BYTES, MAX_INDEX_KEY_BYTES, MAX_ITEM_BYTES, UnstorableError, storable, utf8_bytes
from .times import iso_utc, month_bucket

SORT_KEY = "sortKey"
# ``raw`` compressed with zlib, in items where that saves a write unit.
RAW_COMPRESSED = "rawZlib"


# The state of the join of a record's copies (:mod:`.merge`), in an item that shows one:
# its ``raw`` is the join's body, written from it on read.
MERGE = "merge"


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
        body = state.body()
        shown["raw"] = nxjson.dumps(body)
        shown["callSummary"] = merge.call_summary(state.summary_values())
        shown["recordingLinks"] = [list(pair) for pair in state.named_links(shown.get("kind", ""), body)]
    return shown


def expires_at(moment: datetime, days: int) -> int | None:
    """The TTL value ``days`` after ``moment``; None to keep forever."""
    if days <= 0:
        return None
    try:
        return int((moment + timedelta(days=days)).timestamp())
    except OverflowError:  # a call start near year 9999 outlives any retention
        return None


# Attributes that are index keys: left out when DynamoDB could not take them as keys.
_INDEX_ATTRIBUTES = tuple(LOOKUP_FIELDS)
# What a version item keeps of its copy: enough to show it, to rank it and to join it.
_VERSION_ATTRIBUTES = ("source", "raw", RAW_COMPRESSED, "receivedAt", "expiresAt")


def version_key(nxcloud_id: str, kind: str, content_hash: str) -> dict[str, str]:
    return {"pk": f"ID#{nxcloud_id}", "sk": f"v#{kind}#{content_hash}"}


def id_problem(nxcloud_id: str) -> str | None:
    """Why no key can hold this id, or None when one can."""
    size = utf8_bytes(nxcloud_id)
    if size is not None and size <= MAX_ID_BYTES:
        return None
    shown = "not valid UTF-8" if size is None else f"{size} bytes"
    return f"the record's id is {shown}; DynamoDB keys allow at most {MAX_ID_BYTES} bytes here"


def attributes(record: CallRecord, received_at: datetime, *, source: str, retention_days: int) -> dict[str, Any]:
    """An item's attributes but its body (pure), storable; ``problems`` as noted."""
    problem = id_problem(record.nxcloud_id)
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
        **lookups(record),
        "durationSec": record.duration_sec,
        # The outcome (:mod:`.outcomes`), under the name every index already projects.
        "statusName": record.outcome,
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
    return item


def build_item(record: CallRecord, received_at: datetime, *, source: str, retention_days: int) -> dict[str, Any]:
    """The stored item of one copy (pure), storable as it is. Index keys are left out
    when empty (DynamoDB refuses empty key values), so the indexes stay sparse.
    Raises :class:`UnstorableError` when no item can hold the record.

    Nothing is stored twice (the item is the unit of write cost): the kind and id are
    the key, the content hash ends the rank, and the normalised fields are rebuilt from
    ``raw`` on read (:func:`.kinds.normalised`); what is stored beside ``raw`` is what a
    lookup needs without reading it."""
    item = attributes(record, received_at, source=source, retention_days=retention_days)
    item["raw"] = storable(record.raw, "raw", [])
    item, size = raw_compressed_if_cheaper(item)
    if size > MAX_ITEM_BYTES:
        raise UnstorableError("the record is too large for one DynamoDB item")
    return item


def raw_compressed_if_cheaper(item: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The item with ``raw`` stored compressed (``rawZlib``) when that makes it cost
    fewer write units; as text (readable in the console) otherwise. Readers see
    ``raw`` either way (:func:`readable`). And the item's size."""
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


def version_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item that holds one copy (of either shape, see :func:`readable`) as a version."""
    version = {name: item[name] for name in _VERSION_ATTRIBUTES if name in item}
    version["rank"] = rank_of(item)
    nxcloud_id, kind = record_id(item)
    version.update(version_key(nxcloud_id, kind, stored_hash(item)))
    return version


def rank_of(item: dict[str, Any]) -> str:
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


def sources_of(stored: dict[str, Any]) -> list[str]:
    """Where the copies of an item came from (``push``, ``sync``, ``replay``)."""
    sources = stored.get("sources") or [stored.get("source")]
    return [str(source) for source in sources if source]


def holds_one_copy(stored: dict[str, Any]) -> bool:
    """An item that holds one copy (not a join, nor a merge of an earlier release)."""
    return MERGE not in stored and "copies" not in stored


def with_archive(item: dict[str, Any], stored: dict[str, Any], links: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """An item keeps what the archiver recorded of the links it still has (its
    recordings are not fetched again); a link that is new, changed or failed makes it
    pending, so that the archiver (which the stream wakes) tries it."""
    values = archive_state(links, dict(stored.get(ARCHIVE) or {}))
    kept = {name: value for name, value in item.items() if name not in (STATE, ARCHIVE, FAILED, FORCE)}
    if values and FORCE in stored:  # an operator's retry request outlives the merge
        values[FORCE] = stored[FORCE]
    return {**kept, **values}
