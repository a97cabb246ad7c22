"""The lake commands: ``lake flush`` writes what the local stand-in of the delivery
stream buffers as Parquet now (a deployed stream writes within its buffer interval);
``lake backfill`` publishes every stored call again, to the bus and the lake, marked
``replayed`` and with the idempotency key of the change it shows: a re-run adds rows to
``call_changes`` and none to ``calls``.

A backfill reads the calls in the order of their time (the ByTime index, month by
month), so that the delivery stream's buffer holds rows of a few call dates at a time,
and paces the dates it sends to Firehose's limit of open partitions
(:class:`PartitionPacer`): a table scan's hash order put rows of every date of a long
history in each buffer, and Firehose sent the rows past its 500th date to ``errors/``."""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nxcloud_cdr.change_events import COLUMNS, LAKE_FIRST_DAY, Change, removal_from_lake
from nxcloud_cdr.items import SORT_KEY
from nxcloud_cdr.publisher import ChangePublisher, Published, number_policy
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.times import now_utc, parse_zone

from tools.nxcdr.arguments import Commands, Parents
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.output import emit, render_table
from tools.nxcdr.sql import lake_of, query
from tools.nxcdr.target import Target
from tools.nxcdr.times import iso, parse_time, time_argument

BACKFILL_COLUMNS = ("pages", "published", "removals", "failed", "lake_records", "lake_bytes")
# Calls of the lake checked against the table at a time (BatchGetItem, 100 keys a call).
_RECONCILE_PAGE = 500
# An Athena query is at most 262,144 bytes: the calls one query of removals names stay
# well within it (an id may be 900 bytes, and its quotes doubled).
_QUERY_TERMS_BYTES = 200_000
# Items a page: a publisher batch of events is 10 a call, of rows 500.
_PAGE = 500
# Firehose's dynamic partitioning keeps at most 500 partitions (call dates, dt=) of a
# delivery stream open at once, and sends the rows of any further date to errors/
# (PartitionCountExceeded). A backfill opens at most 400 within a window: the rest is
# for the dates the table's stream sends meanwhile (today's, a late call's).
FIREHOSE_PARTITIONS = 500
PARTITION_BUDGET = 400
# How long after a date's last row a partition of it may stay open: Firehose writes a
# partition's buffer up to 1.5 times its buffer interval after the partition opened (it
# buffers in stages), plus a margin for a slow write.
_DELIVERY_FACTOR = 1.5
_WINDOW_MARGIN_SECONDS = 10.0


def register(commands: Commands, parents: Parents) -> None:
    lake = commands.add_parser("lake", parents=[parents.common], help="the lake: flush (local), backfill")
    actions = lake.add_subparsers(dest="action", required=True)
    flush = actions.add_parser("flush", parents=[parents.common], help="write what is buffered as Parquet now (local)")
    flush.set_defaults(run=command_flush)
    backfill = actions.add_parser(
        "backfill", parents=[parents.common], help="publish every stored call again (idempotent)"
    )
    backfill.add_argument("--lake-only", action="store_true", help="to the lake alone, not the bus's subscribers")
    backfill.add_argument(
        "--since", type=time_argument, help="only calls that started from (ISO-8601, or 2d ago; default: 2015-01-01)"
    )
    backfill.add_argument(
        "--to", type=time_argument, help="only calls that started before (ISO-8601; default: next month's start)"
    )
    backfill.set_defaults(run=command_backfill)


def command_flush(target: Target, arguments: argparse.Namespace) -> int:
    lake = lake_of(target)
    if lake.local_lake is None:
        raise OperatorError("lake flush is for the local stack: a deployed stream writes within its buffer interval")
    from devtools.lake_local import flush  # noqa: PLC0415

    report = flush(lake.local_lake)
    emit(
        arguments,
        {"rows": report.rows, "files": [str(path) for path in report.files], "errors": report.errors},
        f"{report.rows} rows written in {len(report.files)} files"
        + (f"; {report.errors} errors" if report.errors else ""),
    )
    return 0


def command_backfill(
    target: Target,
    arguments: argparse.Namespace,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    lake = lake_of(target)
    if arguments.lake_only and not lake.stream_name:
        raise OperatorError("--lake-only: the stack has no lake (LakeEnabled=false)")
    start, end = backfill_range(arguments.since, arguments.to)
    publisher = ChangePublisher(
        lake.events,
        lake.bus_name,
        parse_zone(target.timezone),
        number_policy(lake.number_mode, lake.salt_secret_id, lake.read_secret),
        firehose=lake.firehose,
        stream_name=lake.stream_name,
    )
    pacer = (
        PartitionPacer(
            lake.buffer_seconds * _DELIVERY_FACTOR + _WINDOW_MARGIN_SECONDS,
            PARTITION_BUDGET,
            clock=clock,
            sleep=sleep,
            say=_say,
        )
        if lake.stream_name and lake.buffer_seconds > 0
        else None
    )
    totals = dict.fromkeys(BACKFILL_COLUMNS, 0)
    failed: list[str] = []

    def count(outcome: Published, into: str = "published") -> None:
        totals[into] += outcome.published
        totals["failed"] += len(outcome.failed)
        totals["lake_records"] += outcome.lake_records
        totals["lake_bytes"] += outcome.lake_bytes
        failed.extend(outcome.failed)

    def publish(changes: list[tuple[str, Change]], into: str = "published") -> None:
        count(publisher.publish_changes(changes, to_bus=not arguments.lake_only), into)

    # A window of --since/--to is the calls that started in it; the whole history
    # is also the calls whose time no month from 2015 to now holds (a wrong clock).
    full = not arguments.since and not arguments.to
    pages = itertools.chain(
        target.store.calls_by_time(start, end, page=_PAGE), _calls_outside(target.store, start, end) if full else ()
    )
    for page in pages:
        changes, unread = publisher.replays(page)
        count(unread)
        if pacer is None:
            publish(changes)
        else:
            pacer.publish([(change.call_date, (origin, change)) for origin, change in changes], publish)
        totals["pages"] += 1
        reached = f", calls of {str(page[-1].get(SORT_KEY, ''))[:10]}" if page else ""
        sys.stderr.write(f"\rpage {totals['pages']}: {totals['published']} published{reached}")
    sys.stderr.write("\n")
    problem = ""
    if full and lake.stream_name:
        try:
            removals = _removals(target)
        except Exception as exc:  # the calls' own report above is kept, and the run fails
            problem = f"the removals could not be read: {' '.join(str(exc).split())[:500]}"
            removals = []
        # In the order of their dates, and paced like the calls: they are of any date.
        dated = sorted(((change.call_date, (origin, change)) for origin, change in removals), key=lambda d: d[0])
        if pacer is None:
            publish([removal for _, removal in dated], "removals")
        else:
            pacer.publish(dated, lambda chunk: publish(chunk, "removals"))
    payload: dict[str, Any] = {**totals, "failedKeys": failed}
    if problem:
        payload["removalsError"] = problem
        _say(problem + " (AthenaBytesScannedLimit: it reads every row of calls); run it again once fixed")
    emit(arguments, payload, render_table([totals], BACKFILL_COLUMNS))
    # Failed items are named; running it again publishes them (and the rest, harmlessly).
    return 1 if failed or problem else 0


def backfill_range(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    """The call start times a backfill publishes: [--since, --to), by default from
    the lake's first day to the start of next month (UTC)."""
    # Within the months the index can hold a right clock's call (a window of 0001 to
    # 9999 would be 95,000 months of queries); a wrong clock's is a full run's.
    first, last = parse_time(LAKE_FIRST_DAY), _next_month(now_utc())
    start = parse_time(since) if since else first
    end = parse_time(until) if until else last
    if start >= end:
        raise OperatorError(f"--since {iso(start)} is not before --to {iso(end)}: the range is empty")
    if start < first or end > last:
        held = (max(start, first), min(end, last))
        if held[0] >= held[1]:
            raise OperatorError(
                f"no call of a right clock started from {iso(start)} to {iso(end)} (the lake's calls are of "
                f"{iso(first)} to {iso(last)}): a full run, without --since and --to, publishes those of a wrong clock"
            )
        _say(
            f"the window is held to {iso(held[0])} to {iso(held[1])}: a call outside it has a wrong clock, "
            "which a full run (without --since and --to) publishes"
        )
        start, end = held
    return start, end


def _say(text: str) -> None:
    # Over the progress line (which is shorter), and on a line of its own: the progress
    # goes on under it.
    sys.stderr.write(f"\r{text}\n")


def _next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _calls_outside(store: CallStore, start: datetime, end: datetime) -> Iterator[list[dict[str, Any]]]:
    # A Scan of the whole table may take a while before its first call is found.
    _say(f"scanning the table for calls of a time before {iso(start)} or from {iso(end)} on (a wrong clock)")
    cursor: str | None = None
    while True:
        page = store.calls_outside(start, end, limit=_PAGE, cursor=cursor)
        if page.items:
            yield page.items
        cursor = page.cursor
        if not cursor:
            return


def _removals(target: Target) -> list[tuple[str, Change]]:
    """The removals of the calls the lake's ``calls`` shows and the table no longer
    holds: a removal whose event the publisher gave up on (an outage past its retries)
    or that the stream lost, which no item is left to publish again. Each at the
    version the lake showed when the table was read, so that it wins there; the same
    idempotency key as the removal that was lost, when its call was the one the lake
    shows. A call stored again meanwhile shows another version, and is left alone."""
    _say("reading the lake's calls to find those the table no longer holds")
    _, shown = query(target, "SELECT kind, call_id, record_version FROM calls")
    versions = {(str(row["kind"]), str(row["call_id"])): int(row["record_version"]) for row in shown}
    del shown  # a million calls' rows are some 300 MB: only their keys are kept
    gone: list[tuple[str, str]] = []
    for group in itertools.batched(versions, _RECONCILE_PAGE, strict=False):
        gone += target.store.calls_gone(group)
    if not gone:
        return []
    _say(f"{len(gone)} calls of the lake are no longer in the table: publishing their removals")
    # Arrays as JSON text, which both engines write (Athena's text of an array is not).
    columns = ", ".join(
        f"CAST({name} AS JSON) AS {name}" if kind.startswith("array") else name for name, kind in COLUMNS.items()
    )
    removals: list[tuple[str, Change]] = []
    for terms in _within(
        f"(kind = {_quoted(kind)} AND call_id = {_quoted(call_id)} AND record_version = {versions[kind, call_id]})"
        for kind, call_id in gone
    ):
        # The keys are SQL literals, quoted as both engines read them ('' for ').
        _, rows = query(target, f"SELECT {columns} FROM calls WHERE {' OR '.join(terms)}")  # noqa: S608
        removals += [(f"{row['kind']} {row['call_id']}", removal_from_lake(row)) for row in rows]
    return removals


def _within(terms: Iterable[str]) -> Iterator[list[str]]:
    """Terms in groups whose text stays within ``_QUERY_TERMS_BYTES``."""
    group: list[str] = []
    size = 0
    for term in terms:
        length = len(term.encode("utf-8")) + 4  # and " OR "
        if group and size + length > _QUERY_TERMS_BYTES:
            yield group
            group, size = [], 0
        group.append(term)
        size += length
    if group:
        yield group


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class PartitionPacer:
    """Sends items so that the call dates sent within ``window_seconds`` (how long a
    date's partition may stay open after its last row) never pass ``budget``: when an
    item's date would, what is gathered is sent and it waits until the window of every
    date sent has passed, then starts again. A date without rows (None) counts for
    nothing. Windows are counted from each date's last send, not from a fixed start: a
    date sent at the end of one window is still open in the next."""

    window_seconds: float
    budget: int = PARTITION_BUDGET
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = lambda _: None
    # Each date sent within the window: when its last send returned.
    _sent: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError("the budget of call dates is at least 1")

    def publish[T](self, dated: Sequence[tuple[str | None, T]], send: Callable[[list[T]], None]) -> None:
        """``send`` the items, in their order, in as few calls as the budget allows."""
        chunk: list[T] = []
        dates: set[str] = set()
        for date, item in dated:
            if date is not None and date not in dates and not self._fits(dates | {date}):
                if chunk:
                    self._send(chunk, dates, send)
                    chunk, dates = [], set()
                self._wait()
            chunk.append(item)
            if date is not None:
                dates.add(date)
        if chunk:
            self._send(chunk, dates, send)

    def _open(self) -> set[str]:
        now = self.clock()
        self._sent = {date: at for date, at in self._sent.items() if at + self.window_seconds > now}
        return set(self._sent)

    def _fits(self, dates: set[str]) -> bool:
        return len(self._open() | dates) <= self.budget

    def _send(self, chunk: list[Any], dates: set[str], send: Callable[[list[Any]], None]) -> None:
        send(chunk)
        # Timed once the rows have landed: a partition opens when its first row lands.
        now = self.clock()
        self._sent.update(dict.fromkeys(dates, now))

    def _wait(self) -> None:
        count = len(self._open())
        seconds = max(0.0, max(self._sent.values(), default=0.0) + self.window_seconds - self.clock())
        self.say(
            f"waiting {math.ceil(seconds)} s: {count} call dates in this buffer interval"
            f" (Firehose allows {FIREHOSE_PARTITIONS})"
        )
        self.sleep(seconds)
        self._sent.clear()
