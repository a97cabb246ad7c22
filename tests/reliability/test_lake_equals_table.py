"""The lake equals the table (issue 20): after any mix of new calls, later copies and
corrections of them, exact duplicates and sync pages, of two to four kinds, written in
any order through the real write rule on DynamoDB Local, the table's stream
(NEW_AND_OLD_IMAGES, the template's filter) drained through the change publisher into
the local bus and delivery stream (:class:`devtools.lake_local.LocalLake` on loopback),
with some of the stream's batches delivered again later and out of order (at least
once, any order), ``calls`` on DuckDB has exactly one row per call item of the table,
and that row shows the item as stored: ``change_events.call_of`` of it, column by
column. Every event put validates against the schema, and events that share an
idempotency key carry the same call.

A TTL removal (DynamoDB Local cannot run TTL: its stream record is built from the
stored item's old image, with the TTL principal) takes the call out of ``calls``,
whatever order its events arrive in afterwards."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nxcloud_cdr.change_events import COLUMNS, EXPIRED, NumberPolicy, call_of, is_call_key
from nxcloud_cdr.dynamodb_types import deserialise
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.publisher import ChangePublisher, batch_answer
from nxcloud_cdr.records import CallRecord
from nxcloud_cdr.times import parse_zone
from nxcloud_cdr.write_rule import RecordWriter

from devtools import REPO_ROOT
from devtools.dynamodb_local import DynamoDBLocal
from devtools.lake_local import LakePaths, LocalLake, default_paths, duckdb_connection, flush, read_events
from devtools.streams import StreamPump, lambda_json
from devtools.template import StreamSource, create_tables, stream_sources
from tests.conftest import PUBLISHER_FUNCTION, load_event, table_names

EXAMPLES = int(os.environ.get("NXCDR_HYPOTHESIS_LAKE_EXAMPLES", "20"))
ZONE = parse_zone("+08:00")
NUMBERS = NumberPolicy()
RECEIVED = datetime(2024, 5, 1, tzinfo=UTC)
BUS, STREAM = "calls", "call-changes"
SCHEMA = json.loads((REPO_ROOT / "schemas" / "call-change-event-v1.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
TIMESTAMPS = [name for name, kind in COLUMNS.items() if kind == "timestamp"]
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

# Each kind: its sample body, the field of its call id, and what a later copy of the
# call (NXCLOUD's correction, a callback beside a push...) may change in it.
KINDS: dict[str, tuple[str, str, st.SearchStrategy[dict[str, Any]]]] = {
    "pns_call_result": (
        "pns-call-result.json",
        "callId",
        st.fixed_dictionaries(
            {},
            optional={
                "duration": st.integers(0, 4000),
                "answerAt": st.sampled_from([0, 1671440454, 1671440455]),
                "hangupAt": st.sampled_from([1671440460, 1671440470]),
                "recordFile": st.sampled_from(["", "https://remote.record.nxcloud.com/pns/a.mp3"]),
                "callStatus": st.sampled_from([0, 1, 2]),
                "hangupCause": st.sampled_from(["", "NORMAL_CLEARING"]),
            },
        ),
    ),
    "pns_binding_not_exist": (
        "pns-binding-not-exist.json",
        "requestId",
        st.fixed_dictionaries(
            {}, optional={"msg": st.sampled_from(["binding not exist", "binding expired"]), "code": st.just(10014)}
        ),
    ),
    "cc_report": (
        "cc-report.json",
        "callSessionId",
        st.fixed_dictionaries(
            {},
            optional={
                "callDuration": st.integers(0, 4000),
                "callEndTime": st.sampled_from(["2023-11-17 13:42:48", "2023-11-17 13:43:10"]),
                "answerTime": st.sampled_from(["", "2023-11-17 13:42:33"]),
                "voiceUrl": st.sampled_from(["", "https://record.nxcloud.com/cc/b.mp3"]),
                "hangingDirection": st.sampled_from([0, 1]),
            },
        ),
    ),
    "cc_cdr": (
        "cc-call-log.json",
        "callId",
        st.fixed_dictionaries(
            {},
            optional={
                "callDuration": st.integers(0, 4000),
                "endTime": st.sampled_from([1690423248124, 1690423250999]),
                "answerTime": st.sampled_from([0, 1690423244000]),
                "recordUrl": st.sampled_from(["", "https://record.example/1.mp3"]),
                "callStatus": st.sampled_from(["Normal termination", "Missed call"]),
                "answered": st.booleans(),
            },
        ),
    ),
}


@dataclass(frozen=True)
class Call:
    kind: str
    number: int
    variants: tuple[dict[str, Any], ...]  # the bodies' changes: the first copy, then corrections


@dataclass(frozen=True)
class Arrival:
    call: int  # which call (its index in Mix.calls)
    variant: int  # which of its bodies: the same again is a duplicate, another a correction
    how: str  # "push" or "replay": one write (RecordWriter.write); "sync": in a page
    reformat: bool  # the same content in other JSON text (key order, white space)
    second: int  # when it arrived (s after RECEIVED): writers' clocks need not agree with the order


@dataclass(frozen=True)
class Mix:
    calls: tuple[Call, ...]
    # In the order written; consecutive "sync" arrivals are written as pages of up to
    # three (RecordWriter.write_many, as the sync writes), at the first one's time.
    arrivals: tuple[Arrival, ...]
    batch_size: int  # the stream's batch size here (the template's is 100: smaller, more batches)


@st.composite
def mixes(draw: st.DrawFn) -> Mix:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=2, max_size=4, unique=True))
    calls: list[Call] = []
    for kind in kinds:
        for number in range(draw(st.integers(1, 2))):
            variants = draw(st.lists(KINDS[kind][2], min_size=1, max_size=3))
            calls.append(Call(kind, number, tuple(variants)))
    # Every call arrives at least once; then copies of any call: a duplicate (the same
    # variant again) or a correction (another variant), from any source, in any order.
    first = [(index, 0) for index in range(len(calls))]
    more = draw(
        st.lists(
            st.integers(0, len(calls) - 1).flatmap(
                lambda index: st.tuples(st.just(index), st.integers(0, len(calls[index].variants) - 1))
            ),
            max_size=8,
        )
    )
    picks = first + more
    order = draw(st.permutations(range(len(picks))))
    arrivals = tuple(
        Arrival(
            *picks[position],
            how=draw(st.sampled_from(["push", "replay", "sync"])),
            reformat=draw(st.booleans()),
            second=draw(st.integers(0, 6)),
        )
        for position in order
    )
    return Mix(tuple(calls), arrivals, draw(st.integers(1, 6)))


def record_of(call: Call, variant: int, tag: str, reformat: bool = False) -> CallRecord:
    sample, id_field, _ = KINDS[call.kind]
    body = json.loads(load_event(sample)["body"])
    body |= call.variants[variant] | {id_field: f"lake-{tag}-{call.kind}-{call.number}"}
    raw = json.dumps(dict(reversed(body.items())), indent=2) if reformat else json.dumps(body)
    return RECORD_KINDS[call.kind].map(json.loads(raw), raw, ZONE)


def write_mix(writer: RecordWriter, mix: Mix, tag: str) -> None:
    page: list[tuple[CallRecord, int]] = []

    def write_page() -> None:
        if page:
            received = RECEIVED + timedelta(seconds=page[0][1])
            outcome = writer.write_many([record for record, _ in page], received, source="sync")
            assert outcome.refused == []
            page.clear()

    for arrival in mix.arrivals:
        record = record_of(mix.calls[arrival.call], arrival.variant, tag, arrival.reformat)
        if arrival.how == "sync":
            page.append((record, arrival.second))
            if len(page) == 3:
                write_page()
            continue
        write_page()
        writer.write(record, RECEIVED + timedelta(seconds=arrival.second), source=arrival.how)
    write_page()


# -- the table, its stream, the publisher and the local lake ---------------------------


@dataclass
class Rig:
    """One fresh records table on DynamoDB Local, its stream's pump handing each batch
    to the publisher, and a fresh local bus and lake."""

    ddb: Any
    table: str
    paths: LakePaths
    publisher: ChangePublisher
    pump: StreamPump
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def publish(self, records: list[dict[str, Any]]) -> None:
        outcome = self.publisher.publish_records(records)
        assert outcome.errors == 0 and outcome.events_failed == 0 and outcome.rows_failed == 0, outcome
        self.failed += outcome.failed

    def drain(self) -> None:
        self.pump.drain()
        assert self.pump.given_up == [] and self.failed == []

    def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The table's call items (not versions, not the sync's state), by (kind, call id)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for page in self.ddb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True):
            for raw in page["Items"]:
                item = deserialise(raw)
                if is_call_key(item):
                    found[(str(item["sk"]), str(item["pk"]).removeprefix("ID#"))] = item
        return found

    def calls(self) -> dict[tuple[str, str], dict[str, Any]]:
        """``calls`` on DuckDB over what the lake holds, by (kind, call id): one row each."""
        flush(self.paths.lake)
        connection = duckdb_connection(self.paths.lake)
        try:
            cursor = connection.execute("SELECT * FROM calls")
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()
        keyed = {(row["kind"], row["call_id"]): row for row in rows}
        assert len(keyed) == len(rows), "calls has more than one row for a call"
        return keyed

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.paths.events)


@contextmanager
def rig(ddb: Any, dynamodb_local: DynamoDBLocal, root: Path, batch_size: int = 100) -> Iterator[Rig]:
    names = table_names()
    create_tables(ddb, names)
    table = names["CallRecordsTable"]
    # One stream for every consumer, with both images (what the publisher compares).
    spec = ddb.describe_table(TableName=table)["Table"]["StreamSpecification"]
    assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    paths = default_paths(root / uuid.uuid4().hex[:12])
    lake = LocalLake(paths, 0, bus_names=[BUS], stream_names=[STREAM]).start()
    try:
        session = boto3.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
        publisher = ChangePublisher(
            session.client("events", endpoint_url=lake.endpoint),
            BUS,
            ZONE,
            NUMBERS,
            firehose=session.client("firehose", endpoint_url=lake.endpoint),
            stream_name=STREAM,
        )
        # The publisher's event source as the template sets it (its filter), at this batch size.
        [source] = [source for source in stream_sources() if source.function == PUBLISHER_FUNCTION]
        source = StreamSource(source.function, source.table, batch_size, source.max_retries, source.patterns)
        made: Rig

        def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
            records = event["Records"]
            made.batches.append(records)
            before = len(made.failed)
            made.publish(records)
            return batch_answer(made.failed[before:])

        pump = StreamPump(dynamodb_local.endpoint, table, source, handler, lambda: None)
        made = Rig(ddb, table, paths, publisher, pump)
        yield made
    finally:
        lake.stop(flush_buffer=False)
        for name in names.values():
            ddb.delete_table(TableName=name)


def as_utc(value: datetime | None) -> datetime | None:
    """A lake timestamp as DuckDB returns it (UTC without a zone), zoned."""
    return None if value is None else value.replace(tzinfo=UTC)


def parsed(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def assert_row_shows_item(row: dict[str, Any], item: dict[str, Any]) -> bool:
    """The row is the item's call; True when it is at an earlier version of it."""
    expected = call_of(item, ZONE, NUMBERS)
    key = (expected["kind"], expected["call_id"])
    assert list(expected) == list(COLUMNS)
    for name, value in expected.items():
        got = row[name]
        if name in TIMESTAMPS:
            assert as_utc(got) == parsed(value), (key, name, got, value)
        elif name == "record_version":
            # The item's revision counts every write of it, but a write that changes no
            # column of the call makes no event (change_of: nothing changed): a
            # correction of a field no column shows (pns_binding_not_exist's msg), or a
            # copy the item already holds, again, in JSON text the rule prefers, from a
            # source already listed and received before the last one seen (its raw
            # text changes, no column does). The lake's latest row may then carry an
            # earlier version of the same values; never a later one, nor another
            # generation.
            assert got <= value, (key, got, value)
            assert got // 1_000_000 == value // 1_000_000, (key, "generation", got, value)
        elif COLUMNS[name].startswith("array<"):
            assert list(got) == list(value), (key, name, got, value)
        else:
            assert got == value, (key, name, got, value)
    return bool(row["record_version"] < expected["record_version"])


def assert_events_valid(events: list[dict[str, Any]]) -> None:
    assert events
    by_key: dict[str, dict[str, Any]] = {}
    for event in events:
        detail = event["detail"]
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(detail)]
        assert problems == [], (event["detail-type"], problems)
        key = detail["metadata"]["idempotencyKey"]
        # Redeliveries of one change share its key, and so must carry the same call.
        assert by_key.setdefault(key, detail["call"]) == detail["call"], key
    assert len({event["detail"]["metadata"]["eventId"] for event in events}) == len(events)


@pytest.fixture
def tally(figures: Any) -> Iterator[dict[str, int]]:
    seen = {"examples": 0, "call items": 0, "rows at an earlier version": 0, "batches delivered again": 0, "events": 0}
    yield seen
    figures("totals", seen)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(mix=mixes(), data=st.data())
def test_calls_in_the_lake_equal_the_table_after_any_mix_and_any_delivery(
    ddb, dynamodb_local, tmp_path, tally, mix, data
):
    tag = uuid.uuid4().hex[:8]
    with rig(ddb, dynamodb_local, tmp_path, mix.batch_size) as made:
        write_mix(RecordWriter(ddb, made.table), mix, tag)
        made.drain()  # every record once, in the stream's order
        assert made.batches

        # At least once, any order: some batches again, their records shuffled, the
        # batches in any order, some rows maybe already written as Parquet before.
        if data.draw(st.booleans(), label="flush before redelivery"):
            flush(made.paths.lake)
        again = data.draw(
            st.lists(st.sampled_from(range(len(made.batches))), max_size=len(made.batches) + 2),
            label="batches delivered again",
        )
        for number in again:
            records = made.batches[number]
            order = data.draw(st.permutations(range(len(records))), label="records' order")
            made.publish([records[position] for position in order])
        assert made.failed == []

        items = made.items()
        calls = made.calls()
        assert set(calls) == set(items)
        assert {kind for kind, _ in items} == {call.kind for call in mix.calls}
        lagging = [key for key, item in items.items() if assert_row_shows_item(calls[key], item)]
        events = made.events()
        assert_events_valid(events)
        tally["examples"] += 1
        tally["call items"] += len(items)
        tally["rows at an earlier version"] += len(lagging)
        tally["batches delivered again"] += len(again)
        tally["events"] += len(events)


def test_a_ttl_removal_takes_the_call_out_of_calls_whatever_arrives_after_it(ddb, dynamodb_local, tmp_path):
    kept = Call("pns_call_result", 0, ({},))
    expiring = Call("cc_cdr", 0, ({}, {"callDuration": 9}))
    arrivals = (Arrival(0, 0, "push", False, 0), Arrival(1, 0, "push", False, 1), Arrival(1, 1, "sync", False, 2))
    mix = Mix((kept, expiring), arrivals, 100)
    with rig(ddb, dynamodb_local, tmp_path) as made:
        write_mix(RecordWriter(ddb, made.table), mix, "ttl")
        made.drain()
        items = made.items()
        assert set(made.calls()) == set(items) and len(items) == 2
        [key] = [key for key in items if key[0] == "cc_cdr"]

        # TTL deletes it: the table's REMOVE record carries the item's last image and
        # DynamoDB's service principal (DynamoDB Local runs no TTL of ours: built here).
        pk, sk = f"ID#{key[1]}", key[0]
        stored = ddb.get_item(TableName=made.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        old_image = json.loads(json.dumps(stored["Item"], default=lambda_json))
        ddb.delete_item(TableName=made.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
        last = made.batches[-1][-1]
        removal = {
            "eventID": uuid.uuid4().hex,
            "eventName": "REMOVE",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "userIdentity": TTL_IDENTITY,
            "dynamodb": {
                "ApproximateCreationDateTime": last["dynamodb"]["ApproximateCreationDateTime"],
                "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
                "OldImage": old_image,
                "SequenceNumber": str(int(last["dynamodb"]["SequenceNumber"]) + 1),
                "SizeBytes": 1,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventSourceARN": last["eventSourceARN"],
        }
        made.publish([removal])
        flush(made.paths.lake)
        # ...then every earlier change of it again, and the removal again, in reverse.
        made.publish([record for batch in reversed(made.batches) for record in reversed(batch)])
        made.publish([removal])
        assert made.failed == []

        calls = made.calls()
        assert key not in calls
        assert set(calls) == set(made.items()) and len(calls) == 1
        for other, row in calls.items():
            assert_row_shows_item(row, made.items()[other])
        events = made.events()
        assert_events_valid(events)
        expired = [event for event in events if event["detail-type"] == EXPIRED]
        assert len(expired) == 2
        assert {event["detail"]["call"]["call_id"] for event in expired} == {key[1]}
        assert expired[0]["detail"]["call"] == call_of(deserialise(stored["Item"]), ZONE, NUMBERS)
