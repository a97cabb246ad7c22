"""What a change to a call's item tells other systems (pure): the change event put on
the stack's EventBridge bus, and its row in the lake (``call_changes``).

A change is read from a record of the table's stream (old and new images): an item
created, changed in what its call's columns show, given its recording, or removed (by
TTL: expired). Versions, the sync's state and changes that leave every column as it was
make no event.

The ordering key is ``record_version``: the item's ``revision`` (every write of an item
after its first counts one) on top of its generation, the time the item was first
written, in seconds x 10^6, so that a call that expired and was stored again orders
after its expiry. The idempotency key is a function of the call, its version, when it
was first heard of and whether the change removed it: the same for every redelivery of one change (and for a
backfill's event of an item that did not change since), different for different changes.

Events carry times as ISO-8601 text; the lake's row as epoch milliseconds, which the
delivery stream's JSON reader turns into Parquet timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from .dynamodb_types import deserialise
from .items import readable
from .kinds import normalised
from .recording_links import ARCHIVE, ARCHIVED, STATE
from .times import epoch_ms, iso_utc

SOURCE = "nxcloud.cdr"
# major.minor: a minor version adds fields; a major one changes or removes one, and is
# emitted beside the previous major version while consumers move (docs/events.md).
SCHEMA_VERSION = "1.0"

CREATED = "Call Record Created"
UPDATED = "Call Record Updated"
RECORDING_ARCHIVED = "Call Recording Archived"
EXPIRED = "Call Record Expired"
# A removal that is not TTL's: nothing of the stack's deletes a call, an operator may.
DELETED = "Call Record Deleted"
DETAIL_TYPES = (CREATED, UPDATED, RECORDING_ARCHIVED, EXPIRED, DELETED)
REMOVALS = frozenset({EXPIRED, DELETED})

# The call's columns, in order, with their type in the lake (Glue's names).
COLUMNS: dict[str, str] = {
    "call_id": "string",
    "kind": "string",
    "call_start_utc": "timestamp",
    "call_end_utc": "timestamp",
    "answer_utc": "timestamp",
    "duration_sec": "bigint",
    "outcome": "string",
    "hangup_by": "string",
    "hangup_cause": "string",
    "direction": "string",
    "caller_number": "string",
    "callee_number": "string",
    "did_number": "string",
    "did_y_number": "string",
    "bind_id": "string",
    "customer_bind_id": "string",
    "recording_state": "string",
    "recording_key": "string",
    "recording_keys": "array<string>",
    "sources": "array<string>",
    "first_seen_at": "timestamp",
    "last_seen_at": "timestamp",
    "record_version": "bigint",
}
# The row's columns before the call's, in the lake (``dt``, its partition, after).
EVENT_COLUMNS: dict[str, str] = {
    "event_id": "string",
    "idempotency_key": "string",
    "schema_version": "string",
    "detail_type": "string",
    "emitted_at": "timestamp",
    "changed_fields": "array<string>",
    "replayed": "boolean",
}
NUMBER_COLUMNS = ("caller_number", "callee_number", "did_number", "did_y_number")
_TIMES = tuple(name for name, kind in COLUMNS.items() if kind == "timestamp")
# Not a change of the call: every write moves it.
_NOT_COMPARED = frozenset({"record_version"})
# The item attribute each lookup column comes from (the normalised numbers and ids).
_ITEM_ATTRIBUTES = {
    "caller_number": "callerNumber",
    "callee_number": "calleeNumber",
    "did_number": "didNumber",
    "did_y_number": "didYNumber",
    "bind_id": "bindId",
    "customer_bind_id": "customerBindId",
}
_SUMMARY_TIMES = {"call_start_utc": "startUtc", "call_end_utc": "endUtc", "answer_utc": "answerUtc"}
_GENERATION_SCALE = 1_000_000
# DynamoDB's TTL deletes as this principal (a removal by anyone else is a deletion).
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True)
class NumberPolicy:
    """How phone numbers appear in events and the lake (parameter PhoneNumbers):
    ``full``; ``hashed``, an HMAC-SHA-256 keyed with the stack's salt secret (the same
    number always gives the same text, so joins still work; no one without the salt
    can test a guess); ``none``."""

    mode: str = "full"
    salt: bytes = b""

    def __post_init__(self) -> None:
        if self.mode not in ("full", "hashed", "none"):
            raise ValueError(f"phone numbers: full, hashed or none, not {self.mode!r}")
        if self.mode == "hashed" and len(self.salt) < 16:
            raise ValueError("phone numbers: hashed needs a salt of at least 16 bytes")

    def show(self, number: str | None) -> str | None:
        if number is None or self.mode == "full":
            return number
        if self.mode == "none":
            return None
        return hmac.new(self.salt, number.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def is_call_key(keys: dict[str, Any]) -> bool:
    """A call's item (not one of its versions, nor the sync's state)."""
    return str(keys.get("pk", "")).startswith("ID#") and not str(keys.get("sk", "v#")).startswith("v#")


def _epoch_ms(text: str) -> int | None:
    try:
        # Rounded: int() of a float's milliseconds is 1 ms early for some times.
        return epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def record_version(item: dict[str, Any]) -> int:
    """The item's generation (when it was first written, in seconds) x 10^6 plus its
    revision: under 2^53 until the year 2255, so that JavaScript and jq, which read
    JSON numbers as doubles, compare it exactly (milliseconds x 10^6 did not)."""
    first = str(item.get("createdAt") or item.get("receivedAt") or "")
    generation = ((_epoch_ms(first) or 0) // 1000) if first else 0
    revision = min(int(item.get("revision") or 0), _GENERATION_SCALE - 1)
    return generation * _GENERATION_SCALE + revision


def _archived_keys(item: dict[str, Any]) -> list[str]:
    """The S3 keys of the item's archived recordings, the call's own first."""
    entries = item.get(ARCHIVE) or {}
    names = sorted(entries, key=lambda name: (name != "call", name))
    return [
        str(entries[name]["s3Key"])
        for name in names
        if isinstance(entries[name], dict) and entries[name].get("status") == ARCHIVED and entries[name].get("s3Key")
    ]


def _summary(shown: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    if "callSummary" in shown:  # an item that shows a join
        return dict(shown["callSummary"])
    fields, _ = normalised(shown, zone)
    summary = fields.get("callSummary")
    return dict(summary) if isinstance(summary, dict) else {}


# The lake's bigint: a value past it would send the whole row to Firehose's error output
# (and the call out of ``calls``); it is left out (null) instead, as a lookup value no key
# can hold is. ``raw`` keeps it.
_BIGINT = range(-(2**63), 2**63)


def _int(value: Any) -> int | None:
    try:
        number = int(value) if value is not None and value != "" else None
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is None or number in _BIGINT else None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def call_of(item: dict[str, Any], zone: tzinfo, numbers: NumberPolicy) -> dict[str, Any]:
    """The call's columns of a stored item (deserialised), as an event shows them."""
    shown = readable(item)
    summary = _summary(shown, zone)
    keys = _archived_keys(item)
    call: dict[str, Any] = {
        "call_id": str(shown["nxcloudId"]),
        "kind": str(shown["kind"]),
        "call_start_utc": _text(summary.get("startUtc")) or _text(item.get("callStartUtc")),
        "call_end_utc": _text(summary.get("endUtc")),
        "answer_utc": _text(summary.get("answerUtc")),
        "duration_sec": _int(item.get("durationSec", summary.get("durationSec"))),
        "outcome": _text(item.get("statusName")) or _text(summary.get("outcome")),
        "hangup_by": _text(summary.get("hangupBy")),
        "hangup_cause": _text(summary.get("hangupCause")),
        "direction": _text(summary.get("direction")),
        **{column: _text(item.get(attribute)) for column, attribute in _ITEM_ATTRIBUTES.items()},
        "recording_state": _text(item.get(STATE)),
        "recording_key": keys[0] if keys else None,
        "recording_keys": keys,
        "sources": sorted({str(source) for source in (item.get("sources") or [item.get("source")]) if source}),
        "first_seen_at": _text(item.get("receivedAt")),
        "last_seen_at": _text(item.get("lastSeenAt")) or _text(item.get("receivedAt")),
        "record_version": record_version(item),
    }
    for column in NUMBER_COLUMNS:
        call[column] = numbers.show(call[column])
    return call


def idempotency_key(call: dict[str, Any], removed: bool) -> str:
    # first_seen_at too: record_version counts generations in seconds, and a call
    # deleted and stored again within one second is another change all the same.
    text = "\x00".join(
        (
            call["kind"],
            call["call_id"],
            str(call["record_version"]),
            str(call["first_seen_at"]),
            "removed" if removed else "live",
        )
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Change:
    detail_type: str
    call: dict[str, Any]
    changed_fields: tuple[str, ...]
    replayed: bool = False
    # Columns cut to fit a service's size limit (:func:`fitted`), named in the event.
    truncated: tuple[str, ...] = ()

    @property
    def removed(self) -> bool:
        return self.detail_type in REMOVALS

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.call, self.removed)

    @property
    def call_date(self) -> str:
        """The lake's partition: the call's start date (UTC); the date it was first
        heard of when the start is unknown or out of what the lake's partition
        projection covers (2015-01-01 to the day after it was first heard of: a start
        in 1975 or 2100 is a wrong clock, and Athena would never read its folder)."""
        first = str(self.call["first_seen_at"] or "")[:10]
        start = str(self.call["call_start_utc"] or "")[:10]
        if start and start >= LAKE_FIRST_DAY and (not first or start <= _day_after(first)):
            return start
        return first or LAKE_FIRST_DAY

    def detail(self, event_id: str, emitted_at: datetime) -> dict[str, Any]:
        return {
            "metadata": {
                "schemaVersion": SCHEMA_VERSION,
                "eventId": event_id,
                "idempotencyKey": self.idempotency_key,
                "emittedAt": iso_utc(emitted_at),
                "replayed": self.replayed,
                **({"truncatedFields": list(self.truncated)} if self.truncated else {}),
            },
            "call": self.call,
            "changedFields": list(self.changed_fields),
        }

    def lake_row(self, event_id: str, emitted_at: datetime) -> dict[str, Any]:
        """The change's row in ``call_changes``: flat, times in epoch milliseconds."""
        call = {name: _epoch_ms(value) if name in _TIMES and value else value for name, value in self.call.items()}
        return {
            "event_id": event_id,
            "idempotency_key": self.idempotency_key,
            "schema_version": SCHEMA_VERSION,
            "detail_type": self.detail_type,
            "emitted_at": epoch_ms(emitted_at),
            "changed_fields": list(self.changed_fields),
            "replayed": self.replayed,
            **call,
            "dt": self.call_date,
        }


# What a change may cut to fit a size limit: the free text and lists NXCLOUD's values
# fill, never the call's key, its times, numbers or version.
_CUTTABLE = tuple(
    name
    for name, kind in COLUMNS.items()
    if kind in ("string", "array<string>") and name not in ("call_id", "kind", *NUMBER_COLUMNS)
)


def _encoded_bytes(value: Any) -> int:
    """A value's bytes in JSON text, as the event (UTF-8) or the row carries it."""
    if not isinstance(value, (str, list)) or not value:
        return 0
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def fitted(change: Change, size: Callable[[Change], int], limit: int) -> Change | None:
    """The change within ``limit`` bytes as ``size`` measures it (its event or its
    row): the longest cuttable columns shortened, and named in ``truncated``; None when
    it does not fit even with them emptied. The idempotency key is unchanged: it is of
    the call's key and version, which are never cut."""
    current = change
    while (excess := size(current) - limit) > 0:
        call = dict(current.call)
        longest = max(_CUTTABLE, key=lambda name: _encoded_bytes(call.get(name)))
        value = call[longest]
        encoded = _encoded_bytes(value)
        if not encoded:
            return None
        # A character costs 1 to 6 bytes as encoded (a list item more): take off what the
        # excess needs at this value's own mean, and a little more, so that it seldom
        # takes two rounds.
        per_item = max(1.0, encoded / len(value))
        call[longest] = value[: max(0, len(value) - int(excess / per_item) - 16)]
        named = current.truncated if longest in current.truncated else (*current.truncated, longest)
        current = replace(current, call=call, truncated=named)
    return current


# The first day the lake's partition projection covers (lake.yaml's projection.dt.range).
LAKE_FIRST_DAY = "2015-01-01"


def _day_after(day: str) -> str:
    try:
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    except ValueError:
        return day


def _changed(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    return tuple(name for name in COLUMNS if name not in _NOT_COMPARED and old.get(name) != new.get(name))


def change_of(record: dict[str, Any], zone: tzinfo, numbers: NumberPolicy) -> Change | None:
    """The change a record of the table's stream (Lambda's form) makes to a call;
    None for what is no change of a call."""
    stream = record.get("dynamodb") or {}
    if not is_call_key(deserialise(stream.get("Keys") or {})):
        return None
    name = record.get("eventName")
    old_image, new_image = stream.get("OldImage"), stream.get("NewImage")
    if name == "REMOVE" and old_image:
        identity = record.get("userIdentity") or {}
        by_ttl = identity.get("type") == "Service" and identity.get("principalId") == _TTL_PRINCIPAL
        return Change(EXPIRED if by_ttl else DELETED, call_of(deserialise(old_image), zone, numbers), ())
    if not new_image:
        return None
    new = call_of(deserialise(new_image), zone, numbers)
    if name == "INSERT" or not old_image:
        valued = {name: value for name, value in new.items() if value not in (None, [])}
        return Change(CREATED, new, _changed({}, valued))  # every column it has a value in
    old = call_of(deserialise(old_image), zone, numbers)
    changed = _changed(old, new)
    if not changed:
        return None
    landed = set(new["recording_keys"]) - set(old["recording_keys"])
    return Change(RECORDING_ARCHIVED if landed else UPDATED, new, changed)


def _lake_time(value: Any) -> str | None:
    """A time as SQL over the lake gives it (DuckDB: a datetime; Athena: text such as
    ``2024-05-01 12:00:00.000``; both in UTC, without a zone) as an event's ISO text."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return iso_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _lake_list(value: Any) -> list[str]:
    """A list column as SQL gives it: a list (DuckDB), or JSON text (``CAST(... AS JSON)``)."""
    if value is None or value == "":
        return []
    items = json.loads(value) if isinstance(value, str) else value
    return [str(item) for item in items]


def removal_from_lake(row: dict[str, Any]) -> Change:
    """The removal of a call that the lake's ``calls`` still shows but the table no longer
    holds (its removal's event given up by the publisher, or lost with the stream):
    published by a backfill as a ``Deleted`` change, replayed, at the version the lake
    shows, which wins over its live row there. Its columns are the lake's as they are
    (numbers already as the policy showed them)."""
    call: dict[str, Any] = {}
    for name, kind in COLUMNS.items():
        value = row.get(name)
        if kind == "timestamp":
            call[name] = _lake_time(value)
        elif kind == "array<string>":
            call[name] = _lake_list(value)
        elif kind == "bigint":
            call[name] = None if value is None or value == "" else int(value)
        else:
            call[name] = None if value is None else str(value)
    if not call["call_id"] or not call["kind"] or call["record_version"] is None:
        raise ValueError("a row of calls without its key or version")
    return Change(DELETED, call, (), replayed=True)


def replay_of(item: dict[str, Any], zone: tzinfo, numbers: NumberPolicy) -> Change:
    """A stored item as a backfill publishes it again: its change at its current
    version (the idempotency key of the event that version made, if one was put)."""
    call = call_of(item, zone, numbers)
    return Change(CREATED if int(item.get("revision") or 0) == 0 else UPDATED, call, (), replayed=True)
