"""Change events out: each change of a call (:mod:`.change_events`) put on the stack's
EventBridge bus and, when the stack has a lake, its row sent to the lake's Firehose
delivery stream. Two ways in: a batch of the records table's stream (the function), and
stored items published again (``nxcdr lake backfill``).

Delivery is at least once. A change is done when its event and its row both landed; a
change for which either did not is reported failed, and the stream hands its record
again (Lambda retries from the lowest failed record): both are put again, with the same
idempotency key, so that a consumer and the lake drop the copy. Entries a service
refused are tried again here first (a throttled entry mostly lands a moment later),
which spares the redelivery of every record after it.

Log lines name counts, error codes and keys, never a phone number or a body.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from .change_events import SOURCE, Change, NumberPolicy, change_of, fitted, is_call_key, replay_of
from .observability import logger
from .times import now_utc

# PutEvents: at most 10 entries and 256 KB per call (an entry's size: its source,
# detail type and detail in UTF-8; no Time or Resources are sent).
EVENTS_PER_CALL = 10
EVENT_BYTES_PER_CALL = 256 * 1024
# One event at most: what EventBridge delivers adds its envelope (id, time, account,
# region: about 200 bytes), and a target such as the event log (CloudWatch Logs, at
# most 262,118 bytes an event) must take that too.
EVENT_BYTES = EVENT_BYTES_PER_CALL - 2 * 1024
# PutRecordBatch: at most 500 records and 4 MiB per call, 1,000 KiB per record.
RECORDS_PER_CALL = 500
RECORD_BYTES_PER_CALL = 4 * 1024 * 1024
BYTES_PER_RECORD = 1000 * 1024
# Tries of an entry a service refused, within one invocation (then the stream's retries).
ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
# Calls to the services made side by side: a batch of 100 changes is 10 PutEvents calls.
PARALLEL_CALLS = 8


@dataclass
class Published:
    """What one batch (of the stream, or of stored items) came to."""

    published: int = 0  # changes whose event (and row, with a lake) landed
    no_change: int = 0  # records that change no call (a version, the sync's state, nothing visible)
    errors: int = 0  # records whose change could not be built (a fault of ours)
    events_failed: int = 0  # events not put after every try
    rows_failed: int = 0  # lake rows not put after every try
    lake_records: int = 0  # Firehose records sent (each billed rounded up to 5 KB)
    lake_bytes: int = 0
    # What did not land whole: the stream records' sequence numbers, or the items' keys
    # ("<pk> <sk>").
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Pending:
    origin: str
    change: Change
    event_id: str


def event_entry(change: Change, event_id: str, emitted_at: datetime, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of a change. The detail is UTF-8 text rather than \\u escapes
    (a Chinese character is then 3 of the entry's 256 KB, not 6), unless a value holds
    what UTF-8 cannot carry (a lone surrogate), which only an escape can."""
    detail = change.detail(event_id, emitted_at)
    text = json.dumps(detail, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(detail, separators=(",", ":"))
    return {"Source": SOURCE, "DetailType": change.detail_type, "Detail": text, "EventBusName": bus_name}


def entry_bytes(entry: Mapping[str, Any]) -> int:
    """An entry's size as PutEvents counts it against its 256 KB."""
    return sum(len(str(entry[name]).encode("utf-8", "surrogatepass")) for name in ("Source", "DetailType", "Detail"))


def lake_bytes(change: Change, event_id: str, emitted_at: datetime) -> bytes:
    """A change's row as the delivery stream reads it: one JSON object, ASCII."""
    return json.dumps(change.lake_row(event_id, emitted_at), separators=(",", ":")).encode("ascii")


def pack(sizes: Iterable[tuple[int, int]], per_group: int, bytes_per_group: int) -> list[list[int]]:
    """Indices grouped in order, each group within ``per_group`` members and
    ``bytes_per_group`` bytes; ``sizes`` gives (index, bytes). An index larger than a
    whole group is left out (it can never be sent)."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, size in sizes:
        if size > bytes_per_group:
            continue
        if current and (len(current) >= per_group or used + size > bytes_per_group):
            groups.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        groups.append(current)
    return groups


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def number_policy(mode: str, salt_secret_id: str, read_secret: Callable[[str], str]) -> NumberPolicy:
    """The phone-number policy; ``hashed`` reads its salt (the secret's SecretString),
    and raises when it cannot: never events with clear numbers where hashed ones were
    asked for."""
    if mode != "hashed":
        return NumberPolicy(mode)
    return NumberPolicy(mode, read_secret(salt_secret_id).encode("utf-8"))


class ChangePublisher:
    """Puts changes on the bus and their rows in the lake. ``firehose`` and
    ``stream_name`` may be None and empty: no lake."""

    def __init__(
        self,
        events: Any,
        bus_name: str,
        zone: tzinfo,
        numbers: NumberPolicy,
        *,
        firehose: Any = None,
        stream_name: str = "",
        clock: Callable[[], datetime] = now_utc,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.events = events
        self.bus_name = bus_name
        self.zone = zone
        self.numbers = numbers
        self.firehose: Any = firehose if stream_name else None
        self.stream_name = stream_name
        self._clock = clock
        self._sleep = sleep
        self._attempts = max(1, attempts)

    # -- the two ways in ----------------------------------------------------------------

    def publish_records(self, records: Iterable[Mapping[str, Any]]) -> Published:
        """A batch of the table's stream (Lambda's form); ``failed`` names the sequence
        numbers of the records whose change did not land whole."""
        outcome = Published()
        pending: list[_Pending] = []
        for record in records:
            stream = record.get("dynamodb") or {}
            origin = str(stream.get("SequenceNumber", ""))
            try:
                change = change_of(dict(record), self.zone, self.numbers)
            except Exception as exc:  # a fault of ours: this record fails, never the batch
                outcome.errors += 1
                outcome.failed.append(origin)
                keys = {name: value.get("S") for name, value in (stream.get("Keys") or {}).items()}
                logger.warning("could not read a change", extra={"keys": keys, "error": type(exc).__name__})
                continue
            if change is None:
                outcome.no_change += 1
            else:
                pending.append(_Pending(origin, change, str(uuid.uuid4())))
        return self._publish(pending, outcome, to_bus=True)

    def publish_items(self, items: Iterable[Mapping[str, Any]], *, to_bus: bool = True) -> Published:
        """Stored items (deserialised, as a page of a table scan holds them: versions and
        the sync's state are skipped) published again at their current version, marked
        ``replayed``: the same idempotency key as the event that version made. With
        ``to_bus`` False, to the lake alone. ``failed`` names the items' keys."""
        changes, outcome = self.replays(items)
        return self._publish(self._pending(changes), outcome, to_bus=to_bus)

    def replays(self, items: Iterable[Mapping[str, Any]]) -> tuple[list[tuple[str, Change]], Published]:
        """The changes :meth:`publish_items` publishes, each named by its item's key, and
        what the items that make none came to (not calls; a fault of ours, named in
        ``failed``): for a caller that orders them first (a backfill, by call date)."""
        outcome = Published()
        changes: list[tuple[str, Change]] = []
        for item in items:
            if not is_call_key(dict(item)):
                outcome.no_change += 1
                continue
            origin = f"{item.get('pk')} {item.get('sk')}"
            try:
                changes.append((origin, replay_of(dict(item), self.zone, self.numbers)))
            except Exception as exc:  # a fault of ours: this item fails, never the page
                outcome.errors += 1
                outcome.failed.append(origin)
                logger.warning("could not read a stored call", extra={"key": origin, "error": type(exc).__name__})
        return changes, outcome

    def publish_changes(self, changes: Iterable[tuple[str, Change]], *, to_bus: bool = True) -> Published:
        """Changes built elsewhere (a backfill's removals of calls gone from the table),
        each with the name ``failed`` gives it."""
        return self._publish(self._pending(changes), Published(), to_bus=to_bus)

    @staticmethod
    def _pending(changes: Iterable[tuple[str, Change]]) -> list[_Pending]:
        return [_Pending(origin, change, str(uuid.uuid4())) for origin, change in changes]

    # -- the sinks ----------------------------------------------------------------------

    def _publish(self, pending: list[_Pending], outcome: Published, *, to_bus: bool) -> Published:
        if not pending:
            return outcome
        emitted_at = self._clock()
        calls: list[Callable[[], tuple[str, set[int]]]] = []
        unsendable: dict[str, set[int]] = {"events": set(), "rows": set()}
        if to_bus:
            entries = [self._fitting_entry(p, emitted_at) for p in pending]
            sizes = [(index, entry_bytes(entry)) for index, entry in enumerate(entries)]
            groups = pack(sizes, EVENTS_PER_CALL, EVENT_BYTES_PER_CALL)
            unsendable["events"] = set(range(len(entries))) - {index for group in groups for index in group}
            calls += [self._events_call(group, entries) for group in groups]
        if self.firehose is not None:
            rows = [self._fitting_row(p, emitted_at) for p in pending]
            records = pack(((index, len(row)) for index, row in enumerate(rows)), len(rows), BYTES_PER_RECORD)
            unsendable["rows"] = set(range(len(rows))) - {index for record in records for index in record}
            data = [b"".join(rows[index] for index in record) for record in records]
            outcome.lake_records += len(data)
            outcome.lake_bytes += sum(map(len, data))
            batches = pack(
                ((number, len(body)) for number, body in enumerate(data)), RECORDS_PER_CALL, RECORD_BYTES_PER_CALL
            )
            calls += [self._rows_call(batch, data, records) for batch in batches]

        if len(calls) > 1:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_CALLS, len(calls))) as pool:
                results = list(pool.map(lambda call: call(), calls))
        else:
            results = [call() for call in calls]
        failed = dict(unsendable)
        for sink, indices in results:
            failed[sink] |= indices
        outcome.events_failed += len(failed["events"])
        outcome.rows_failed += len(failed["rows"])
        not_landed = failed["events"] | failed["rows"]
        outcome.published += len(pending) - len(not_landed)
        outcome.failed += [pending[index].origin for index in sorted(not_landed)]
        if not_landed:
            logger.warning(
                "changes not published",
                extra={"events": len(failed["events"]), "rows": len(failed["rows"]), "changes": len(not_landed)},
            )
        return outcome

    def _fitting_entry(self, pending: _Pending, emitted_at: datetime) -> dict[str, Any]:
        """The change's entry, its longest text cut when it is past PutEvents' limit: a
        call whose event can never be put would be retried until given up, and every
        change of the stream's shard after it held back meanwhile."""
        entry = event_entry(pending.change, pending.event_id, emitted_at, self.bus_name)
        if entry_bytes(entry) <= EVENT_BYTES:
            return entry
        cut = fitted(
            pending.change,
            lambda change: entry_bytes(event_entry(change, pending.event_id, emitted_at, self.bus_name)),
            EVENT_BYTES,
        )
        _log_cut("event", pending, cut)
        # Uncuttable (never so far: the key, times and numbers are small): left as it is,
        # it is unsendable and reported failed.
        return entry if cut is None else event_entry(cut, pending.event_id, emitted_at, self.bus_name)

    def _fitting_row(self, pending: _Pending, emitted_at: datetime) -> bytes:
        """The change's lake row, cut like its event when past a Firehose record's limit."""
        row = lake_bytes(pending.change, pending.event_id, emitted_at)
        if len(row) <= BYTES_PER_RECORD:
            return row
        cut = fitted(
            pending.change, lambda change: len(lake_bytes(change, pending.event_id, emitted_at)), BYTES_PER_RECORD
        )
        _log_cut("lake row", pending, cut)
        return row if cut is None else lake_bytes(cut, pending.event_id, emitted_at)

    def _events_call(self, group: list[int], entries: list[dict[str, Any]]) -> Callable[[], tuple[str, set[int]]]:
        def call() -> tuple[str, set[int]]:
            return "events", self._put(group, lambda some: self.events.put_events(Entries=[entries[i] for i in some]))

        return call

    def _rows_call(
        self, batch: list[int], data: list[bytes], records: list[list[int]]
    ) -> Callable[[], tuple[str, set[int]]]:
        def send(some: list[int]) -> Any:
            return self.firehose.put_record_batch(
                DeliveryStreamName=self.stream_name, Records=[{"Data": data[number]} for number in some]
            )

        def call() -> tuple[str, set[int]]:
            # A record that did not land fails every row packed in it.
            return "rows", {index for number in self._put(batch, send) for index in records[number]}

        return call

    def _put(self, members: list[int], send: Callable[[list[int]], Any]) -> set[int]:
        """``send`` the members, then again those refused, up to the attempts; the
        members still not landed. A member landed when its answer has an id (EventId,
        RecordId) and no ErrorCode; a call that raised landed none."""
        remaining = list(members)
        codes: dict[str, int] = {}
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                response = send(remaining)
            except Exception as exc:  # throttled past botocore's retries, the network...
                codes[_error_code(exc)] = codes.get(_error_code(exc), 0) + len(remaining)
                continue
            answers = response.get("Entries") or response.get("RequestResponses") or []
            refused = []
            for position, member in enumerate(remaining):
                answer = answers[position] if position < len(answers) else {}
                if answer.get("ErrorCode") or not (answer.get("EventId") or answer.get("RecordId")):
                    refused.append(member)
                    code = str(answer.get("ErrorCode") or "NoAnswer")
                    codes[code] = codes.get(code, 0) + 1
            remaining = refused
            if not remaining:
                break
        if codes:
            logger.info("entries refused", extra={"codes": codes, "notLanded": len(remaining)})
        return set(remaining)


def _log_cut(what: str, pending: _Pending, cut: Change | None) -> None:
    call = pending.change.call
    logger.warning(
        f"{what} past its size limit: columns cut" if cut else f"{what} past its size limit and cannot be cut",
        extra={"kind": call["kind"], "callId": call["call_id"], "columns": list(cut.truncated) if cut else []},
    )


def batch_answer(failed: Iterable[str]) -> dict[str, Any]:
    """Lambda's partial batch answer: the failed records, lowest sequence number first."""
    numbers = sorted(set(failed), key=lambda number: (len(number), number))
    return {"batchItemFailures": [{"itemIdentifier": number} for number in numbers]}


def sequence_numbers(event: Mapping[str, Any]) -> list[str]:
    """Every record of a stream batch (a batch that fails whole)."""
    return [str((record.get("dynamodb") or {}).get("SequenceNumber", "")) for record in event.get("Records") or []]
