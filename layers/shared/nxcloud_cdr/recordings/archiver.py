"""An item's recordings archived to S3 and recorded on the item.

Safe to run any number of times, in any order, beside any writer:

- a recording the item already shows archived from the same link is not fetched again;
- the object's key is a function of the record and the recording
  (``recordings/YYYY/MM/DD/<kind>/<call id>[-<name>].<ext>``, the call's UTC start
  date), so a second archive of it writes the same object, and no other recording's
  (:func:`object_key` is injective);
- links that name one object (they differ in their query string) are one download
  (:func:`links_of`);
- the item is updated only if it is still the one read (its ``revision``, which the
  update counts too, as every change does): a newer copy of the record is never undone,
  and the archiver reads it and records what still applies to it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from .. import nxjson
from ..config import RecordingSettings
from ..dynamodb_types import deserialise, serialise
from ..items import readable, record_id, unchanged_since
from ..lookups import BY_RECORDING_FAILURE
from ..recording_links import (
    ARCHIVE,
    ARCHIVED,
    FAILED,
    FAILED_STATE,
    FORCE,
    PENDING,
    RETRYING,
    STATE,
    archive_state,
    distinct_objects,
    link_id,
    recording_links,
)
from ..store_errors import StoreError, conditional
from ..times import iso_utc, now_utc
from .fetch import FetchError, FetchPolicy, open_recording, parse_networks
from .upload import PART_BYTES, UploadError, upload

PREFIX = "recordings"
# The names that follow the id in a key, after a dash: ``voicemail``, ``leg<n>``, and a
# join's ``<name>-<8 hex>`` (``call`` is the id alone). An id that ends as one of them
# would ("X-leg1") has that dash escaped.
_DASHED_NAME = r"(?:voicemail|leg[0-9]+|(?:call|voicemail|leg[0-9]+)-[0-9a-f]{8})"
_NAMED = re.compile(_DASHED_NAME)
_SUFFIX_LIKE = re.compile(rf"-(?={_DASHED_NAME}\Z)")
# S3 keys hold 1024 bytes; an id that would not fit is named by its hash, "id-<sha256>".
_MAX_ID_KEY_BYTES = 600
# An id that reads as such a hash once encoded has its dash escaped: a hashed id's key
# is no literal id's.
_HASHED = re.compile(r"id-[0-9a-f]{64}")
# How often the item is read again when another writer changed it meanwhile.
_MAX_ROUNDS = 5
# Time kept back at the end of an invocation for the item's update.
_MARGIN_S = 3.0
# When a recording that failed in a way that may pass is due again: the schedule runs
# hourly, and a failure is recorded some minutes after the run that handed it back.
RETRY_AFTER = timedelta(minutes=50)


def object_key(item: dict[str, Any], name: str, extension: str) -> str:
    """Where a recording of a stored record goes: readable, and one key per recording
    (distinct ids, kinds or names, distinct keys: no record's recording overwrites
    another's).

    The id is percent-encoded (but ``-_.~``), which no two ids share; ``%2D`` never
    comes of that (a dash is kept), so escaping a dash as ``%2D`` keeps it so:

    - the dash of an id that ends as a name would ("X-leg1", "X-call-0a1b2c3d"): no
      call's recording takes the key of another's ("X" and its leg 1);
    - the dash of an id that reads "id-<64 hex>": that is the form of an id too long
      (or ``""``, ``.``, ``..``) for a key, named by its SHA-256, and no other id's.

    Ids of other forms keep the keys they always had."""
    nxcloud_id, kind = record_id(item)
    start = str(item.get("callStartUtc") or item.get("receivedAt") or "")
    try:
        day = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y/%m/%d")
    except ValueError:
        day = "undated"
    shown = quote(nxcloud_id, safe="-_.", errors="surrogatepass")
    shown = _SUFFIX_LIKE.sub("%2D", shown)
    if _HASHED.fullmatch(shown):
        shown = "id%2D" + shown.removeprefix("id-")
    if len(shown) > _MAX_ID_KEY_BYTES or shown in ("", ".", ".."):
        shown = "id-" + hashlib.sha256(nxcloud_id.encode("utf-8", "surrogatepass")).hexdigest()
    if name == "call":
        suffix = ""
    elif _NAMED.fullmatch(name):
        suffix = f"-{name}"
    else:  # no name the archiver gives: after a "!", which no id nor name above holds
        suffix = "!" + quote(name, safe="-_.", errors="surrogatepass")
    return f"{PREFIX}/{day}/{quote(kind, safe='_', errors='surrogatepass')}/{shown}{suffix}.{extension}"


def _due(entry: Any, link: str, now: datetime, *, requested: str | None) -> bool:
    """Whether a recording is to be tried now: a link not tried yet (or changed), a
    failure that may pass and failed :data:`RETRY_AFTER` ago or more, anything not
    archived on request (``force``). A failure the archiver gave up on waits for a
    request; a recent one for the schedule (however often a merge wakes the archiver)."""
    if not isinstance(entry, dict) or entry.get("link") != link_id(link):
        return True
    if entry.get("status") == ARCHIVED:
        return False
    if requested is not None and str(entry.get("failedAt", "")) < requested:
        return True  # failed before the request: tried once more, whatever it failed of
    return _retry_due(entry, now)


def _retry_due(entry: Any, now: datetime) -> bool:
    """A failure that may pass, last tried :data:`RETRY_AFTER` ago or more."""
    return (
        isinstance(entry, dict)
        and entry.get("status") == FAILED_STATE
        and bool(entry.get("retryable"))
        and now - _parse_time(str(entry.get("failedAt", ""))) >= RETRY_AFTER
    )


def _failed_key(archive: dict[str, Any]) -> str | None:
    """The item's ByRecordingFailure key: None without a failure."""
    failed = [entry for entry in archive.values() if isinstance(entry, dict) and entry.get("status") == FAILED_STATE]
    if not failed:
        return None
    return RETRYING if any(entry.get("retryable") for entry in failed) else FAILED_STATE


def _is_final(entry: dict[str, Any] | None) -> bool:
    return entry is not None and entry.get("status") == FAILED_STATE and not entry.get("retryable")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # none, or not a time: long past (due, and past any window)
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def links_of(item: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The recordings a stored item links to: those of the body it keeps, and for an
    item that shows the join of copies, every link of every copy (:mod:`..merge`).
    One link per object (:func:`.recording_links.distinct_objects`): copies whose
    links differ only in their query string are one download, not one per copy."""
    _, kind = record_id(item)
    shown = readable(item)
    if "recordingLinks" in shown:
        return distinct_objects((str(name), str(link)) for name, link in shown["recordingLinks"])
    try:
        payload = nxjson.loads(str(shown.get("raw", "")), duplicates="keep", constants=True)
    except (ValueError, RecursionError):
        return ()
    return recording_links(kind, payload)


class DeferredError(StoreError):
    """Not one link of the item had the time left in this invocation: the stream
    delivers the record again (no failure of anything, not counted as one)."""


@dataclass
class ItemOutcome:
    archived: int = 0
    bytes: int = 0
    failures: list[FetchError] = field(default_factory=list)
    # Failures the archiver stops retrying by itself (refused, too large, or failing
    # for RECORDING_RETRY_HOURS): (name, entry) each, for the failures queue.
    final: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class RecordingArchiver:
    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        s3: Any,
        bucket: str,
        policy: FetchPolicy,
        *,
        attempts: int = 3,
        backoff_s: float = 2.0,
        retry_hours: float = 24.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.dynamodb = dynamodb
        self.table_name = table_name
        self._s3 = s3
        self.bucket = bucket
        self.policy = policy
        self._attempts = attempts
        self._backoff_s = backoff_s
        self.retry_window = timedelta(hours=retry_hours)
        # What one attempt may take at worst: the download's deadline, a connection
        # begun just before it, and the item's update.
        self._needed_s = policy.max_seconds + policy.timeout_s + _MARGIN_S
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_settings(cls, dynamodb: Any, s3: Any, settings: RecordingSettings) -> RecordingArchiver:
        policy = FetchPolicy(
            hosts=tuple(host.strip() for host in settings.hosts.split(",") if host.strip()),
            max_bytes=settings.max_megabytes * 1024 * 1024,
            timeout_s=settings.timeout_seconds,
            max_seconds=settings.download_seconds,
            allowed_networks=parse_networks(settings.allowed_networks),
            ca_file=settings.ca_file or None,
        )
        return cls(
            dynamodb,
            settings.table_name,
            s3,
            settings.bucket,
            policy,
            attempts=settings.attempts,
            backoff_s=settings.backoff_seconds,
            retry_hours=settings.retry_hours,
        )

    def archive(self, key: dict[str, Any], time_left: Callable[[], float] = lambda: 900.0) -> ItemOutcome:
        """Archive every recording of the item at ``key`` that it does not show
        archived, and record the outcome on it. :class:`StoreError` when DynamoDB did
        not confirm (the stream's record is tried again)."""
        outcome = ItemOutcome()
        done: dict[tuple[str, str], dict[str, Any]] = {}
        for _ in range(_MAX_ROUNDS):
            stored = self._get(key)
            if stored is None or STATE not in stored:
                return outcome
            links = links_of(stored)
            archive = dict(stored.get(ARCHIVE) or {})
            # A request (nxcdr recordings retry): when it was made, so that what failed
            # since is not tried again and again.
            requested = str(stored[FORCE]) if isinstance(stored.get(FORCE), str) else None
            now = self._clock()
            todo = [(name, link) for name, link in links if _due(archive.get(name), link, now, requested=requested)]
            if not todo and FORCE not in stored and self._shows(stored, links, archive):
                return outcome  # a stream record older than the item: nothing left to do
            deferred = False
            for name, link in todo:
                if (name, link) not in done:
                    # Another link of this name overwrites its object: what was done for
                    # the name before (an earlier round, an older copy) no longer holds.
                    done = {known: entry for known, entry in done.items() if known[0] != name}
                    entry = self._one(stored, (name, link), archive.get(name), time_left, outcome)
                    if entry is None:
                        deferred = True
                        continue
                    done[(name, link)] = entry
                archive[name] = done[(name, link)]
            if deferred and not any((name, link) in done for name, link in todo):
                # Not one link had the time: a pending write would wake the archiver at
                # once, as short of time. The stream tries the record again instead.
                raise DeferredError("too little of the invocation was left to archive a recording")
            if self._record(stored, links, archive, deferred=deferred):
                outcome.final = [(name, done[(name, link)]) for name, link in todo if _is_final(done.get((name, link)))]
                return outcome
        raise StoreError("the item kept changing while its recordings were recorded; retry")

    def _one(
        self,
        stored: dict[str, Any],
        recording: tuple[str, str],
        previous: Any,
        time_left: Callable[[], float],
        outcome: ItemOutcome,
    ) -> dict[str, Any] | None:
        """The entry of one recording: archived, or failed after this invocation's
        attempts. None when too little time is left to try it (it stays pending)."""
        name, link = recording
        if time_left() < self._needed_s:
            return None
        same = isinstance(previous, dict) and previous.get("link") == link_id(link)
        tried = int(previous.get("attempts", 0)) if same else 0
        now = self._clock()
        first_failed = str(previous.get("firstFailedAt") or "") if same else ""
        error: FetchError | None = None
        for attempt in range(self._attempts):
            tried += 1
            try:
                entry = self._fetch(stored, name, link)
            except FetchError as exc:
                error = exc
            except UploadError as exc:
                error = FetchError("store", str(exc), retryable=True)
            except Exception as exc:  # a fault of ours or of a library: recorded, not lost
                error = FetchError("error", f"{type(exc).__name__}: {str(exc)[:200]}", retryable=True)
            else:
                outcome.archived += 1
                outcome.bytes += int(entry["bytes"])
                return entry
            pause = self._backoff_s * 2**attempt
            last = attempt + 1 >= self._attempts
            if last or not error.retryable or time_left() < pause + self._needed_s:
                break
            self._sleep(pause)
        assert error is not None
        outcome.failures.append(error)
        first_failed = first_failed or iso_utc(now)
        # Retried later (the hourly sweep) while it may pass and for RECORDING_RETRY_HOURS.
        retry_later = error.retryable and now - _parse_time(first_failed) < self.retry_window
        return {
            "link": link_id(link),
            "status": FAILED_STATE,
            "reason": error.reason,
            "error": str(error)[:300],
            "retryable": retry_later,
            "attempts": tried,
            "firstFailedAt": first_failed,
            "failedAt": iso_utc(self._clock()),
        }

    def _fetch(self, stored: dict[str, Any], name: str, link: str) -> dict[str, Any]:
        with open_recording(link, self.policy) as download:
            key = object_key(stored, name, download.extension)
            digest = hashlib.sha256(link.encode("utf-8", "surrogatepass")).hexdigest()
            metadata = {"recording": name, "source-url-sha256": digest}
            uploaded = upload(
                self._s3,
                self.bucket,
                key,
                download.chunks(PART_BYTES),
                content_type=download.content_type,
                metadata=metadata,
            )
        return {
            "link": link_id(link),
            "status": ARCHIVED,
            "s3Key": uploaded.key,
            "bytes": uploaded.size,
            "sha256": uploaded.sha256,
            "archivedAt": iso_utc(self._clock()),
        }

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        return read_item(self.dynamodb, self.table_name, key)

    @staticmethod
    def _outcome(
        links: tuple[tuple[str, str], ...], archive: dict[str, Any], *, deferred: bool = False
    ) -> dict[str, Any]:
        """The recording attributes an item with these links and entries shows."""
        values = archive_state(links, archive)
        if STATE not in values:  # no link (any more): nothing to archive
            return {STATE: ARCHIVED}
        if values[STATE] != ARCHIVED and not deferred:
            values[STATE] = FAILED_STATE
        failed = _failed_key(values.get(ARCHIVE) or {})
        if failed and values[STATE] == FAILED_STATE:
            values[FAILED] = failed
        return values

    def _shows(self, stored: dict[str, Any], links: tuple[tuple[str, str], ...], archive: dict[str, Any]) -> bool:
        """Whether the item already shows what recording its outcome would write."""
        values = self._outcome(links, archive)
        return all(stored.get(name) == values.get(name) for name in (STATE, ARCHIVE, FAILED))

    def _record(
        self, stored: dict[str, Any], links: tuple[tuple[str, str], ...], archive: dict[str, Any], *, deferred: bool
    ) -> bool:
        """Write the recordings' outcome on the item if it is still ``stored``. With a
        link deferred the item stays pending: the write is a stream record of its own,
        which a later invocation takes up."""
        values = self._outcome(links, archive, deferred=deferred)
        condition = unchanged_since(stored)
        names = {
            **condition["ExpressionAttributeNames"],
            "#state": STATE,
            "#archive": ARCHIVE,
            "#failed": FAILED,
            "#force": FORCE,
        }
        sets = ["#state = :state"]
        attribute_values: dict[str, Any] = {":state": values[STATE], ":one": 1}
        # A request stands until every link it covers was tried (none deferred).
        removed = [] if deferred else ["#force"]
        if deferred:
            del names["#force"]
        for name, placeholder in ((ARCHIVE, "#archive"), (FAILED, "#failed")):
            if name in values:
                sets.append(f"{placeholder} = :{name}")
                attribute_values[f":{name}"] = values[name]
            else:
                removed.append(placeholder)
        expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removed) + " ADD #revision :one"
        return conditional(
            self.dynamodb.update_item,
            TableName=self.table_name,
            Key=serialise({"pk": stored["pk"], "sk": stored["sk"]}),
            UpdateExpression=expression,
            ConditionExpression=condition["ConditionExpression"],
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**condition["ExpressionAttributeValues"], **serialise(attribute_values)},
        )


def request_retry(
    dynamodb: Any, table_name: str, item: dict[str, Any], *, force: bool = True, now: datetime | None = None
) -> bool:
    """Mark a stored item's recordings pending (again), so that the stream hands it to
    the archiver: ``nxcdr recordings retry`` and ``backfill`` (``force``: every
    recording not archived is tried, those given up on included), and the schedule's
    :func:`sweep` (those due). False when the item changed since it was read (the
    caller reads it again)."""
    condition = unchanged_since(item)
    values: dict[str, Any] = {":pending": PENDING, ":one": 1}
    names = {**condition["ExpressionAttributeNames"], "#state": STATE}
    expression = "SET #state = :pending"
    if force:
        expression += ", #force = :force"
        values[":force"] = iso_utc(now or now_utc())
        names["#force"] = FORCE
    return conditional(
        dynamodb.update_item,
        TableName=table_name,
        Key=serialise({"pk": item["pk"], "sk": item["sk"]}),
        UpdateExpression=expression + " ADD #revision :one",
        ConditionExpression=condition["ConditionExpression"],
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={**condition["ExpressionAttributeValues"], **serialise(values)},
    )


def handle_stream(
    event: dict[str, Any],
    archiver: RecordingArchiver,
    time_left: Callable[[], float],
    count: Callable[..., None],
    give_up: Callable[[dict[str, Any]], None] = lambda message: None,
) -> dict[str, Any]:
    """A batch of the table's stream (records the filter passed: items whose
    recordings are pending): each item's recordings archived, and the outcome recorded
    on the item. The answer names the records to try again (partial batch failures):
    those whose outcome the store did not confirm; the event source retries them a
    bounded number of times, then sends them to the on-failure destination. A failed
    download is recorded on the item instead, and retried by :func:`sweep`; one that
    will not be retried any more goes to ``give_up`` (the same destination).

    The items are archived side by side, each once however many of the batch's records
    name it: one slow host does not use up the others' time."""
    sequences: dict[tuple[str, str], list[str]] = {}
    for record in event.get("Records") or []:
        stream = record.get("dynamodb") or {}
        keys = deserialise(stream.get("Keys") or {})
        if "pk" in keys and "sk" in keys:
            sequences.setdefault((str(keys["pk"]), str(keys["sk"])), []).append(str(stream.get("SequenceNumber", "")))

    def one(key: tuple[str, str]) -> ItemOutcome | StoreError:
        try:
            return archiver.archive({"pk": key[0], "sk": key[1]}, time_left)
        except StoreError as exc:
            return exc
        except Exception as exc:  # a fault of ours: tried again, never a lost batch
            return StoreError(f"{type(exc).__name__}: {str(exc)[:300]}")

    if len(sequences) > 1:
        # Imported here: a batch of one item (the common case) needs no thread.
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        with ThreadPoolExecutor(max_workers=len(sequences)) as pool:
            outcomes = dict(zip(sequences, pool.map(one, sequences), strict=True))
    else:
        outcomes = {key: one(key) for key in sequences}
    failed: list[dict[str, str]] = []
    for key, outcome in outcomes.items():
        if isinstance(outcome, StoreError):
            if isinstance(outcome, DeferredError):
                count("RecordingsDeferred")
            else:
                count("RecordingStoreErrors")
            failed.extend({"itemIdentifier": sequence} for sequence in sequences[key])
            continue
        if outcome.archived:
            count("RecordingsArchived", outcome.archived)
            count("RecordingBytes", outcome.bytes)
        if outcome.failures:
            count("RecordingFailures", len(outcome.failures))
        for name, entry in outcome.final:
            count("RecordingFailuresFinal")
            give_up({"pk": key[0], "sk": key[1], "recording": name, **entry})
    failed.sort(key=lambda entry: (len(entry["itemIdentifier"]), entry["itemIdentifier"]))
    return {"batchItemFailures": failed}


def sweep(dynamodb: Any, table_name: str, now: datetime, *, limit: int = 1000) -> int:
    """Hand the archiver again each record with a recording that failed in a way that
    may pass (a 404 before NXCLOUD's storage has the file, a timeout) and is due
    (:data:`RETRY_AFTER`): the "retrying" partition of the ByRecordingFailure index, so
    that what the archiver gave up on is never read again. Query, GetItem and UpdateItem
    only. The records handed."""
    handed = 0
    arguments: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": BY_RECORDING_FAILURE,
        "KeyConditionExpression": "#failed = :retrying",
        "ExpressionAttributeNames": {"#failed": FAILED},
        "ExpressionAttributeValues": serialise({":retrying": RETRYING}),
    }
    while handed < limit:
        try:
            response = dynamodb.query(**arguments)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(str(exc)) from exc
        for listed in (deserialise(item) for item in response.get("Items", [])):
            # The index holds the entries, not the body: the archiver checks the links.
            if not any(_retry_due(entry, now) for entry in (listed.get(ARCHIVE) or {}).values()):
                continue
            handed += hand_back(dynamodb, table_name, {"pk": listed["pk"], "sk": listed["sk"]}, force=False)
        if "LastEvaluatedKey" not in response:
            break
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return handed


def read_item(dynamodb: Any, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """An item as it is now (a consistent read), or None."""
    try:
        response = dynamodb.get_item(TableName=table_name, Key=serialise(key), ConsistentRead=True)
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(str(exc)) from exc
    item = response.get("Item")
    return deserialise(item) if item else None


def hand_back(dynamodb: Any, table_name: str, key: dict[str, Any], *, force: bool) -> int:
    """:func:`request_retry` on the item as it is now, read again while another writer
    changes it in between. 1 when handed back, 0 when the item is gone (or kept changing)."""
    for _ in range(_MAX_ROUNDS):
        found = read_item(dynamodb, table_name, key)
        if found is None:
            return 0
        if request_retry(dynamodb, table_name, found, force=force):
            return 1
    return 0
