"""`nxcdr lake backfill` on DynamoDB Local (the ByTime index, BatchGetItem, the scan of
what no month holds) through the real stand-ins of the bus and the delivery stream
(:class:`devtools.lake_local.LocalLake` on loopback): calls reach the delivery stream in
the order of their dates, within Firehose's budget of open partitions per window; a
window of --since/--to publishes the calls that started in it; a full run publishes
the calls of a wrong clock too; a run again adds no row to ``calls``."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.records import CallRecord
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.times import parse_zone
from nxcloud_cdr.write_rule import RecordWriter

from devtools.lake_local import (
    LakePaths,
    LocalLake,
    deaggregate,
    default_paths,
    duckdb_connection,
    flush,
    read_events,
)
from tests.conftest import load_event
from tests.unit.test_change_events import detail_problems
from tools.nxcdr import cli, lake
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.target import Lake, Target

BUS, STREAM = "calls", "call-changes"
ZONE = parse_zone("+08:00")
# The kinds a history here is made of (two, so that a month's kinds are merged by time):
# each kind's sample body and the field of its call id.
SAMPLES = {"pns_call_result": ("pns-call-result.json", "callId"), "cc_cdr": ("cc-call-log.json", "callId")}
WRONG_CLOCKS = (datetime(1975, 3, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def a_call(kind: str, name: str, start: datetime) -> CallRecord:
    """The kind's sample call with another id, started at ``start``."""
    sample, id_field = SAMPLES[kind]
    body = json.loads(load_event(sample)["body"])
    seconds = int(start.timestamp())
    if kind == "pns_call_result":
        body |= {"startAt": seconds, "answerAt": seconds + 2, "hangupAt": seconds + 8}
    else:
        ms = seconds * 1000
        body |= {"startTime": ms, "ringTime": ms, "inQueueTime": ms, "outQueueTime": ms, "answerTime": ms + 2000}
        body["endTime"] = ms + 8000
    body[id_field] = f"backfill-{name}"
    raw = json.dumps(body)
    return RECORD_KINDS[kind].map(json.loads(raw), raw, ZONE)


class FakeClock:
    """Seconds that pass only when slept, or when the delivery stream is called."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class SpyFirehose:
    """The delivery stream's client, noting each row's ``dt`` and call id in the order
    they were sent, with when (each call takes a second of the fake clock)."""

    client: Any
    clock: FakeClock
    rows: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put_record_batch(self, **arguments: Any) -> Any:
        with self.lock:
            for record in arguments["Records"]:
                rows, problem = deaggregate(record["Data"])
                assert problem is None
                self.rows += [(self.clock.now, row["dt"], row["call_id"]) for row in rows]
            self.clock.now += 1.0
        return self.client.put_record_batch(**arguments)


@dataclass
class Rig:
    target: Target
    lake: Lake
    writer: RecordWriter
    firehose: SpyFirehose
    clock: FakeClock
    paths: LakePaths

    def write(self, calls: dict[str, tuple[str, datetime]], received: datetime) -> None:
        for name, (kind, start) in calls.items():
            self.writer.write(a_call(kind, name, start), received, source="push")

    def backfill(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
        """``nxcdr --json lake backfill ARGS`` on the fake clock."""
        arguments = cli.build_parser().parse_args(["--json", "lake", "backfill", *args])
        code = lake.command_backfill(self.target, arguments, clock=self.clock.clock, sleep=self.clock.sleep)
        out, err = capsys.readouterr()
        return code, json.loads(out), err

    def sent(self) -> list[tuple[str, str]]:
        """(dt, call id) of each row sent, in order."""
        return [(dt, call) for _, dt, call in self.firehose.rows]

    def calls_in_lake(self) -> int:
        flush(self.paths.lake)
        connection = duckdb_connection(self.paths.lake)
        try:
            [(count,)] = connection.execute("SELECT count(*) FROM calls").fetchall()
        finally:
            connection.close()
        return int(count)


@pytest.fixture
def rig(store: CallStore, writer: RecordWriter, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    paths = default_paths(tmp_path)
    stand_in = LocalLake(paths, 0, bus_names=[BUS], stream_names=[STREAM]).start()
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    clock = FakeClock()
    firehose = SpyFirehose(session.client("firehose", endpoint_url=stand_in.endpoint), clock)
    the_lake = Lake(
        events=session.client("events", endpoint_url=stand_in.endpoint),
        bus_name=BUS,
        firehose=firehose,
        stream_name=STREAM,
        number_mode="full",
        salt_secret_id="",
        read_secret=lambda _: "",
        local_lake=paths.lake,
        local_events=paths.events,
    )
    target = Target(store=store, lambda_client=None, sync_function="", api_url="", push_token=lambda: "", lake=the_lake)
    monkeypatch.setattr(cli, "local_target", lambda: target)
    yield Rig(target, the_lake, writer, firehose, clock, paths)
    stand_in.stop(flush_buffer=False)


def history(seed: int, count: int) -> dict[str, tuple[str, datetime]]:
    """Calls of both kinds at random times of 2019 to 2021 (many months, some days with
    several calls), each named by its kind and number."""
    chance = random.Random(seed)
    first = datetime(2019, 1, 1, tzinfo=UTC)
    return {
        f"{kind}-{number}": (kind, first + timedelta(seconds=chance.randrange(3 * 365 * 86400)))
        for number in range(count)
        for kind in SAMPLES
    }


def test_calls_go_out_in_the_order_of_their_dates_then_those_of_a_wrong_clock(rig, capsys):
    received = datetime.now(UTC)
    calls = history(7, 30)
    calls["first-day"] = ("cc_cdr", datetime(2015, 1, 1, tzinfo=UTC))  # the lake's first instant is in range
    wrong = {f"wrong-{moment.year}": ("pns_call_result", moment) for moment in WRONG_CLOCKS}
    rig.write(calls | wrong, received)

    code, totals, _ = rig.backfill(capsys)

    assert code == 0 and totals["published"] == len(calls) + len(wrong) and totals["failedKeys"] == []
    sent = rig.sent()
    in_range, outside = sent[: len(calls)], sent[len(calls) :]
    # By date: the index's months oldest first, a month's kinds merged by time.
    assert [call for _, call in in_range] == [
        f"backfill-{name}" for name, _ in sorted(calls.items(), key=lambda entry: entry[1][1])
    ]
    assert [dt for dt, _ in in_range] == sorted(start.date().isoformat() for _, start in calls.values())
    # Then the scan's: a start out of the lake's range, in the partition of the day it was heard of.
    assert sorted(call for _, call in outside) == sorted(f"backfill-{name}" for name in wrong)
    assert {dt for dt, _ in outside} == {received.date().isoformat()}
    assert rig.calls_in_lake() == len(calls) + len(wrong)


def test_a_run_again_adds_no_call_and_the_lake_shows_each_once(rig, capsys):
    calls = history(11, 5)
    rig.write(calls, datetime.now(UTC))
    for _ in range(2):
        code, totals, _ = rig.backfill(capsys)
        assert code == 0 and totals["published"] == len(calls)
    assert rig.calls_in_lake() == len(calls)
    assert len(rig.sent()) == 2 * len(calls)


def test_since_and_until_publish_the_calls_that_started_in_the_window_alone(rig, capsys):
    calls = history(3, 30)
    rig.write(calls | {"wrong": ("cc_cdr", WRONG_CLOCKS[1])}, datetime.now(UTC))
    since, until = datetime(2020, 2, 10, tzinfo=UTC), datetime(2020, 9, 1, tzinfo=UTC)
    inside = {f"backfill-{name}" for name, (_, start) in calls.items() if since <= start < until}
    assert inside and len(inside) < len(calls)

    code, totals, _ = rig.backfill(capsys, "--since", "2020-02-10", "--to", "2020-09-01")

    assert code == 0 and totals["published"] == len(inside)
    assert {call for _, call in rig.sent()} == inside  # nor the wrong clock's: not a full run
    assert all("2020-02-10" <= dt < "2020-09-01" for dt, _ in rig.sent())


@pytest.mark.parametrize(
    ("since", "to"),
    [
        ("2024-06-01T00:00:00+08:00", "2024-06-02T00:00:00+08:00"),  # starts in UTC's May
        ("2024-05-31T12:00:00Z", "2024-05-31T21:00:00-04:00"),  # ends in UTC's June
    ],
)
def test_a_window_given_in_another_zone_reads_the_utc_months_it_spans(rig, capsys, since, to):
    rig.write(
        {
            "may-end": ("cc_cdr", datetime(2024, 5, 31, 22, 0, tzinfo=UTC)),
            "june-start": ("pns_call_result", datetime(2024, 6, 1, 0, 0, 30, tzinfo=UTC)),
            "before": ("cc_cdr", datetime(2024, 5, 31, 11, 0, tzinfo=UTC)),
        },
        datetime.now(UTC),
    )

    code, _, _ = rig.backfill(capsys, "--since", since, "--to", to)

    assert code == 0
    assert {call for _, call in rig.sent()} == {"backfill-may-end", "backfill-june-start"}


def test_a_backwards_window_is_one_line(rig, capsys):
    code = cli.main(["lake", "backfill", "--since", "2020-09-01", "--to", "2020-02-10"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "the range is empty" in err


def test_the_dates_sent_within_a_window_stay_within_the_budget(rig, capsys, monkeypatch):
    """With a buffer interval (a deployed stream), a backfill waits when the next date
    would open more partitions than the budget, and never sends more."""
    budget = 5
    monkeypatch.setattr(lake, "PARTITION_BUDGET", budget)
    rig.lake.buffer_seconds = 60
    window = 60 * 1.5 + 10
    first = datetime(2019, 1, 1, 9, tzinfo=UTC)
    calls = {f"{kind}-{day}": (kind, first + timedelta(days=day)) for day in range(12) for kind in SAMPLES}
    rig.write(calls, datetime.now(UTC))

    code, totals, err = rig.backfill(capsys)

    assert code == 0 and totals["published"] == len(calls)
    assert {call for _, call in rig.sent()} == {f"backfill-{name}" for name in calls}
    # 12 dates, 5 a window: two waits, each until the window of the last date sent passed.
    assert len(rig.clock.slept) == 2
    assert err.count(f"call dates in this buffer interval (Firehose allows {lake.FIREHOSE_PARTITIONS})") == 2
    assert f": {budget} call dates in this buffer interval" in err
    for at, _, _ in rig.firehose.rows:
        recent = {dt for when, dt, _ in rig.firehose.rows if at - window < when <= at}
        assert len(recent) <= budget


def test_without_a_buffer_interval_nothing_waits(rig, capsys, monkeypatch):
    monkeypatch.setattr(lake, "PARTITION_BUDGET", 2)
    rig.write(history(5, 4), datetime.now(UTC))
    code, totals, _ = rig.backfill(capsys)
    assert code == 0 and totals["published"] == 8 and rig.clock.slept == []


def test_a_removal_that_never_reached_the_lake_is_published_by_the_next_full_run(rig, capsys, store):
    # The publisher gave up on the stream record of a deletion (an outage past its
    # retries): the lake's calls still shows the call, and no item is left to replay.
    calls = {
        "kept": ("cc_cdr", datetime(2024, 5, 1, 8, tzinfo=UTC)),
        "o'gone": ("pns_call_result", datetime(2024, 5, 2, tzinfo=UTC)),
    }
    rig.write(calls, datetime.now(UTC))
    code, totals, _ = rig.backfill(capsys)
    assert code == 0 and totals["removals"] == 0 and rig.calls_in_lake() == 2
    [live] = [
        event for event in read_events(rig.paths.events) if event["detail"]["call"]["call_id"] == "backfill-o'gone"
    ]
    store._client.delete_item(
        TableName=store.table_name, Key={"pk": {"S": "ID#backfill-o'gone"}, "sk": {"S": "pns_call_result"}}
    )

    code, totals, _ = rig.backfill(capsys)

    assert code == 0 and (totals["published"], totals["removals"], totals["failedKeys"]) == (1, 1, [])
    assert rig.calls_in_lake() == 1
    [removal] = [event for event in read_events(rig.paths.events) if event["detail-type"] == "Call Record Deleted"]
    detail = removal["detail"]
    assert detail_problems(detail) == [] and detail["metadata"]["replayed"] is True
    # The call as the lake showed it last, at its version: the key a lost removal had.
    assert detail["call"] == live["detail"]["call"]
    assert detail["metadata"]["idempotencyKey"] != live["detail"]["metadata"]["idempotencyKey"]
    # Once the lake shows the removal, a run again finds nothing to remove.
    code, totals, _ = rig.backfill(capsys)
    assert code == 0 and totals["removals"] == 0 and rig.calls_in_lake() == 1


def delete(store: CallStore, name: str, kind: str) -> None:
    store._client.delete_item(TableName=store.table_name, Key={"pk": {"S": f"ID#backfill-{name}"}, "sk": {"S": kind}})


def test_removals_of_many_dates_keep_to_the_budget_too(rig, capsys, store, monkeypatch):
    first = datetime(2019, 1, 1, 9, tzinfo=UTC)
    calls = {f"day-{day}": ("cc_cdr", first + timedelta(days=day)) for day in range(12)}
    rig.write(calls, datetime.now(UTC))
    rig.backfill(capsys)
    rig.calls_in_lake()  # flushed: the lake shows them
    for name in calls:
        delete(store, name, "cc_cdr")
    monkeypatch.setattr(lake, "PARTITION_BUDGET", 5)
    rig.lake.buffer_seconds = 60
    window = 60 * 1.5 + 10
    rig.firehose.rows.clear()

    code, totals, _ = rig.backfill(capsys)

    assert code == 0 and (totals["published"], totals["removals"]) == (0, 12)
    assert rig.calls_in_lake() == 0
    assert len(rig.clock.slept) == 2
    for at, _, _ in rig.firehose.rows:
        assert len({dt for when, dt, _ in rig.firehose.rows if at - window < when <= at}) <= 5


def test_a_call_stored_again_while_the_backfill_reads_is_not_removed(rig, capsys, store, monkeypatch):
    name, kind, start = "again", "pns_call_result", datetime(2024, 5, 2, tzinfo=UTC)
    rig.write({name: (kind, start)}, datetime(2024, 5, 2, tzinfo=UTC))
    rig.backfill(capsys)
    rig.calls_in_lake()
    delete(store, name, kind)
    checked = store.calls_gone

    def gone_then_stored_again(calls: Any) -> Any:
        gone = checked(calls)  # it is gone: then stored again, a new generation, in the lake at once
        rig.write({name: (kind, start)}, datetime.now(UTC))
        rig.backfill(capsys, "--since", "2024-05-02", "--to", "2024-05-03")
        rig.calls_in_lake()
        return gone

    monkeypatch.setattr(store, "calls_gone", gone_then_stored_again)
    code, totals, _ = rig.backfill(capsys)

    assert code == 0 and totals["removals"] == 0  # the lake shows another version than the one found gone
    assert rig.calls_in_lake() == 1


def test_when_the_removals_cannot_be_read_the_calls_report_is_kept_and_the_run_fails(rig, capsys, monkeypatch):
    rig.write(history(13, 2), datetime.now(UTC))

    def refused(*_: Any) -> Any:
        raise OperatorError("the query failed: Query exhausted resources (BytesScannedCutoffPerQuery)")

    monkeypatch.setattr(lake, "query", refused)
    code, totals, err = rig.backfill(capsys)

    assert code == 1 and totals["published"] == 4 and totals["failedKeys"] == []
    assert "BytesScannedCutoffPerQuery" in totals["removalsError"] and "AthenaBytesScannedLimit" in err


def test_the_calls_one_query_of_removals_names_stay_within_athenas_query_length():
    terms = [f"(kind = 'cc_cdr' AND call_id = '{'中' * 300}{number}' AND record_version = 1)" for number in range(800)]
    groups = list(lake._within(terms))
    assert [term for group in groups for term in group] == terms
    assert all(len(" OR ".join(group).encode()) <= lake._QUERY_TERMS_BYTES < 262_144 - 4096 for group in groups)


def test_a_window_past_what_a_right_clock_has_is_held_and_said(rig, capsys):
    rig.write({"inside": ("cc_cdr", datetime(2015, 1, 5, tzinfo=UTC))}, datetime.now(UTC))
    code, totals, err = rig.backfill(capsys, "--since", "2014-12-01", "--to", "2015-01-10")
    assert code == 0 and totals["published"] == 1 and "the window is held to 2015-01-01" in err
    code = cli.main(["lake", "backfill", "--since", "2030-01-01", "--to", "2031-01-01"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "a full run" in err
