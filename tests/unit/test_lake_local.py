"""The local bus and delivery stream (devtools/lake_local.py) as the real SDK sees them:
botocore's requests accepted, its parsers happy with the answers, the rows of
concatenated records written as Parquet in the deployed layout, each row once however
flushes and puts interleave, and DuckDB's views over a lake with or without files."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from nxcloud_cdr.change_events import COLUMNS, CREATED, EVENT_COLUMNS, Change

from devtools import lake_local
from devtools.lake_local import LakePaths, LocalLake, deaggregate, default_paths, duckdb_connection, flush

BUS = "nxcloud-cdr-changes"
STREAM = "nxcloud-cdr-call-changes"


def client(service: str, endpoint: str) -> Any:
    return botocore.session.get_session().create_client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture
def lake(tmp_path: Path):
    with LocalLake(default_paths(tmp_path), bus_names=[BUS], stream_names=[STREAM]) as running:
        yield running


def a_row(call_id: str, event_id: str, *, dt: str = "2024-05-01", **values: Any) -> dict[str, Any]:
    call: dict[str, Any] = dict.fromkeys(COLUMNS)
    call.update(
        call_id=call_id,
        kind="pns_call_result",
        call_start_utc=f"{dt}T10:00:00Z",
        first_seen_at=f"{dt}T10:01:00Z",
        recording_keys=[],
        sources=["push"],
        record_version=1,
        duration_sec=61,
    )
    call.update(values)
    row = Change(CREATED, call, ("call_id", "kind")).lake_row(event_id, datetime(2024, 5, 1, 10, 2, tzinfo=UTC))
    return row


def concatenated(*rows: dict[str, Any], separator: str = "") -> bytes:
    return separator.join(json.dumps(row) for row in rows).encode()


def test_put_events_as_botocore_sends_them_lands_in_the_sink_as_eventbridge_delivers(lake):
    events = client("events", lake.endpoint)
    detail = {"metadata": {"eventId": "e1"}, "call": {"call_id": "c1"}, "changedFields": ["call_id"]}
    answer = events.put_events(
        Entries=[
            {
                "Source": "nxcloud.cdr",
                "DetailType": "Call Record Created",
                "Detail": json.dumps(detail),
                "EventBusName": BUS,
                "Time": datetime(2024, 5, 1, 10, 2, 3, tzinfo=UTC),
                "Resources": ["arn:aws:dynamodb:us-east-1:000000000000:table/t"],
            },
            {"Source": "nxcloud.cdr", "DetailType": "Call Record Updated", "Detail": "[1]", "EventBusName": BUS},
            {"Source": "nxcloud.cdr", "DetailType": "Call Record Updated", "Detail": "{}", "EventBusName": BUS},
        ]
    )

    assert answer["FailedEntryCount"] == 1
    first, malformed, third = answer["Entries"]
    assert malformed == {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    sunk = lake_local.read_events(lake.paths.events)
    assert [event["id"] for event in sunk] == [first["EventId"], third["EventId"]]
    assert sunk[0] == {
        "version": "0",
        "id": first["EventId"],
        "detail-type": "Call Record Created",
        "source": "nxcloud.cdr",
        "account": "000000000000",
        "time": "2024-05-01T10:02:03Z",
        "region": "us-east-1",
        "resources": ["arn:aws:dynamodb:us-east-1:000000000000:table/t"],
        "detail": detail,
    }
    since = lake_local.read_events(lake.paths.events, since=datetime(2024, 5, 2, tzinfo=UTC))
    assert [event["id"] for event in since] == [third["EventId"]]  # put now, without a Time


def test_an_unknown_bus_or_stream_is_refused_as_the_services_refuse_it(lake):
    with pytest.raises(ClientError) as refused:
        client("events", lake.endpoint).put_events(
            Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": "other"}]
        )
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as refused:
        client("firehose", lake.endpoint).put_record_batch(DeliveryStreamName="other", Records=[{"Data": b"{}"}])
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert not lake.paths.events.exists() or lake.paths.events.read_text() == ""
    assert flush(lake.paths.lake).rows == 0


def test_concatenated_records_become_parquet_rows_in_the_deployed_layout(lake):
    firehose = client("firehose", lake.endpoint)
    rows = [a_row(f"c{index}", f"e{index}", dt="2024-05-01" if index < 3 else "2024-05-02") for index in range(5)]
    answer = firehose.put_record_batch(
        DeliveryStreamName=STREAM,
        Records=[
            {"Data": concatenated(*rows[:3])},  # no separator at all
            {"Data": concatenated(*rows[3:], separator="\n ")},
        ],
    )
    assert answer["FailedPutCount"] == 0 and answer["Encrypted"] is False
    assert len(answer["RequestResponses"]) == 2 and all(entry["RecordId"] for entry in answer["RequestResponses"])
    single = firehose.put_record(DeliveryStreamName=STREAM, Record={"Data": concatenated(a_row("c9", "e9"))})
    assert single["RecordId"]
    assert lake_local.buffered_rows(lake.paths) == 6

    report = flush(lake.paths.lake)

    assert (report.rows, report.errors) == (6, 0)
    folders = sorted(path.parent.name for path in report.files)
    assert folders == ["dt=2024-05-01", "dt=2024-05-02"]
    assert all(path.name.startswith("part-") and path.suffix == ".parquet" for path in report.files)
    schema = pq.read_schema(report.files[0])
    assert schema.names == [*EVENT_COLUMNS, *COLUMNS]  # no dt: it is the folder's
    assert str(schema.field("call_start_utc").type) == "timestamp[ms]"
    assert str(schema.field("sources").type) == "list<element: string>"
    assert str(schema.field("replayed").type) == "bool"
    assert str(schema.field("record_version").type) == "int64"
    assert lake_local.buffered_rows(lake.paths) == 0
    connection = duckdb_connection(lake.paths.lake)
    assert connection.execute("SELECT count(*), count(DISTINCT event_id) FROM call_changes").fetchone() == (6, 6)
    assert connection.execute("SELECT dt, count(*) FROM call_changes GROUP BY dt ORDER BY dt").fetchall() == [
        ("2024-05-01", 4),
        ("2024-05-02", 2),
    ]
    started = connection.execute("SELECT call_start_utc FROM calls WHERE call_id = 'c0'").fetchone()
    assert started == (datetime(2024, 5, 1, 10, 0),)  # UTC without a zone, as Athena shows it


def test_what_cannot_be_read_or_converted_goes_to_the_error_output_and_the_rest_lands(lake):
    firehose = client("firehose", lake.endpoint)
    no_dt = a_row("c2", "e2")
    del no_dt["dt"]
    answer = firehose.put_record_batch(
        DeliveryStreamName=STREAM,
        Records=[
            {"Data": b"not json"},
            {"Data": concatenated(a_row("c1", "e1"), a_row("c3", "e3", duration_sec="long"))},
            {"Data": concatenated(no_dt)},
        ],
    )
    assert answer["FailedPutCount"] == 0  # as Firehose: accepted, then sent to the error output

    report = flush(lake.paths.lake)

    assert (report.rows, report.errors) == (1, 3)
    errors = {
        path.relative_to(lake.paths.lake / "errors").parts[0] for path in lake.paths.lake.glob("errors/*/*/*/*/*")
    }
    assert errors == {"processing-failed", "format-conversion-failed", "partitioning-failed"}
    kept = json.loads(next(lake.paths.lake.glob("errors/processing-failed/*/*/*/*.jsonl")).read_text())
    assert base64.b64decode(kept["raw"]) == b"not json"
    assert duckdb_connection(lake.paths.lake).execute("SELECT call_id FROM call_changes").fetchall() == [("c1",)]


def test_requests_over_the_services_limits_are_refused(lake):
    firehose = client("firehose", lake.endpoint)
    with pytest.raises(ClientError) as refused:
        firehose.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": b"{}"}] * 501)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as refused:
        client("events", lake.endpoint).put_events(
            Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": BUS}] * 11
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize(
    ("data", "count", "problem"),
    [
        (b'{"a":1}{"b":2}', 2, None),
        (b' {"a":1}\n\n{"b":{"c":[1,2]}}\n', 2, None),
        (b'{"a":1}{"b"', 0, "not JSON"),
        (b"[1]", 0, "not an object"),
        (b"   ", 0, "empty"),
        (b"\xff", 0, "not UTF-8"),
    ],
)
def test_deaggregation_reads_concatenated_objects_as_firehose_does(data, count, problem):
    rows, reason = deaggregate(data)
    assert len(rows) == count
    assert (reason is None) if problem is None else (problem in str(reason))


def test_flushes_racing_puts_take_every_row_once(lake):
    """Threads put while others flush: every row lands once, none is left behind."""
    writers, batches, per_record = 4, 15, 3

    def put(writer: int) -> None:
        firehose = client("firehose", lake.endpoint)
        for batch in range(batches):
            rows = [a_row(f"w{writer}-{batch}-{n}", f"w{writer}-{batch}-{n}") for n in range(per_record)]
            firehose.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": concatenated(*rows)}])

    done = threading.Event()
    flushed: list[int] = []

    def keep_flushing() -> None:
        while not done.is_set():
            flushed.append(flush(lake.paths.lake).rows)

    flushers = [threading.Thread(target=keep_flushing) for _ in range(2)]
    putters = [threading.Thread(target=put, args=(writer,)) for writer in range(writers)]
    for thread in [*flushers, *putters]:
        thread.start()
    for thread in putters:
        thread.join()
    done.set()
    for thread in flushers:
        thread.join()
    flushed.append(flush(lake.paths.lake).rows)

    total = writers * batches * per_record
    assert sum(flushed) == total
    assert flush(lake.paths.lake).rows == 0  # idempotent: nothing more to write
    counted = duckdb_connection(lake.paths.lake).execute("SELECT count(*), count(DISTINCT event_id) FROM call_changes")
    assert counted.fetchone() == (total, total)


def test_a_flush_cut_short_is_finished_by_the_next_with_no_row_twice(tmp_path, monkeypatch):
    paths = default_paths(tmp_path)
    lake_local.buffer_records(paths, [concatenated(a_row("c1", "e1"), a_row("c2", "e2", dt="2024-05-03"))])
    real_unlink = Path.unlink

    def crash_before_the_batch_is_removed(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name.startswith("batch-"):
            raise OSError("killed")
        real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", crash_before_the_batch_is_removed)
    with pytest.raises(OSError, match="killed"):
        flush(paths.lake)
    monkeypatch.undo()
    lake_local.buffer_records(paths, [concatenated(a_row("c3", "e3"))])

    assert flush(paths.lake).rows == 3  # the sealed batch again (the same files), and the new row

    ids = duckdb_connection(paths.lake).execute("SELECT event_id FROM call_changes ORDER BY event_id").fetchall()
    assert ids == [("e1",), ("e2",), ("e3",)]


def test_stopping_the_stand_in_writes_what_it_buffers(tmp_path):
    running = LocalLake(default_paths(tmp_path)).start()
    client("firehose", running.endpoint).put_record_batch(
        DeliveryStreamName="any", Records=[{"Data": concatenated(a_row("c1", "e1"))}]
    )
    report = running.stop()
    assert report is not None and report.rows == 1


def test_an_empty_lake_gives_empty_views_with_their_columns(tmp_path):
    connection = duckdb_connection(tmp_path / "nothing-yet")
    assert connection.execute("SELECT * FROM call_changes").fetchall() == []
    described = connection.execute("DESCRIBE call_changes").fetchall()
    assert [row[0] for row in described] == [*EVENT_COLUMNS, *COLUMNS, "dt"]
    assert connection.execute("SELECT * FROM calls").fetchall() == []
    assert [row[0] for row in connection.execute("DESCRIBE calls").fetchall()] == list(COLUMNS)
    for example in sorted((lake_local.SQL_DIR / "examples").glob("*.sql")):
        assert connection.execute(example.read_text()).fetchall() == [], example.name


def test_follow_events_yields_what_is_put_until_stopped(lake):
    events = client("events", lake.endpoint)
    stop = threading.Event()
    entry = {"Source": "nxcloud.cdr", "DetailType": "Call Record Created", "Detail": "{}", "EventBusName": BUS}
    events.put_events(Entries=[entry])
    seen: list[str] = []
    for event in lake_local.follow_events(lake.paths.events, poll_s=0.01, stop=stop):
        seen.append(event["id"])
        if len(seen) == 1:
            events.put_events(Entries=[entry, entry])
        if len(seen) == 3:
            stop.set()
    assert len(set(seen)) == 3


def test_the_cli_finds_the_running_stacks_paths_or_the_defaults_beside_its_state_file(tmp_path):
    state = tmp_path / "stack.json"
    assert lake_local.local_paths(state) == LakePaths(tmp_path / "lake", tmp_path / "events" / "events.jsonl")
    state.write_text(json.dumps({"lake": {"dir": "/elsewhere/lake", "eventsFile": "/elsewhere/e.jsonl"}}))
    assert lake_local.local_paths(state) == LakePaths(Path("/elsewhere/lake"), Path("/elsewhere/e.jsonl"))


def until_flushed(paths: LakePaths) -> None:
    for _ in range(1000):  # until a tick has flushed, 10 s at most
        if list(paths.lake.glob("call_changes/*/*.parquet")):
            return
        time.sleep(0.01)
    pytest.fail("the timer wrote nothing")


def test_rows_a_killed_stack_left_buffered_are_written_by_the_next_ones_timer(tmp_path):
    killed = LocalLake(default_paths(tmp_path)).start()
    client("firehose", killed.endpoint).put_record(
        DeliveryStreamName="any", Record={"Data": concatenated(a_row("c1", "e1"))}
    )
    killed.stop(flush_buffer=False)  # as kill -9 leaves it
    assert lake_local.buffered_rows(killed.paths) == 1

    again = LocalLake(default_paths(tmp_path)).start()
    try:
        again.start_timer(interval_s=0, tick_s=0.01)  # and no row put since
        until_flushed(again.paths)
        assert lake_local.buffered_rows(again.paths) == 0
    finally:
        again.stop()


def test_the_timer_writes_what_waited_its_interval(tmp_path):
    """With an interval of nothing, the timer's next tick writes the row (Firehose's
    buffer interval, counted from the first row buffered)."""
    running = LocalLake(default_paths(tmp_path)).start()
    try:
        running.start_timer(interval_s=0, tick_s=0.01)
        client("firehose", running.endpoint).put_record(
            DeliveryStreamName="any", Record={"Data": concatenated(a_row("c1", "e1"))}
        )
        for _ in range(1000):  # until a tick has flushed, 10 s at most
            if list(running.paths.lake.glob("call_changes/*/*.parquet")):
                break
            time.sleep(0.01)
        else:
            pytest.fail("the timer wrote nothing")
        assert lake_local.buffered_rows(running.paths) == 0
    finally:
        report = running.stop()
    assert report is not None and report.rows == 0  # nothing was left for the stop


def test_a_torn_or_unreadable_buffer_line_is_set_aside_and_later_flushes_proceed(tmp_path):
    """A crash mid-append leaves a partial last line; the rows around it land, the line
    goes to the error output, and the next flushes are not stuck on it."""
    paths = default_paths(tmp_path)
    lake_local.buffer_records(paths, [concatenated(a_row("c1", "e1"))])
    with (paths.buffer / "current.jsonl").open("ab") as current:
        current.write(b'{"row":{"call_id":"c2","ev')  # a put cut short, never answered
    # The stack again: its next put must not be glued to the torn line.
    lake_local.buffer_records(paths, [concatenated(a_row("c3", "e3"))])
    (paths.buffer / "batch-20240501T100000000000Z-0123456789ab.jsonl").write_bytes(
        b'[1]\n{"row":' + json.dumps(a_row("c4", "e4")).encode() + b"}\n\xff\xfe\n{}\n"
    )

    report = flush(paths.lake)

    assert (report.rows, report.errors) == (3, 4)
    ids = duckdb_connection(paths.lake).execute("SELECT call_id FROM call_changes ORDER BY call_id").fetchall()
    assert ids == [("c1",), ("c3",), ("c4",)]
    set_aside = [
        json.loads(line)
        for path in sorted(paths.lake.glob("errors/unreadable-buffer-line/*/*/*/*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    raw = sorted(base64.b64decode(entry["raw"]) for entry in set_aside)
    assert raw == sorted([b'{"row":{"call_id":"c2","ev', b"[1]", b"\xff\xfe", b"{}"])
    assert list(paths.buffer.glob("batch-*")) == []

    lake_local.buffer_records(paths, [concatenated(a_row("c5", "e5"))])
    assert (flush(paths.lake).rows, flush(paths.lake).rows) == (1, 0)


def test_a_torn_line_in_the_events_sink_is_skipped_and_the_next_event_read(lake):
    events = client("events", lake.endpoint)
    entry = {"Source": "nxcloud.cdr", "DetailType": "Call Record Created", "Detail": "{}", "EventBusName": BUS}
    first = events.put_events(Entries=[entry])["Entries"][0]["EventId"]
    with lake.paths.events.open("ab") as sink:
        sink.write(b'{"version":"0","id":"tor')
    second = events.put_events(Entries=[entry])["Entries"][0]["EventId"]

    assert [event["id"] for event in lake_local.read_events(lake.paths.events)] == [first, second]
    stop = threading.Event()
    followed = []
    for event in lake_local.follow_events(lake.paths.events, poll_s=0.01, stop=stop):
        followed.append(event["id"])
        if len(followed) == 2:
            stop.set()
    assert followed == [first, second]
