"""The SQL of ``calls`` and the README's examples, on DuckDB, over rows that went the
local lake's whole way: change_events' rows, put with botocore's Firehose client into
the stand-in delivery stream (several rows to a record), flushed as Parquet, read by
DuckDB. Whatever the order the changes arrive in and however often each arrives,
``calls`` holds each live call once, with its latest values."""

from __future__ import annotations

import json
import math
import tempfile
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nxcloud_cdr.change_events import COLUMNS, CREATED, DELETED, EXPIRED, UPDATED, Change

from devtools import lake_local
from devtools.lake_local import LocalLake, default_paths, duckdb_connection, flush
from tests.unit.test_lake_local import client

STREAM = "call-changes"
KINDS = ("pns_call_result", "cc_cdr")
IDS = ("c1", "c2", "c3", "c4")  # the same id under two kinds: two calls
NUMBERS = ("+85235757584", "+85290000001", "+85290000002")
BINDINGS = ("bind-a", "bind-b")
OUTCOMES = ("answered", "no_answer", "busy", "unknown")
BASE = datetime(2024, 5, 1, tzinfo=UTC)
TIMES = {name for name, kind in COLUMNS.items() if kind == "timestamp"}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def call_values(draw: Any, kind: str, call_id: str, generation_ms: int, revision: int) -> dict[str, Any]:
    start = draw(st.none() | st.integers(0, 3 * 86_400).map(lambda s: BASE + timedelta(seconds=s)))
    duration = draw(st.none() | st.integers(0, 400))
    first_seen = datetime.fromtimestamp(generation_ms / 1000, UTC)
    call: dict[str, Any] = dict.fromkeys(COLUMNS)
    call.update(
        call_id=call_id,
        kind=kind,
        call_start_utc=iso(start) if start else None,
        call_end_utc=iso(start + timedelta(seconds=duration or 0)) if start else None,
        duration_sec=duration,
        outcome=draw(st.sampled_from(OUTCOMES)),
        caller_number=draw(st.sampled_from(NUMBERS)),
        callee_number=draw(st.none() | st.sampled_from(NUMBERS)),
        bind_id=draw(st.none() | st.sampled_from(BINDINGS)),
        recording_keys=draw(st.lists(st.sampled_from(["r/a.mp3", "r/b.mp3"]), max_size=2, unique=True)),
        sources=draw(st.lists(st.sampled_from(["push", "sync"]), min_size=1, max_size=2, unique=True)),
        first_seen_at=iso(first_seen),
        last_seen_at=iso(first_seen + timedelta(minutes=revision)),
        record_version=generation_ms * 1_000_000 + revision,
    )
    call["recording_key"] = call["recording_keys"][0] if call["recording_keys"] else None
    return call


@dataclass
class History:
    """A call's changes, in the order the table made them, and what the table holds at the end."""

    changes: list[Change]
    final: dict[str, Any] | None  # None: removed


@st.composite
def histories(draw: Any) -> list[History]:
    keys = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(IDS)), min_size=1, max_size=6, unique=True))
    result = []
    for kind, call_id in keys:
        changes: list[Change] = []
        generations = draw(st.integers(1, 3))
        created_ms = int(BASE.timestamp() * 1000) + draw(st.integers(0, 86_400_000))
        final: dict[str, Any] | None = None
        for generation in range(generations):
            last = generation == generations - 1
            call = None
            for revision in range(draw(st.integers(1, 4))):
                call = draw(call_values(kind, call_id, created_ms, revision))
                changes.append(Change(CREATED if revision == 0 else UPDATED, call, ("outcome",)))
            assert call is not None
            # Stored again only after it expired; the last generation may live on.
            removal = draw(st.sampled_from([EXPIRED, DELETED])) if not last or draw(st.booleans()) else None
            if removal:
                changes.append(Change(removal, call, ()))
            final = None if removal else call
            created_ms += draw(st.integers(1, 10 * 86_400_000))
        result.append(History(changes, final))
    return result


def lake_rows(draw: Any, changes: list[Change]) -> list[dict[str, Any]]:
    """Each change's row, some delivered again (the same row, or the change emitted
    again by a retry: a new event id, later), in any order."""
    emitted = BASE + timedelta(days=30)
    rows = []
    for change in changes:
        emitted += timedelta(seconds=1)
        row = change.lake_row(str(uuid.uuid4()), emitted)
        rows.append(row)
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                rows.append(dict(row))
            else:
                later = emitted + timedelta(seconds=draw(st.integers(1, 10**6)))
                rows.append(change.lake_row(str(uuid.uuid4()), later))
    return draw(st.permutations(rows))


@pytest.fixture(scope="module")
def stand_in():
    with tempfile.TemporaryDirectory() as directory:
        running = LocalLake(default_paths(Path(directory) / "first"), stream_names=[STREAM]).start()
        yield running, client("firehose", running.endpoint), Path(directory)
        running.stop(flush_buffer=False)


def deliver(draw: Any, stand_in: Any, rows: list[dict[str, Any]]) -> Path:
    """Put the rows through the stand-in (1-3 rows to a record, up to 20 records to a
    call, a flush now and then) into a lake of this example's own; its folder."""
    running, firehose, root = stand_in
    running.paths = default_paths(root / uuid.uuid4().hex)
    position = 0
    records: list[bytes] = []
    while position < len(rows):
        size = draw(st.integers(1, 3))
        separator = draw(st.sampled_from(["", "\n", " \r\n"]))
        records.append(separator.join(json.dumps(row) for row in rows[position : position + size]).encode())
        position += size
    while records:
        count = draw(st.integers(1, 20))
        batch, records = records[:count], records[count:]
        firehose.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": data} for data in batch])
        if draw(st.booleans()):
            flush(running.paths.lake)
    flush(running.paths.lake)
    return running.paths.lake


def shown(call: dict[str, Any]) -> dict[str, Any]:
    """A call's columns as DuckDB gives them back (times: UTC without a zone)."""
    return {
        name: datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
        if name in TIMES and value
        else value
        for name, value in call.items()
    }


def query(connection: Any, sql: str) -> list[dict[str, Any]]:
    cursor = connection.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def example(name: str) -> str:
    return (lake_local.SQL_DIR / "examples" / f"{name}.sql").read_text(encoding="utf-8")


def expected_examples(calls: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    per_number: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_binding: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for call in calls:
        answered = int(call["outcome"] == "answered")
        day = (call["call_start_utc"] or call["first_seen_at"]).date()
        per_day[day][0] += 1
        per_day[day][1] += answered
        if call["callee_number"] is not None:
            per_number[call["callee_number"]][0] += 1
            per_number[call["callee_number"]][1] += answered
        if call["bind_id"] is not None:
            per_binding[call["bind_id"]][0] += 1
            per_binding[call["bind_id"]][1] += math.ceil(call["duration_sec"] / 60) if call["duration_sec"] else 0
    return {
        "calls_per_day": sorted((day, total, answered) for day, (total, answered) in per_day.items()),
        "answer_rate_per_number": sorted(
            ((number, total, answered, round(answered / total, 4)) for number, (total, answered) in per_number.items()),
            key=lambda row: (-row[1], row[0]),
        ),
        "billed_minutes_per_binding": sorted(
            ((binding, total, minutes) for binding, (total, minutes) in per_binding.items()),
            key=lambda row: (-row[2], row[0]),
        ),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_calls_holds_each_live_call_once_with_its_latest_values_whatever_arrives_in_any_order(stand_in, data):
    calls = data.draw(histories())
    rows = lake_rows(data.draw, [change for history in calls for change in history.changes])
    lake = deliver(data.draw, stand_in, rows)
    connection = duckdb_connection(lake)

    assert connection.execute("SELECT count(*) FROM call_changes").fetchone() == (len(rows),)
    found = query(connection, "SELECT * FROM calls ORDER BY kind, call_id")
    expected = sorted(
        (shown(history.final) for history in calls if history.final is not None),
        key=lambda call: (call["kind"], call["call_id"]),
    )
    assert found == expected
    for name, wanted in expected_examples(expected).items():
        assert connection.execute(example(name)).fetchall() == wanted, name


def test_the_examples_on_known_calls():
    """The examples' arithmetic on three calls, by hand: 61 s bills 2 minutes, 0 s none."""
    with tempfile.TemporaryDirectory() as directory:
        paths = default_paths(Path(directory))
        emitted = BASE + timedelta(days=1)
        rows = []
        for call_id, outcome, duration, callee, start in (
            ("a", "answered", 61, "+1", "2024-05-01T23:59:59Z"),
            ("b", "no_answer", 0, "+1", "2024-05-02T00:00:00Z"),
            ("c", "answered", 120, "+2", None),
        ):
            call: dict[str, Any] = dict.fromkeys(COLUMNS)
            call.update(
                call_id=call_id,
                kind="cc_cdr",
                outcome=outcome,
                duration_sec=duration,
                callee_number=callee,
                bind_id="b1",
                call_start_utc=start,
                first_seen_at="2024-05-03T08:00:00Z",
                recording_keys=[],
                sources=["sync"],
                record_version=1,
            )
            rows.append(Change(CREATED, call, ()).lake_row(call_id, emitted))
        lake_local.buffer_records(paths, [json.dumps(row).encode() for row in rows])
        flush(paths.lake)
        connection = duckdb_connection(paths.lake)
        assert connection.execute(example("calls_per_day")).fetchall() == [
            (date(2024, 5, 1), 1, 1),
            (date(2024, 5, 2), 1, 0),
            (date(2024, 5, 3), 1, 1),
        ]
        assert connection.execute(example("answer_rate_per_number")).fetchall() == [
            ("+1", 2, 1, 0.5),
            ("+2", 1, 1, 1.0),
        ]
        assert connection.execute(example("billed_minutes_per_binding")).fetchall() == [("b1", 3, 4)]
