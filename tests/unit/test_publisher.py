"""The change publisher on moto's EventBridge, Firehose, S3, SQS and Secrets Manager:
what lands (events read back through a rule to a queue, rows from the delivery stream's
objects), the services' limits per call, and failures injected into the answers, which
name exactly the records to try again."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from nxcloud_cdr import publisher as publisher_module
from nxcloud_cdr import publisher_handler
from nxcloud_cdr.change_events import EXPIRED, SOURCE, NumberPolicy
from nxcloud_cdr.publisher import ChangePublisher, batch_answer

from tests.reliability.test_any_order import ZONE
from tests.unit.test_change_events import FULL, TTL, detail_problems, pns_item, stream_record

STREAM = "nxcloud-cdr-call-changes"
LAKE_BUCKET = "lake"


@dataclass
class Sinks:
    """A bus whose events a rule copies to a queue, and a delivery stream to a bucket."""

    bus: str = "nxcloud-cdr-calls"
    stream: str = STREAM
    bucket: str = LAKE_BUCKET
    queue_url: str = ""
    events: Any = None
    firehose: Any = None
    put_events_calls: list[int] = field(default_factory=list)
    put_record_batch_calls: list[int] = field(default_factory=list)

    def create(self) -> Sinks:
        self.events, self.firehose = boto3.client("events"), boto3.client("firehose")
        sqs, s3 = boto3.client("sqs"), boto3.client("s3")
        self.events.create_event_bus(Name=self.bus)
        self.queue_url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name="all", EventBusName=self.bus, EventPattern=json.dumps({"source": [SOURCE]}))
        self.events.put_targets(Rule="all", EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": arn}])
        s3.create_bucket(Bucket=self.bucket)
        self.firehose.create_delivery_stream(
            DeliveryStreamName=self.stream,
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{self.bucket}",
            },
        )
        return self

    def received(self) -> list[dict[str, Any]]:
        """Every event the bus passed to the rule's queue."""
        sqs, events = boto3.client("sqs"), list[dict[str, Any]]()
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def rows(self) -> list[dict[str, Any]]:
        """Every lake row the delivery stream wrote (records of concatenated JSON objects)."""
        s3 = boto3.client("s3")
        rows: list[dict[str, Any]] = []
        for listed in s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            rows += concatenated(s3.get_object(Bucket=self.bucket, Key=listed["Key"])["Body"].read())
        return rows


def concatenated(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a Firehose record, as the delivery stream's de-aggregation reads them."""
    text, decoder, position, objects = data.decode("ascii"), json.JSONDecoder(), 0, []
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        objects.append(value)
    return objects


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    with mock_aws():
        yield Sinks().create()


def make_publisher(sinks: Sinks, *, lake: bool = True, numbers: NumberPolicy = FULL) -> ChangePublisher:
    return ChangePublisher(
        sinks.events,
        sinks.bus,
        ZONE,
        numbers,
        firehose=sinks.firehose,
        stream_name=sinks.stream if lake else "",
        sleep=lambda _: None,
    )


def records_of(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """``count`` INSERT records of distinct calls, sequence numbers rising."""
    made = []
    for number in range(start, start + count):
        record = stream_record("INSERT", None, pns_item(pk=f"ID#call-{number:04d}"))
        record["dynamodb"]["SequenceNumber"] = f"{10**20 + number}"
        made.append(record)
    return made


def sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def test_every_change_lands_as_an_event_the_schema_accepts_and_as_a_lake_row(sinks):
    records = records_of(23)
    version = stream_record("INSERT", None, pns_item(sk="v#pns_call_result#abc"))

    outcome = make_publisher(sinks).publish_records([*records, version])

    assert (outcome.published, outcome.no_change, outcome.failed) == (23, 1, [])
    events = sinks.received()
    assert len(events) == 23
    assert {event["source"] for event in events} == {SOURCE}
    assert all(detail_problems(event["detail"]) == [] for event in events)
    assert {event["detail"]["call"]["call_id"] for event in events} == {f"call-{n:04d}" for n in range(23)}
    rows = sinks.rows()
    assert sorted(row["event_id"] for row in rows) == sorted(event["detail"]["metadata"]["eventId"] for event in events)
    by_id = {event["detail"]["metadata"]["eventId"]: event["detail"] for event in events}
    for row in rows:
        assert row["idempotency_key"] == by_id[row["event_id"]]["metadata"]["idempotencyKey"]
    # Rows packed into as few Firehose records as fit (each is billed rounded up to 5 KB).
    assert outcome.lake_records == 1
    assert outcome.lake_bytes == sum(len(json.dumps(row, separators=(",", ":"))) for row in rows)


def count_calls(sinks: Sinks, monkeypatch: pytest.MonkeyPatch) -> None:
    put_events, put_record_batch = sinks.events.put_events, sinks.firehose.put_record_batch

    def events_spy(**arguments: Any) -> Any:
        sinks.put_events_calls.append(len(arguments["Entries"]))
        assert sum(publisher_module.entry_bytes(entry) for entry in arguments["Entries"]) <= 256 * 1024
        return put_events(**arguments)

    def firehose_spy(**arguments: Any) -> Any:
        sinks.put_record_batch_calls.append(len(arguments["Records"]))
        assert all(len(record["Data"]) <= 1000 * 1024 for record in arguments["Records"])
        assert sum(len(record["Data"]) for record in arguments["Records"]) <= 4 * 1024 * 1024
        return put_record_batch(**arguments)

    monkeypatch.setattr(sinks.events, "put_events", events_spy)
    monkeypatch.setattr(sinks.firehose, "put_record_batch", firehose_spy)


def test_calls_keep_to_the_services_limits(sinks, monkeypatch):
    count_calls(sinks, monkeypatch)
    # Rows of about 1 KB in records of at most 3 KB: many records, in calls of 500 at most.
    monkeypatch.setattr(publisher_module, "BYTES_PER_RECORD", 3000)
    monkeypatch.setattr(publisher_module, "RECORDS_PER_CALL", 7)

    outcome = make_publisher(sinks).publish_records(records_of(100))

    assert outcome.failed == [] and outcome.published == 100
    assert sorted(sinks.put_events_calls) == [10] * 10
    assert sum(sinks.put_record_batch_calls) == outcome.lake_records > 7
    assert max(sinks.put_record_batch_calls) <= 7
    assert len(sinks.rows()) == 100


def refuse(client: Any, method: str, monkeypatch: pytest.MonkeyPatch, refused: Callable[[Any], bool], code: str):
    """The client's ``method`` answers ``code`` for each entry ``refused`` picks (always)."""
    real = getattr(client, method)
    key, answers = ("Entries", "Entries") if method == "put_events" else ("Records", "RequestResponses")

    def partly(**arguments: Any) -> Any:
        entries = arguments[key]
        kept = [entry for entry in entries if not refused(entry)]
        response = real(**{**arguments, key: kept}) if kept else {answers: []}
        landed = iter(response[answers])
        response[answers] = [
            {"ErrorCode": code, "ErrorMessage": "injected"} if refused(entry) else next(landed) for entry in entries
        ]
        response["FailedEntryCount" if key == "Entries" else "FailedPutCount"] = sum(map(refused, entries))
        return response

    monkeypatch.setattr(client, method, partly)


def test_events_the_bus_refuses_name_exactly_their_records(sinks, monkeypatch):
    records = records_of(30)
    bad = {"call-0003", "call-0017", "call-0029"}
    refuse(
        sinks.events,
        "put_events",
        monkeypatch,
        lambda entry: json.loads(entry["Detail"])["call"]["call_id"] in bad,
        "InternalFailure",
    )

    outcome = make_publisher(sinks).publish_records(records)

    assert batch_answer(outcome.failed) == {
        "batchItemFailures": [{"itemIdentifier": sequence(records[n])} for n in (3, 17, 29)]
    }
    assert (outcome.published, outcome.events_failed, outcome.rows_failed) == (27, 3, 0)
    assert len(sinks.received()) == 27


def test_rows_the_delivery_stream_refuses_fail_every_record_packed_in_them(sinks, monkeypatch):
    monkeypatch.setattr(publisher_module, "BYTES_PER_RECORD", 1)  # one row per record is too small: none fit
    records = records_of(3)
    outcome = make_publisher(sinks).publish_records(records)
    assert outcome.rows_failed == 3 and len(outcome.failed) == 3  # a row that fits no record never lands

    monkeypatch.setattr(publisher_module, "BYTES_PER_RECORD", 2500)  # a row (about 1 KB) or two per record
    refuse(
        sinks.firehose,
        "put_record_batch",
        monkeypatch,
        lambda record: b'"call-0011"' in record["Data"],
        "ServiceUnavailableException",
    )
    records = records_of(20, start=10)

    outcome = make_publisher(sinks).publish_records(records)

    failed = set(outcome.failed)
    assert sequence(records[1]) in failed and len(failed) <= 2  # call-0011 and the row packed beside it, at most
    assert outcome.events_failed == 0 and outcome.rows_failed == len(failed)
    assert outcome.published == 20 - len(failed)


def test_a_refusal_that_passes_is_retried_within_the_invocation(sinks, monkeypatch):
    real = sinks.events.put_events
    attempts: list[int] = []

    def throttled_once(**arguments: Any) -> Any:
        attempts.append(len(arguments["Entries"]))
        if len(attempts) == 1:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException"}] + real(Entries=arguments["Entries"][1:])["Entries"],
            }
        return real(**arguments)

    monkeypatch.setattr(sinks.events, "put_events", throttled_once)

    outcome = make_publisher(sinks).publish_records(records_of(5))

    assert outcome.failed == [] and attempts == [5, 1]  # only the refused entry again
    assert len(sinks.received()) == 5  # each once


def test_a_call_that_raises_fails_its_entries_alone(sinks, monkeypatch):
    from botocore.exceptions import ClientError

    real = sinks.events.put_events

    def raising(**arguments: Any) -> Any:
        if any('"call-0012"' in entry["Detail"] for entry in arguments["Entries"]):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutEvents")
        return real(**arguments)

    monkeypatch.setattr(sinks.events, "put_events", raising)
    records = records_of(25)

    outcome = make_publisher(sinks).publish_records(records)

    # The ten entries of the call that raised (records 10-19), and no other.
    assert outcome.failed == [sequence(record) for record in records[10:20]]
    assert len(sinks.received()) == 15 and len(sinks.rows()) == 25


def test_a_record_we_cannot_read_fails_alone_and_a_no_change_is_done(sinks, log_output):
    records = records_of(4)
    records[2]["dynamodb"]["NewImage"]["revision"] = {"S": "not a number"}
    unchanged = stream_record("MODIFY", pns_item(pk="ID#call-0009"), pns_item(pk="ID#call-0009", revision=1))

    outcome = make_publisher(sinks).publish_records([*records, unchanged])

    assert outcome.failed == [sequence(records[2])]
    assert (outcome.published, outcome.errors, outcome.no_change) == (3, 1, 1)
    assert "ValueError" in log_output()


def test_without_a_lake_events_alone(sinks, monkeypatch):
    monkeypatch.setattr(sinks.firehose, "put_record_batch", lambda **_: pytest.fail("no lake, no Firehose"))
    outcome = make_publisher(sinks, lake=False).publish_records(records_of(3))
    assert outcome.failed == [] and outcome.lake_records == 0 and len(sinks.received()) == 3


def test_a_removal_by_ttl_is_an_expired_event(sinks):
    record = stream_record("REMOVE", pns_item(revision=4), None, userIdentity=TTL)
    assert make_publisher(sinks).publish_records([record]).failed == []
    [event] = sinks.received()
    assert event["detail-type"] == EXPIRED and detail_problems(event["detail"]) == []
    [row] = sinks.rows()
    assert row["detail_type"] == EXPIRED


def test_stored_items_are_published_again_as_replays_and_failures_named_by_key(sinks, monkeypatch):
    items = [pns_item(pk=f"ID#call-{n}") for n in range(12)]
    items += [pns_item(sk="v#pns_call_result#abc"), {"pk": "SYNC#cc_cdr", "sk": "checkpoint"}]
    refuse(sinks.firehose, "put_record_batch", monkeypatch, lambda record: False, "unused")
    publisher = make_publisher(sinks)

    outcome = publisher.publish_items(items)

    assert (outcome.published, outcome.no_change, outcome.failed) == (12, 2, [])
    events = sinks.received()
    assert all(event["detail"]["metadata"]["replayed"] for event in events) and len(events) == 12
    assert all(row["replayed"] for row in sinks.rows())
    # To the lake alone; an item we cannot read fails by its key.
    lake_only = publisher.publish_items([*items[:2], pns_item(pk="ID#bad", revision="x")], to_bus=False)
    assert lake_only.failed == ["ID#bad pns_call_result"] and lake_only.published == 2
    assert sinks.received() == []


# -- the function ----------------------------------------------------------------------


@pytest.fixture
def publisher_env(sinks, push_env, monkeypatch) -> Sinks:
    monkeypatch.setenv("EVENT_BUS_NAME", sinks.bus)
    monkeypatch.setenv("DELIVERY_STREAM_NAME", sinks.stream)
    monkeypatch.setattr(publisher_handler, "_publisher", None)
    monkeypatch.setattr(publisher_handler, "_settings", None)
    return sinks


def test_the_function_answers_the_failed_records_and_counts(publisher_env, invoke, monkeypatch, log_output, capsys):
    records = records_of(4)
    refuse(
        publisher_env.events,
        "put_events",
        monkeypatch,
        lambda entry: '"call-0001"' in entry["Detail"],
        "InternalFailure",
    )
    monkeypatch.setattr(publisher_handler, "_publisher", make_publisher(publisher_env))

    answer = invoke("ChangePublisherFunction", {"Records": records})

    assert answer == {"batchItemFailures": [{"itemIdentifier": sequence(records[1])}]}
    [metrics] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert (metrics["Events"], metrics["ChangesPublished"], metrics["EventsFailed"]) == ("publish", [3.0], [1.0])
    logged = log_output()
    # No phone number in any line (the item's caller and callee).
    item = pns_item()
    assert item["callerNumber"] not in logged and item["calleeNumber"] not in logged


def test_hashed_numbers_read_the_salt_once_and_never_leave_in_clear(publisher_env, invoke, monkeypatch):
    secret = boto3.client("secretsmanager").create_secret(Name="salt", SecretString="s" * 64)["ARN"]
    monkeypatch.setenv("PHONE_NUMBERS", "hashed")
    monkeypatch.setenv("PHONE_NUMBER_SALT_SECRET_ID", secret)

    assert invoke("ChangePublisherFunction", {"Records": records_of(2)}) == {"batchItemFailures": []}
    boto3.client("secretsmanager").delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
    assert invoke("ChangePublisherFunction", {"Records": records_of(1, start=5)}) == {"batchItemFailures": []}

    events = publisher_env.received()
    assert len(events) == 3
    item = pns_item()
    for event in events:
        call = event["detail"]["call"]
        assert len(call["caller_number"]) == 64 and item["callerNumber"] not in json.dumps(event)
    assert len({event["detail"]["call"]["caller_number"] for event in events}) == 1  # one number, one text


def test_an_unreadable_salt_fails_the_whole_batch_never_clear_numbers(publisher_env, invoke, monkeypatch):
    monkeypatch.setenv("PHONE_NUMBERS", "hashed")
    monkeypatch.setenv("PHONE_NUMBER_SALT_SECRET_ID", "no-such-secret")
    records = records_of(3)

    answer = invoke("ChangePublisherFunction", {"Records": records})

    assert answer == {"batchItemFailures": [{"itemIdentifier": sequence(record)} for record in records]}
    assert publisher_env.received() == [] and publisher_env.rows() == []


def test_settings_refuse_hashed_without_a_salt_and_a_missing_bus(push_env):
    from nxcloud_cdr.config import PublisherSettings

    base = {**push_env, "EVENT_BUS_NAME": "bus"}
    assert PublisherSettings.from_env(base).phone_numbers == "full"
    with pytest.raises(ValueError, match="PHONE_NUMBER_SALT_SECRET_ID"):
        PublisherSettings.from_env(base | {"PHONE_NUMBERS": "hashed"})
    with pytest.raises(ValueError, match="PHONE_NUMBERS"):
        PublisherSettings.from_env(base | {"PHONE_NUMBERS": "partly"})
    with pytest.raises(ValueError, match="EVENT_BUS_NAME"):
        PublisherSettings.from_env(push_env)


def call_with_cause(cause: str, number: int = 0) -> dict[str, Any]:
    """An INSERT of a call whose hang-up cause (free text NXCLOUD sent) is ``cause``."""
    item = pns_item(pk=f"ID#big-{number}")
    item = item | {"callSummary": {**(item.get("callSummary") or {}), "hangupCause": cause}}
    record = stream_record("INSERT", None, item)
    record["dynamodb"]["SequenceNumber"] = f"{10**20 + number}"
    return record


def test_an_event_past_256_kb_is_put_with_its_longest_text_cut_and_named(sinks, log_output):
    # 150 KB of Chinese text fits as UTF-8 (it was 300 KB as \u escapes, and never put);
    # 300 KB does not: its hang-up cause is cut to fit, the event says so, the row keeps
    # it whole, and the log names the call.
    fits, past = "中" * 50_000, "话" * 87_000  # 261 KB: fitted EventBridge's limit, not the log's
    records = [call_with_cause(fits, 1), call_with_cause(past, 2), *records_of(3)]

    outcome = make_publisher(sinks).publish_records(records)

    assert (outcome.published, outcome.failed) == (5, [])
    delivered = {event["detail"]["call"]["call_id"]: event for event in sinks.received()}
    events = {call_id: event["detail"] for call_id, event in delivered.items()}
    assert all(detail_problems(detail) == [] for detail in events.values())
    # As EventBridge delivers it (its envelope added), within what CloudWatch Logs takes
    # as one event: the event log keeps a copy of every event.
    assert len(json.dumps(delivered["big-2"], ensure_ascii=False).encode()) <= 262_118
    whole, cut = events.get("big-1"), events.get("big-2")
    assert whole is not None and cut is not None
    assert whole["call"]["hangup_cause"] == fits and "truncatedFields" not in whole["metadata"]
    assert cut["metadata"]["truncatedFields"] == ["hangup_cause"]
    assert past.startswith(cut["call"]["hangup_cause"]) and 150_000 < len(cut["call"]["hangup_cause"]) * 3 < 256 * 1024
    rows = {row["call_id"]: row for row in sinks.rows()}
    assert rows["big-2"]["hangup_cause"] == past
    assert rows["big-2"]["idempotency_key"] == cut["metadata"]["idempotencyKey"]
    logged = [json.loads(line) for line in log_output().splitlines() if "size limit" in line]
    assert [(line["callId"], line["columns"]) for line in logged] == [("big-2", ["hangup_cause"])]
